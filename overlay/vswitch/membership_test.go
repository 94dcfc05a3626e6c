package vswitch

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestMembershipStatusPrivate(t *testing.T) {
	owner, ownerID := testKey(t, 1)
	_, self := testKey(t, 3)
	_, other := testKey(t, 4)
	def := testDef(t, owner, true)
	m := NewMembership(def.ID(), self, t0)
	if s := m.Status(t0); s != StatusPending {
		t.Fatalf("before definition: %s", s)
	}
	if ok, err := m.SetDefinition(def); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if s := m.Status(t0); s != StatusUnauthorized {
		t.Fatalf("without certificate: %s", s)
	}
	if s := m.MemberStatus(ownerID, t0); s != StatusOK {
		t.Fatalf("owner: %s", s)
	}
	cert, _ := netrec.IssueCertificate(owner, def, self, netip.MustParseAddr("10.9.0.50"), t0, t0.Add(time.Hour))
	if ok, err := m.AddCertificate(cert); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if s := m.Status(t0.Add(time.Minute)); s != StatusOK {
		t.Fatalf("with certificate: %s", s)
	}
	if got := m.IPv4(t0); got.String() != "10.9.0.50/24" {
		t.Fatalf("IPv4 %v", got)
	}
	if s := m.Status(t0.Add(time.Hour)); s != StatusExpired {
		t.Fatalf("after expiry: %s", s)
	}
	rev, _ := netrec.NewRevocation(owner, def, 1, []netrec.RevokedEntry{{Member: self, Before: t0}})
	m.SetRevocation(rev)
	if s := m.Status(t0); s != StatusRevoked {
		t.Fatalf("revoked: %s", s)
	}
	// Others: an announcement without certificate is pending; Authorize
	// refuses it, then accepts a presented certificate.
	a, _ := netrec.NewAnnouncement(mustKey(t, 4), def.ID(), netip.Addr{}, t0)
	m.AddAnnouncement(a)
	if s := m.MemberStatus(other, t0); s != StatusPending {
		t.Fatalf("announced member: %s", s)
	}
	if err := m.Authorize(other, nil, t0); err == nil {
		t.Fatal("member without certificate authorized")
	}
	oc, _ := netrec.IssueCertificate(owner, def, other, netip.Addr{}, t0, time.Time{})
	sc, _ := netrec.IssueCertificate(owner, def, self, netip.Addr{}, t0, time.Time{})
	if err := m.Authorize(other, sc, t0); err == nil {
		t.Fatal("certificate of another member accepted")
	}
	if err := m.Authorize(other, oc, t0); err != nil {
		t.Fatal(err)
	}
	// Records of another network are refused.
	otherDef := testDef(t, owner, true)
	if _, err := m.SetDefinition(otherDef); err == nil {
		t.Fatal("foreign definition accepted")
	}
	// An older definition does not replace a newer one.
	def2 := *def
	def2.Seq = 2
	def2.Sign(owner)
	m.SetDefinition(&def2)
	if ok, _ := m.SetDefinition(def); ok || m.Def.Seq != 2 {
		t.Fatal("older definition replaced newer")
	}
}

func mustKey(t testing.TB, seed uint64) crypto.PrivKey {
	k, _ := testKey(t, seed)
	return k
}

func TestMembershipPublicAndSync(t *testing.T) {
	owner, _ := testKey(t, 1)
	_, self := testKey(t, 3)
	peers := testPeers(t, 3)
	def := testDef(t, owner, false)
	m := NewMembership(def.ID(), self, t0)
	m.SetDefinition(def)
	if s := m.Status(t0); s != StatusOK {
		t.Fatalf("public network: %s", s)
	}
	sw, err := NewSwitch(m.SwitchConfig(t0))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		if err := m.Authorize(p, nil, t0); err != nil {
			t.Fatal(err)
		}
	}
	if removed := m.Sync(sw, t0); len(removed) != 0 || sw.NumMembers() != 3 {
		t.Fatalf("sync: removed %v, %d members", removed, sw.NumMembers())
	}
	rev, _ := netrec.NewRevocation(owner, def, 1, []netrec.RevokedEntry{{Member: peers[1], Before: t0}})
	m.SetRevocation(rev)
	removed := m.Sync(sw, t0)
	if len(removed) != 1 || removed[0] != peers[1] || sw.NumMembers() != 2 {
		t.Fatalf("after revocation: removed %v, %d members", removed, sw.NumMembers())
	}
	if _, ok := sw.Member(peers[1]); ok {
		t.Fatal("revoked member still in switch")
	}
	if err := m.Authorize(peers[1], nil, t0); err == nil {
		t.Fatal("revoked member authorized on public network")
	}
	// Derived IPv4s avoid each other's announced claims.
	mine := m.IPv4(t0)
	if !def.IPv4Pool.Contains(mine.Addr()) {
		t.Fatalf("IPv4 %v outside pool", mine)
	}
}

