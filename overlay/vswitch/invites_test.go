package vswitch

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// inviteHello is the Hello of a node with key k that redeemed c at t.
func inviteHello(t *testing.T, k crypto.PrivKey, c *netrec.Capability, at time.Time, ipv4 string) netrec.Hello {
	t.Helper()
	id, _ := peer.IDFromPrivateKey(k)
	m := NewMembership(c.Network(), id, at)
	r, err := netrec.Redeem(k, c, at)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.UseInvite(c, r, at); err != nil {
		t.Fatal(err)
	}
	var ann *netrec.Announcement
	if ipv4 != "" {
		ann, _ = netrec.NewAnnouncement(k, c.Network(), netip.MustParseAddr(ipv4), at)
	}
	h, err := m.Hello(ann)
	if err != nil || len(h.Invite) == 0 || len(h.Certificate) != 0 {
		t.Fatalf("hello %+v %v", h, err)
	}
	return h
}

func mustState(t *testing.T, m *Membership) []byte {
	t.Helper()
	b, err := m.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A member admits a node that presents a valid invite (status invited,
// in the switch, with an address claim) until the invite expires, the
// owner revokes it, or the owner's certificate takes over; the second
// redeemer of a one-use invite is refused.
func TestInvitedMember(t *testing.T) {
	owner, _ := testKey(t, 1)
	_, self := testKey(t, 3)
	kn, n := testKey(t, 5)
	kn2, n2 := testKey(t, 6)
	def := testDef(t, owner, true)
	c, err := netrec.NewCapability(owner, def, t0, t0.Add(time.Hour), 1)
	if err != nil {
		t.Fatal(err)
	}
	m := NewMembership(def.ID(), self, t0)
	m.SetDefinition(def)
	sc, _ := netrec.IssueCertificate(owner, def, self, netip.Addr{}, t0, time.Time{})
	m.AddCertificate(sc)
	sw, _ := NewSwitch(m.SwitchConfig(t0))

	now := t0.Add(time.Minute)
	if err := m.AcceptHello(n, inviteHello(t, kn, c, now, "10.9.0.77"), now); err != nil {
		t.Fatal(err)
	}
	if s := m.MemberStatus(n, now); s != StatusInvited {
		t.Fatalf("invited node: %s", s)
	}
	if m.Sync(sw, now); sw.NumMembers() != 1 {
		t.Fatal("invited node not in the switch")
	}
	if ip := m.MemberIPv4(n, now); ip.String() != "10.9.0.77" {
		t.Fatalf("invited node's address %v", ip)
	}
	if got := m.Invited(now); len(got) != 1 || got[0] != n {
		t.Fatalf("Invited %v", got)
	}
	if mi := m.Members(now); len(mi) != 1 || mi[0].Status != StatusInvited || !mi[0].Expires.Equal(c.NotAfter) {
		t.Fatalf("members %+v", mi)
	}

	// The second redeemer of the one-use invite is refused and gains
	// nothing but a pending entry (like any stranger's announcement).
	later := now.Add(time.Second)
	if err := m.AcceptHello(n2, inviteHello(t, kn2, c, later, ""), later); err == nil {
		t.Fatal("second redeemer of a one-use invite admitted")
	}
	if s := m.MemberStatus(n2, later); s != StatusPending {
		t.Fatalf("second redeemer: %s", s)
	}
	if _, known := m.Member(n2); known {
		t.Fatal("second redeemer left an entry")
	}
	// A redemption that claims an earlier time than the winner's wins the
	// use (the documented race: redeemers' clocks are trusted).

	// Forged, expired or foreign invites change nothing.
	before := mustState(t, m)
	h := inviteHello(t, kn2, c, later, "10.9.0.78")
	forged := h
	forged.Invite = bytes.Clone(h.Invite)
	forged.Invite[40] ^= 1 // in the capability
	if err := m.AcceptHello(n2, forged, later); err == nil {
		t.Fatal("forged invite accepted")
	}
	if err := m.AcceptHello(n2, h, t0.Add(2*time.Hour)); err == nil {
		t.Fatal("expired invite accepted")
	}
	if err := m.AcceptHello(n, inviteHello(t, kn2, c, later, ""), later); err == nil {
		t.Fatal("another node's redemption accepted")
	}
	otherDef := testDef(t, owner, true)
	oc, _ := netrec.NewCapability(owner, otherDef, t0, t0.Add(time.Hour), 5)
	foreign := inviteHello(t, kn2, oc, later, "")
	foreign.Network = def.ID()
	if err := m.AcceptHello(n2, foreign, later); err == nil {
		t.Fatal("invite of another network accepted")
	}
	if after := mustState(t, m); !bytes.Equal(before, after) {
		t.Fatalf("refused hellos changed the state:\n%s\n%s", before, after)
	}
	if _, known := m.Member(n2); known {
		t.Fatal("refused hellos left an entry")
	}

	// The state survives a restart.
	m2, err := UnmarshalState("saved", mustState(t, m))
	if err != nil {
		t.Fatal(err)
	}
	if s := m2.MemberStatus(n, now); s != StatusInvited {
		t.Fatalf("after restart: %s", s)
	}

	// Expiry: refused, out of the switch.
	exp := c.NotAfter
	if s := m.MemberStatus(n, exp); s != StatusPending {
		t.Fatalf("after the invite's expiry: %s", s)
	}
	if removed := m.Sync(sw, exp); len(removed) != 1 || removed[0] != n {
		t.Fatalf("expired invite: removed %v", removed)
	}
	if err := m.Authorize(n, nil, exp); err == nil {
		t.Fatal("expired invite still authorizes")
	}

	// Revocation works on an invited member (on the restarted copy: the
	// expired invite is gone from m).
	m = m2
	sw, _ = NewSwitch(m.SwitchConfig(now))
	m.Sync(sw, now)
	rev, _ := netrec.NewRevocation(owner, def, 1, []netrec.RevokedEntry{{Member: n, Before: now}})
	m.SetRevocation(rev)
	if s := m.MemberStatus(n, now); s != StatusRevoked {
		t.Fatalf("revoked invited member: %s", s)
	}
	if removed := m.Sync(sw, now); len(removed) != 1 {
		t.Fatalf("revoked invited member: removed %v", removed)
	}
	// The owner's certificate (issued after the revocation: readmitted)
	// replaces the invite.
	cert, _ := netrec.IssueCertificate(owner, def, n, netip.Addr{}, now.Add(time.Second), time.Time{})
	m.AddCertificate(cert)
	if s := m.MemberStatus(n, exp.Add(time.Hour)); s != StatusOK {
		t.Fatalf("with the owner's certificate: %s", s)
	}
	if got := m.Invited(now.Add(2 * time.Second)); len(got) != 0 {
		t.Fatalf("Invited after the certificate: %v", got)
	}
}

// The newcomer's own view: ok by its invite, used up when it learns of
// winners before it, expired after NotAfter.
func TestOwnInvite(t *testing.T) {
	owner, _ := testKey(t, 1)
	kn, n := testKey(t, 5)
	kw, _ := testKey(t, 6)
	def := testDef(t, owner, true)
	c, _ := netrec.NewCapability(owner, def, t0, t0.Add(time.Hour), 1)
	m := NewMembership(def.ID(), n, t0)
	now := t0.Add(time.Minute)
	r, _ := netrec.Redeem(kn, c, now)
	if err := m.UseInvite(c, r, c.NotAfter); err == nil {
		t.Fatal("expired invite used")
	}
	if err := m.UseInvite(c, r, now); err != nil {
		t.Fatal(err)
	}
	m.SetDefinition(def)
	if s := m.Status(now); s != StatusOK {
		t.Fatalf("own status with an invite: %s", s)
	}
	if ni := m.Info(now); ni.Invite != "admitted" || !ni.Expires.Equal(c.NotAfter) || len(ni.IPv4) != 1 {
		t.Fatalf("info %+v", ni)
	}
	if s := m.Status(c.NotAfter); s != StatusExpired {
		t.Fatalf("own status after expiry: %s", s)
	}
	// Someone redeemed it earlier: used up.
	wr, _ := netrec.Redeem(kw, c, now.Add(-time.Second))
	ws := &netrec.RedemptionSet{Cap: c}
	ws.Add(wr)
	b, _ := ws.Marshal()
	if ch, err := m.AddRecord(b, now); !ch || err != nil {
		t.Fatal(ch, err)
	}
	if s := m.Status(now); s != StatusUnauthorized {
		t.Fatalf("own status, invite used up: %s", s)
	}
	if ni := m.Info(now); ni.Invite != "used up" {
		t.Fatalf("info %+v", ni)
	}
	// The owner's certificate ends the invite's role.
	cert, _ := netrec.IssueCertificate(owner, def, n, netip.Addr{}, now, time.Time{})
	m.AddCertificate(cert)
	if h, _ := m.Hello(nil); len(h.Invite) != 0 || len(h.Certificate) == 0 {
		t.Fatal("hello with certificate still carries the invite")
	}
	if ni := m.Info(now); ni.Invite != "" || ni.Status != StatusOK {
		t.Fatalf("info %+v", ni)
	}
}

// FuzzAcceptHello: whatever a peer sends as a hello, AcceptHello never
// panics, and a refused hello leaves the saved state unchanged.
func FuzzAcceptHello(f *testing.F) {
	owner, _ := testKey(f, 1)
	def := testDef(f, owner, true)
	c, _ := netrec.NewCapability(owner, def, t0, t0.Add(time.Hour), 1)
	kn, n := testKey(f, 5)
	r, _ := netrec.Redeem(kn, c, t0)
	inv, _ := (&netrec.RedemptionSet{Cap: c, Entries: []netrec.Redemption{r}}).Marshal()
	ann, _ := netrec.NewAnnouncement(kn, def.ID(), netip.MustParseAddr("10.9.0.5"), t0)
	ab, _ := ann.Marshal()
	b, _ := netrec.AppendHello(nil, netrec.Hello{Network: def.ID(), Announcement: ab, Invite: inv})
	f.Add(b)
	b, _ = netrec.AppendHello(nil, netrec.Hello{Network: def.ID(), Announcement: ab})
	f.Add(b)
	_, self := testKey(f, 3)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := netrec.DecodeHello(b)
		if err != nil {
			return
		}
		m := NewMembership(def.ID(), self, t0)
		m.SetDefinition(def)
		before, _ := m.MarshalState()
		if err := m.AcceptHello(n, h, t0.Add(time.Second)); err != nil {
			if after, _ := m.MarshalState(); !bytes.Equal(before, after) {
				t.Fatalf("refused hello (%v) changed the saved state", err)
			}
			return
		}
		if !m.MemberStatus(n, t0.Add(time.Second)).Admitted() {
			t.Fatal("accepted hello, member not admitted")
		}
	})
}
