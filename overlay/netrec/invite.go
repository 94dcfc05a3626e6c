package netrec

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Invitations (issue 15). The owner of a private network signs a
// Capability: "whoever presents this may join network N before NotAfter;
// at most Uses nodes". A node holding it redeems it by signing a
// Redemption with its own key and presenting both in its Hello; members
// admit it (status invited) without the owner being online, and the owner
// issues an ordinary certificate when it next sees the node.
//
// Use counts without the owner: redemptions of one capability are gathered
// in a RedemptionSet, published in the DHT under RedemptionsKey and merged
// by every node that sees one (from the DHT or a Hello). A set keeps the
// earliest Uses redemptions by (time, address); those are the winners, a
// node outside them is refused. Times are the redeemers' own claims, so
// the count holds once the views have merged: two redeemers racing may
// both be admitted by members that have seen only one of them, until the
// sets meet (the loser is then dropped), and a token holder can backdate
// its redemption to win. README (Invite tokens) says so.

// CapabilityIDLen is the length of a capability's random ID.
const CapabilityIDLen = 16

// MaxUses bounds a capability's use count (and so a RedemptionSet).
const MaxUses = 64

// CapabilityID names a capability within its network.
type CapabilityID [CapabilityIDLen]byte

// String is the ID in lowercase hex (32 characters).
func (c CapabilityID) String() string { return hex.EncodeToString(c[:]) }

// Capability is the owner's signed admission ticket of a private network.
type Capability struct {
	Owner    Owner
	ID       CapabilityID
	Issued   time.Time // second precision
	NotAfter time.Time // second precision; redemptions and admissions end here
	Uses     int       // 1..MaxUses
	Sig      []byte
}

// Network is the ID of the network the capability admits to.
func (c *Capability) Network() NetworkID { return c.Owner.ID() }

// ErrInviteExpired is wrapped by Valid for a capability past NotAfter.
var ErrInviteExpired = errors.New("invite expired")

// Valid checks that c admits to network id at now.
func (c *Capability) Valid(id NetworkID, now time.Time) error {
	if c.Network() != id {
		return fmt.Errorf("overlay: invite is for network %s, not %s", c.Network().Short(), id.Short())
	}
	if !now.Before(c.NotAfter) {
		return fmt.Errorf("%w on %s", ErrInviteExpired, c.NotAfter.Format(time.RFC3339))
	}
	return nil
}

// NewCapability signs a capability for the network of def, valid from now
// until notAfter for uses redemptions, with a random ID.
func NewCapability(priv crypto.PrivKey, def *Definition, now, notAfter time.Time, uses int) (*Capability, error) {
	if uses < 1 || uses > MaxUses {
		return nil, fmt.Errorf("overlay: invite uses %d: want 1..%d", uses, MaxUses)
	}
	c := &Capability{Owner: def.Owner, Issued: now.Truncate(time.Second).UTC(), NotAfter: notAfter.Truncate(time.Second).UTC(), Uses: uses}
	if !c.NotAfter.After(c.Issued) {
		return nil, errors.New("overlay: invite would expire before it is issued")
	}
	if _, err := rand.Read(c.ID[:]); err != nil {
		return nil, fmt.Errorf("overlay: invite ID: %w", err)
	}
	sig, err := signRecord(priv, c.Owner, c.body())
	if err != nil {
		return nil, err
	}
	c.Sig = sig
	return c, nil
}

func (c *Capability) body() []byte {
	b := appendHead(make([]byte, 0, 160), typeCapability, c.Owner)
	b = append(b, c.ID[:]...)
	b = appendU64(b, timeField(c.Issued))
	b = appendU64(b, timeField(c.NotAfter))
	return appendU16(b, uint16(c.Uses))
}

// Marshal encodes the signed capability.
func (c *Capability) Marshal() ([]byte, error) {
	if len(c.Sig) != sigLen {
		return nil, errors.New("overlay: capability is not signed")
	}
	return append(c.body(), c.Sig...), nil
}

