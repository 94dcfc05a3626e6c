package netrec

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kadlan/kadlan/tap/ether"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// testKey returns a deterministic Ed25519 key and its address.
func testKey(t testing.TB, seed uint64) (crypto.PrivKey, peer.ID) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	seedBytes := make([]byte, 64)
	for i := range seedBytes {
		seedBytes[i] = byte(r.Uint32())
	}
	priv, _, err := crypto.GenerateEd25519Key(bytes.NewReader(seedBytes))
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return priv, id
}

func testDef(t testing.TB, owner crypto.PrivKey, private bool) *Definition {
	t.Helper()
	d, err := NewDefinition(owner, "lan party", private, netip.MustParsePrefix("10.9.0.0/24"), 0, BroadcastParams{}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestNetworkIDCommitsToOwner(t *testing.T) {
	k1, _ := testKey(t, 1)
	k2, _ := testKey(t, 2)
	d1 := testDef(t, k1, true)
	if d1.ID() != d1.Owner.ID() {
		t.Fatal("ID mismatch")
	}
	o := d1.Owner
	o.Key[0] ^= 1
	if o.ID() == d1.ID() {
		t.Fatal("ID does not depend on owner key")
	}
	o = d1.Owner
	o.Nonce[0] ^= 1
	if o.ID() == d1.ID() {
		t.Fatal("ID does not depend on nonce")
	}
	if d2 := testDef(t, k1, true); d2.ID() == d1.ID() {
		t.Fatal("two networks of one owner share an ID")
	}
	// Signing a definition of k1's network with k2 fails.
	d := *d1
	if err := d.Sign(k2); err == nil {
		t.Fatal("non-owner signed the definition")
	}
	pid, _ := d1.Owner.PeerID()
	if !pid.MatchesPrivateKey(k1) {
		t.Fatal("owner PeerID does not match")
	}
}

func TestNetworkIDText(t *testing.T) {
	k, _ := testKey(t, 1)
	id := testDef(t, k, false).ID()
	s := id.String()
	if len(s) != 52 {
		t.Fatal(s)
	}
	got, err := ParseNetworkID(s)
	if err != nil || got != id {
		t.Fatal(got, err)
	}
	if _, err := ParseNetworkID(s[:51]); err == nil {
		t.Fatal("short ID accepted")
	}
	if _, err := ParseNetworkID(s[:51] + "1"); err == nil {
		t.Fatal("non-base32 accepted")
	}
}

func TestDefinitionRoundTrip(t *testing.T) {
	k, _ := testKey(t, 1)
	d := testDef(t, k, true)
	b, err := d.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseDefinition(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := got.Marshal()
	if !bytes.Equal(b, b2) || got.Name != "lan party" || !got.Private || got.MTU != DefaultMTU ||
		got.Broadcast != DefaultBroadcast || got.IPv4Pool.String() != "10.9.0.0/24" || !got.Created.Equal(t0) {
		t.Fatalf("round trip: %+v", got)
	}
	// Any single flipped byte makes parsing fail.
	for i := range b {
		c := append([]byte(nil), b...)
		c[i] ^= 0x40
		if _, err := ParseDefinition(c); err == nil {
			t.Fatalf("flipping byte %d still parses", i)
		}
	}
	if _, err := ParseDefinition(append(b, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

func TestDefinitionValidation(t *testing.T) {
	k, _ := testKey(t, 1)
	tests := []struct {
		name string
		pool string
		mtu  int
		bp   BroadcastParams
		nm   string
	}{
		{"pool not masked", "10.9.0.1/24", 0, BroadcastParams{}, "x"},
		{"pool too small", "10.9.0.0/31", 0, BroadcastParams{}, "x"},
		{"ipv6 pool", "fd00::/64", 0, BroadcastParams{}, "x"},
		{"mtu too small", "10.0.0.0/8", 1000, BroadcastParams{}, "x"},
		{"mtu too big", "10.0.0.0/8", 9001, BroadcastParams{}, "x"},
		{"fanout zero", "10.0.0.0/8", 0, BroadcastParams{Fanout: 0, Hops: 1, Budget: 1}, "x"},
		{"name too long", "10.0.0.0/8", 0, BroadcastParams{}, string(make([]byte, 65))},
		{"name not utf8", "10.0.0.0/8", 0, BroadcastParams{}, "\xff"},
	}
	for _, tt := range tests {
		if _, err := NewDefinition(k, tt.nm, false, netip.MustParsePrefix(tt.pool), tt.mtu, tt.bp, t0); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
}

func TestCertificate(t *testing.T) {
	owner, _ := testKey(t, 1)
	other, _ := testKey(t, 2)
	_, member := testKey(t, 3)
	def := testDef(t, owner, true)
	ip := netip.MustParseAddr("10.9.0.7")
	c, err := IssueCertificate(owner, def, member, ip, t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Marshal()
	got, err := ParseCertificate(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Member != member || got.IPv4 != ip || !got.Expires.Equal(t0.Add(time.Hour)) {
		t.Fatalf("%+v", got)
	}
	if err := got.Valid(def.ID(), t0.Add(time.Minute), nil); err != nil {
		t.Fatal(err)
	}
	if err := got.Valid(def.ID(), t0.Add(time.Hour), nil); !errors.Is(err, ErrExpired) {
		t.Fatalf("expired: %v", err)
	}
	if err := got.Valid(testDef(t, owner, true).ID(), t0, nil); err == nil {
		t.Fatal("valid for another network")
	}
	// Outside the pool, non-owner key, expiry before issue: refused.
	if _, err := IssueCertificate(owner, def, member, netip.MustParseAddr("10.8.0.1"), t0, time.Time{}); err == nil {
		t.Fatal("IP outside pool accepted")
	}
	if _, err := IssueCertificate(other, def, member, ip, t0, time.Time{}); err == nil {
		t.Fatal("non-owner issued a certificate")
	}
	if _, err := IssueCertificate(owner, def, member, ip, t0, t0); err == nil {
		t.Fatal("zero-length validity accepted")
	}
	// No-expiry, no-IP certificate round-trips.
	c2, _ := IssueCertificate(owner, def, member, netip.Addr{}, t0, time.Time{})
	b2, _ := c2.Marshal()
	got2, err := ParseCertificate(b2)
	if err != nil || got2.IPv4.IsValid() || !got2.Expires.IsZero() {
		t.Fatal(got2, err)
	}
	if err := got2.Valid(def.ID(), t0.Add(100*365*24*time.Hour), nil); err != nil {
		t.Fatal(err)
	}
}

func TestRevocation(t *testing.T) {
	owner, _ := testKey(t, 1)
	_, m1 := testKey(t, 3)
	_, m2 := testKey(t, 4)
	def := testDef(t, owner, true)
	c1, _ := IssueCertificate(owner, def, m1, netip.Addr{}, t0, time.Time{})
	c2, _ := IssueCertificate(owner, def, m2, netip.Addr{}, t0, time.Time{})
	r, err := NewRevocation(owner, def, 5, []RevokedEntry{{m1, t0.Add(-time.Hour)}, {m1, t0}})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Entries) != 1 || !r.Entries[0].Before.Equal(t0) {
		t.Fatalf("duplicates not merged to the latest: %+v", r.Entries)
	}
	b, _ := r.Marshal()
	got, err := ParseRevocation(b)
	if err != nil || got.Seq != 5 {
		t.Fatal(got, err)
	}
	if !got.Revokes(c1) || got.Revokes(c2) {
		t.Fatal("wrong revocation result")
	}
	if err := c1.Valid(def.ID(), t0, got); !errors.Is(err, ErrRevoked) {
		t.Fatal(err)
	}
	// A certificate issued after the revocation re-admits the member.
	c1b, _ := IssueCertificate(owner, def, m1, netip.Addr{}, t0.Add(time.Second), time.Time{})
	if got.Revokes(c1b) {
		t.Fatal("re-issued certificate still revoked")
	}
}

func TestAnnouncement(t *testing.T) {
	owner, _ := testKey(t, 1)
	mk, m := testKey(t, 3)
	id := testDef(t, owner, false).ID()
	a, err := NewAnnouncement(mk, id, netip.MustParseAddr("10.9.0.9"), t0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := a.Marshal()
	got, err := ParseAnnouncement(b)
	if err != nil || got.Member != m || got.Network != id || got.IPv4 != a.IPv4 {
		t.Fatal(got, err)
	}
	b[len(b)-70] ^= 1 // inside the body: the time
	if _, err := ParseAnnouncement(b); err == nil {
		t.Fatal("tampered announcement accepted")
	}
}

func TestRecordValidator(t *testing.T) {
	owner, _ := testKey(t, 1)
	mk, m := testKey(t, 3)
	_, m2 := testKey(t, 4)
	def := testDef(t, owner, true)
	id := def.ID()
	v := RecordValidator{Now: func() time.Time { return t0.Add(time.Minute) }}

	defB, _ := def.Marshal()
	def2 := *def
	def2.Seq, def2.Name = 2, "renamed"
	if err := def2.Sign(owner); err != nil {
		t.Fatal(err)
	}
	def2B, _ := def2.Marshal()
	otherDefB, _ := testDef(t, owner, true).Marshal()

	cert, _ := IssueCertificate(owner, def, m, netip.Addr{}, t0, t0.Add(time.Hour))
	certB, _ := cert.Marshal()
	certLater, _ := IssueCertificate(owner, def, m, netip.Addr{}, t0.Add(time.Second), t0.Add(time.Hour))
	certLaterB, _ := certLater.Marshal()
	expired, _ := IssueCertificate(owner, def, m, netip.Addr{}, t0.Add(-2*time.Hour), t0.Add(-time.Hour))
	expiredB, _ := expired.Marshal()

	rev1, _ := NewRevocation(owner, def, 1, []RevokedEntry{{m, t0}})
	rev1B, _ := rev1.Marshal()
	rev2, _ := NewRevocation(owner, def, 2, nil)
	rev2B, _ := rev2.Marshal()

	ann, _ := NewAnnouncement(mk, id, netip.Addr{}, t0)
	annB, _ := ann.Marshal()

	tests := []struct {
		name string
		key  string
		val  []byte
		ok   bool
	}{
		{"definition", DefinitionKey(id), defB, true},
		{"definition of another network", DefinitionKey(id), otherDefB, false},
		{"certificate", CertificateKey(id, m), certB, true},
		{"certificate under another member's key", CertificateKey(id, m2), certB, false},
		{"expired certificate", CertificateKey(id, m), expiredB, false},
		{"definition under certificate key", CertificateKey(id, m), defB, false},
		{"revocation", RevocationKey(id), rev1B, true},
		{"announcement", AnnouncementKey(id, m), annB, true},
		{"announcement under another key", AnnouncementKey(id, m2), annB, false},
		{"wrong namespace", "/pk/" + id.String() + "/def", defB, false},
		{"unknown suffix", "/kadlan-net/" + id.String() + "/x", defB, false},
		{"garbage", DefinitionKey(id), []byte("hello"), false},
	}
	for _, tt := range tests {
		err := v.Validate(tt.key, tt.val)
		if (err == nil) != tt.ok {
			t.Errorf("%s: Validate = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}

	sel := []struct {
		name string
		key  string
		vals [][]byte
		want int
	}{
		{"higher definition seq", DefinitionKey(id), [][]byte{defB, def2B}, 1},
		{"higher definition seq first", DefinitionKey(id), [][]byte{def2B, defB}, 0},
		{"invalid loses", DefinitionKey(id), [][]byte{[]byte("junk"), defB}, 1},
		{"later certificate", CertificateKey(id, m), [][]byte{certLaterB, certB}, 0},
		{"expired loses", CertificateKey(id, m), [][]byte{expiredB, certB}, 1},
		{"higher revocation seq", RevocationKey(id), [][]byte{rev1B, rev2B}, 1},
	}
	for _, tt := range sel {
		got, err := v.Select(tt.key, tt.vals)
		if err != nil || got != tt.want {
			t.Errorf("%s: Select = %d, %v, want %d", tt.name, got, err, tt.want)
		}
	}
	if _, err := v.Select(DefinitionKey(id), [][]byte{[]byte("x")}); err == nil {
		t.Error("Select of only invalid values succeeded")
	}
}

func TestParseKey(t *testing.T) {
	owner, _ := testKey(t, 1)
	_, m := testKey(t, 3)
	id := testDef(t, owner, true).ID()
	k, gid, gm, err := ParseKey(CertificateKey(id, m))
	if err != nil || k != KindCertificate || gid != id || gm != m {
		t.Fatal(k, gid, gm, err)
	}
	if MembersCID(id) == MembersCID(testDef(t, owner, true).ID()) {
		t.Fatal("members CID does not depend on network")
	}
}

// The validator works behind go-libp2p-record's namespace dispatch, as
// kad-dht uses it.
func TestRecordValidatorNamespaced(t *testing.T) {
	owner, _ := testKey(t, 1)
	def := testDef(t, owner, false)
	b, _ := def.Marshal()
	nv := record.NamespacedValidator{Namespace: RecordValidator{Now: time.Now}}
	if err := nv.Validate(DefinitionKey(def.ID()), b); err != nil {
		t.Fatal(err)
	}
	if i, err := nv.Select(DefinitionKey(def.ID()), [][]byte{[]byte("x"), b}); err != nil || i != 1 {
		t.Fatal(i, err)
	}
	if err := nv.Validate("/other/"+def.ID().String()+"/def", b); err == nil {
		t.Fatal("other namespace accepted")
	}
}

func TestNextRevocationAndParseRecord(t *testing.T) {
	owner, _ := testKey(t, 1)
	_, m1 := testKey(t, 3)
	_, m2 := testKey(t, 4)
	def := testDef(t, owner, true)
	r1, err := NextRevocation(owner, def, nil, []RevokedEntry{{m1, t0}}, nil)
	if err != nil || r1.Seq != 1 || len(r1.Entries) != 1 {
		t.Fatal(r1, err)
	}
	r2, _ := NextRevocation(owner, def, r1, []RevokedEntry{{m2, t0}}, nil)
	if r2.Seq != 2 || len(r2.Entries) != 2 {
		t.Fatalf("%+v", r2)
	}
	r3, _ := NextRevocation(owner, def, r2, nil, []peer.ID{m1})
	if _, ok := r3.Lookup(m1); ok || r3.Seq != 3 {
		t.Fatal("readmitted member still revoked")
	}
	if _, err := NextRevocation(owner, testDef(t, owner, true), r3, nil, nil); err == nil {
		t.Fatal("chained onto another network's list")
	}
	// ParseRecord dispatches on the type byte.
	c, _ := IssueCertificate(owner, def, m1, netip.Addr{}, t0, time.Time{})
	for _, rec := range []interface{ Marshal() ([]byte, error) }{def, c, r3} {
		b, _ := rec.Marshal()
		got, err := ParseRecord(b)
		if err != nil || fmt.Sprintf("%T", got) != fmt.Sprintf("%T", rec) {
			t.Fatalf("%T parsed as %T: %v", rec, got, err)
		}
	}
	if _, err := ParseRecord([]byte{1, 9, 0}); err == nil {
		t.Fatal("unknown type accepted")
	}
}

// Address records: a member's announcement filed under its IPv4 (as
// announced) and its IPv6 (as derived) is valid there and nowhere else.
func TestAddressRecords(t *testing.T) {
	owner, _ := testKey(t, 1)
	mk, m := testKey(t, 3)
	ok, _ := testKey(t, 4)
	id := testDef(t, owner, false).ID()
	v := RecordValidator{Now: func() time.Time { return t0.Add(time.Minute) }}
	ip4 := netip.MustParseAddr("10.9.0.9")
	a, _ := NewAnnouncement(mk, id, ip4, t0)
	b, _ := a.Marshal()
	ip6 := MemberIPv6(id, m)
	for _, key := range []string{AddressKey(id, ip4), AddressKey(id, ip6)} {
		if err := v.Validate(key, b); err != nil {
			t.Errorf("%s: %v", key, err)
		}
		k, err := ParseFullKey(key)
		if err != nil || k.Kind != KindAddress || k.String() != key {
			t.Errorf("%s parsed as %+v, %v", key, k, err)
		}
	}
	other, _ := NewAnnouncement(ok, id, netip.MustParseAddr("10.9.0.10"), t0)
	ob, _ := other.Marshal()
	for _, c := range []struct {
		key string
		val []byte
	}{
		{AddressKey(id, ip4), ob},                                  // another member's announcement, another IPv4
		{AddressKey(id, ip6), ob},                                  // another member's derived IPv6
		{AddressKey(id, netip.MustParseAddr("10.9.0.11")), b},      // an address the member does not hold
		{AddressKey(testDef(t, ok, false).ID(), ip4), b},           // another network
		{"/" + Namespace + "/" + id.String() + "/ip/010.9.0.9", b}, // not canonical
	} {
		if err := v.Validate(c.key, c.val); err == nil {
			t.Errorf("%s accepted a record it does not name", c.key)
		}
	}
	newer, _ := NewAnnouncement(mk, id, ip4, t0.Add(time.Second))
	nb, _ := newer.Marshal()
	if i, err := v.Select(AddressKey(id, ip4), [][]byte{b, nb}); err != nil || i != 1 {
		t.Errorf("Select chose %d (%v), want the newer", i, err)
	}
}

// MAC records: a member's announcement filed under its derived MAC is
// valid there and nowhere else; the MAC is derived from network and
// member, so nobody can file a record that names another member's MAC.
func TestMACRecords(t *testing.T) {
	owner, _ := testKey(t, 1)
	mk, m := testKey(t, 3)
	ok, o := testKey(t, 4)
	id := testDef(t, owner, false).ID()
	v := RecordValidator{Now: func() time.Time { return t0.Add(time.Minute) }}
	a, _ := NewAnnouncement(mk, id, netip.MustParseAddr("10.9.0.9"), t0)
	b, _ := a.Marshal()
	mac := MemberMAC(id, m)
	key := MACKey(id, mac)
	if err := v.Validate(key, b); err != nil {
		t.Fatalf("%s: the member's own announcement refused: %v", key, err)
	}
	k, err := ParseFullKey(key)
	if err != nil || k.Kind != KindMAC || k.Network != id || k.MAC != mac || k.String() != key {
		t.Fatalf("%s parsed as %+v, %v", key, k, err)
	}
	other, _ := NewAnnouncement(ok, id, netip.Addr{}, t0)
	ob, _ := other.Marshal()
	otherNet := testDef(t, ok, false).ID()
	elsewhere, _ := NewAnnouncement(mk, otherNet, netip.Addr{}, t0)
	eb, _ := elsewhere.Marshal()
	future, _ := NewAnnouncement(mk, id, netip.Addr{}, t0.Add(time.Hour))
	fb, _ := future.Marshal()
	cert, _ := IssueCertificate(owner, testDef(t, owner, false), m, netip.Addr{}, t0, time.Time{})
	cb, _ := cert.Marshal()
	upper := "/" + Namespace + "/" + id.String() + "/mac/" + strings.ToUpper(mac.String())
	dashes := "/" + Namespace + "/" + id.String() + "/mac/" + strings.ReplaceAll(mac.String(), ":", "-")
	for _, c := range []struct {
		name, key string
		val       []byte
		want      string // in the error
	}{
		{"another member's announcement", key, ob, "MAC"},
		{"under another member's MAC", MACKey(id, MemberMAC(id, o)), b, "MAC"},
		{"the member's MAC on another network", MACKey(otherNet, mac), b, "key"},
		{"its announcement on another network", key, eb, "key"},
		{"a MAC nobody derives", MACKey(id, ether.MAC{2, 0, 0, 0, 0, 1}), b, "MAC"},
		{"from the future", key, fb, "future"},
		{"a certificate", key, cb, ""},
		{"garbage", key, []byte("hello"), ""},
		{"empty", key, nil, ""},
		{"upper case", upper, b, "bad MAC"},
		{"dashes", dashes, b, "bad MAC"},
		{"short", "/" + Namespace + "/" + id.String() + "/mac/02:00:00:00:00", b, "bad MAC"},
		{"extra part", key + "/x", b, "unknown record"},
	} {
		err := v.Validate(c.key, c.val)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Validate(%s) = %v, want an error about %q", c.name, c.key, err, c.want)
		}
	}
	newer, _ := NewAnnouncement(mk, id, netip.Addr{}, t0.Add(time.Second))
	nb, _ := newer.Marshal()
	if i, err := v.Select(key, [][]byte{b, ob, nb}); err != nil || i != 2 {
		t.Errorf("Select chose %d (%v), want the newer of the member's", i, err)
	}
	if i, err := v.Select(key, [][]byte{ob, b}); err != nil || i != 1 {
		t.Errorf("Select chose %d (%v), want the valid one", i, err)
	}
}
