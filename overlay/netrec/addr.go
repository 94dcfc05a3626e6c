package netrec

import (
	"crypto/sha256"
	"encoding/binary"
	"net/netip"

	"github.com/kadlan/kadlan/tap/ether"
	"github.com/libp2p/go-libp2p/core/peer"
)

func derive(domain string, id NetworkID, member peer.ID, extra uint32) [32]byte {
	h := sha256.New()
	h.Write([]byte(domain))
	h.Write(id[:])
	h.Write([]byte(member))
	var e [4]byte
	binary.BigEndian.PutUint32(e[:], extra)
	h.Write(e[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// MemberMAC is the Ethernet address of member on network id: 48 bits of a
// hash, with the locally-administered bit set and the group bit clear.
func MemberMAC(id NetworkID, member peer.ID) ether.MAC {
	h := derive("kadlan mac v1\x00", id, member, 0)
	var m ether.MAC
	copy(m[:], h[:6])
	m[0] = m[0]&^1 | 2
	return m
}

// IPv6Prefix is the network's unique local /64: fd00::/8 followed by a
// 40-bit global ID and a 16-bit subnet ID, both taken from the network ID.
func IPv6Prefix(id NetworkID) netip.Prefix {
	h := sha256.Sum256(append([]byte("kadlan ula v1\x00"), id[:]...))
	var a [16]byte
	a[0] = 0xfd
	copy(a[1:8], h[:7])
	return netip.PrefixFrom(netip.AddrFrom16(a), 64)
}

// MemberIPv6 is member's address in IPv6Prefix(id): the interface ID is a
// hash of network and member, never all-zero (the subnet-router anycast).
func MemberIPv6(id NetworkID, member peer.ID) netip.Addr {
	a := IPv6Prefix(id).Addr().As16()
	h := derive("kadlan iid v1\x00", id, member, 0)
	copy(a[8:], h[:8])
	a[8] &^= 2 // universal/local bit clear: not derived from a MAC (RFC 4291 App. A)
	if [8]byte(a[8:]) == [8]byte{} {
		a[15] = 1
	}
	return netip.AddrFrom16(a)
}

// PeerHash is the 64-bit key hash that implicit social switching uses for a
// member: the first 8 bytes of SHA-256 of the address bytes.
func PeerHash(p peer.ID) uint64 {
	h := sha256.Sum256([]byte(p))
	return binary.BigEndian.Uint64(h[:8])
}

// ipv4Hosts is the number of usable host addresses in pool (network and
// broadcast addresses excluded).
func ipv4Hosts(pool netip.Prefix) uint32 {
	return uint32(1)<<(32-pool.Bits()) - 2
}

func ipv4At(pool netip.Prefix, index uint32) netip.Addr {
	base := binary.BigEndian.Uint32(pool.Masked().Addr().AsSlice())
	var a [4]byte
	binary.BigEndian.PutUint32(a[:], base+1+index)
	return netip.AddrFrom4(a)
}

// IPv4Candidate is member's attempt-th choice of IPv4 address in pool, a
// usable host address picked by hashing network, member and attempt.
func IPv4Candidate(pool netip.Prefix, id NetworkID, member peer.ID, attempt int) netip.Addr {
	h := derive("kadlan ipv4 v1\x00", id, member, uint32(attempt))
	return ipv4At(pool, binary.BigEndian.Uint32(h[:4])%ipv4Hosts(pool))
}

// IPv4Priority orders members contending for one derived address: the
// lower value keeps it and the other moves on to its next candidate.
func IPv4Priority(id NetworkID, member peer.ID) uint64 {
	h := derive("kadlan ipv4 priority v1\x00", id, member, 0)
	return binary.BigEndian.Uint64(h[:8])
}

// IPv4Claim is an address another member holds: from its certificate
// (Fixed) or from its announcement of a derived address.
type IPv4Claim struct {
	Member peer.ID
	Addr   netip.Addr
	Fixed  bool
}

// maxIPv4Attempts bounds the hashed candidates tried before a linear scan.
const maxIPv4Attempts = 32

// ChooseIPv4 picks self's derived IPv4 address in pool, given the addresses
// other members claim. A candidate is skipped when a Fixed claim or a
// member of lower IPv4Priority claims it; claims of self are ignored.
// Every member applying this rule to the same claims converges on a
// conflict-free assignment. It returns false when the pool is exhausted.
func ChooseIPv4(pool netip.Prefix, id NetworkID, self peer.ID, claims []IPv4Claim) (netip.Addr, bool) {
	return ChooseIPv4Prefer(pool, id, self, claims, netip.Addr{})
}

// ChooseIPv4Prefer is ChooseIPv4 that keeps prefer (the address self used
// before, say before a restart) while it lies in pool and nobody with a
// better claim takes it, so addresses stay put across restarts.
func ChooseIPv4Prefer(pool netip.Prefix, id NetworkID, self peer.ID, claims []IPv4Claim, prefer netip.Addr) (netip.Addr, bool) {
	mine := IPv4Priority(id, self)
	taken := func(a netip.Addr) bool {
		for _, c := range claims {
			if c.Member == self || c.Addr != a {
				continue
			}
			if c.Fixed || IPv4Priority(id, c.Member) < mine {
				return true
			}
		}
		return false
	}
	if prefer.Is4() && pool.Contains(prefer) && prefer != pool.Masked().Addr() &&
		prefer != ipv4At(pool, ipv4Hosts(pool)) && !taken(prefer) {
		return prefer, true
	}
	for i := range maxIPv4Attempts {
		if a := IPv4Candidate(pool, id, self, i); !taken(a) {
			return a, true
		}
	}
	n := ipv4Hosts(pool)
	h := derive("kadlan ipv4 v1\x00", id, self, maxIPv4Attempts)
	start := binary.BigEndian.Uint32(h[:4]) % n
	for i := range n {
		if a := ipv4At(pool, (start+i)%n); !taken(a) {
			return a, true
		}
	}
	return netip.Addr{}, false
}
