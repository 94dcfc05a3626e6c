package netrec

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// NetworkID names a network. It is SHA-256 over a domain string, the
// owner's raw Ed25519 public key and a 16-byte nonce, so it commits to the
// owner's key: only the owner can sign records that verify against it.
type NetworkID [32]byte

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// String is the ID in lowercase unpadded base32 (52 characters).
func (id NetworkID) String() string { return strings.ToLower(idEncoding.EncodeToString(id[:])) }

// Short is the first 12 characters of String, for logs.
func (id NetworkID) Short() string { return id.String()[:12] }

// IsZero reports whether id is all zeros.
func (id NetworkID) IsZero() bool { return id == NetworkID{} }

// MarshalText implements encoding.TextMarshaler.
func (id NetworkID) MarshalText() ([]byte, error) { return []byte(id.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *NetworkID) UnmarshalText(b []byte) error {
	v, err := ParseNetworkID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// ParseNetworkID parses the form printed by NetworkID.String (case-insensitive).
func ParseNetworkID(s string) (NetworkID, error) {
	var id NetworkID
	if len(s) != 52 {
		return id, fmt.Errorf("overlay: network ID %q: want 52 base32 characters", s)
	}
	b, err := idEncoding.DecodeString(strings.ToUpper(s))
	if err != nil || len(b) != 32 {
		return id, fmt.Errorf("overlay: network ID %q: not base32", s)
	}
	copy(id[:], b)
	if id.String() != strings.ToLower(s) { // non-canonical trailing bits
		return id, fmt.Errorf("overlay: network ID %q: not canonical", s)
	}
	return id, nil
}

// NonceLen is the length of the nonce that, with the owner key, makes a
// network ID.
const NonceLen = 16

// Owner is what a network ID commits to: the owner's Ed25519 public key and
// a nonce, so one key can own many networks.
type Owner struct {
	Key   [32]byte // raw Ed25519 public key
	Nonce [NonceLen]byte
}

// ID derives the network ID.
func (o Owner) ID() NetworkID {
	h := sha256.New()
	h.Write([]byte("kadlan network id v1\x00"))
	h.Write(o.Key[:])
	h.Write(o.Nonce[:])
	var id NetworkID
	h.Sum(id[:0])
	return id
}

// PubKey returns the owner's key as a libp2p public key.
func (o Owner) PubKey() (crypto.PubKey, error) {
	k, err := crypto.UnmarshalEd25519PublicKey(o.Key[:])
	if err != nil {
		return nil, fmt.Errorf("overlay: owner key: %w", err)
	}
	return k, nil
}

// PeerID returns the owner's libp2p address.
func (o Owner) PeerID() (peer.ID, error) {
	k, err := o.PubKey()
	if err != nil {
		return "", err
	}
	return peer.IDFromPublicKey(k)
}

// NewOwner returns an Owner for priv (which must be Ed25519) with a fresh
// random nonce.
func NewOwner(priv crypto.PrivKey) (Owner, error) {
	var o Owner
	raw, err := rawEd25519Pub(priv.GetPublic())
	if err != nil {
		return o, err
	}
	o.Key = raw
	if _, err := rand.Read(o.Nonce[:]); err != nil {
		return o, fmt.Errorf("overlay: nonce: %w", err)
	}
	return o, nil
}

func rawEd25519Pub(k crypto.PubKey) ([32]byte, error) {
	var out [32]byte
	if k.Type() != crypto.Ed25519 {
		return out, fmt.Errorf("overlay: key type %v: only Ed25519 is supported", k.Type())
	}
	raw, err := k.Raw()
	if err != nil || len(raw) != 32 {
		return out, fmt.Errorf("overlay: bad Ed25519 key: %v", err)
	}
	copy(out[:], raw)
	return out, nil
}

// BroadcastParams bound the cost of one broadcast or multicast frame (see
// DESIGN.md, implicit social switching).
// They are the network-wide part of overlay's SocialParams.
type BroadcastParams struct {
	Fanout        int `json:"fanout"`         // neighbours the origin sends to, 1..64
	ForwardFanout int `json:"forward_fanout"` // neighbours a forwarder sends to, 1..64
	Hops          int `json:"hops"`           // hop limit, 1..64
	Budget        int `json:"budget"`         // total messages per broadcast, 1..65535
}

// DefaultBroadcast is used when a definition leaves BroadcastParams zero.
// It matches DefaultSocialParams.
var DefaultBroadcast = BroadcastParams{Fanout: 12, ForwardFanout: 4, Hops: 8, Budget: 128}

func (p BroadcastParams) validate() error {
	if p.Fanout < 1 || p.Fanout > 64 || p.ForwardFanout < 1 || p.ForwardFanout > 64 ||
		p.Hops < 1 || p.Hops > 64 || p.Budget < 1 || p.Budget > 65535 {
		return fmt.Errorf("overlay: broadcast parameters %+v out of range (fanout 1..64, forward fanout 1..64, hops 1..64, budget 1..65535)", p)
	}
	return nil
}

// Network definition limits and defaults.
const (
	MaxNameLen = 64
	// DefaultMTU leaves room, on the hosts' real links, for kadlan's own
	// encapsulation when members tunnel traffic of their own.
	DefaultMTU = 1420
	MinMTU     = 1280 // IPv6 minimum
	MaxMTU     = 9000
)

// DefaultIPv4Pool is the pool of a network created without one.
var DefaultIPv4Pool = netip.MustParsePrefix("10.77.0.0/16")

// Definition is a network's owner-signed description. Members and the DHT
// keep the one with the highest Seq.
type Definition struct {
	Owner     Owner
	Seq       uint64
	Name      string
	Private   bool         // members need an owner-signed Certificate
	IPv4Pool  netip.Prefix // IPv4 prefix, /8../30
	MTU       int          // Ethernet payload MTU of the members' devices
	Broadcast BroadcastParams
	Created   time.Time // second precision
	Sig       []byte
}

// ID is the network ID the definition belongs to.
func (d *Definition) ID() NetworkID { return d.Owner.ID() }

func (d *Definition) validate() error {
	if len(d.Name) > MaxNameLen || !utf8.ValidString(d.Name) {
		return fmt.Errorf("overlay: network name must be valid UTF-8 of at most %d bytes", MaxNameLen)
	}
	p := d.IPv4Pool
	if !p.IsValid() || !p.Addr().Is4() || p.Bits() < 8 || p.Bits() > 30 || p.Masked() != p {
		return fmt.Errorf("overlay: IPv4 pool %v: want a masked IPv4 prefix /8../30", p)
	}
	if d.MTU < MinMTU || d.MTU > MaxMTU {
		return fmt.Errorf("overlay: MTU %d out of range %d..%d", d.MTU, MinMTU, MaxMTU)
	}
	return d.Broadcast.validate()
}

// NewDefinition creates and signs the definition of a new network owned by
// priv (Ed25519). Zero values of pool, mtu and bp select the defaults.
func NewDefinition(priv crypto.PrivKey, name string, private bool, pool netip.Prefix, mtu int, bp BroadcastParams, now time.Time) (*Definition, error) {
	o, err := NewOwner(priv)
	if err != nil {
		return nil, err
	}
	if !pool.IsValid() {
		pool = DefaultIPv4Pool
	}
	if mtu == 0 {
		mtu = DefaultMTU
	}
	if bp == (BroadcastParams{}) {
		bp = DefaultBroadcast
	}
	d := &Definition{Owner: o, Seq: 1, Name: name, Private: private, IPv4Pool: pool, MTU: mtu, Broadcast: bp, Created: now.Truncate(time.Second).UTC()}
	if err := d.Sign(priv); err != nil {
		return nil, err
	}
	return d, nil
}

// Sign validates d and signs it with priv, which must be the owner's key.
// Call it again after changing a field (and bumping Seq).
func (d *Definition) Sign(priv crypto.PrivKey) error {
	if err := d.validate(); err != nil {
		return err
	}
	sig, err := signRecord(priv, d.Owner, d.body())
	if err != nil {
		return err
	}
	d.Sig = sig
	return nil
}

// Record types (the second byte of every encoded record).
const (
	recordVersion    = 1
	typeDefinition   = 1
	typeCertificate  = 2
	typeRevocation   = 3
	typeAnnouncement = 4
	typeCapability   = 5
	typeRedemptions  = 6
	typeRedemption   = 7 // the signed body of one Redemption, never a record alone
	sigLen           = 64
	signDomain       = "kadlan record v1\x00"
	maxPeerIDLen     = 64
	maxRevocations   = 4096
)

func appendHead(b []byte, typ byte, o Owner) []byte {
	b = append(b, recordVersion, typ)
	b = append(b, o.Key[:]...)
	return append(b, o.Nonce[:]...)
}

// body is the signed part of the encoding.
func (d *Definition) body() []byte {
	b := appendHead(make([]byte, 0, 160), typeDefinition, d.Owner)
	b = appendU64(b, d.Seq)
	b = appendBytes(b, []byte(d.Name))
	var flags byte
	if d.Private {
		flags |= 1
	}
	b = append(b, flags)
	a := d.IPv4Pool.Addr().As4()
	b = append(b, a[:]...)
	b = append(b, byte(d.IPv4Pool.Bits()))
	b = appendU16(b, uint16(d.MTU))
	b = append(b, byte(d.Broadcast.Fanout), byte(d.Broadcast.ForwardFanout), byte(d.Broadcast.Hops))
	b = appendU16(b, uint16(d.Broadcast.Budget))
	b = appendU64(b, uint64(d.Created.Unix()))
	return b
}

// Marshal encodes the signed definition.
func (d *Definition) Marshal() ([]byte, error) {
	if len(d.Sig) != sigLen {
		return nil, errors.New("overlay: definition is not signed")
	}
	return append(d.body(), d.Sig...), nil
}

func signRecord(priv crypto.PrivKey, o Owner, body []byte) ([]byte, error) {
	raw, err := rawEd25519Pub(priv.GetPublic())
	if err != nil {
		return nil, err
	}
	if raw != o.Key {
		return nil, errors.New("overlay: signing key is not the network owner's key")
	}
	sig, err := priv.Sign(append([]byte(signDomain), body...))
	if err != nil {
		return nil, fmt.Errorf("overlay: sign: %w", err)
	}
	return sig, nil
}

func verifyRecord(key [32]byte, body, sig []byte) error {
	pub, err := crypto.UnmarshalEd25519PublicKey(key[:])
	if err != nil {
		return fmt.Errorf("overlay: verify: %w", err)
	}
	ok, err := pub.Verify(append([]byte(signDomain), body...), sig)
	if err != nil || !ok {
		return ErrBadSignature
	}
	return nil
}

// ErrBadSignature is returned when a record's signature does not verify.
var ErrBadSignature = errors.New("overlay: bad signature")

// decodeHead reads version, type and owner, and splits off the signature.
// It returns the decoder positioned after the owner, and the signed body.
func decodeHead(b []byte, typ byte) (*decoder, Owner, []byte, []byte, error) {
	var o Owner
	if len(b) < 2+32+NonceLen+sigLen {
		return nil, o, nil, nil, fmt.Errorf("%w: %d bytes is too short", ErrMalformed, len(b))
	}
	if b[0] != recordVersion {
		return nil, o, nil, nil, fmt.Errorf("%w: version %d, want %d", ErrMalformed, b[0], recordVersion)
	}
	if b[1] != typ {
		return nil, o, nil, nil, fmt.Errorf("%w: record type %d, want %d", ErrMalformed, b[1], typ)
	}
	body, sig := b[:len(b)-sigLen], b[len(b)-sigLen:]
	d := &decoder{b: body[2:]}
	copy(o.Key[:], d.take(32, "owner key"))
	copy(o.Nonce[:], d.take(NonceLen, "nonce"))
	return d, o, body, sig, nil
}

func unixTime(v uint64) time.Time { return time.Unix(int64(v), 0).UTC() }

// ParseDefinition decodes a definition and verifies its signature. It
// accepts only the canonical encoding.
func ParseDefinition(b []byte) (*Definition, error) {
	d, o, body, sig, err := decodeHead(b, typeDefinition)
	if err != nil {
		return nil, err
	}
	def := &Definition{Owner: o}
	def.Seq = d.u64("seq")
	name := d.bytes(MaxNameLen, "name")
	def.Name = string(name)
	flags := d.u8("flags")
	if flags&^1 != 0 {
		d.fail("unknown flags %#x", flags)
	}
	def.Private = flags&1 != 0
	a := d.take(4, "pool")
	bits := d.u8("pool bits")
	def.MTU = int(d.u16("mtu"))
	def.Broadcast.Fanout = int(d.u8("fanout"))
	def.Broadcast.ForwardFanout = int(d.u8("forward fanout"))
	def.Broadcast.Hops = int(d.u8("hops"))
	def.Broadcast.Budget = int(d.u16("budget"))
	created := d.u64("created")
	if err := d.end(); err != nil {
		return nil, err
	}
	if created > 1<<40 {
		return nil, fmt.Errorf("%w: created time out of range", ErrMalformed)
	}
	def.Created = unixTime(created)
	def.IPv4Pool = netip.PrefixFrom(netip.AddrFrom4([4]byte(a)), int(bits))
	if err := def.validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err := verifyRecord(o.Key, body, sig); err != nil {
		return nil, err
	}
	def.Sig = append([]byte(nil), sig...)
	return def, nil
}