// ParseCapability decodes a capability and verifies the owner's signature.
// Check Valid before trusting it for a network and time.
func ParseCapability(b []byte) (*Capability, error) {
	d, o, body, sig, err := decodeHead(b, typeCapability)
	if err != nil {
		return nil, err
	}
	c := &Capability{Owner: o}
	copy(c.ID[:], d.take(CapabilityIDLen, "capability ID"))
	c.Issued = decodeTime(d, "issued")
	c.NotAfter = decodeTime(d, "not after")
	c.Uses = int(d.u16("uses"))
	if err := d.end(); err != nil {
		return nil, err
	}
	if c.Issued.IsZero() || !c.NotAfter.After(c.Issued) {
		return nil, fmt.Errorf("%w: bad validity period", ErrMalformed)
	}
	if c.Uses < 1 || c.Uses > MaxUses {
		return nil, fmt.Errorf("%w: %d uses out of range 1..%d", ErrMalformed, c.Uses, MaxUses)
	}
	if err := verifyRecord(o.Key, body, sig); err != nil {
		return nil, err
	}
	c.Sig = append([]byte(nil), sig...)
	return c, nil
}

// Redemption is a node's signed statement "I, Member, use capability
// Capability of network Network, at Time".
type Redemption struct {
	Member peer.ID
	Time   time.Time // second precision
	Sig    []byte    // by Member's key over (network, capability, member, time)
}

func redemptionBody(id NetworkID, cap CapabilityID, member peer.ID, t time.Time) []byte {
	b := make([]byte, 0, 128)
	b = append(b, recordVersion, typeRedemption)
	b = append(b, id[:]...)
	b = append(b, cap[:]...)
	b = appendBytes(b, []byte(member))
	return appendU64(b, timeField(t))
}

// Redeem signs priv's redemption of c at now.
func Redeem(priv crypto.PrivKey, c *Capability, now time.Time) (Redemption, error) {
	member, err := peer.IDFromPrivateKey(priv)
	if err != nil {
		return Redemption{}, fmt.Errorf("overlay: redeem: %w", err)
	}
	r := Redemption{Member: member, Time: now.Truncate(time.Second).UTC()}
	sig, err := priv.Sign(append([]byte(signDomain), redemptionBody(c.Network(), c.ID, member, r.Time)...))
	if err != nil {
		return Redemption{}, fmt.Errorf("overlay: redeem: %w", err)
	}
	r.Sig = sig
	return r, nil
}

// verify checks r's signature for capability c.
func (r Redemption) verify(c *Capability) error {
	pub, err := r.Member.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("%w: redeemer address carries no key: %v", ErrMalformed, err)
	}
	raw, err := rawEd25519Pub(pub)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := verifyRecord(raw, redemptionBody(c.Network(), c.ID, r.Member, r.Time), r.Sig); err != nil {
		return err
	}
	if r.Time.Before(c.Issued) || !r.Time.Before(c.NotAfter) {
		return fmt.Errorf("%w: redemption outside the invite's validity", ErrMalformed)
	}
	return nil
}

// before orders redemptions: earlier time first, then address.
func (r Redemption) compare(o Redemption) int {
	if c := r.Time.Compare(o.Time); c != 0 {
		return c
	}
	return bytes.Compare([]byte(r.Member), []byte(o.Member))
}

// RedemptionSet is the capability with the winning redemptions known: at
// most Cap.Uses, sorted by (time, address), one per member. It is the DHT
// record under RedemptionsKey and, with the presenter's redemption only,
// the Invite field of a Hello.
type RedemptionSet struct {
	Cap     *Capability
	Entries []Redemption
}

// Add merges r (verified against s.Cap) into s, keeping the earliest
// Cap.Uses redemptions and the earliest per member. It reports whether s
// changed.
func (s *RedemptionSet) Add(r Redemption) (bool, error) {
	if err := r.verify(s.Cap); err != nil {
		return false, err
	}
	return s.add(r), nil
}

