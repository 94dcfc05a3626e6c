package dht

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/kadlan/kadlan/internal/atomicfile"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// LoadOrCreateKey returns the Ed25519 identity key stored at path, creating
// it (mode 0600, atomic write) when the file does not exist yet. A key file
// that exists but cannot be parsed is an error: it is never replaced, since
// that would silently change the node's address.
func LoadOrCreateKey(path string) (crypto.PrivKey, error) {
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		k, err := crypto.UnmarshalPrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("dht: identity key %s is corrupt (not replacing it): %w", path, err)
		}
		if k.Type() != crypto.Ed25519 {
			return nil, fmt.Errorf("dht: identity key %s is %v, want Ed25519", path, k.Type())
		}
		return k, nil
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, fmt.Errorf("dht: reading identity key: %w", err)
	}
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("dht: generating identity key: %w", err)
	}
	b, err = crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("dht: encoding identity key: %w", err)
	}
	if err := atomicfile.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("dht: saving identity key: %w", err)
	}
	return k, nil
}

// KademliaKey is the node's place in the 256-bit XOR space: SHA-256 of the
// peer ID bytes, as go-libp2p-kad-dht computes it.
func KademliaKey(id peer.ID) [32]byte { return sha256.Sum256([]byte(id)) }
