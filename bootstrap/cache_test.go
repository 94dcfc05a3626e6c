package bootstrap

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

func TestCacheRoundTripOrderAndBounds(t *testing.T) {
	p := filepath.Join(t.TempDir(), "peers.json")
	c, err := LoadCache(p)
	if err != nil || c.Len() != 0 {
		t.Fatalf("missing cache: %v, %d", err, c.Len())
	}
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	a := ma.StringCast("/ip4/192.0.0.130/tcp/4242")
	ida, _ := peer.Decode(idA)
	idb, _ := peer.Decode(idB)
	c.Observe(ida, []ma.Multiaddr{a}, now.Add(-time.Hour))
	c.Observe(idb, []ma.Multiaddr{a}, now)
	c.Observe(ida, nil, now) // no addresses: ignored, keeps the old entry
	if err := c.Save(now); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("cache mode %v", st.Mode().Perm())
	}
	c2, err := LoadCache(p)
	if err != nil {
		t.Fatal(err)
	}
	ps := c2.Peers(now)
	if len(ps) != 2 || ps[0].Address != idB || ps[1].Address != idA {
		t.Fatalf("order after reload: %+v", ps)
	}
	// Entries older than CacheMaxAge disappear.
	if got := c2.Peers(now.Add(CacheMaxAge - 30*time.Minute)); len(got) != 1 {
		t.Fatalf("aged peers kept: %+v", got)
	}
	if ais := c2.AddrInfos(now); len(ais) != 2 || !ais[0].Addrs[0].Equal(a) {
		t.Fatalf("AddrInfos: %+v", ais)
	}
}

func TestCorruptCacheStartsEmpty(t *testing.T) {
	p := filepath.Join(t.TempDir(), "peers.json")
	os.WriteFile(p, []byte("{not json"), 0o600)
	c, err := LoadCache(p)
	if err == nil || c == nil || c.Len() != 0 {
		t.Fatalf("corrupt cache: %v %v", c, err)
	}
}

// TestStaleCacheTempsAreRemoved: temporary files of saves that crashed
// (atomicfile's ".peers.json.tmp-<digits>") are removed when the cache is
// loaded at start; the cache itself and other files are left alone.
func TestStaleCacheTempsAreRemoved(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "peers.json")
	os.WriteFile(p, []byte(`{"version":1,"peers":[]}`), 0o600)
	var stale []string
	for i := 0; i < 20; i++ { // 20 kill -9s in the middle of a save
		f, err := os.CreateTemp(dir, ".peers.json.tmp-*")
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		stale = append(stale, f.Name())
	}
	keep := []string{p, filepath.Join(dir, ".identity.key.tmp-1"), filepath.Join(dir, ".peers.json.tmp-abc")}
	for _, k := range keep[1:] {
		os.WriteFile(k, nil, 0o600)
	}
	// Crashes happened a while ago; a save in progress (a fresh temporary
	// file) is left alone.
	old := time.Now().Add(-time.Hour)
	for _, f := range append(append([]string{}, stale...), keep...) {
		os.Chtimes(f, old, old)
	}
	inProgress, _ := os.CreateTemp(dir, ".peers.json.tmp-*")
	inProgress.Close()
	keep = append(keep, inProgress.Name())
	if _, err := LoadCache(p); err != nil {
		t.Fatal(err)
	}
	for _, s := range stale {
		if _, err := os.Stat(s); err == nil {
			t.Errorf("stale temp %s left", filepath.Base(s))
		}
	}
	for _, k := range keep {
		if _, err := os.Stat(k); err != nil {
			t.Errorf("%s removed: %v", filepath.Base(k), err)
		}
	}
}