func (s *RedemptionSet) add(r Redemption) bool {
	if i := slices.IndexFunc(s.Entries, func(e Redemption) bool { return e.Member == r.Member }); i >= 0 {
		if !r.Time.Before(s.Entries[i].Time) {
			return false
		}
		s.Entries = slices.Delete(s.Entries, i, i+1)
	}
	i, _ := slices.BinarySearchFunc(s.Entries, r, Redemption.compare)
	if i >= s.Cap.Uses {
		return false // later than every winner
	}
	s.Entries = slices.Insert(s.Entries, i, r)
	if len(s.Entries) > s.Cap.Uses {
		s.Entries = s.Entries[:s.Cap.Uses]
	}
	return true
}

// Merge adds every redemption of o (for the same capability) to s and
// reports whether s changed.
func (s *RedemptionSet) Merge(o *RedemptionSet) (bool, error) {
	if o.Cap.ID != s.Cap.ID || o.Cap.Owner != s.Cap.Owner {
		return false, errors.New("overlay: redemptions of another invite")
	}
	changed := false
	for _, r := range o.Entries { // verified when o was parsed
		if s.add(r) {
			changed = true
		}
	}
	return changed, nil
}

// Admits reports whether member is among the winners.
func (s *RedemptionSet) Admits(member peer.ID) (Redemption, bool) {
	for _, e := range s.Entries {
		if e.Member == member {
			return e, true
		}
	}
	return Redemption{}, false
}

// Full reports whether every use is taken.
func (s *RedemptionSet) Full() bool { return len(s.Entries) >= s.Cap.Uses }

// Clone returns a copy that shares nothing mutable with s.
func (s *RedemptionSet) Clone() *RedemptionSet {
	return &RedemptionSet{Cap: s.Cap, Entries: slices.Clone(s.Entries)}
}

// Marshal encodes the set: version, type, the capability (length
// prefixed), a uint16 count and each redemption (address, time,
// signature).
func (s *RedemptionSet) Marshal() ([]byte, error) {
	cb, err := s.Cap.Marshal()
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 8+len(cb)+len(s.Entries)*112)
	b = append(b, recordVersion, typeRedemptions)
	b = appendBytes(b, cb)
	b = appendU16(b, uint16(len(s.Entries)))
	for _, e := range s.Entries {
		if len(e.Sig) != sigLen {
			return nil, errors.New("overlay: redemption is not signed")
		}
		b = appendBytes(b, []byte(e.Member))
		b = appendU64(b, timeField(e.Time))
		b = append(b, e.Sig...)
	}
	return b, nil
}

// ParseRedemptionSet decodes a set and verifies the capability and every
// redemption; entries must be sorted, unique per member and at most
// Cap.Uses.
func ParseRedemptionSet(b []byte) (*RedemptionSet, error) {
	if len(b) < 2 || b[0] != recordVersion || b[1] != typeRedemptions {
		return nil, fmt.Errorf("%w: not a version %d redemption set", ErrMalformed, recordVersion)
	}
	d := &decoder{b: b[2:]}
	cb := d.bytes(512, "capability")
	if d.err != nil {
		return nil, d.err
	}
	c, err := ParseCapability(cb)
	if err != nil {
		return nil, err
	}
	s := &RedemptionSet{Cap: c}
	n := int(d.u16("count"))
	if n > c.Uses {
		d.fail("%d redemptions exceed the invite's %d uses", n, c.Uses)
	}
	for i := 0; i < n && d.err == nil; i++ {
		r := Redemption{Member: decodePeerID(d, "redeemer")}
		r.Time = decodeTime(d, "time")
		r.Sig = append([]byte(nil), d.take(sigLen, "signature")...)
		if d.err != nil {
			break
		}
		if i > 0 && s.Entries[i-1].compare(r) >= 0 {
			d.fail("redemptions not sorted")
			break
		}
		if _, dup := s.Admits(r.Member); dup {
			d.fail("redeemer listed twice")
			break
		}
		if r.Time.IsZero() {
			d.fail("redemption without time")
			break
		}
		s.Entries = append(s.Entries, r)
	}
	if err := d.end(); err != nil {
		return nil, err
	}
	for _, r := range s.Entries {
		if err := r.verify(c); err != nil {
			return nil, err
		}
	}
	return s, nil
}
