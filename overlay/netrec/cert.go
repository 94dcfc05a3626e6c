package netrec

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Certificate is the owner's signed statement "Member is a member of the
// network until Expires, with IPv4 address IPv4 (and name Name)".
type Certificate struct {
	Owner   Owner
	Member  peer.ID
	IPv4    netip.Addr // invalid (zero) when the member derives its address
	Issued  time.Time  // second precision
	Expires time.Time  // zero: never
	// Name is the member's name given by the owner (see ValidName); it
	// wins over the name the member announces. Empty: none. Encoded as an
	// optional trailing field, so a certificate without one is encoded as
	// before names existed.
	Name string
	Sig  []byte
}

// Network is the ID of the network the certificate is for.
func (c *Certificate) Network() NetworkID { return c.Owner.ID() }

// ErrExpired is returned for a certificate past its expiry.
var ErrExpired = errors.New("overlay: certificate expired")

// Valid checks that c is for network id, has not expired at now and is not
// revoked by rev (which may be nil). The signature was checked when c was
// parsed or signed.
func (c *Certificate) Valid(id NetworkID, now time.Time, rev *Revocation) error {
	if c.Network() != id {
		return fmt.Errorf("overlay: certificate is for network %s, not %s", c.Network().Short(), id.Short())
	}
	if !c.Expires.IsZero() && !now.Before(c.Expires) {
		return fmt.Errorf("%w at %s", ErrExpired, c.Expires.Format(time.RFC3339))
	}
	if rev != nil && rev.Revokes(c) {
		return fmt.Errorf("%w: %s", ErrRevoked, c.Member)
	}
	return nil
}

// IssueCertificate signs a certificate for member on the network of def.
// ipv4, when valid, must lie inside def's pool; a zero expires means never.
func IssueCertificate(priv crypto.PrivKey, def *Definition, member peer.ID, ipv4 netip.Addr, now, expires time.Time) (*Certificate, error) {
	return IssueNamedCertificate(priv, def, member, ipv4, "", now, expires)
}

// IssueNamedCertificate is IssueCertificate with the member's name (""
// for none; else see ValidName).
func IssueNamedCertificate(priv crypto.PrivKey, def *Definition, member peer.ID, ipv4 netip.Addr, name string, now, expires time.Time) (*Certificate, error) {
	if name != "" {
		if err := ValidName(name); err != nil {
			return nil, err
		}
	}
	if err := member.Validate(); err != nil {
		return nil, fmt.Errorf("overlay: member address: %w", err)
	}
	if ipv4.IsValid() && (!ipv4.Is4() || !def.IPv4Pool.Contains(ipv4)) {
		return nil, fmt.Errorf("overlay: IPv4 %v is outside the network's pool %v", ipv4, def.IPv4Pool)
	}
	c := &Certificate{Owner: def.Owner, Member: member, IPv4: ipv4, Issued: now.Truncate(time.Second).UTC(), Name: name}
	if !expires.IsZero() {
		c.Expires = expires.Truncate(time.Second).UTC()
		if !c.Expires.After(c.Issued) {
			return nil, errors.New("overlay: certificate would expire before it is issued")
		}
	}
	sig, err := signRecord(priv, c.Owner, c.body())
	if err != nil {
		return nil, err
	}
	c.Sig = sig
	return c, nil
}

func appendIPv4(b []byte, ip netip.Addr) []byte {
	var a [4]byte
	if ip.Is4() {
		a = ip.As4()
	}
	return append(b, a[:]...)
}

func decodeIPv4(d *decoder) netip.Addr {
	a := d.take(4, "ipv4")
	if a == nil {
		return netip.Addr{}
	}
	ip := netip.AddrFrom4([4]byte(a))
	if ip.IsUnspecified() {
		return netip.Addr{}
	}
	return ip
}

func timeField(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return uint64(t.Unix())
}

func decodeTime(d *decoder, what string) time.Time {
	v := d.u64(what)
	if v == 0 {
		return time.Time{}
	}
	if v > 1<<40 {
		d.fail("%s out of range", what)
		return time.Time{}
	}
	return unixTime(v)
}

