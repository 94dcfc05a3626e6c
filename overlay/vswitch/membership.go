package vswitch

import (
	"errors"
	"fmt"
	"net/netip"
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
	// heard is when AddRecord last stored an announcement of the member
	// (not saved): a member just looked up counts as recent for
	// TrimKnown even if it announced itself long ago.
	heard time.Time
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
	// OwnInvite is the capability this node joined with and its own
	// redemption (nil when it joined without a token): presented in its
	// Hello until a certificate arrives.
	OwnInvite *netrec.RedemptionSet

	members map[peer.ID]*Member
	// invites are the redemptions known per capability (see UseInvite,
	// AddRedemptions); at most MaxInvites.
	invites map[netrec.CapabilityID]*netrec.RedemptionSet

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
	if _, known := m.members[a.Member]; !known && !m.MemberStatus(a.Member, a.Time).Admitted() {
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
		if _, ok := m.Revocation.Lookup(p); ok {
			return StatusRevoked // and no certificate issued after it
		}
		if _, ok := m.invitation(p, now); ok {
			return StatusInvited
		}
		if p == m.Self {
			if m.OwnInvite != nil && m.OwnInvite.Cap.Valid(m.ID, now) != nil {
				return StatusExpired
			}
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

// Status is this node's status on the network at now. A node admitted by
// an invite is ok (see StatusInvited).
func (m *Membership) Status(now time.Time) Status {
	s := m.statusOf(m.Self, m.Cert, now)
	if s == StatusInvited {
		return StatusOK
	}
	return s
}

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
	if s := m.MemberStatus(p, now); !s.Admitted() {
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
	m.pruneInvites(now)
	ip := m.IPv4(now).Addr()
	if ip != sw.cfg.IPv4 {
		sw.SetSelfIPv4(ip)
	}
	if m.Cert == nil || !m.Cert.IPv4.IsValid() {
		m.LastIPv4 = ip
	}
	for p := range sw.members {
		if _, known := m.members[p]; !known && p != m.Self {
			sw.RemoveMember(p) // forgotten (TrimKnown), not unauthorized
			continue
		}
		if !m.MemberStatus(p, now).Admitted() {
			sw.RemoveMember(p)
			removed = append(removed, p)
		}
	}
	for p := range m.members {
		if !m.MemberStatus(p, now).Admitted() {
			continue
		}
		want := SwitchMember{Peer: p, MAC: netrec.MemberMAC(m.ID, p), IPv4: m.MemberIPv4(p, now), IPv6: netrec.MemberIPv6(m.ID, p)}
		if cur, ok := sw.Member(p); !ok || cur != want {
			sw.SetMember(want)
		}
	}
	return removed
}

// Hello is the Hello this node sends when it opens a link on the network:
// its certificate, if it has one, else its invite if it joined with one,
// and ann (may be nil).
func (m *Membership) Hello(ann *netrec.Announcement) (netrec.Hello, error) {
	h := netrec.Hello{Network: m.ID}
	var err error
	if m.Cert != nil {
		if h.Certificate, err = m.Cert.Marshal(); err != nil {
			return netrec.Hello{}, err
		}
	} else if m.OwnInvite != nil {
		if h.Invite, err = m.OwnInvite.Marshal(); err != nil {
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
// authorized (see Authorize) or admitted by the invite it presents. Every
// record is verified before any is stored, so a hello with a forged or
// expired record changes nothing; an invite's redemption is merged into
// the known redemptions (where it wins a use or is ignored).
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
	var ann *netrec.Announcement
	if len(h.Announcement) > 0 {
		a, err := netrec.ParseAnnouncement(h.Announcement)
		if err != nil {
			return fmt.Errorf("overlay: hello from %s: %w", p, err)
		}
		if a.Member != p {
			return fmt.Errorf("overlay: hello from %s carries the announcement of %s", p, a.Member)
		}
		ann = a
	}
	var inv *netrec.RedemptionSet
	if len(h.Invite) > 0 {
		s, err := m.parseInvite(p, h.Invite, now)
		if err != nil {
			return fmt.Errorf("overlay: hello from %s: invite: %w", p, err)
		}
		inv = s
	}
	if ann != nil {
		if _, err := m.AddAnnouncement(ann); err != nil {
			return err
		}
	}
	if inv != nil && cert == nil {
		if _, err := m.AddRedemptions(inv, now); err != nil {
			return fmt.Errorf("overlay: hello from %s: invite: %w", p, err)
		}
	}
	return m.Authorize(p, cert, now)
}

// AddRecord parses any signed record (from the DHT or a MsgRecord push),
// stores it if it is newer, and reports whether the state changed. now
// is used for redemption sets (an expired invite is refused).
func (m *Membership) AddRecord(b []byte, now time.Time) (bool, error) {
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
		ok, err := m.AddAnnouncement(r)
		if ok {
			m.members[r.Member].heard = now
		}
		return ok, err
	case *netrec.RedemptionSet:
		return m.AddRedemptions(r, now)
	}
	return false, fmt.Errorf("overlay: unexpected record %T", r)
}
