package dht

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/kadlan/kadlan/internal/atomicfile"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// maxKeyFileSize bounds what is read of a key file: an Ed25519 key in
// libp2p's protobuf encoding is 68 bytes.
const maxKeyFileSize = 4096

// LoadOrCreateKey returns the Ed25519 identity key stored at path, creating
// it (mode 0600, atomic write) when the file does not exist yet. A key file
// that exists but cannot be used is an error and is never rewritten, since
// replacing it would silently change the node's address: a file that does
// not parse, whose public half disagrees with its private seed (a flipped
// bit would otherwise start the node under a new address with a key whose
// signatures do not verify), or whose mode lets group or others read it.
// Temporary files left by a write that crashed are removed first.
func LoadOrCreateKey(path string) (crypto.PrivKey, error) {
	atomicfile.RemoveStaleOf(path)
	f, err := os.Open(path)
	switch {
	case err == nil:
		defer f.Close()
		return readKeyFile(path, f)
	case errors.Is(err, fs.ErrNotExist):
	default:
		return nil, fmt.Errorf("dht: reading identity key: %w", err)
	}
	k, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("dht: generating identity key: %w", err)
	}
	b, err := crypto.MarshalPrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("dht: encoding identity key: %w", err)
	}
	if err := atomicfile.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("dht: saving identity key: %w", err)
	}
	return k, nil
}

func readKeyFile(path string, f *os.File) (crypto.PrivKey, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("dht: identity key %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("dht: identity key %s is not a regular file (%v)", path, st.Mode().Type())
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("dht: identity key %s has mode %04o, open to group or others: refusing to use it (want 0600). "+
			"If nobody else can have read it, run 'chmod 600 %s'; otherwise move it away and start again for a new address",
			path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("dht: reading identity key %s: %w", path, err)
	}
	k, err := ParseKey(b)
	if err != nil {
		return nil, fmt.Errorf("dht: identity key %s is damaged (it was not changed): %w. "+
			"Restore it from a backup, or move it away and start again for a new address", path, err)
	}
	return k, nil
}

// ParseKey decodes an identity key file's bytes: libp2p's protobuf encoding
// of an Ed25519 private key, whose 64 bytes are the seed and the public
// key. The public half must be the one the seed derives.
func ParseKey(b []byte) (crypto.PrivKey, error) {
	if len(b) > maxKeyFileSize {
		return nil, fmt.Errorf("%d bytes is too long for a key", len(b))
	}
	k, err := crypto.UnmarshalPrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("not a libp2p private key: %w", err)
	}
	if k.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("the key is %v, want Ed25519", k.Type())
	}
	raw, err := k.Raw()
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("an Ed25519 key of %d bytes, want %d", len(raw), ed25519.PrivateKeySize)
	}
	derived := ed25519.NewKeyFromSeed(raw[:ed25519.SeedSize])
	if !bytes.Equal(derived[ed25519.SeedSize:], raw[ed25519.SeedSize:]) {
		return nil, errors.New("its public half does not match its private seed")
	}
	return k, nil
}

// KademliaKey is the node's place in the 256-bit XOR space: SHA-256 of the
// peer ID bytes, as go-libp2p-kad-dht computes it.
func KademliaKey(id peer.ID) [32]byte { return sha256.Sum256([]byte(id)) }
