package vswitch

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/tap/ether"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Status is a one-word state of this node on a network, or of a member as
// this node sees it, as printed by `kadlan networks` and `kadlan members`.
type Status string

// Status words.
const (
	// StatusOK: allowed on the network (frames flow once links are up).
	StatusOK Status = "ok"
	// StatusPending: this node has not found the network definition yet;
	// for another member: it announced itself on a private network but
	// holds no certificate (the owner may authorize it).
	StatusPending Status = "pending"
	// StatusUnauthorized: the network is private and this node has no
	// certificate.
	StatusUnauthorized Status = "unauthorized"
	// StatusExpired: the certificate has expired.
	StatusExpired Status = "expired"
	// StatusRevoked: the owner revoked the certificate.
	StatusRevoked Status = "revoked"
)

// Member is what this node knows of another node on a network.
type Member struct {
	Peer         peer.ID
	Certificate  *netrec.Certificate  // nil when none is known
	Announcement *netrec.Announcement // nil when none is known
	LastSeen     time.Time            // zero when never connected
}

// Membership is the state of one joined network: its definition, this
// node's certificate, the revocation list and the members known. It is
// pure state without I/O and not safe for concurrent use.
type Membership struct {
	ID   netrec.NetworkID
	Self peer.ID
	// Interface is the local device name chosen for the network (persisted).
	Interface string
	Joined    time.Time
	// LastIPv4 is the derived IPv4 address last used (persisted, recorded
	// by Sync); IPv4 keeps it while no better claim takes it.
	LastIPv4 netip.Addr

	Def        *netrec.Definition
	Cert       *netrec.Certificate // own; nil when none
	Revocation *netrec.Revocation

	members map[peer.ID]*Member

	// gen counts changes of what claims depend on; claimCache holds the
	// claims computed at claimGen, valid before claimUntil (the earliest
	// expiry of a certificate counted in them).
	gen        uint64
	claimGen   uint64
	claimUntil time.Time
	claimList  []netrec.IPv4Claim
	claimByIP  map[netip.Addr][]netrec.IPv4Claim
}

// MaxPending bounds the members a node holds that are not authorized
// (announced on a private network without a certificate, or heard of
// before the definition is known): strangers can create such entries at
// will, so they live in a bounded table, are never saved, and never count
// for anything but `kadlan members` (the owner sees whom to authorize).
// When full, the entry seen least recently gives way.
const MaxPending = 256

// NewMembership starts the state of network id for node self.
func NewMembership(id netrec.NetworkID, self peer.ID, now time.Time) *Membership {
	return &Membership{ID: id, Self: self, Joined: now.Truncate(time.Second).UTC(), members: map[peer.ID]*Member{}}
}

// ErrWrongNetwork is returned for records of another network.
var ErrWrongNetwork = errors.New("overlay: record belongs to another network")

// SetDefinition installs d if it is for this network and newer (higher
// Seq) than the one held, and reports whether it did.
func (m *Membership) SetDefinition(d *netrec.Definition) (bool, error) {
	if d.ID() != m.ID {
		return false, ErrWrongNetwork
	}
	if m.Def != nil && d.Seq <= m.Def.Seq {
		return false, nil
	}
	m.Def = d
	m.gen++
	m.trimPending()
	return true, nil
}

// AddCertificate stores c (this node's own or another member's) if it is
// for this network and newer than the one held, and reports whether it did.
func (m *Membership) AddCertificate(c *netrec.Certificate) (bool, error) {
	if c.Network() != m.ID {
		return false, ErrWrongNetwork
	}
	if c.Member == m.Self {
		if m.Cert != nil && !c.Issued.After(m.Cert.Issued) {
			return false, nil
		}
		m.Cert = c
		return true, nil
	}
	mem := m.member(c.Member)
	if mem.Certificate != nil && !c.Issued.After(mem.Certificate.Issued) {
		return false, nil
	}
	mem.Certificate = c
	m.gen++
	return true, nil
}

// SetRevocation installs r if it is for this network and has a higher Seq
// than the one held, and reports whether it did.
func (m *Membership) SetRevocation(r *netrec.Revocation) (bool, error) {
	if r.Network() != m.ID {
		return false, ErrWrongNetwork
	}
	if m.Revocation != nil && r.Seq <= m.Revocation.Seq {
		return false, nil
	}
	m.Revocation = r
	m.gen++
	return true, nil
}

