package netrec

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// TokenPrefix starts every invite token; the digit is the format version.
const TokenPrefix = "kadlan1-"

// Token limits.
const (
	MaxTokenAddrs = 4
	MaxTokenLen   = 2048 // characters, prefix included
	maxTokenAddr  = 300  // bytes of one binary multiaddr
	tokenVersion  = 1
	tokenSumLen   = 4
)

// Token is what `kadlan net invite` prints and `kadlan join TOKEN` reads:
// a network, a few peers to bootstrap from, and, for a private network,
// the owner's capability.
type Token struct {
	Network NetworkID
	// Addrs are multiaddrs ending in /p2p/ADDRESS: members or public
	// nodes a newcomer with no other peer can dial.
	Addrs []ma.Multiaddr
	// Capability admits the holder to a private network; nil on a public
	// one.
	Capability *Capability
}

var tokenEncoding = base64.RawURLEncoding

// ErrNotToken is wrapped by ParseToken when s is not an invite token.
var ErrNotToken = errors.New("not a kadlan invite")

// Encode returns the token as "kadlan1-" and unpadded base64url of: version
// byte, network ID, address count, addresses (uvarint length and binary
// multiaddr each), capability (uvarint length, 0 for none), and the first 4
// bytes of SHA-256 over all that, which catches a token damaged in copying.
func (t Token) Encode() (string, error) {
	if len(t.Addrs) > MaxTokenAddrs {
		return "", fmt.Errorf("overlay: invite with %d addresses, at most %d", len(t.Addrs), MaxTokenAddrs)
	}
	b := []byte{tokenVersion}
	b = append(b, t.Network[:]...)
	b = append(b, byte(len(t.Addrs)))
	for _, a := range t.Addrs {
		if err := checkTokenAddr(a); err != nil {
			return "", err
		}
		b = appendBytes(b, a.Bytes())
	}
	var cb []byte
	if t.Capability != nil {
		if t.Capability.Network() != t.Network {
			return "", errors.New("overlay: invite capability is for another network")
		}
		var err error
		if cb, err = t.Capability.Marshal(); err != nil {
			return "", err
		}
	}
	b = appendBytes(b, cb)
	sum := sha256.Sum256(b)
	b = append(b, sum[:tokenSumLen]...)
	s := TokenPrefix + tokenEncoding.EncodeToString(b)
	if len(s) > MaxTokenLen {
		return "", fmt.Errorf("overlay: invite of %d characters exceeds %d", len(s), MaxTokenLen)
	}
	return s, nil
}

func checkTokenAddr(a ma.Multiaddr) error {
	if len(a.Bytes()) > maxTokenAddr {
		return fmt.Errorf("overlay: address %s too long for an invite", a)
	}
	if _, err := peer.AddrInfoFromP2pAddr(a); err != nil {
		return fmt.Errorf("overlay: address %s: %v (want one ending in /p2p/ADDRESS)", a, err)
	}
	return nil
}

// LooksLikeToken reports whether s has the token prefix (so that `kadlan
// join` can tell a token from a network ID).
func LooksLikeToken(s string) bool {
	return strings.HasPrefix(strings.TrimSpace(s), TokenPrefix)
}

// ParseToken decodes a token (surrounding white space and line breaks, as
// a terminal or mail client may add, are ignored) and verifies the
// capability's signature. It does not check expiry: call
// Capability.Valid with the time.
func ParseToken(s string) (Token, error) {
	var t Token
	s = strings.Join(strings.Fields(s), "")
	if !strings.HasPrefix(s, TokenPrefix) {
		if strings.HasPrefix(s, "kadlan") && strings.Contains(s, "-") {
			return t, fmt.Errorf("%w: unknown token version %q (this kadlan reads %s)", ErrNotToken, s[:strings.Index(s, "-")+1], TokenPrefix)
		}
		return t, fmt.Errorf("%w (an invite starts with %s)", ErrNotToken, TokenPrefix)
	}
	if len(s) > MaxTokenLen {
		return t, fmt.Errorf("%w: %d characters, at most %d", ErrNotToken, len(s), MaxTokenLen)
	}
	b, err := tokenEncoding.DecodeString(s[len(TokenPrefix):])
	if err != nil {
		return t, fmt.Errorf("invite is damaged (not base64url: %v); copy the whole token", err)
	}
	if len(b) < 1+32+1+1+tokenSumLen {
		return t, errors.New("invite is damaged (too short); copy the whole token")
	}
	body, sum := b[:len(b)-tokenSumLen], b[len(b)-tokenSumLen:]
	if want := sha256.Sum256(body); !bytes.Equal(sum, want[:tokenSumLen]) {
		return t, errors.New("invite is damaged (checksum mismatch); copy the whole token")
	}
	if body[0] != tokenVersion {
		return t, fmt.Errorf("%w: payload version %d, want %d", ErrNotToken, body[0], tokenVersion)
	}
	d := &decoder{b: body[1:]}
	copy(t.Network[:], d.take(32, "network"))
	n := int(d.u8("address count"))
	if n > MaxTokenAddrs {
		d.fail("%d addresses, at most %d", n, MaxTokenAddrs)
	}
	for i := 0; i < n && d.err == nil; i++ {
		raw := d.bytes(maxTokenAddr, "address")
		if d.err != nil {
			break
		}
		a, err := ma.NewMultiaddrBytes(raw)
		if err != nil || !bytes.Equal(a.Bytes(), raw) {
			d.fail("address %d: not a multiaddr", i)
			break
		}
		if err := checkTokenAddr(a); err != nil {
			d.fail("address %d: %v", i, err)
			break
		}
		t.Addrs = append(t.Addrs, a)
	}
	cb := d.bytes(512, "capability")
	if err := d.end(); err != nil {
		return Token{}, fmt.Errorf("invite is malformed: %w", err)
	}
	if len(cb) > 0 {
		c, err := ParseCapability(cb)
		if errors.Is(err, ErrBadSignature) {
			return Token{}, errors.New("invite has a bad signature: it was not made by the network's owner, or was altered")
		}
		if err != nil {
			return Token{}, fmt.Errorf("invite is malformed: %w", err)
		}
		if c.Network() != t.Network {
			return Token{}, errors.New("invite is malformed: its capability is for another network")
		}
		t.Capability = c
	}
	return t, nil
}

// AddrInfos returns the token's peers for a bootstrapper.
func (t Token) AddrInfos() []peer.AddrInfo {
	ais, _ := peer.AddrInfosFromP2pAddrs(t.Addrs...)
	return ais
}