func (c *Certificate) body() []byte {
	b := appendHead(make([]byte, 0, 128), typeCertificate, c.Owner)
	b = appendBytes(b, []byte(c.Member))
	b = appendIPv4(b, c.IPv4)
	b = appendU64(b, timeField(c.Issued))
	b = appendU64(b, timeField(c.Expires))
	return appendName(b, c.Name)
}

// Marshal encodes the signed certificate.
func (c *Certificate) Marshal() ([]byte, error) {
	if len(c.Sig) != sigLen {
		return nil, errors.New("overlay: certificate is not signed")
	}
	return append(c.body(), c.Sig...), nil
}

func decodePeerID(d *decoder, what string) peer.ID {
	raw := d.bytes(maxPeerIDLen, what)
	if d.err != nil {
		return ""
	}
	id, err := peer.IDFromBytes(raw)
	if err != nil {
		d.fail("%s: %v", what, err)
		return ""
	}
	if string(id) != string(raw) {
		d.fail("%s: not canonical", what)
	}
	return id
}

// ParseCertificate decodes a certificate and verifies the owner's signature.
// Check Valid before trusting it for a given network and time.
func ParseCertificate(b []byte) (*Certificate, error) {
	d, o, body, sig, err := decodeHead(b, typeCertificate)
	if err != nil {
		return nil, err
	}
	c := &Certificate{Owner: o}
	c.Member = decodePeerID(d, "member")
	c.IPv4 = decodeIPv4(d)
	c.Issued = decodeTime(d, "issued")
	c.Expires = decodeTime(d, "expires")
	c.Name = decodeName(d)
	if err := d.end(); err != nil {
		return nil, err
	}
	if c.Issued.IsZero() || !c.Expires.IsZero() && !c.Expires.After(c.Issued) {
		return nil, fmt.Errorf("%w: bad validity period", ErrMalformed)
	}
	if err := verifyRecord(o.Key, body, sig); err != nil {
		return nil, err
	}
	c.Sig = append([]byte(nil), sig...)
	return c, nil
}

// ErrRevoked is returned for a revoked member.
var ErrRevoked = errors.New("overlay: revoked")

// RevokedEntry withdraws every certificate of Member issued at or before
// Before. A certificate issued later re-admits the member.
type RevokedEntry struct {
	Member peer.ID
	Before time.Time
}

// Revocation is the owner's signed, sequence-numbered list of withdrawn
// certificates. The one with the highest Seq wins; it replaces, not extends,
// the previous list.
type Revocation struct {
	Owner   Owner
	Seq     uint64
	Entries []RevokedEntry // sorted by Member, unique
	Sig     []byte
}

// Network is the ID of the network the revocation list is for.
func (r *Revocation) Network() NetworkID { return r.Owner.ID() }

// Revokes reports whether c is withdrawn by r.
func (r *Revocation) Revokes(c *Certificate) bool {
	if r == nil || r.Owner != c.Owner {
		return false
	}
	e, ok := r.Lookup(c.Member)
	return ok && !c.Issued.After(e.Before)
}

// Lookup returns the entry for member, if any.
func (r *Revocation) Lookup(member peer.ID) (RevokedEntry, bool) {
	if r == nil {
		return RevokedEntry{}, false
	}
	i, ok := slices.BinarySearchFunc(r.Entries, member, func(e RevokedEntry, m peer.ID) int {
		return bytes.Compare([]byte(e.Member), []byte(m))
	})
	if !ok {
		return RevokedEntry{}, false
	}
	return r.Entries[i], true
}

