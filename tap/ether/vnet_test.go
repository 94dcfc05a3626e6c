package ether

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// pseudoSum is the unfolded pseudo-header sum for TCP (6) or UDP (17).
func pseudoSum(src, dst netip.Addr, proto uint8, length int) uint64 {
	var s uint64
	a, b := src.AsSlice(), dst.AsSlice()
	for i := 0; i+1 < len(a); i += 2 {
		s += uint64(binary.BigEndian.Uint16(a[i:])) + uint64(binary.BigEndian.Uint16(b[i:]))
	}
	return s + uint64(proto) + uint64(length)
}

func fold(s uint64) uint16 {
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}

// gsoFrame builds a TCP super-frame as the kernel hands it to a TAP with
// TSO: headers for the first segment, the whole payload, and the
// pseudo-header sum in the TCP checksum field.
func gsoFrame(v6 bool, payload []byte, mss int) ([]byte, VnetHdr, netip.Addr, netip.Addr) {
	src, dst := netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.1.0.2")
	typ, ipLen, et := uint8(VnetGSOTCPv4), 20, TypeIPv4
	if v6 {
		src, dst = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
		typ, ipLen, et = VnetGSOTCPv6, 40, TypeIPv6
	}
	tcpLen := 32 // with 12 bytes of options
	f := make([]byte, HeaderLen+ipLen+tcpLen, HeaderLen+ipLen+tcpLen+len(payload))
	PutHeader(f, Header{Dst: MAC{2, 0, 0, 0, 0, 2}, Src: MAC{2, 0, 0, 0, 0, 1}, Type: et})
	ip := f[HeaderLen:]
	if v6 {
		ip[0], ip[6], ip[7] = 0x60, 6, 64
		binary.BigEndian.PutUint16(ip[4:], uint16(tcpLen+len(payload)))
		copy(ip[8:24], src.AsSlice())
		copy(ip[24:40], dst.AsSlice())
	} else {
		ip[0], ip[8], ip[9] = 0x45, 64, 6
		binary.BigEndian.PutUint16(ip[2:], uint16(ipLen+tcpLen+len(payload)))
		binary.BigEndian.PutUint16(ip[4:], 1000) // IP ID
		copy(ip[12:16], src.AsSlice())
		copy(ip[16:20], dst.AsSlice())
	}
	tcp := ip[ipLen:]
	binary.BigEndian.PutUint16(tcp[0:], 5201)
	binary.BigEndian.PutUint16(tcp[2:], 40000)
	binary.BigEndian.PutUint32(tcp[4:], 0xfffff000) // wraps during the run
	tcp[12] = byte(tcpLen/4) << 4
	tcp[13] = 0x80 | 0x10 | 0x08 | 0x01 // CWR ACK PSH FIN
	binary.BigEndian.PutUint16(tcp[16:], fold(pseudoSum(src, dst, 6, tcpLen+len(payload))))
	f = append(f, payload...)
	h := VnetHdr{Flags: VnetNeedsCsum, GSOType: typ, HdrLen: uint16(HeaderLen + ipLen + tcpLen), GSOSize: uint16(mss),
		CsumStart: uint16(HeaderLen + ipLen), CsumOffset: 16}
	return f, h, src, dst
}

func TestVnetHdrRoundTrip(t *testing.T) {
	h := VnetHdr{Flags: 1, GSOType: 4, HdrLen: 86, GSOSize: 1428, CsumStart: 54, CsumOffset: 16}
	b := make([]byte, VnetHdrLen)
	h.Put(b)
	got, err := ParseVnetHdr(b)
	if err != nil || got != h || !got.IsGSO() {
		t.Fatal(got, err)
	}
	if _, err := ParseVnetHdr(b[:9]); err == nil {
		t.Fatal("short header accepted")
	}
}