// TestTrimKnown: a public network's members are bounded; those heard of
// least recently go first, never the owner nor members the caller keeps
// (linked, social neighbours), and the switch forgets them too without
// counting them as removed (unauthorized). A private network is not
// trimmed.
func TestTrimKnown(t *testing.T) {
	owner, ownerID := testKey(t, 1)
	_, self := testKey(t, 3)
	def := testDef(t, owner, false)
	m := NewMembership(def.ID(), self, t0)
	m.SetDefinition(def)
	sw, err := NewSwitch(m.SwitchConfig(t0))
	if err != nil {
		t.Fatal(err)
	}
	m.Seen(ownerID, t0) // the oldest entry
	var peers []peer.ID
	for i := range 10 {
		k, p := testKey(t, uint64(100+i))
		a, _ := netrec.NewAnnouncement(k, def.ID(), netip.Addr{}, t0.Add(time.Duration(i+1)*time.Minute))
		if _, err := m.AddAnnouncement(a); err != nil {
			t.Fatal(err)
		}
		peers = append(peers, p)
	}
	m.Sync(sw, t0)
	if sw.NumMembers() != 11 {
		t.Fatalf("%d members in the switch, want 11", sw.NumMembers())
	}
	linked := peers[0] // heard of least recently, but linked
	dropped := m.TrimKnown(5, func(p peer.ID) bool { return p == linked })
	if len(dropped) != 6 {
		t.Fatalf("dropped %d members, want 6: %v", len(dropped), dropped)
	}
	for _, p := range append([]peer.ID{ownerID, linked}, peers[7:]...) {
		if _, ok := m.Member(p); !ok {
			t.Errorf("%s forgotten (the owner, a kept member or among the three heard of last)", p)
		}
	}
	for _, p := range peers[1:7] {
		if _, ok := m.Member(p); ok {
			t.Errorf("%s kept, want it forgotten (heard of before the others)", p)
		}
	}
	if removed := m.Sync(sw, t0); len(removed) != 0 || sw.NumMembers() != 5 {
		t.Fatalf("sync after trimming: removed %v, %d members in the switch, want none and 5", removed, sw.NumMembers())
	}
	if again := m.TrimKnown(5, func(peer.ID) bool { return false }); len(again) != 0 {
		t.Fatalf("trimmed again at the bound: %v", again)
	}
	// A member just looked up (its old announcement stored by AddRecord
	// now) is recent: another goes instead.
	k, looked := testKey(t, 101)
	old, _ := netrec.NewAnnouncement(k, def.ID(), netip.Addr{}, t0)
	if ok, err := m.AddRecord(mustMarshal(t, old), t0.Add(time.Hour)); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if dropped := m.TrimKnown(5, func(peer.ID) bool { return false }); len(dropped) != 1 || dropped[0] == looked {
		t.Fatalf("after a lookup: dropped %v, want one member other than the one looked up", dropped)
	}
	// A private network: its owner's certificates bound it.
	pdef := testDef(t, owner, true)
	priv := NewMembership(pdef.ID(), self, t0)
	if ok, err := priv.SetDefinition(pdef); !ok || err != nil {
		t.Fatal(ok, err)
	}
	for _, p := range peers {
		priv.Seen(p, t0)
	}
	if dropped := priv.TrimKnown(1, func(peer.ID) bool { return false }); len(dropped) != 0 {
		t.Fatalf("private network trimmed: %v", dropped)
	}
}

func TestMembershipInfoJSON(t *testing.T) {
	owner, ownerID := testKey(t, 1)
	def := testDef(t, owner, false)
	m := NewMembership(def.ID(), ownerID, t0)
	m.Interface = "kl0"
	m.SetDefinition(def)
	_, p := testKey(t, 5)
	m.Authorize(p, nil, t0)
	b, err := json.Marshal(m.Info(t0))
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	json.Unmarshal(b, &got)
	for _, k := range []string{"network", "name", "status", "interface", "mac", "ipv4", "ipv6", "members", "broadcast"} {
		if _, ok := got[k]; !ok {
			t.Errorf("field %q missing in %s", k, b)
		}
	}
	if got["network"] != def.ID().String() || got["status"] != "ok" || got["is_owner"] != true {
		t.Fatalf("%s", b)
	}
	if v4 := got["ipv4"].([]any); len(v4) != 1 || !strings.HasSuffix(v4[0].(string), "/24") {
		t.Fatalf("ipv4 %v", v4)
	}
	if v6 := got["ipv6"].([]any); len(v6) != 1 || !strings.HasPrefix(v6[0].(string), "fd") {
		t.Fatalf("ipv6 %v", v6)
	}
	if ms := got["members"].([]any); len(ms) != 1 || ms[0].(map[string]any)["status"] != "ok" {
		t.Fatalf("members %v", ms)
	}
}

