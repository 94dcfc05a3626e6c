package netrec

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/kadlan/kadlan/tap/ether"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

// Namespace is the kad-dht namespace of kadlan's network records. Register
// the validator with kad-dht as
//
//	dht.NamespacedValidator(overlay.Namespace, overlay.RecordValidator{})
//
// Keys (NetworkID in String form, addresses as peer.ID.String):
//
//	/kadlan-net/<network>/def              Definition   (owner-signed, highest Seq wins)
//	/kadlan-net/<network>/cert/<address>   Certificate  (owner-signed, latest Issued wins)
//	/kadlan-net/<network>/revoked          Revocation   (owner-signed, highest Seq wins)
//	/kadlan-net/<network>/member/<address> Announcement (member-signed, latest Time wins)
//	/kadlan-net/<network>/ip/<ip>          Announcement of the member holding ip (latest Time wins)
//	/kadlan-net/<network>/mac/<mac>        Announcement of the member whose derived MAC is mac
//	                                       (latest Time wins)
//	/kadlan-net/<network>/invite/<capid>   RedemptionSet (owner-signed capability, redeemer-signed
//	                                       entries; the fullest, then earliest, set wins)
const Namespace = "kadlan-net"

// DefinitionKey is the DHT key of a network's definition.
func DefinitionKey(id NetworkID) string { return "/" + Namespace + "/" + id.String() + "/def" }

// CertificateKey is the DHT key of member's certificate on a network.
func CertificateKey(id NetworkID, member peer.ID) string {
	return "/" + Namespace + "/" + id.String() + "/cert/" + member.String()
}

// RevocationKey is the DHT key of a network's revocation list.
func RevocationKey(id NetworkID) string { return "/" + Namespace + "/" + id.String() + "/revoked" }

// AddressKey is the DHT key under which the member holding ip on a network
// files its announcement (see KindAddress).
func AddressKey(id NetworkID, ip netip.Addr) string {
	return "/" + Namespace + "/" + id.String() + "/ip/" + ip.Unmap().String()
}

// MACKey is the DHT key under which the member whose derived MAC
// (MemberMAC) is mac on a network files its announcement (see KindMAC).
func MACKey(id NetworkID, mac ether.MAC) string {
	return "/" + Namespace + "/" + id.String() + "/mac/" + mac.String()
}

// AnnouncementKey is the DHT key of member's announcement on a network.
func AnnouncementKey(id NetworkID, member peer.ID) string {
	return "/" + Namespace + "/" + id.String() + "/member/" + member.String()
}

// RedemptionsKey is the DHT key of the redemptions of capability c.
func RedemptionsKey(id NetworkID, c CapabilityID) string {
	return "/" + Namespace + "/" + id.String() + "/invite/" + c.String()
}

// MembersCID is the content ID that members of a network provide (and look
// up providers of) in the DHT to find each other. Everyone who knows the
// network ID can compute it.
func MembersCID(id NetworkID) cid.Cid {
	h, err := mh.Sum(append([]byte("kadlan members v1\x00"), id[:]...), mh.SHA2_256, -1)
	if err != nil {
		panic("overlay: sha2-256 multihash: " + err.Error()) // cannot happen
	}
	return cid.NewCidV1(cid.Raw, h)
}

// RecordKind says which record a key names.
type RecordKind int

// Record kinds.
const (
	KindDefinition RecordKind = iota + 1
	KindCertificate
	KindRevocation
	KindAnnouncement
	KindRedemptions
	// KindAddress: a member's announcement filed under one of its
	// addresses (IPv4 claimed, IPv6 derived), so that a node finds the
	// member behind an IP it has never heard of (links on demand).
	KindAddress
	// KindMAC: a member's announcement filed under its derived MAC, so
	// that a node finds the member behind a unicast frame its host sends
	// to a MAC no known member holds. The MAC is derived from network and
	// member, so the record is checked without trusting anyone.
	KindMAC
)

// Key is a parsed DHT key of this namespace.
type Key struct {
	Kind       RecordKind
	Network    NetworkID
	Member     peer.ID      // certificate and announcement keys
	Capability CapabilityID // redemption keys
	Addr       netip.Addr   // address keys
	MAC        ether.MAC    // MAC keys
}

