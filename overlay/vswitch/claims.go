package vswitch

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/tap/ether"
	"github.com/libp2p/go-libp2p/core/peer"
)

// authorized reports whether p, whose entry is mem, may take part in the
// network at now; this node's own view of the rules (see statusOf).
func (m *Membership) authorized(p peer.ID, mem *Member, now time.Time) bool {
	return m.statusOf(p, mem.Certificate, now).Admitted()
}

// trimPending keeps at most MaxPending unauthorized entries.
func (m *Membership) trimPending() { m.trimPendingTo(MaxPending) }

// trimPendingTo drops the unauthorized entries seen least recently (by
// LastSeen, then announcement time) until at most max remain.
func (m *Membership) trimPendingTo(max int) {
	var pend []*Member
	for p, mem := range m.members {
		// Without a certificate the status does not depend on the time.
		if mem.Certificate == nil && !m.authorized(p, mem, time.Time{}) {
			pend = append(pend, mem)
		}
	}
	if len(pend) <= max {
		return
	}
	m.dropLeastRecent(pend, len(pend)-max)
}

// lastHeard is when this node last saw mem connected, mem announced
// itself or this node stored that announcement, whichever is latest.
func lastHeard(mem *Member) time.Time {
	t := mem.LastSeen
	if mem.Announcement != nil && mem.Announcement.Time.After(t) {
		t = mem.Announcement.Time
	}
	if mem.heard.After(t) {
		t = mem.heard
	}
	return t
}

// dropLeastRecent forgets the n of mems heard of least recently and
// returns their addresses.
func (m *Membership) dropLeastRecent(mems []*Member, n int) []peer.ID {
	slices.SortFunc(mems, func(a, b *Member) int { return lastHeard(a).Compare(lastHeard(b)) })
	var out []peer.ID
	for _, mem := range mems[:n] {
		delete(m.members, mem.Peer)
		out = append(out, mem.Peer)
	}
	m.gen++
	return out
}

// DefaultMaxKnown is the default bound of TrimKnown: the members of a
// public network a node holds.
const DefaultMaxKnown = 1024

// TrimKnown keeps at most max members of a public network (max <= 0:
// DefaultMaxKnown), forgetting those heard of least recently (seen
// connected, announced, or their announcement stored by AddRecord), but never the owner nor a member keep
// reports (the daemon keeps members with a link and social neighbours),
// and returns the members forgotten. Anyone may join a public network,
// so without it what a node holds would grow with the network; a
// forgotten member is found again by its address record when a host asks
// for it. A private network's members are bounded by its owner's
// certificates and are not trimmed.
func (m *Membership) TrimKnown(max int, keep func(peer.ID) bool) []peer.ID {
	if max <= 0 {
		max = DefaultMaxKnown
	}
	if m.Def == nil || m.Def.Private || len(m.members) <= max {
		return nil
	}
	owner, _ := m.Owner()
	var cand []*Member
	for p, mem := range m.members {
		if p != owner && !keep(p) {
			cand = append(cand, mem)
		}
	}
	return m.dropLeastRecent(cand, min(len(cand), len(m.members)-max))
}

// Pending is the number of entries of members that are not authorized.
func (m *Membership) Pending(now time.Time) int {
	n := 0
	for p, mem := range m.members {
		if !m.authorized(p, mem, now) {
			n++
		}
	}
	return n
}

// claims lists the IPv4 addresses other authorized members hold: a valid
// certificate's, or else the announced (derived) one. A node that is not
// authorized claims nothing, so a stranger cannot move a member's address
// by announcing it. The list is computed once per change of the records
// (and again when a certificate in it expires), not per call.
func (m *Membership) claims(now time.Time) []netrec.IPv4Claim {
	m.claimIndex(now)
	return m.claimList
}