func TestHelloExchange(t *testing.T) {
	owner, _ := testKey(t, 1)
	ak, ap := testKey(t, 3)
	_, bp := testKey(t, 4)
	def := testDef(t, owner, true)
	ma := NewMembership(def.ID(), ap, t0)
	ma.SetDefinition(def)
	mb := NewMembership(def.ID(), bp, t0)
	mb.SetDefinition(def)

	ann, _ := netrec.NewAnnouncement(ak, def.ID(), netip.Addr{}, t0)
	h, err := ma.Hello(ann)
	if err != nil {
		t.Fatal(err)
	}
	// Without a certificate, a is refused on the private network, but b
	// now knows it as pending.
	if err := mb.AcceptHello(ap, h, t0); err == nil {
		t.Fatal("hello without certificate accepted")
	}
	if s := mb.MemberStatus(ap, t0); s != StatusPending {
		t.Fatalf("a is %s to b", s)
	}
	c, _ := netrec.IssueCertificate(owner, def, ap, netip.Addr{}, t0, time.Time{})
	ma.AddCertificate(c)
	h, _ = ma.Hello(ann)
	wire, _ := netrec.AppendHello(nil, h)
	got, err := netrec.DecodeHello(wire)
	if err != nil {
		t.Fatal(err)
	}
	if err := mb.AcceptHello(ap, got, t0); err != nil {
		t.Fatal(err)
	}
	// The same hello presented by someone else is refused.
	_, third := testKey(t, 9)
	if err := mb.AcceptHello(third, got, t0); err == nil {
		t.Fatal("hello replayed by another node accepted")
	}
	h.Network[0] ^= 1
	if err := mb.AcceptHello(ap, h, t0); err == nil {
		t.Fatal("hello for another network accepted")
	}
}

// A derived IPv4 address survives a restart even when, meanwhile, the
// claims seen would have led to another first choice.
func TestMembershipIPv4Sticky(t *testing.T) {
	owner, _ := testKey(t, 1)
	_, self := testKey(t, 3)
	def := testDef(t, owner, false)
	m := NewMembership(def.ID(), self, t0)
	m.SetDefinition(def)
	sw, _ := NewSwitch(m.SwitchConfig(t0))
	first := netrec.IPv4Candidate(def.IPv4Pool, def.ID(), self, 0)
	// Pretend a lower-priority member held our first candidate: we moved.
	var low peer.ID
	for _, p := range testPeers(t, 40) {
		if netrec.IPv4Priority(def.ID(), p) > netrec.IPv4Priority(def.ID(), self) {
			continue
		}
		low = p
		break
	}
	if low == "" {
		t.Skip("no member with a better priority among the test keys")
	}
	lk := testPeerKey(t, low)
	a, _ := netrec.NewAnnouncement(lk, def.ID(), first, t0)
	m.AddAnnouncement(a)
	m.Sync(sw, t0)
	moved := m.LastIPv4
	if moved == first || !moved.IsValid() || sw.Config().IPv4 != moved {
		t.Fatalf("did not move off a better claim: %v", moved)
	}
	b, err := m.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	// After a restart, the other member is unknown: we keep the moved address.
	re, err := UnmarshalState("test", b)
	if err != nil {
		t.Fatal(err)
	}
	re.Forget(low)
	if got := re.IPv4(t0).Addr(); got != moved {
		t.Fatalf("after restart %v, want %v", got, moved)
	}
}

