package netrec

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

func testCap(t testing.TB, uses int) (*Definition, *Capability) {
	t.Helper()
	owner, _ := testKey(t, 1)
	def := testDef(t, owner, true)
	c, err := NewCapability(owner, def, t0, t0.Add(24*time.Hour), uses)
	if err != nil {
		t.Fatal(err)
	}
	return def, c
}

func testToken(t testing.TB) Token {
	t.Helper()
	def, c := testCap(t, 2)
	_, a := testKey(t, 7)
	_, b := testKey(t, 8)
	return Token{Network: def.ID(), Capability: c, Addrs: []ma.Multiaddr{
		ma.StringCast("/ip4/192.0.0.130/tcp/4242/p2p/" + a.String()),
		ma.StringCast("/ip4/192.0.0.131/udp/4242/quic-v1/p2p/" + b.String()),
		ma.StringCast("/ip4/192.0.0.131/tcp/4242/p2p/" + b.String() + "/p2p-circuit/p2p/" + a.String()),
	}}
}

func TestTokenRoundTrip(t *testing.T) {
	tok := testToken(t)
	s, err := tok.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, TokenPrefix) || len(s) > 600 || !LooksLikeToken(" "+s) {
		t.Fatalf("token %q (%d characters)", s, len(s))
	}
	// A terminal or mail client may break it across lines.
	got, err := ParseToken("\n  " + s[:40] + "\n" + s[40:] + "  \n")
	if err != nil {
		t.Fatal(err)
	}
	if got.Network != tok.Network || len(got.Addrs) != 3 || !got.Addrs[2].Equal(tok.Addrs[2]) || got.Capability.ID != tok.Capability.ID || got.Capability.Uses != 2 {
		t.Fatalf("round trip: %+v", got)
	}
	if ais := got.AddrInfos(); len(ais) != 2 {
		t.Fatalf("addr infos %v", ais)
	}
	if err := got.Capability.Valid(tok.Network, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	// A public network's invite: no capability.
	pub := Token{Network: tok.Network, Addrs: tok.Addrs[:1]}
	s2, err := pub.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ParseToken(s2); err != nil || got.Capability != nil {
		t.Fatal(got, err)
	}
}

func TestTokenRefused(t *testing.T) {
	tok := testToken(t)
	s, _ := tok.Encode()
	raw, _ := tokenEncoding.DecodeString(s[len(TokenPrefix):])

	// Every single flipped bit is refused (the checksum, a signature, or
	// the structure), never accepted as another valid token.
	for i := range len(raw) * 8 {
		b := bytes.Clone(raw)
		b[i/8] ^= 1 << (i % 8)
		if _, err := ParseToken(TokenPrefix + tokenEncoding.EncodeToString(b)); err == nil {
			t.Fatalf("token with bit %d flipped accepted", i)
		}
	}
	// A forger who also fixes the checksum meets the owner's signature.
	b := bytes.Clone(raw[:len(raw)-tokenSumLen])
	b[len(b)-1] ^= 1 // in the capability's signature
	sum := sha256Sum(b)
	_, err := ParseToken(TokenPrefix + tokenEncoding.EncodeToString(append(b, sum[:tokenSumLen]...)))
	if err == nil || !strings.Contains(err.Error(), "bad signature") {
		t.Fatalf("forged capability: %v", err)
	}
	for _, tc := range []struct{ in, want string }{
		{"", "not a kadlan invite"},
		{"hello", "not a kadlan invite"},
		{"kadlan2-AAAA", "unknown token version"},
		{TokenPrefix + "!!!", "not base64url"},
		{TokenPrefix + "AAAA", "too short"},
		{s[:len(s)-3], "damaged"},
		{TokenPrefix + strings.Repeat("A", MaxTokenLen), "at most"},
	} {
		_, err := ParseToken(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseToken(%.30q): %v, want %q", tc.in, err, tc.want)
		}
	}
	// Expiry and network are checked with Valid.
	err = tok.Capability.Valid(tok.Network, t0.Add(25*time.Hour))
	if !errors.Is(err, ErrInviteExpired) || !strings.Contains(err.Error(), "expired on 2026-11-28T12:00:00Z") {
		t.Fatalf("expired: %v", err)
	}
	owner, _ := testKey(t, 1)
	if err := tok.Capability.Valid(testDef(t, owner, true).ID(), t0); err == nil {
		t.Fatal("capability valid for another network")
	}
	// Too many addresses, or one without /p2p/, cannot be encoded.
	tok.Addrs = append(tok.Addrs, tok.Addrs...)
	if _, err := tok.Encode(); err == nil {
		t.Fatal("token with 6 addresses encoded")
	}
	tok.Addrs = []ma.Multiaddr{ma.StringCast("/ip4/192.0.0.130/tcp/4242")}
	if _, err := tok.Encode(); err == nil {
		t.Fatal("token with an address without /p2p/ encoded")
	}
}

