package vswitch

import (
	"net/netip"
	"testing"
	"time"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// An address or MAC record names whoever filed it last; Holds and HoldsMAC
// say whether the named node may have the address: on a private network
// only a member whose certificate gives it, not a stranger announcing it,
// nor a member announcing another's address.
func TestHoldsAddress(t *testing.T) {
	owner, _ := testKey(t, 1)
	_, self := testKey(t, 3)
	km, mem := testKey(t, 5)
	ks, stranger := testKey(t, 6)
	kb, other := testKey(t, 7)
	def := testDef(t, owner, true)
	m := NewMembership(def.ID(), self, t0)
	m.SetDefinition(def)
	now := t0.Add(time.Minute)
	ip := netip.MustParseAddr("10.9.0.20")
	for _, c := range []struct {
		p  peer.ID
		ip netip.Addr
	}{{self, netip.Addr{}}, {mem, ip}, {other, netip.MustParseAddr("10.9.0.21")}} {
		cert, err := netrec.IssueCertificate(owner, def, c.p, c.ip, t0, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		m.AddCertificate(cert)
	}
	announce := func(k crypto.PrivKey, addr netip.Addr) {
		t.Helper()
		a, err := netrec.NewAnnouncement(k, def.ID(), addr, now)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := a.Marshal()
		m.AddRecord(b, now)
	}
	announce(km, ip)
	announce(ks, ip) // a stranger's record for the member's address
	announce(kb, ip) // another member announcing it too
	if !m.Holds(mem, ip, now) {
		t.Fatal("the member whose certificate gives the address does not hold it")
	}
	if m.Holds(stranger, ip, now) {
		t.Fatal("a stranger holds a member's address by announcing it")
	}
	if m.Holds(other, ip, now) {
		t.Fatal("a member holds another member's certified address by announcing it")
	}
	if !m.Holds(mem, netrec.MemberIPv6(def.ID(), mem), now) || m.Holds(stranger, netrec.MemberIPv6(def.ID(), stranger), now) {
		t.Fatal("derived IPv6: a member holds its own, a stranger none")
	}
	// A MAC record names whoever filed it too: the member holds its own
	// derived MAC, not another member's, and a stranger holds none.
	id := def.ID()
	if !m.HoldsMAC(mem, netrec.MemberMAC(id, mem), now) || m.HoldsMAC(mem, netrec.MemberMAC(id, other), now) ||
		m.HoldsMAC(stranger, netrec.MemberMAC(id, stranger), now) {
		t.Fatal("derived MAC: a member holds its own only, a stranger none")
	}
}