func (m *Membership) claimIndex(now time.Time) map[netip.Addr][]netrec.IPv4Claim {
	if m.claimByIP != nil && m.claimGen == m.gen && (m.claimUntil.IsZero() || now.Before(m.claimUntil)) {
		return m.claimByIP
	}
	var list []netrec.IPv4Claim
	until := m.invitesUntil(now)
	for p, mem := range m.members {
		c := mem.Certificate
		if c != nil && !c.Expires.IsZero() && now.Before(c.Expires) && (until.IsZero() || c.Expires.Before(until)) {
			until = c.Expires
		}
		if !m.authorized(p, mem, now) {
			continue
		}
		if c != nil && c.IPv4.IsValid() && c.Valid(m.ID, now, m.Revocation) == nil {
			list = append(list, netrec.IPv4Claim{Member: p, Addr: c.IPv4, Fixed: true})
		} else if mem.Announcement != nil && mem.Announcement.IPv4.IsValid() {
			list = append(list, netrec.IPv4Claim{Member: p, Addr: mem.Announcement.IPv4})
		}
	}
	// A deterministic order, whatever the map's.
	slices.SortFunc(list, func(a, b netrec.IPv4Claim) int { return strings.Compare(string(a.Member), string(b.Member)) })
	by := make(map[netip.Addr][]netrec.IPv4Claim, len(list))
	for _, c := range list {
		by[c.Addr] = append(by[c.Addr], c)
	}
	m.claimList, m.claimByIP, m.claimGen, m.claimUntil = list, by, m.gen, until
	return by
}

// IPv4 is this node's IPv4 address with the pool's prefix length: the one in
// its certificate, or else derived within the pool avoiding the addresses
// other members claim (see ChooseIPv4). It is invalid before the
// definition is known or when the pool is exhausted.
func (m *Membership) IPv4(now time.Time) netip.Prefix {
	if m.Def == nil {
		return netip.Prefix{}
	}
	bits := m.Def.IPv4Pool.Bits()
	if m.Cert != nil && m.Cert.IPv4.IsValid() {
		return netip.PrefixFrom(m.Cert.IPv4, bits)
	}
	a, ok := netrec.ChooseIPv4Prefer(m.Def.IPv4Pool, m.ID, m.Self, m.claims(now), m.LastIPv4)
	if !ok {
		return netip.Prefix{}
	}
	return netip.PrefixFrom(a, bits)
}

// MemberIPv4 is p's IPv4 address as known from its certificate or its
// announcement; invalid when unknown or when the announced address lost a
// conflict (see ChooseIPv4), so a member cannot take over another's
// address by announcing it.
func (m *Membership) MemberIPv4(p peer.ID, now time.Time) netip.Addr {
	mem, ok := m.members[p]
	if !ok {
		return netip.Addr{}
	}
	if c := mem.Certificate; c != nil && c.IPv4.IsValid() && c.Valid(m.ID, now, m.Revocation) == nil {
		return c.IPv4
	}
	if mem.Announcement == nil || !mem.Announcement.IPv4.IsValid() {
		return netip.Addr{}
	}
	a := mem.Announcement.IPv4
	if m.Def != nil && !m.Def.IPv4Pool.Contains(a) {
		return netip.Addr{}
	}
	// An announced (derived) address counts only while no better claim
	// holds it: a certificate, or a member of lower IPv4Priority
	// (including this node).
	prio := netrec.IPv4Priority(m.ID, p)
	if m.Cert != nil && m.Cert.IPv4 == a ||
		(m.Cert == nil || !m.Cert.IPv4.IsValid()) && m.LastIPv4 == a && netrec.IPv4Priority(m.ID, m.Self) < prio {
		return netip.Addr{}
	}
	if !m.authorized(p, mem, now) {
		return netip.Addr{}
	}
	for _, c := range m.claimIndex(now)[a] {
		if c.Member != p && (c.Fixed || netrec.IPv4Priority(m.ID, c.Member) < prio) {
			return netip.Addr{}
		}
	}
	return a
}

// Holds reports whether p is admitted and holds ip by the network's rules
// (its certificate, or a derived address it won): what an address record
// naming p must be checked against, since anyone can file one under any
// key.
func (m *Membership) Holds(p peer.ID, ip netip.Addr, now time.Time) bool {
	if !m.MemberStatus(p, now).Admitted() {
		return false
	}
	if ip.Is6() {
		return netrec.MemberIPv6(m.ID, p) == ip
	}
	return m.MemberIPv4(p, now) == ip
}

// HoldsMAC reports whether p is admitted and mac is its derived MAC: what
// a MAC record naming p is checked against (a valid record's MAC is its
// member's; whether that member is admitted, only the membership knows).
func (m *Membership) HoldsMAC(p peer.ID, mac ether.MAC, now time.Time) bool {
	return netrec.MemberMAC(m.ID, p) == mac && m.MemberStatus(p, now).Admitted()
}