// String re-encodes the key.
func (k Key) String() string {
	switch k.Kind {
	case KindDefinition:
		return DefinitionKey(k.Network)
	case KindRevocation:
		return RevocationKey(k.Network)
	case KindCertificate:
		return CertificateKey(k.Network, k.Member)
	case KindAnnouncement:
		return AnnouncementKey(k.Network, k.Member)
	case KindRedemptions:
		return RedemptionsKey(k.Network, k.Capability)
	case KindAddress:
		return AddressKey(k.Network, k.Addr)
	case KindMAC:
		return MACKey(k.Network, k.MAC)
	}
	return ""
}

// ParseKey splits a DHT key of this namespace. member is empty for the
// definition, revocation and redemption kinds (see ParseFullKey).
func ParseKey(key string) (kind RecordKind, id NetworkID, member peer.ID, err error) {
	k, err := ParseFullKey(key)
	return k.Kind, k.Network, k.Member, err
}

// ParseFullKey parses a DHT key of this namespace strictly (only the form
// that Key.String gives).
func ParseFullKey(key string) (Key, error) {
	var k Key
	ns, rest, err := record.SplitKey(key)
	if err != nil || ns != Namespace {
		return k, fmt.Errorf("overlay: key %q is not in namespace /%s", key, Namespace)
	}
	parts := strings.Split(rest, "/")
	id, err := ParseNetworkID(parts[0])
	if err != nil || id.String() != parts[0] {
		return k, fmt.Errorf("overlay: key %q: bad network ID", key)
	}
	k.Network = id
	switch {
	case len(parts) == 2 && parts[1] == "def":
		k.Kind = KindDefinition
		return k, nil
	case len(parts) == 2 && parts[1] == "revoked":
		k.Kind = KindRevocation
		return k, nil
	case len(parts) == 3 && parts[1] == "invite":
		b, err := hex.DecodeString(parts[2])
		if err != nil || len(b) != CapabilityIDLen || hex.EncodeToString(b) != parts[2] {
			return Key{}, fmt.Errorf("overlay: key %q: bad invite ID", key)
		}
		k.Kind, k.Capability = KindRedemptions, CapabilityID(b)
		return k, nil
	case len(parts) == 3 && parts[1] == "ip":
		ip, err := netip.ParseAddr(parts[2])
		if err != nil || ip.Zone() != "" || ip.String() != parts[2] || ip.Is4In6() {
			return Key{}, fmt.Errorf("overlay: key %q: bad address", key)
		}
		k.Kind, k.Addr = KindAddress, ip
		return k, nil
	case len(parts) == 3 && parts[1] == "mac":
		mac, err := ether.ParseMAC(parts[2])
		if err != nil || mac.String() != parts[2] {
			return Key{}, fmt.Errorf("overlay: key %q: bad MAC", key)
		}
		k.Kind, k.MAC = KindMAC, mac
		return k, nil
	case len(parts) == 3 && (parts[1] == "cert" || parts[1] == "member"):
		member, err := peer.Decode(parts[2])
		if err != nil || member.String() != parts[2] {
			return Key{}, fmt.Errorf("overlay: key %q: bad address", key)
		}
		k.Member, k.Kind = member, KindAnnouncement
		if parts[1] == "cert" {
			k.Kind = KindCertificate
		}
		return k, nil
	}
	return Key{}, fmt.Errorf("overlay: key %q: unknown record", key)
}

// RecordValidator validates and selects kadlan network records for kad-dht
// (github.com/libp2p/go-libp2p-record Validator). The zero value is ready
// to use and checks expiry against the wall clock.
type RecordValidator struct {
	// Now returns the current time (time.Now in the daemon); required.
	Now func() time.Time
}

var _ record.Validator = RecordValidator{}

// maxClockSkew is how far in the future a record's time may lie.
const maxClockSkew = 10 * time.Minute

// errNoClock: the package reads no clock of its own; the caller passes one.
var errNoClock = errors.New("netrec: RecordValidator.Now is nil (pass time.Now)")

// Validate implements record.Validator: it decodes value strictly, checks
// the signature, that the record belongs to the network (and member) named
// by key, and that a certificate has not expired.
func (v RecordValidator) Validate(key string, value []byte) error {
	_, err := v.parse(key, value)
	return err
}

// parsed is a validated record reduced to what Select compares.
type parsed struct {
	rank1, rank2 uint64
}

