package dht

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kb "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestIdentityIsStableAndPrivate(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state", "identity.key")
	k1, err := LoadOrCreateKey(p)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := LoadOrCreateKey(p)
	if err != nil {
		t.Fatal(err)
	}
	id1, _ := peer.IDFromPrivateKey(k1)
	id2, _ := peer.IDFromPrivateKey(k2)
	if id1 != id2 {
		t.Fatalf("address changed across loads: %s vs %s", id1, id2)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v, want 0600", st.Mode().Perm())
	}
}

func TestCorruptKeyIsNotReplaced(t *testing.T) {
	p := filepath.Join(t.TempDir(), "identity.key")
	os.WriteFile(p, []byte("garbage"), 0o600)
	if _, err := LoadOrCreateKey(p); err == nil {
		t.Fatal("corrupt key accepted")
	}
	b, _ := os.ReadFile(p)
	if string(b) != "garbage" {
		t.Fatal("corrupt key file was overwritten")
	}
}

func TestKademliaKeyMatchesKadDHT(t *testing.T) {
	k, _ := LoadOrCreateKey(filepath.Join(t.TempDir(), "k"))
	id, _ := peer.IDFromPrivateKey(k)
	want := kb.ConvertPeerID(id)
	got := KademliaKey(id)
	if string(want) != string(got[:]) {
		t.Fatalf("KademliaKey %x != kbucket %x", got, want)
	}
}

// newKeyFile creates an identity key at a fresh path and returns the path,
// the file's bytes and the offset of the key's 64 raw bytes in them.
func newKeyFile(t *testing.T) (path string, b []byte, raw int, id peer.ID) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "identity.key")
	k, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	id, _ = peer.IDFromPrivateKey(k)
	r, _ := k.Raw()
	b, err = os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw = bytes.Index(b, r)
	if raw < 0 || len(r) != 64 {
		t.Fatalf("raw key not found in the file")
	}
	return path, b, raw, id
}

func mustRefuse(t *testing.T, path string, want []byte, wantMode os.FileMode, words ...string) {
	t.Helper()
	_, err := LoadOrCreateKey(path)
	if err == nil {
		t.Fatal("damaged key accepted")
	}
	for _, w := range append([]string{path}, words...) {
		if !strings.Contains(err.Error(), w) {
			t.Fatalf("error %q does not say %q", err, w)
		}
	}
	t.Logf("refused: %v", err)
	got, _ := os.ReadFile(path)
	st, _ := os.Stat(path)
	if !bytes.Equal(got, want) || st.Mode().Perm() != wantMode {
		t.Fatalf("the refused key file was rewritten (mode %v)", st.Mode().Perm())
	}
}

// TestFlippedBitIsRefused: one flipped bit in the public half (or in the
// seed) of identity.key is refused, and the file is left as it was.
func TestFlippedBitIsRefused(t *testing.T) {
	for _, c := range []struct {
		name string
		off  int
	}{{"public half", 32 + 5}, {"public half, last byte", 63}, {"seed", 3}} {
		t.Run(c.name, func(t *testing.T) {
			path, b, raw, _ := newKeyFile(t)
			b[raw+c.off] ^= 0x10
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			mustRefuse(t, path, b, 0o600, "public half does not match")
		})
	}
}

// TestLooseKeyModeIsRefused: a key file that group or others may read is
// refused with what to do; owner-only modes are accepted with the same
// address as before.
func TestLooseKeyModeIsRefused(t *testing.T) {
	path, b, _, id := newKeyFile(t)
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		mustRefuse(t, path, b, mode, "chmod 600")
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		os.Chmod(path, mode)
		k, err := LoadOrCreateKey(path)
		if err != nil {
			t.Fatalf("mode %04o: %v", mode, err)
		}
		if got, _ := peer.IDFromPrivateKey(k); got != id {
			t.Fatalf("mode %04o: address %s, want %s", mode, got, id)
		}
	}
}

// TestStaleKeyTempsAreRemoved: temporary files of crashed atomic writes of
// the key are removed at start; other files are left alone.
func TestStaleKeyTempsAreRemoved(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "identity.key")
	stale := []string{".identity.key.tmp-123456", ".identity.key.tmp-9"}
	keep := []string{".identity.key.tmp-", ".identity.key.tmp-12x", ".peers.json.tmp-1", "identity.key.tmp-1", "notes"}
	old := time.Now().Add(-time.Hour) // crashes of a while ago
	for _, n := range append(append([]string{}, stale...), keep...) {
		os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o600)
		os.Chtimes(filepath.Join(dir, n), old, old)
	}
	// A write in progress (kadlan id beside a starting daemon) is kept.
	os.WriteFile(filepath.Join(dir, ".identity.key.tmp-77"), []byte("x"), 0o600)
	keep = append(keep, ".identity.key.tmp-77")
	if _, err := LoadOrCreateKey(path); err != nil {
		t.Fatal(err)
	}
	for _, n := range stale {
		if _, err := os.Stat(filepath.Join(dir, n)); err == nil {
			t.Errorf("stale temp %s left", n)
		}
	}
	for _, n := range keep {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			t.Errorf("%s removed: %v", n, err)
		}
	}
}

// FuzzParseKey: the key parser never panics, and a key it accepts signs
// and verifies and encodes back to a file that parses to the same address.
func FuzzParseKey(f *testing.F) {
	k, _, _ := crypto.GenerateEd25519Key(rand.Reader)
	good, _ := crypto.MarshalPrivateKey(k)
	f.Add(good)
	flipped := bytes.Clone(good)
	flipped[len(flipped)-1] ^= 1
	f.Add(flipped)
	f.Add([]byte("garbage"))
	f.Add([]byte{})
	f.Add(good[:20])
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseKey(b)
		if err != nil {
			return
		}
		sig, err := k.Sign([]byte("kadlan"))
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := k.GetPublic().Verify([]byte("kadlan"), sig); !ok || err != nil {
			t.Fatalf("accepted key's signature does not verify: %v", err)
		}
		again, err := crypto.MarshalPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		k2, err := ParseKey(again)
		if err != nil {
			t.Fatalf("re-encoded key refused: %v", err)
		}
		id1, _ := peer.IDFromPrivateKey(k)
		id2, _ := peer.IDFromPrivateKey(k2)
		if id1 != id2 {
			t.Fatalf("address changed across re-encoding: %s vs %s", id1, id2)
		}
	})
}
