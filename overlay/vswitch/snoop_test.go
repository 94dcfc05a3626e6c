package vswitch

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"github.com/kadlan/kadlan/overlay/social"
	"github.com/kadlan/kadlan/tap/ether"
)

// igmpFrame wraps an IGMP message in IPv4 with a router-alert option.
func igmpFrame(src ether.MAC, sip, dip netip.Addr, igmp []byte) []byte {
	ip := make([]byte, 24)
	ip[0], ip[8], ip[9] = 0x46, 1, 2
	binary.BigEndian.PutUint16(ip[2:4], uint16(24+len(igmp)))
	s, d := sip.As4(), dip.As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	copy(ip[20:24], []byte{0x94, 4, 0, 0})
	f := make([]byte, ether.HeaderLen)
	ether.PutHeader(f, ether.Header{Dst: ether.IPv4Multicast(dip), Src: src, Type: ether.TypeIPv4})
	return append(append(f, ip...), igmp...)
}

// mldFrame wraps an MLD message in IPv6 with a hop-by-hop header.
func mldFrame(src ether.MAC, sip netip.Addr, mld []byte) []byte {
	dip := netip.MustParseAddr("ff02::16")
	hbh := []byte{ether.ProtoICMPv6, 0, 5, 2, 0, 0, 1, 0}
	ip := make([]byte, 40)
	ip[0], ip[6], ip[7] = 0x60, 0, 1
	binary.BigEndian.PutUint16(ip[4:6], uint16(len(hbh)+len(mld)))
	s, d := sip.As16(), dip.As16()
	copy(ip[8:24], s[:])
	copy(ip[24:40], d[:])
	f := make([]byte, ether.HeaderLen)
	ether.PutHeader(f, ether.Header{Dst: ether.IPv6Multicast(dip), Src: src, Type: ether.TypeIPv6})
	return append(append(append(f, ip...), hbh...), mld...)
}

func TestSwitchSnoopsMembershipReports(t *testing.T) {
	w := newTestWorld(t, 3, false)
	w.connectAll()
	a := w.nodes[0]
	ssdp := netip.MustParseAddr("239.255.255.250")
	llmnr := netip.MustParseAddr("ff02::1:3")
	has := func(ip netip.Addr) bool {
		var mac ether.MAC
		if ip.Is4() {
			mac = ether.IPv4Multicast(ip)
		} else {
			mac = ether.IPv6Multicast(ip)
		}
		return slices.Contains(a.sw.Social().Groups(), GroupOf(mac))
	}

	// IGMPv2 report: join, announced to the two neighbours, not broadcast.
	v2 := []byte{0x16, 0, 0, 0, 239, 255, 255, 250}
	outs := a.sw.HandleLocal(w.now, igmpFrame(a.mac, a.ipv4, ssdp, v2))
	if !has(ssdp) {
		t.Fatal("IGMPv2 report did not join")
	}
	if len(outs) != 2 || outs[0].Msg.Kind != MsgGroups {
		t.Fatalf("%d outputs after join", len(outs))
	}
	groups, _ := social.DecodeGroupAnnouncement(outs[0].Msg.Payload)
	if !slices.Contains(groups, GroupOf(ether.IPv4Multicast(ssdp))) {
		t.Fatal("announcement lacks the new group")
	}
	// The same report again changes nothing: no announcement.
	if outs := a.sw.HandleLocal(w.now, igmpFrame(a.mac, a.ipv4, ssdp, v2)); len(outs) != 0 {
		t.Fatal("repeated report re-announced")
	}
	// IGMPv3: TO_IN {} for the group is a leave.
	v3 := []byte{0x22, 0, 0, 0, 0, 0, 0, 1, 3, 0, 0, 0, 239, 255, 255, 250}
	a.sw.HandleLocal(w.now, igmpFrame(a.mac, a.ipv4, netip.MustParseAddr("224.0.0.22"), v3))
	if has(ssdp) {
		t.Fatal("IGMPv3 TO_IN {} did not leave")
	}
	// MLDv2: CHANGE_TO_EXCLUDE {} is a join.
	rec := append([]byte{4, 0, 0, 0}, llmnr.AsSlice()...)
	mld := append([]byte{143, 0, 0, 0, 0, 0, 0, 1}, rec...)
	a.sw.HandleLocal(w.now, mldFrame(a.mac, a.ipv6, mld))
	if !has(llmnr) {
		t.Fatal("MLDv2 report did not join")
	}
	// MLDv1 done leaves.
	done := append([]byte{132, 0, 0, 0, 0, 0, 0, 0}, llmnr.AsSlice()...)
	a.sw.HandleLocal(w.now, mldFrame(a.mac, a.ipv6, done))
	if has(llmnr) {
		t.Fatal("MLDv1 done did not leave")
	}
	if c := a.sw.Counters(); c.ReportsSnooped != 5 || c.BroadcastOrigin != 0 {
		t.Fatalf("%+v", c)
	}
}

func FuzzParseReport(f *testing.F) {
	mac := ether.MAC{2, 0, 0, 0, 0, 1}
	f.Add(igmpFrame(mac, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("239.1.1.1"), []byte{0x16, 0, 0, 0, 239, 1, 1, 1}))
	f.Add(igmpFrame(mac, netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("224.0.0.22"),
		[]byte{0x22, 0, 0, 0, 0, 0, 0, 2, 4, 0, 0, 0, 239, 1, 1, 1, 1, 1, 0, 1, 239, 2, 2, 2, 10, 0, 0, 9, 0, 0, 0, 0}))
	f.Add(mldFrame(mac, netip.MustParseAddr("fe80::1"), append([]byte{143, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 0}, netip.MustParseAddr("ff02::fb").AsSlice()...)))
	f.Fuzz(func(t *testing.T, frame []byte) {
		h, err := ether.ParseHeader(frame)
		if err != nil {
			return
		}
		changes, ok := parseReport(nil, h, frame)
		if !ok {
			return // the switch ignores changes of a report it rejects
		}
		for _, c := range changes {
			if !c.mac.IsMulticast() {
				t.Fatalf("non-group MAC %v from a report", c.mac)
			}
		}
	})
}