func (v RecordValidator) parse(key string, value []byte) (parsed, error) {
	if v.Now == nil {
		return parsed{}, errNoClock
	}
	k, err := ParseFullKey(key)
	if err != nil {
		return parsed{}, err
	}
	kind, id, member := k.Kind, k.Network, k.Member
	now := v.Now()
	switch kind {
	case KindDefinition:
		d, err := ParseDefinition(value)
		if err != nil {
			return parsed{}, err
		}
		if d.ID() != id {
			return parsed{}, errors.New("overlay: definition does not belong to the key's network")
		}
		return parsed{d.Seq, 0}, nil
	case KindRevocation:
		r, err := ParseRevocation(value)
		if err != nil {
			return parsed{}, err
		}
		if r.Network() != id {
			return parsed{}, errors.New("overlay: revocation does not belong to the key's network")
		}
		return parsed{r.Seq, 0}, nil
	case KindCertificate:
		c, err := ParseCertificate(value)
		if err != nil {
			return parsed{}, err
		}
		if c.Member != member {
			return parsed{}, errors.New("overlay: certificate is for another member than the key's")
		}
		if err := c.Valid(id, now, nil); err != nil {
			return parsed{}, err
		}
		if c.Issued.After(now.Add(maxClockSkew)) {
			return parsed{}, errors.New("overlay: certificate issued in the future")
		}
		return parsed{timeField(c.Issued), timeField(c.Expires)}, nil
	case KindAnnouncement, KindAddress, KindMAC:
		return filedAnnouncement(k, value, now)
	case KindRedemptions:
		s, err := ParseRedemptionSet(value)
		if err != nil {
			return parsed{}, err
		}
		if s.Cap.ID != k.Capability {
			return parsed{}, errors.New("overlay: redemptions of another invite than the key's")
		}
		if err := s.Cap.Valid(id, now); err != nil {
			return parsed{}, err
		}
		var first uint64
		for _, e := range s.Entries {
			if e.Time.After(now.Add(maxClockSkew)) {
				return parsed{}, errors.New("overlay: redemption from the future")
			}
		}
		if len(s.Entries) > 0 {
			// Of two full sets, the one whose first winner came earlier.
			first = ^timeField(s.Entries[0].Time)
		}
		return parsed{uint64(len(s.Entries)), first}, nil
	}
	return parsed{}, fmt.Errorf("overlay: key %q: unknown record", key)
}

// filedAnnouncement validates an announcement filed under k (its member's
// key, one of its addresses, its derived MAC) and ranks it by time.
func filedAnnouncement(k Key, value []byte, now time.Time) (parsed, error) {
	a, err := ParseAnnouncement(value)
	if err != nil {
		return parsed{}, err
	}
	id := k.Network
	switch {
	case a.Network != id || k.Kind == KindAnnouncement && a.Member != k.Member:
		return parsed{}, errors.New("overlay: announcement does not match its key")
	case k.Kind == KindAddress && (k.Addr.Is4() && a.IPv4 != k.Addr || k.Addr.Is6() && MemberIPv6(id, a.Member) != k.Addr):
		return parsed{}, errors.New("overlay: announcement's member does not hold the key's address")
	case k.Kind == KindMAC && MemberMAC(id, a.Member) != k.MAC:
		return parsed{}, errors.New("overlay: announcement's member does not have the key's MAC")
	case a.Time.After(now.Add(maxClockSkew)):
		return parsed{}, errors.New("overlay: announcement from the future")
	}
	return parsed{timeField(a.Time), 0}, nil
}

// Select implements record.Validator: the valid record with the highest
// sequence (definition, revocation) or latest time (certificate: issue time
// then expiry; announcement) wins, the fullest redemption set (then the one
// whose first redemption is earliest); exact ties go to the bytewise greater
// value so that every node picks the same one.
func (v RecordValidator) Select(key string, values [][]byte) (int, error) {
	best, bestP := -1, parsed{}
	for i, val := range values {
		p, err := v.parse(key, val)
		if err != nil {
			continue
		}
		if best < 0 || p.rank1 > bestP.rank1 || p.rank1 == bestP.rank1 && (p.rank2 > bestP.rank2 ||
			p.rank2 == bestP.rank2 && bytes.Compare(val, values[best]) > 0) {
			best, bestP = i, p
		}
	}
	if best < 0 {
		return 0, errors.New("overlay: no valid record to select")
	}
	return best, nil
}
