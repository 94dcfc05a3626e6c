package netrec

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestValidName(t *testing.T) {
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"a", true},
		{"pi-4", true},
		{"0", true},
		{strings.Repeat("x", 63), true},
		{"", false},
		{strings.Repeat("x", 64), false},
		{"-a", false},
		{"a-", false},
		{"A", false},
		{"a.b", false},
		{"a_b", false},
		{"é", false},
		{"a b", false},
	} {
		err := ValidName(tt.name)
		if (err == nil) != tt.ok || err != nil && !errors.Is(err, ErrBadName) {
			t.Errorf("ValidName(%q) = %v, want ok %v", tt.name, err, tt.ok)
		}
	}
}

func TestSanitizeName(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"Alice", "alice"},
		{"pi.home.arpa", "pi"},
		{"My Laptop (2)", "my-laptop-2"},
		{"--x--", "x"},
		{"a__b", "a-b"},
		{"ünïcode", "n-code"},
		{"...", ""},
		{"", ""},
		{strings.Repeat("ab-", 30), strings.Repeat("ab-", 21)[:62]},
	} {
		if got := SanitizeName(tt.in); got != tt.want {
			t.Errorf("SanitizeName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// Whatever it is given, SanitizeName returns "" or a valid name, and is
// idempotent.
func FuzzSanitizeName(f *testing.F) {
	f.Add("Alice")
	f.Add("pi.home.arpa")
	f.Add("-")
	f.Add(strings.Repeat("a-", 40))
	f.Add("\xff\x00Z")
	f.Fuzz(func(t *testing.T, s string) {
		n := SanitizeName(s)
		if n == "" {
			return
		}
		if err := ValidName(n); err != nil {
			t.Fatalf("SanitizeName(%q) = %q: %v", s, n, err)
		}
		if SanitizeName(n) != n {
			t.Fatalf("SanitizeName not idempotent on %q", n)
		}
	})
}

func TestNamedRecords(t *testing.T) {
	owner, _ := testKey(t, 1)
	mk, m := testKey(t, 3)
	def := testDef(t, owner, true)
	id := def.ID()

	// Without a name the encoding is the one from before names: no
	// trailing field.
	plain, _ := NewAnnouncement(mk, id, netip.MustParseAddr("10.9.0.9"), t0)
	named, err := NewNamedAnnouncement(mk, id, netip.MustParseAddr("10.9.0.9"), "bob", t0)
	if err != nil {
		t.Fatal(err)
	}
	pb, _ := plain.Marshal()
	nb, _ := named.Marshal()
	if !bytes.Equal(pb[:len(pb)-sigLen], nb[:len(pb)-sigLen]) || len(nb) != len(pb)+4 {
		t.Fatalf("named announcement is not the plain one plus a name field")
	}
	got, err := ParseAnnouncement(nb)
	if err != nil || got.Name != "bob" {
		t.Fatal(got, err)
	}
	if got, err := ParseAnnouncement(pb); err != nil || got.Name != "" {
		t.Fatal(got, err)
	}
	if _, err := NewNamedAnnouncement(mk, id, netip.Addr{}, "Bob", t0); err == nil {
		t.Fatal("announcement with an invalid name signed")
	}

	c, err := IssueNamedCertificate(owner, def, m, netip.Addr{}, "printer", t0, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	cb, _ := c.Marshal()
	gc, err := ParseCertificate(cb)
	if err != nil || gc.Name != "printer" {
		t.Fatal(gc, err)
	}
	if _, err := IssueNamedCertificate(owner, def, m, netip.Addr{}, "-x", t0, time.Time{}); err == nil {
		t.Fatal("certificate with an invalid name issued")
	}
	// A tampered name fails the signature.
	cb[len(cb)-sigLen-1] = 's'
	if _, err := ParseCertificate(cb); err == nil {
		t.Fatal("tampered name accepted")
	}
}
