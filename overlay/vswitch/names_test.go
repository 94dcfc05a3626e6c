package vswitch

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestNames(t *testing.T) {
	owner, _ := testKey(t, 1)
	_, self := testKey(t, 3)
	def := testDef(t, owner, true)
	m := NewMembership(def.ID(), self, t0)
	m.SetDefinition(def)
	sc, _ := netrec.IssueCertificate(owner, def, self, netip.MustParseAddr("10.9.0.3"), t0, time.Time{})
	m.AddCertificate(sc)
	ids := map[uint64]peer.ID{}
	member := func(seed uint64, announced, certName string, certified bool) {
		k, p := testKey(t, seed)
		ids[seed] = p
		a, err := netrec.NewNamedAnnouncement(k, def.ID(), netip.Addr{}, announced, t0)
		if err != nil {
			t.Fatal(err)
		}
		m.AddAnnouncement(a)
		if certified {
			c, err := netrec.IssueNamedCertificate(owner, def, p, netip.MustParseAddr("10.9.0."+string(rune('0'+seed))), certName, t0, time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			m.AddCertificate(c)
		}
	}
	member(4, "b", "", true)
	member(5, "b", "", true)
	member(6, "c", "b", true)    // the owner named it b: it wins
	member(7, "evil", "", false) // pending: no name
	member(8, "self", "", true)  // the same name as this node's

	nt := m.Names(t0, "self")
	if e := nt.ByName["b"]; e.Member != ids[6] || e.IPv4 != netip.MustParseAddr("10.9.0.6") || e.IPv6 != netrec.MemberIPv6(def.ID(), ids[6]) {
		t.Fatalf("b = %+v, want member 6 (certified)", e)
	}
	for _, s := range []uint64{4, 5} {
		want := "b-" + AddressName(ids[s])[len(AddressName(ids[s]))-6:]
		if got := nt.Of[ids[s]]; got != want || nt.ByName[want].Member != ids[s] {
			t.Errorf("member %d named %q, want %q", s, got, want)
		}
	}
	if _, ok := nt.ByName["evil"]; ok {
		t.Error("a pending member has a name")
	}
	if _, ok := nt.ByName["c"]; ok {
		t.Error("an announced name overrode by the certificate still resolves")
	}
	// Between two self-chosen names the smaller address keeps it.
	winner := self
	if ids[8] < self {
		winner = ids[8]
	}
	if nt.ByName["self"].Member != winner {
		t.Errorf("self = %v, want %v", nt.ByName["self"].Member, winner)
	}
	if e := nt.ByName[AddressName(self)]; e.Member != self || e.IPv4 != netip.MustParseAddr("10.9.0.3") {
		t.Errorf("own address name = %+v", e)
	}
	for _, p := range ids {
		if p == ids[7] {
			continue
		}
		if nt.ByName[AddressName(p)].Member != p {
			t.Errorf("address name of %v does not resolve", p)
		}
	}
	// Same records, another node's view: the same table (determinism).
	nt2 := m.Names(t0, "self")
	for n, e := range nt.ByName {
		if nt2.ByName[n] != e {
			t.Fatalf("table differs for %q", n)
		}
	}
	// A revoked member loses its names.
	rev, _ := netrec.NewRevocation(owner, def, 1, []netrec.RevokedEntry{{Member: ids[6], Before: t0}})
	m.SetRevocation(rev)
	nt = m.Names(t0, "self")
	if e, ok := nt.ByName["b"]; !ok || e.Member != min(ids[4], ids[5]) {
		t.Fatalf("after revoking 6, b = %+v", e)
	}
	if _, ok := nt.ByName[AddressName(ids[6])]; ok {
		t.Fatal("revoked member's address name resolves")
	}
}

// A chosen name equal to another member's address name does not take it.
func TestNamesAddressBeatsChosen(t *testing.T) {
	owner, _ := testKey(t, 1)
	_, self := testKey(t, 3)
	k4, p4 := testKey(t, 4)
	def := testDef(t, owner, false)
	m := NewMembership(def.ID(), self, t0)
	m.SetDefinition(def)
	a, _ := netrec.NewNamedAnnouncement(k4, def.ID(), netip.Addr{}, AddressName(self), t0)
	m.AddAnnouncement(a)
	m.Authorize(p4, nil, t0)
	nt := m.Names(t0, "")
	if nt.ByName[AddressName(self)].Member != self {
		t.Fatal("a member took another's address name")
	}
	if got := nt.Of[p4]; !strings.HasPrefix(got, AddressName(self)+"-") {
		t.Fatalf("loser named %q", got)
	}
	if n := conflictName(strings.Repeat("x", 63), p4); len(n) != 63 || netrec.ValidName(n) != nil {
		t.Fatalf("conflict name %q", n)
	}
}