// AddAnnouncement stores another member's announcement if it is newer than
// the one held, and reports whether it did.
func (m *Membership) AddAnnouncement(a *netrec.Announcement) (bool, error) {
	if a.Network != m.ID {
		return false, ErrWrongNetwork
	}
	if a.Member == m.Self {
		return false, nil
	}
	if _, known := m.members[a.Member]; !known && m.MemberStatus(a.Member, a.Time) != StatusOK {
		// A pending entry: make room before adding it, so that the table
		// never holds more than MaxPending of them.
		m.trimPendingTo(MaxPending - 1)
	}
	mem := m.member(a.Member)
	if mem.Announcement != nil && !a.Time.After(mem.Announcement.Time) {
		return false, nil
	}
	mem.Announcement = a
	m.gen++
	return true, nil
}

// Seen records that p was connected at now.
func (m *Membership) Seen(p peer.ID, now time.Time) {
	if p != m.Self {
		m.member(p).LastSeen = now
	}
}

// Forget drops what is known of p (it stays subject to the rules).
func (m *Membership) Forget(p peer.ID) {
	delete(m.members, p)
	m.gen++
}

// authorized reports whether p, whose entry is mem, may take part in the
// network at now; this node's own view of the rules (see statusOf).
func (m *Membership) authorized(p peer.ID, mem *Member, now time.Time) bool {
	return m.statusOf(p, mem.Certificate, now) == StatusOK
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
	last := func(mem *Member) time.Time {
		t := mem.LastSeen
		if mem.Announcement != nil && mem.Announcement.Time.After(t) {
			t = mem.Announcement.Time
		}
		return t
	}
	slices.SortFunc(pend, func(a, b *Member) int { return last(a).Compare(last(b)) })
	for _, mem := range pend[:len(pend)-max] {
		delete(m.members, mem.Peer)
	}
	m.gen++
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

func (m *Membership) member(p peer.ID) *Member {
	mem, ok := m.members[p]
	if !ok {
		mem = &Member{Peer: p}
		m.members[p] = mem
	}
	return mem
}

// Member returns what is known of p.
func (m *Membership) Member(p peer.ID) (Member, bool) {
	mem, ok := m.members[p]
	if !ok {
		return Member{}, false
	}
	return *mem, true
}

// Owner returns the network owner's address, when a definition or
// certificate has revealed the owner's key.
func (m *Membership) Owner() (peer.ID, bool) {
	var o *netrec.Owner
	switch {
	case m.Def != nil:
		o = &m.Def.Owner
	case m.Cert != nil:
		o = &m.Cert.Owner
	default:
		return "", false
	}
	id, err := o.PeerID()
	return id, err == nil
}

// IsOwner reports whether this node owns the network.
func (m *Membership) IsOwner() bool {
	o, ok := m.Owner()
	return ok && o == m.Self
}

// statusOf decides the status of p given its certificate (nil: none).
func (m *Membership) statusOf(p peer.ID, c *netrec.Certificate, now time.Time) Status {
	if m.Def == nil {
		return StatusPending
	}
	if o, _ := m.Owner(); o == p {
		return StatusOK
	}
	if c != nil {
		err := c.Valid(m.ID, now, m.Revocation)
		switch {
		case err == nil:
			return StatusOK
		case errors.Is(err, netrec.ErrRevoked):
			return StatusRevoked
		case errors.Is(err, netrec.ErrExpired):
			if m.Def.Private {
				return StatusExpired
			}
		}
	}
	if m.Def.Private {
		if p == m.Self {
			return StatusUnauthorized
		}
		return StatusPending
	}
	// Public network: everyone may join unless the owner revoked them.
	if e, ok := m.Revocation.Lookup(p); ok && (c == nil || !c.Issued.After(e.Before)) {
		return StatusRevoked
	}
	return StatusOK
}

// Status is this node's status on the network at now.
func (m *Membership) Status(now time.Time) Status { return m.statusOf(m.Self, m.Cert, now) }

// MemberStatus is p's status as this node sees it at now.
func (m *Membership) MemberStatus(p peer.ID, now time.Time) Status {
	var c *netrec.Certificate
	if mem, ok := m.members[p]; ok {
		c = mem.Certificate
	}
	return m.statusOf(p, c, now)
}

// Authorize decides whether frames of p may be exchanged at now; pass the
// certificate p presented in its Hello (nil for none). A valid presented
// certificate is stored, and an authorized p is recorded as a member seen
// at now (so that Sync adds it to the switch).
func (m *Membership) Authorize(p peer.ID, presented *netrec.Certificate, now time.Time) error {
	if presented != nil {
		if presented.Member != p {
			return fmt.Errorf("overlay: %s presented a certificate of %s", p, presented.Member)
		}
		if _, err := m.AddCertificate(presented); err != nil {
			return err
		}
	}
	if s := m.MemberStatus(p, now); s != StatusOK {
		return fmt.Errorf("overlay: %s is not authorized on %s: %s", p, m.ID.Short(), s)
	}
	if p != m.Self {
		m.member(p).LastSeen = now
	}
	return nil
}

// MAC is this node's Ethernet address on the network.
func (m *Membership) MAC() ether.MAC { return netrec.MemberMAC(m.ID, m.Self) }

// IPv6 is this node's address; its prefix is IPv6Prefix(ID).
func (m *Membership) IPv6() netip.Addr { return netrec.MemberIPv6(m.ID, m.Self) }

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
	var until time.Time
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

// MemberInfo is one line of `kadlan members`.
type MemberInfo struct {
	Address  peer.ID    `json:"address"`
	Status   Status     `json:"status"`
	MAC      string     `json:"mac"`
	IPv4     netip.Addr `json:"ipv4,omitzero"`
	IPv6     netip.Addr `json:"ipv6"`
	Expires  time.Time  `json:"expires,omitzero"`
	LastSeen time.Time  `json:"last_seen,omitzero"`
}

// Members lists the known members (self excluded) sorted by address.
func (m *Membership) Members(now time.Time) []MemberInfo {
	out := make([]MemberInfo, 0, len(m.members))
	for p, mem := range m.members {
		mi := MemberInfo{Address: p, Status: m.MemberStatus(p, now), MAC: netrec.MemberMAC(m.ID, p).String(),
			IPv4: m.MemberIPv4(p, now), IPv6: netrec.MemberIPv6(m.ID, p), LastSeen: mem.LastSeen}
		if mem.Certificate != nil {
			mi.Expires = mem.Certificate.Expires
		}
		out = append(out, mi)
	}
	slices.SortFunc(out, func(a, b MemberInfo) int {
		if a.Address < b.Address {
			return -1
		} else if a.Address > b.Address {
			return 1
		}
		return 0
	})
	return out
}

// SwitchConfig returns the configuration of this network's Switch at now.
func (m *Membership) SwitchConfig(now time.Time) SwitchConfig {
	c := SwitchConfig{Network: m.ID, Self: m.Self, MAC: m.MAC(), IPv6: m.IPv6(), IPv4: m.IPv4(now).Addr()}
	if m.Def != nil {
		c.Social = SocialOf(m.Def.Broadcast)
	}
	return c
}

// Sync brings the switch in line with the membership at now: its own IPv4
// address, members whose status is ok set (with their current IPv4), all
// others removed. It returns the peers it removed, whose links the daemon should
// close. Call it after every change of records and periodically (expiry),
// which bounds how long a revoked member keeps its access.
func (m *Membership) Sync(sw *Switch, now time.Time) (removed []peer.ID) {
	ip := m.IPv4(now).Addr()
	if ip != sw.cfg.IPv4 {
		sw.SetSelfIPv4(ip)
	}
	if m.Cert == nil || !m.Cert.IPv4.IsValid() {
		m.LastIPv4 = ip
	}
	for p := range sw.members {
		if m.MemberStatus(p, now) != StatusOK {
			sw.RemoveMember(p)
			removed = append(removed, p)
		}
	}
	for p := range m.members {
		if m.MemberStatus(p, now) != StatusOK {
			continue
		}
		want := SwitchMember{Peer: p, MAC: netrec.MemberMAC(m.ID, p), IPv4: m.MemberIPv4(p, now), IPv6: netrec.MemberIPv6(m.ID, p)}
		if cur, ok := sw.Member(p); !ok || cur != want {
			sw.SetMember(want)
		}
	}
	return removed
}

// NetworkInfo is one object of `kadlan networks --json`.
type NetworkInfo struct {
	Network   netrec.NetworkID       `json:"network"`
	Name      string                 `json:"name"`
	Status    Status                 `json:"status"`
	Private   bool                   `json:"private"`
	Owner     peer.ID                `json:"owner,omitempty"`
	IsOwner   bool                   `json:"is_owner"`
	Interface string                 `json:"interface"`
	MAC       string                 `json:"mac"`
	IPv4      []string               `json:"ipv4"` // CIDR strings
	IPv6      []string               `json:"ipv6"` // CIDR strings
	MTU       int                    `json:"mtu"`
	Broadcast netrec.BroadcastParams `json:"broadcast"`
	Expires   time.Time              `json:"expires,omitzero"` // own certificate
	Members   []MemberInfo           `json:"members"`
}

// Info summarises the membership at now. The daemon may refine Status
// (for example report "pending" until the first link is up).
func (m *Membership) Info(now time.Time) NetworkInfo {
	ni := NetworkInfo{Network: m.ID, Status: m.Status(now), Interface: m.Interface, MAC: m.MAC().String(),
		IPv4: []string{}, IPv6: []string{netip.PrefixFrom(m.IPv6(), 64).String()}, Members: m.Members(now)}
	if o, ok := m.Owner(); ok {
		ni.Owner, ni.IsOwner = o, o == m.Self
	}
	if m.Def != nil {
		ni.Name, ni.Private, ni.MTU, ni.Broadcast = m.Def.Name, m.Def.Private, m.Def.MTU, m.Def.Broadcast
		if p := m.IPv4(now); p.IsValid() {
			ni.IPv4 = append(ni.IPv4, p.String())
		}
	}
	if m.Cert != nil {
		ni.Expires = m.Cert.Expires
	}
	return ni
}

// Hello is the Hello this node sends when it opens a link on the network:
// its certificate, if it has one, and ann (may be nil).
func (m *Membership) Hello(ann *netrec.Announcement) (netrec.Hello, error) {
	h := netrec.Hello{Network: m.ID}
	var err error
	if m.Cert != nil {
		if h.Certificate, err = m.Cert.Marshal(); err != nil {
			return netrec.Hello{}, err
		}
	}
	if ann != nil {
		if h.Announcement, err = ann.Marshal(); err != nil {
			return netrec.Hello{}, err
		}
	}
	return h, nil
}

// AcceptHello checks the Hello that p sent on a link at now: it must name
// this network, its records must verify and belong to p, and p must be
// authorized (see Authorize). Records are stored.
func (m *Membership) AcceptHello(p peer.ID, h netrec.Hello, now time.Time) error {
	if h.Network != m.ID {
		return fmt.Errorf("%w: hello for network %s", ErrWrongNetwork, h.Network.Short())
	}
	var cert *netrec.Certificate
	if len(h.Certificate) > 0 {
		c, err := netrec.ParseCertificate(h.Certificate)
		if err != nil {
			return fmt.Errorf("overlay: hello from %s: %w", p, err)
		}
		cert = c
	}
	if len(h.Announcement) > 0 {
		a, err := netrec.ParseAnnouncement(h.Announcement)
		if err != nil {
			return fmt.Errorf("overlay: hello from %s: %w", p, err)
		}
		if a.Member != p {
			return fmt.Errorf("overlay: hello from %s carries the announcement of %s", p, a.Member)
		}
		if _, err := m.AddAnnouncement(a); err != nil {
			return err
		}
	}
	return m.Authorize(p, cert, now)
}

// AddRecord parses any signed record (from the DHT or a MsgRecord push),
// stores it if it is newer, and reports whether the state changed.
func (m *Membership) AddRecord(b []byte) (bool, error) {
	r, err := netrec.ParseRecord(b)
	if err != nil {
		return false, err
	}
	switch r := r.(type) {
	case *netrec.Definition:
		return m.SetDefinition(r)
	case *netrec.Certificate:
		return m.AddCertificate(r)
	case *netrec.Revocation:
		return m.SetRevocation(r)
	case *netrec.Announcement:
		return m.AddAnnouncement(r)
	}
	return false, fmt.Errorf("overlay: unexpected record %T", r)
}