func TestSegmentTCP(t *testing.T) {
	payload := make([]byte, 3500)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	for _, v6 := range []bool{false, true} {
		f, h, src, dst := gsoFrame(v6, payload, 1448)
		orig := bytes.Clone(f)
		var segs [][]byte
		_, err := SegmentTCP(f, h, nil, func(s []byte) error { segs = append(segs, bytes.Clone(s)); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(f, orig) {
			t.Fatal("input modified")
		}
		if len(segs) != 3 {
			t.Fatalf("v6=%v: %d segments", v6, len(segs))
		}
		var got []byte
		for i, s := range segs {
			ip := s[HeaderLen:h.CsumStart]
			tcp := s[h.CsumStart:]
			data := s[h.HdrLen:]
			want := min(1448, len(payload)-1448*i)
			if len(data) != want {
				t.Fatalf("segment %d: %d bytes", i, len(data))
			}
			got = append(got, data...)
			if v6 {
				if int(binary.BigEndian.Uint16(ip[4:])) != len(tcp) {
					t.Fatalf("segment %d: IPv6 payload length", i)
				}
			} else {
				if int(binary.BigEndian.Uint16(ip[2:])) != len(s)-HeaderLen || binary.BigEndian.Uint16(ip[4:]) != uint16(1000+i) {
					t.Fatalf("segment %d: IPv4 length or ID", i)
				}
				if csum(ip, 0) != 0xffff {
					t.Fatalf("segment %d: IPv4 header checksum does not verify", i)
				}
			}
			if fold(uint64(csum(tcp, pseudoSum(src, dst, 6, len(tcp))))) != 0xffff {
				t.Fatalf("segment %d: TCP checksum does not verify", i)
			}
			if seq := binary.BigEndian.Uint32(tcp[4:]); seq != 0xfffff000+uint32(1448*i) {
				t.Fatalf("segment %d: seq %#x", i, seq)
			}
			flags := tcp[13]
			last := i == len(segs)-1
			if (flags&0x09 != 0) != last || flags&0x10 == 0 || (flags&0x80 != 0) != (i == 0) {
				t.Fatalf("segment %d: flags %#x", i, flags)
			}
		}
		if !bytes.Equal(got, payload) {
			t.Fatal("payload not preserved")
		}
	}
}

func TestSegmentTCPRejects(t *testing.T) {
	f, h, _, _ := gsoFrame(false, make([]byte, 100), 50)
	tests := []struct {
		name string
		mut  func(*VnetHdr)
	}{
		{"udp", func(h *VnetHdr) { h.GSOType = VnetGSOUDPL4 }},
		{"v6 type on v4", func(h *VnetHdr) { h.GSOType = VnetGSOTCPv6 }},
		{"zero segment", func(h *VnetHdr) { h.GSOSize = 0 }},
		{"header beyond frame", func(h *VnetHdr) { h.HdrLen = 5000 }},
		{"csum start inside IP header", func(h *VnetHdr) { h.CsumStart = 20 }},
	}
	for _, tt := range tests {
		hh := h
		tt.mut(&hh)
		if _, err := SegmentTCP(f, hh, nil, func([]byte) error { return nil }); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

func TestFinishChecksum(t *testing.T) {
	f, h, src, dst := gsoFrame(false, make([]byte, 333), 1448)
	h.GSOType = VnetGSONone
	if err := FinishChecksum(f, h); err != nil {
		t.Fatal(err)
	}
	tcp := f[h.CsumStart:]
	if fold(uint64(csum(tcp, pseudoSum(src, dst, 6, len(tcp))))) != 0xffff {
		t.Fatal("checksum does not verify")
	}
	if err := FinishChecksum(f[:40], h); err == nil {
		t.Fatal("checksum field beyond the frame accepted")
	}
}

func FuzzSegmentTCP(f *testing.F) {
	fr, h, _, _ := gsoFrame(false, make([]byte, 3000), 1000)
	b := make([]byte, VnetHdrLen)
	h.Put(b)
	f.Add(append(b, fr...))
	fr, h, _, _ = gsoFrame(true, make([]byte, 100), 40)
	h.Put(b)
	f.Add(append(b, fr...))
	f.Fuzz(func(t *testing.T, in []byte) {
		h, err := ParseVnetHdr(in)
		if err != nil {
			return
		}
		frame := in[VnetHdrLen:]
		total := 0
		_, err = SegmentTCP(frame, h, nil, func(s []byte) error {
			if len(s) > int(h.HdrLen)+int(h.GSOSize) {
				t.Fatalf("segment of %d bytes exceeds %d+%d", len(s), h.HdrLen, h.GSOSize)
			}
			total += len(s) - int(h.HdrLen)
			return nil
		})
		if err == nil && total != len(frame)-int(h.HdrLen) {
			t.Fatalf("segments carry %d of %d payload bytes", total, len(frame)-int(h.HdrLen))
		}
		FinishChecksum(frame, h)
	})
}