// NewRevocation signs a revocation list with sequence number seq. Entries
// are sorted; a member listed twice keeps its latest Before.
func NewRevocation(priv crypto.PrivKey, def *Definition, seq uint64, entries []RevokedEntry) (*Revocation, error) {
	if len(entries) > maxRevocations {
		return nil, fmt.Errorf("overlay: %d revocations exceed the limit of %d", len(entries), maxRevocations)
	}
	es := make([]RevokedEntry, 0, len(entries))
	for _, e := range entries {
		if err := e.Member.Validate(); err != nil {
			return nil, fmt.Errorf("overlay: revoked address: %w", err)
		}
		es = append(es, RevokedEntry{Member: e.Member, Before: e.Before.Truncate(time.Second).UTC()})
	}
	slices.SortFunc(es, func(a, b RevokedEntry) int {
		if c := bytes.Compare([]byte(a.Member), []byte(b.Member)); c != 0 {
			return c
		}
		return b.Before.Compare(a.Before) // latest first, kept by Compact
	})
	es = slices.CompactFunc(es, func(a, b RevokedEntry) bool { return a.Member == b.Member })
	r := &Revocation{Owner: def.Owner, Seq: seq, Entries: es}
	sig, err := signRecord(priv, r.Owner, r.body())
	if err != nil {
		return nil, err
	}
	r.Sig = sig
	return r, nil
}

func (r *Revocation) body() []byte {
	b := appendHead(make([]byte, 0, 64+len(r.Entries)*48), typeRevocation, r.Owner)
	b = appendU64(b, r.Seq)
	b = appendU16(b, uint16(len(r.Entries)))
	for _, e := range r.Entries {
		b = appendBytes(b, []byte(e.Member))
		b = appendU64(b, timeField(e.Before))
	}
	return b
}

// Marshal encodes the signed revocation list.
func (r *Revocation) Marshal() ([]byte, error) {
	if len(r.Sig) != sigLen {
		return nil, errors.New("overlay: revocation is not signed")
	}
	return append(r.body(), r.Sig...), nil
}

// ParseRevocation decodes a revocation list and verifies its signature.
func ParseRevocation(b []byte) (*Revocation, error) {
	d, o, body, sig, err := decodeHead(b, typeRevocation)
	if err != nil {
		return nil, err
	}
	r := &Revocation{Owner: o}
	r.Seq = d.u64("seq")
	n := int(d.u16("count"))
	if n > maxRevocations {
		d.fail("%d entries exceed %d", n, maxRevocations)
	}
	for i := 0; i < n && d.err == nil; i++ {
		e := RevokedEntry{Member: decodePeerID(d, "revoked member")}
		e.Before = decodeTime(d, "before")
		if d.err == nil && i > 0 && bytes.Compare([]byte(r.Entries[i-1].Member), []byte(e.Member)) >= 0 {
			d.fail("entries not sorted and unique")
		}
		r.Entries = append(r.Entries, e)
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	if err := verifyRecord(o.Key, body, sig); err != nil {
		return nil, err
	}
	r.Sig = append([]byte(nil), sig...)
	return r, nil
}

// Announcement is a member's self-signed statement "I am on network N,
// use IPv4 address IPv4 and call myself Name", published in the DHT and
// sent when a link opens. It makes a joining node visible to the owner
// (pending) and carries the IPv4 claims that public networks use to
// detect address conflicts, and the self-chosen names of members.
type Announcement struct {
	Network NetworkID
	Member  peer.ID
	IPv4    netip.Addr
	Time    time.Time // second precision; a later one replaces an earlier one
	// Name is the member's self-chosen name (see ValidName); empty: none.
	// An optional trailing field: an announcement without one is encoded
	// as before names existed.
	Name string
	Sig  []byte // by Member's key
}

// NewAnnouncement signs an announcement with the member's key.
func NewAnnouncement(priv crypto.PrivKey, id NetworkID, ipv4 netip.Addr, now time.Time) (*Announcement, error) {
	return NewNamedAnnouncement(priv, id, ipv4, "", now)
}

// NewNamedAnnouncement is NewAnnouncement with the member's self-chosen
// name ("" for none; else see ValidName).
func NewNamedAnnouncement(priv crypto.PrivKey, id NetworkID, ipv4 netip.Addr, name string, now time.Time) (*Announcement, error) {
	if name != "" {
		if err := ValidName(name); err != nil {
			return nil, err
		}
	}
	member, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("overlay: announcement: %w", err)
	}
	if ipv4.IsValid() && !ipv4.Is4() {
		return nil, fmt.Errorf("overlay: announcement: %v is not IPv4", ipv4)
	}
	a := &Announcement{Network: id, Member: member, IPv4: ipv4, Time: now.Truncate(time.Second).UTC(), Name: name}
	sig, err := priv.Sign(append([]byte(signDomain), a.body()...))
	if err != nil {
		return nil, fmt.Errorf("overlay: announcement: %w", err)
	}
	a.Sig = sig
	return a, nil
}

