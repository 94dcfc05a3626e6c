package netrec

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

// Each decoder either rejects the input or accepts exactly the canonical
// encoding of what it returns.
func FuzzRecords(f *testing.F) {
	owner, _ := testKey(f, 1)
	mk, m := testKey(f, 3)
	def := testDef(f, owner, true)
	b, _ := def.Marshal()
	f.Add(b) // a signed definition
	c, _ := IssueCertificate(owner, def, m, netip.MustParseAddr("10.9.0.3"), t0, t0.Add(time.Hour))
	b, _ = c.Marshal()
	f.Add(b) // a certificate with IPv4 and expiry
	r, _ := NewRevocation(owner, def, 3, []RevokedEntry{{m, t0}})
	b, _ = r.Marshal()
	f.Add(b) // a revocation with one entry
	a, _ := NewAnnouncement(mk, def.ID(), netip.Addr{}, t0)
	b, _ = a.Marshal()
	f.Add(b) // an announcement (valid under m's MAC key: see below)
	a, _ = NewNamedAnnouncement(mk, def.ID(), netip.MustParseAddr("10.9.0.3"), "bob", t0)
	b, _ = a.Marshal()
	f.Add(b) // an announcement with a name
	c, _ = IssueNamedCertificate(owner, def, m, netip.Addr{}, "printer-2", t0, time.Time{})
	b, _ = c.Marshal()
	f.Add(b) // a certificate with a name
	capab, _ := NewCapability(owner, def, t0, t0.Add(time.Hour), 2)
	b, _ = capab.Marshal()
	f.Add(b) // an invite capability
	red, _ := Redeem(mk, capab, t0)
	b, _ = (&RedemptionSet{Cap: capab, Entries: []Redemption{red}}).Marshal()
	f.Add(b)                        // a redemption set
	f.Add([]byte{1, 1})             // header only
	f.Add(make([]byte, 2+32+16+64)) // zeros of the minimum length
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := ParseDefinition(b); err == nil {
			re, err := d.Marshal()
			if err != nil || !bytes.Equal(re, b) {
				t.Fatalf("definition not canonical")
			}
		}
		if c, err := ParseCertificate(b); err == nil {
			re, err := c.Marshal()
			if err != nil || !bytes.Equal(re, b) {
				t.Fatalf("certificate not canonical")
			}
		}
		if r, err := ParseRevocation(b); err == nil {
			re, err := r.Marshal()
			if err != nil || !bytes.Equal(re, b) {
				t.Fatalf("revocation not canonical")
			}
		}
		if a, err := ParseAnnouncement(b); err == nil {
			re, err := a.Marshal()
			if err != nil || !bytes.Equal(re, b) {
				t.Fatalf("announcement not canonical")
			}
		}
		if r, err := ParseRecord(b); err == nil {
			re, err := r.(interface{ Marshal() ([]byte, error) }).Marshal()
			if err != nil || !bytes.Equal(re, b) {
				t.Fatalf("%T not canonical", r)
			}
		}
		v := RecordValidator{Now: func() time.Time { return t0 }}
		_ = v.Validate(DefinitionKey(def.ID()), b)
		_ = v.Validate(CertificateKey(def.ID(), m), b)
		if v.Validate(MACKey(def.ID(), MemberMAC(def.ID(), m)), b) == nil {
			a, err := ParseAnnouncement(b)
			if err != nil || a.Member != m || a.Network != def.ID() {
				t.Fatalf("a MAC record accepted that is not the member's announcement")
			}
		}
	})
}

func FuzzParseKey(f *testing.F) {
	owner, _ := testKey(f, 1)
	_, m := testKey(f, 3)
	id := testDef(f, owner, true).ID()
	f.Add(DefinitionKey(id))
	f.Add(CertificateKey(id, m))
	f.Add(AnnouncementKey(id, m))
	f.Add("/kadlan-net//")
	f.Add(RedemptionsKey(id, CapabilityID{1, 2}))
	f.Add(MACKey(id, MemberMAC(id, m)))
	f.Add("/kadlan-net/" + id.String() + "/mac/02-00-00-00-00-01") // dashes: not canonical
	f.Add("/kadlan-net/" + id.String() + "/mac/02:00:00:00:00:0G")
	f.Fuzz(func(t *testing.T, key string) {
		k, err := ParseFullKey(key)
		if err != nil {
			return
		}
		if re := k.String(); re != key {
			t.Fatalf("key %q re-encodes as %q", key, re)
		}
		if kind, id, member, err := ParseKey(key); err != nil || kind != k.Kind || id != k.Network || member != k.Member {
			t.Fatal("ParseKey disagrees with ParseFullKey")
		}
	})
}
