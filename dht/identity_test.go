package dht

import (
	"os"
	"path/filepath"
	"testing"

	kb "github.com/libp2p/go-libp2p-kbucket"
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