// Two members announce the same derived address: only the one with the
// better priority gets it.
func TestMemberIPv4Conflict(t *testing.T) {
	owner, _ := testKey(t, 1)
	_, self := testKey(t, 3)
	def := testDef(t, owner, false)
	m := NewMembership(def.ID(), self, t0)
	m.SetDefinition(def)
	ps := testPeers(t, 2)
	ip := netip.MustParseAddr("10.9.0.77")
	for _, p := range ps {
		a, _ := netrec.NewAnnouncement(testPeerKey(t, p), def.ID(), ip, t0)
		m.AddAnnouncement(a)
	}
	win, lose := ps[0], ps[1]
	if netrec.IPv4Priority(def.ID(), lose) < netrec.IPv4Priority(def.ID(), win) {
		win, lose = lose, win
	}
	if m.MemberIPv4(win, t0) != ip || m.MemberIPv4(lose, t0).IsValid() {
		t.Fatalf("winner %v, loser %v", m.MemberIPv4(win, t0), m.MemberIPv4(lose, t0))
	}
	// An address outside the pool is ignored.
	out, _ := netrec.NewAnnouncement(testPeerKey(t, lose), def.ID(), netip.MustParseAddr("192.168.1.1"), t0.Add(time.Second))
	m.AddAnnouncement(out)
	if m.MemberIPv4(lose, t0).IsValid() {
		t.Fatal("address outside the pool accepted")
	}
}

// TestStrangersCannotMoveAddresses is the attack of issue 10: on a private
// network, nodes without a certificate announce the owner's and a member's
// IPv4 addresses (with a better IPv4Priority than theirs). Neither loses
// its address, the strangers' entries stay bounded, and none is saved.
func TestStrangersCannotMoveAddresses(t *testing.T) {
	owner, ownerID := testKey(t, 1)
	def := testDef(t, owner, true)
	m := NewMembership(def.ID(), ownerID, t0)
	m.SetDefinition(def)
	_, member := testKey(t, 2)
	memberIP := netip.MustParseAddr("10.9.0.20")
	cert, _ := netrec.IssueCertificate(owner, def, member, memberIP, t0, time.Time{})
	m.AddCertificate(cert)
	ownerIP := m.IPv4(t0).Addr()
	if !ownerIP.IsValid() {
		t.Fatal("owner has no IPv4")
	}
	// Strangers that would win a conflict over the owner's address.
	strangers := 0
	for seed := uint64(100); strangers < MaxPending+50; seed++ {
		k, p := testKey(t, seed)
		ip := ownerIP
		if seed%2 == 0 {
			ip = memberIP
		}
		if ip == ownerIP && netrec.IPv4Priority(def.ID(), p) > netrec.IPv4Priority(def.ID(), ownerID) {
			continue
		}
		a, _ := netrec.NewAnnouncement(k, def.ID(), ip, t0.Add(time.Duration(seed)*time.Millisecond))
		if err := m.AcceptHello(p, netrec.Hello{Network: def.ID(), Announcement: mustMarshal(t, a)}, t0); err == nil {
			t.Fatalf("stranger %s accepted", p)
		}
		strangers++
		if got := m.MemberIPv4(p, t0); got.IsValid() {
			t.Fatalf("stranger %s holds %v", p, got)
		}
	}
	if got := m.IPv4(t0).Addr(); got != ownerIP {
		t.Fatalf("owner's IPv4 moved from %v to %v", ownerIP, got)
	}
	if got := m.MemberIPv4(member, t0); got != memberIP {
		t.Fatalf("member's IPv4 is %v, want %v", got, memberIP)
	}
	if n := m.Pending(t0); n > MaxPending {
		t.Fatalf("%d pending entries, want at most %d", n, MaxPending)
	}
	if n := len(m.Members(t0)); n > MaxPending+1 {
		t.Fatalf("%d members listed after %d strangers", n, strangers)
	}
	b, err := m.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	l, err := UnmarshalState("test", b)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(l.Members(t0)); n != 1 {
		t.Fatalf("saved %d members, want only the authorized one", n)
	}
}

func mustMarshal(t testing.TB, r interface{ Marshal() ([]byte, error) }) []byte {
	t.Helper()
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BenchmarkMembersLarge: Members() on a public network of 4000 announced
// members (claims computed once per change, not once per member).
func BenchmarkMembersLarge(b *testing.B) {
	owner, _ := testKey(b, 1)
	_, self := testKey(b, 3)
	def := testDef(b, owner, false)
	def.IPv4Pool = netip.MustParsePrefix("10.9.0.0/16")
	m := NewMembership(def.ID(), self, t0)
	m.Def = def
	for i := range 4000 {
		k, _ := testKey(b, uint64(1000+i))
		a, _ := netrec.NewAnnouncement(k, def.ID(), netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)}), t0)
		m.AddAnnouncement(a)
	}
	b.ResetTimer()
	for range b.N {
		m.Members(t0)
	}
}
