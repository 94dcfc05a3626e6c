package overlay

import (
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/overlay/vswitch"
)

func TestMembershipPersistence(t *testing.T) {
	owner, _ := testKey(t, 1)
	mk, member := testKey(t, 4)
	_, self := testKey(t, 3)
	def := testDef(t, owner, true)
	dir := t.TempDir()
	m := vswitch.NewMembership(def.ID(), self, t0)
	m.Interface = "kl0"
	m.SetDefinition(def)
	c, _ := netrec.IssueCertificate(owner, def, self, netip.MustParseAddr("10.9.0.5"), t0, time.Time{})
	m.AddCertificate(c)
	r, _ := netrec.NewRevocation(owner, def, 3, nil)
	m.SetRevocation(r)
	mc, _ := netrec.IssueCertificate(owner, def, member, netip.Addr{}, t0, time.Time{})
	m.AddCertificate(mc)
	a, _ := netrec.NewAnnouncement(mk, def.ID(), netip.MustParseAddr("10.9.0.6"), t0)
	m.AddAnnouncement(a)
	m.Seen(member, t0)
	if err := SaveMembership(dir, m); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(NetworkFile(dir, def.ID()))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v %v", fi.Mode(), err)
	}
	all, lerrs := LoadMemberships(dir)
	if lerrs != nil || len(all) != 1 {
		t.Fatal(all, lerrs)
	}
	got := all[0]
	if got.ID != m.ID || got.Self != self || got.Interface != "kl0" || got.Def.Seq != 1 || got.Cert == nil ||
		got.Revocation.Seq != 3 || got.Status(t0) != vswitch.StatusOK || got.IPv4(t0) != m.IPv4(t0) {
		t.Fatalf("loaded %+v", got)
	}
	gm, ok := got.Member(member)
	if !ok || gm.Certificate == nil || gm.Announcement == nil || !gm.LastSeen.Equal(t0) {
		t.Fatalf("member %+v", gm)
	}
	// No temporary files left behind.
	ents, _ := os.ReadDir(filepath.Join(dir, "networks"))
	if len(ents) != 1 {
		t.Fatalf("%d files in networks/", len(ents))
	}
	// Tampering with a record is detected.
	b, _ := os.ReadFile(NetworkFile(dir, def.ID()))
	var raw map[string]any
	json.Unmarshal(b, &raw)
	db, _ := def.Marshal()
	db[60] ^= 1 // inside the signed body
	raw["definition"] = db
	b, _ = json.Marshal(raw)
	os.WriteFile(NetworkFile(dir, def.ID()), b, 0o600)
	// A crashed write's temporary file is cleaned up at load.
	stale := filepath.Join(dir, "networks", "."+def.ID().String()+".json.tmp-42")
	os.WriteFile(stale, []byte("{"), 0o600)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(stale, old, old)
	if ms, lerrs := LoadMemberships(dir); len(lerrs) != 1 || len(ms) != 0 || lerrs[0].Network != def.ID().String() {
		t.Fatalf("tampered file: loaded %v, errors %v", ms, lerrs)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "networks")); len(ents) != 1 {
		t.Fatalf("stale temporary file kept: %v", ents)
	}
	if err := RemoveMembership(dir, def.ID()); err != nil {
		t.Fatal(err)
	}
	if all, lerrs := LoadMemberships(dir); lerrs != nil || len(all) != 0 {
		t.Fatal(all, lerrs)
	}
	if all, lerrs := LoadMemberships(filepath.Join(dir, "missing")); lerrs != nil || all != nil {
		t.Fatal("missing directory:", lerrs)
	}
}