func (a *Announcement) body() []byte {
	b := make([]byte, 0, 96)
	b = append(b, recordVersion, typeAnnouncement)
	b = append(b, a.Network[:]...)
	b = appendBytes(b, []byte(a.Member))
	b = appendIPv4(b, a.IPv4)
	b = appendU64(b, timeField(a.Time))
	return appendName(b, a.Name)
}

// Marshal encodes the signed announcement.
func (a *Announcement) Marshal() ([]byte, error) {
	if len(a.Sig) != sigLen {
		return nil, errors.New("overlay: announcement is not signed")
	}
	return append(a.body(), a.Sig...), nil
}

// ParseAnnouncement decodes an announcement and verifies it against the
// public key embedded in the member's address (Ed25519 addresses only).
func ParseAnnouncement(b []byte) (*Announcement, error) {
	if len(b) < 2+32+sigLen {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrMalformed, len(b))
	}
	if b[0] != recordVersion || b[1] != typeAnnouncement {
		return nil, fmt.Errorf("%w: not a version %d announcement", ErrMalformed, recordVersion)
	}
	body, sig := b[:len(b)-sigLen], b[len(b)-sigLen:]
	d := &decoder{b: body[2:]}
	a := &Announcement{}
	copy(a.Network[:], d.take(32, "network"))
	a.Member = decodePeerID(d, "member")
	a.IPv4 = decodeIPv4(d)
	a.Time = decodeTime(d, "time")
	a.Name = decodeName(d)
	if err := d.end(); err != nil {
		return nil, err
	}
	pub, err := a.Member.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("%w: member address carries no key: %v", ErrMalformed, err)
	}
	raw, err := rawEd25519Pub(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := verifyRecord(raw, body, sig); err != nil {
		return nil, err
	}
	a.Sig = append([]byte(nil), sig...)
	return a, nil
}

// NextRevocation signs the revocation list that follows prev (nil for the
// first): prev's entries plus add, minus the members in readmit, with
// sequence number prev.Seq+1.
func NextRevocation(priv crypto.PrivKey, def *Definition, prev *Revocation, add []RevokedEntry, readmit []peer.ID) (*Revocation, error) {
	var seq uint64 = 1
	var es []RevokedEntry
	if prev != nil {
		if prev.Owner != def.Owner {
			return nil, errors.New("overlay: previous revocation is for another network")
		}
		seq = prev.Seq + 1
		for _, e := range prev.Entries {
			if !slices.Contains(readmit, e.Member) {
				es = append(es, e)
			}
		}
	}
	for _, e := range add {
		if !slices.Contains(readmit, e.Member) {
			es = append(es, e)
		}
	}
	return NewRevocation(priv, def, seq, es)
}

// ParseRecord decodes any signed record by its type byte and verifies it:
// the result is a *Definition, *Certificate, *Revocation, *Announcement,
// *Capability or *RedemptionSet.
func ParseRecord(b []byte) (any, error) {
	if len(b) < 2 || b[0] != recordVersion {
		return nil, fmt.Errorf("%w: not a version %d record", ErrMalformed, recordVersion)
	}
	switch b[1] {
	case typeDefinition:
		return ParseDefinition(b)
	case typeCertificate:
		return ParseCertificate(b)
	case typeRevocation:
		return ParseRevocation(b)
	case typeAnnouncement:
		return ParseAnnouncement(b)
	case typeCapability:
		return ParseCapability(b)
	case typeRedemptions:
		return ParseRedemptionSet(b)
	}
	return nil, fmt.Errorf("%w: unknown record type %d", ErrMalformed, b[1])
}