func TestCapabilityAndRedemptions(t *testing.T) {
	def, c := testCap(t, 2)
	owner, _ := testKey(t, 1)
	if _, err := NewCapability(owner, def, t0, t0.Add(time.Hour), 0); err == nil {
		t.Fatal("0 uses")
	}
	if _, err := NewCapability(owner, def, t0, t0, 1); err == nil {
		t.Fatal("expires when issued")
	}
	stranger, _ := testKey(t, 9)
	if _, err := NewCapability(stranger, def, t0, t0.Add(time.Hour), 1); err == nil {
		t.Fatal("a stranger signed a capability")
	}
	cb, _ := c.Marshal()
	if c2, err := ParseCapability(cb); err != nil || c2.ID != c.ID || c2.NotAfter != c.NotAfter {
		t.Fatal(c2, err)
	}

	k3, p3 := testKey(t, 3)
	k4, p4 := testKey(t, 4)
	k5, p5 := testKey(t, 5)
	r3, _ := Redeem(k3, c, t0.Add(3*time.Second))
	r4, _ := Redeem(k4, c, t0.Add(4*time.Second))
	r5, _ := Redeem(k5, c, t0.Add(5*time.Second))
	s := &RedemptionSet{Cap: c}
	for _, r := range []Redemption{r5, r4} {
		if ok, err := s.Add(r); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	if !s.Full() {
		t.Fatal("two of two uses taken: not full")
	}
	// An earlier redemption wins over the latest winner; a later one
	// changes nothing.
	if ok, _ := s.Add(r3); !ok {
		t.Fatal("earlier redemption not taken")
	}
	if ok, _ := s.Add(r5); ok {
		t.Fatal("the third redemption of a 2-use invite was taken")
	}
	if _, ok := s.Admits(p5); ok {
		t.Fatal("p5 still a winner")
	}
	if _, ok := s.Admits(p3); !ok {
		t.Fatal("p3 not a winner")
	}
	// A redemption signed by someone else, or of another capability, or
	// after the expiry, is refused.
	bad := r4
	bad.Member = p5
	if _, err := s.Add(bad); err == nil {
		t.Fatal("redemption with another member's address accepted")
	}
	_, c2 := testCap(t, 1)
	other, _ := Redeem(k4, c2, t0)
	if _, err := s.Add(other); err == nil {
		t.Fatal("redemption of another capability accepted")
	}
	late, _ := Redeem(k4, c, t0.Add(25*time.Hour))
	if _, err := s.Add(late); err == nil {
		t.Fatal("redemption after the expiry accepted")
	}
	b, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseRedemptionSet(b)
	if err != nil || len(got.Entries) != 2 || got.Entries[0].Member != p3 || got.Entries[1].Member != p4 {
		t.Fatal(got, err)
	}
	if r, err := ParseRecord(b); err != nil {
		t.Fatal(r, err)
	}
	// Merge: a set from elsewhere with p5 only changes nothing (later).
	s5 := &RedemptionSet{Cap: c}
	s5.Add(r5)
	if ch, err := s.Merge(s5); ch || err != nil {
		t.Fatal(ch, err)
	}
	if ch, err := s5.Merge(s); !ch || err != nil || s5.Entries[0].Member != p3 || len(s5.Entries) != 2 {
		t.Fatal(ch, err, s5.Entries)
	}
	// Encodings that are not canonical are refused: unsorted entries.
	s.Entries[0], s.Entries[1] = s.Entries[1], s.Entries[0]
	b, _ = s.Marshal()
	if _, err := ParseRedemptionSet(b); err == nil {
		t.Fatal("unsorted set accepted")
	}
	// More entries than uses.
	s.Entries = []Redemption{r3, r4, r5}
	b, _ = s.Marshal()
	if _, err := ParseRedemptionSet(b); err == nil {
		t.Fatal("set with more entries than uses accepted")
	}
}

func TestRedemptionsValidator(t *testing.T) {
	def, c := testCap(t, 2)
	id := def.ID()
	k3, _ := testKey(t, 3)
	k4, _ := testKey(t, 4)
	r3, _ := Redeem(k3, c, t0.Add(3*time.Second))
	r4, _ := Redeem(k4, c, t0.Add(4*time.Second))
	one := &RedemptionSet{Cap: c}
	one.Add(r4)
	two := one.Clone()
	two.Add(r3)
	earlier := &RedemptionSet{Cap: c}
	earlier.Add(r3)
	oneB, _ := one.Marshal()
	twoB, _ := two.Marshal()
	earlierB, _ := earlier.Marshal()
	key := RedemptionsKey(id, c.ID)
	v := RecordValidator{Now: func() time.Time { return t0.Add(time.Minute) }}
	if err := v.Validate(key, oneB); err != nil {
		t.Fatal(err)
	}
	if k, err := ParseFullKey(key); err != nil || k.Kind != KindRedemptions || k.Capability != c.ID || k.String() != key {
		t.Fatal(k, err)
	}
	_, c2 := testCap(t, 1)
	if err := v.Validate(RedemptionsKey(id, c2.ID), oneB); err == nil {
		t.Fatal("set under another capability's key")
	}
	if err := (RecordValidator{Now: func() time.Time { return t0.Add(48 * time.Hour) }}).Validate(key, oneB); err == nil {
		t.Fatal("set of an expired capability")
	}
	if i, err := v.Select(key, [][]byte{oneB, twoB}); i != 1 || err != nil {
		t.Fatal("fuller set not selected", i, err)
	}
	if i, err := v.Select(key, [][]byte{oneB, earlierB}); i != 1 || err != nil {
		t.Fatal("set with the earlier redemption not selected", i, err)
	}
}

func TestHelloWithInvite(t *testing.T) {
	_, c := testCap(t, 1)
	k3, _ := testKey(t, 3)
	r, _ := Redeem(k3, c, t0)
	s := &RedemptionSet{Cap: c, Entries: []Redemption{r}}
	inv, _ := s.Marshal()
	h := Hello{Network: c.Network(), Announcement: []byte("a"), Invite: inv}
	b, err := AppendHello(nil, h)
	if err != nil {
		t.Fatal(err)
	}
	if b[4] != helloVersionInvite {
		t.Fatalf("version %d", b[4])
	}
	got, err := ReadHello(bytes.NewReader(append(b, "next"...)))
	if err != nil || !bytes.Equal(got.Invite, inv) || string(got.Announcement) != "a" {
		t.Fatal(got, err)
	}
	// Without an invite a hello stays version 1, which older nodes read.
	b1, _ := AppendHello(nil, Hello{Network: c.Network(), Certificate: []byte("c")})
	if b1[4] != helloVersion {
		t.Fatalf("version %d", b1[4])
	}
	// Version 2 with an empty invite is not canonical.
	b2 := bytes.Clone(b1)
	b2[4] = helloVersionInvite
	b2 = append(b2, 0, 0)
	if _, err := DecodeHello(b2); err == nil {
		t.Fatal("version 2 hello without invite accepted")
	}
}

func sha256Sum(b []byte) [32]byte { return sha256.Sum256(b) }

// FuzzToken: ParseToken never panics, and what it accepts re-encodes to
// the same token (after white space is removed).
func FuzzToken(f *testing.F) {
	s, _ := testToken(f).Encode()
	f.Add(s)
	pub, _ := Token{Network: NetworkID{1}}.Encode()
	f.Add(pub) // no addresses, no capability
	f.Add(TokenPrefix)
	f.Add("kadlan1-AAAA")
	f.Add(s[:len(s)/2])
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := ParseToken(s)
		if err != nil {
			return
		}
		re, err := tok.Encode()
		if err != nil || re != strings.Join(strings.Fields(s), "") {
			t.Fatalf("token %q re-encodes as %q (%v)", s, re, err)
		}
		_ = tok.AddrInfos()
	})
}

// FuzzRedemptionSet: decoded sets are canonical.
func FuzzRedemptionSet(f *testing.F) {
	_, c := testCap(f, 3)
	k3, _ := testKey(f, 3)
	r, _ := Redeem(k3, c, t0)
	s := &RedemptionSet{Cap: c, Entries: []Redemption{r}}
	b, _ := s.Marshal()
	f.Add(b)
	b, _ = (&RedemptionSet{Cap: c}).Marshal()
	f.Add(b)
	f.Add([]byte{1, 6, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseRedemptionSet(b)
		if err != nil {
			return
		}
		re, err := s.Marshal()
		if err != nil || !bytes.Equal(re, b) {
			t.Fatal("redemption set not canonical")
		}
		for _, e := range s.Entries {
			if _, ok := s.Admits(e.Member); !ok {
				t.Fatal("entry not admitted")
			}
		}
		_ = RecordValidator{Now: func() time.Time { return t0 }}.Validate(RedemptionsKey(s.Cap.Network(), s.Cap.ID), b)
	})
}
