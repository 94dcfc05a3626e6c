package vswitch

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/libp2p/go-libp2p/core/peer"
)

// StatusInvited: another node admitted by an owner-signed invite it
// redeemed (see netrec.Capability), without a certificate yet. It counts
// as a member (frames, address claims) until the invite expires, the
// redemption loses the use count, the owner revokes it, or the owner's
// certificate replaces it. This node's own status in that state is
// StatusOK (NetworkInfo.Invited says how).
const StatusInvited Status = "invited"

// Admitted reports whether a node of status s may exchange frames.
func (s Status) Admitted() bool { return s == StatusOK || s == StatusInvited }

// MaxInvites bounds the invites a network's state holds. Only the owner
// can make one, so the bound is against an owner that makes very many:
// beyond it, expired ones go first, then new ones are refused.
const MaxInvites = 64

// UseInvite records that this node joins with capability c, redeemed as r
// (its own signature), at now. The caller publishes the redemption.
func (m *Membership) UseInvite(c *netrec.Capability, r netrec.Redemption, now time.Time) error {
	if r.Member != m.Self {
		return errors.New("overlay: redemption of another node")
	}
	if err := c.Valid(m.ID, now); err != nil {
		return err
	}
	own := &netrec.RedemptionSet{Cap: c}
	if _, err := own.Add(r); err != nil {
		return err
	}
	if _, err := m.AddRedemptions(own, now); err != nil {
		return err
	}
	m.OwnInvite = own
	m.gen++
	return nil
}

// AddRedemptions merges a set of redemptions (from the DHT, a record push
// or a Hello; verified when parsed) into what this node knows of its
// capability, and reports whether that changed. Sets of an expired
// capability or another network are refused.
func (m *Membership) AddRedemptions(s *netrec.RedemptionSet, now time.Time) (bool, error) {
	if s.Cap.Network() != m.ID {
		return false, ErrWrongNetwork
	}
	if err := s.Cap.Valid(m.ID, now); err != nil {
		return false, err
	}
	cur, ok := m.invites[s.Cap.ID]
	if !ok {
		if len(m.invites) >= MaxInvites {
			m.pruneInvites(now)
		}
		if len(m.invites) >= MaxInvites {
			return false, fmt.Errorf("overlay: %d invites known on %s, no room for another", len(m.invites), m.ID.Short())
		}
		if m.invites == nil {
			m.invites = map[netrec.CapabilityID]*netrec.RedemptionSet{}
		}
		m.invites[s.Cap.ID] = s.Clone()
		m.gen++
		return true, nil
	}
	changed, err := cur.Merge(s)
	if changed {
		m.gen++
	}
	return changed, err
}

// Redemptions returns a copy of what this node knows of capability id's
// redemptions, to publish in the DHT.
func (m *Membership) Redemptions(id netrec.CapabilityID) (*netrec.RedemptionSet, bool) {
	s, ok := m.invites[id]
	if !ok {
		return nil, false
	}
	return s.Clone(), true
}

// InviteIDs lists the capabilities known (to poll their redemptions).
func (m *Membership) InviteIDs() []netrec.CapabilityID {
	out := make([]netrec.CapabilityID, 0, len(m.invites))
	for id := range m.invites {
		out = append(out, id)
	}
	slices.SortFunc(out, func(a, b netrec.CapabilityID) int { return slices.Compare(a[:], b[:]) })
	return out
}

// pruneInvites drops the invites expired at now.
func (m *Membership) pruneInvites(now time.Time) {
	for id, s := range m.invites {
		if s.Cap.Valid(m.ID, now) != nil {
			delete(m.invites, id)
			m.gen++
		}
	}
}

// invitation returns the capability under which p is admitted at now: one
// of this network, not expired, whose winning redemptions include p.
func (m *Membership) invitation(p peer.ID, now time.Time) (*netrec.Capability, bool) {
	var best *netrec.Capability
	for _, s := range m.invites {
		if s.Cap.Valid(m.ID, now) != nil {
			continue
		}
		if _, ok := s.Admits(p); ok && (best == nil || s.Cap.NotAfter.After(best.NotAfter)) {
			best = s.Cap
		}
	}
	return best, best != nil
}

// invitesUntil is the earliest expiry of a known invite after now (zero:
// none), when statuses that depend on it change.
func (m *Membership) invitesUntil(now time.Time) time.Time {
	var until time.Time
	for _, s := range m.invites {
		if e := s.Cap.NotAfter; now.Before(e) && (until.IsZero() || e.Before(until)) {
			until = e
		}
	}
	return until
}

// Invited lists the members admitted by an invite only, which the owner
// turns into certificate holders.
func (m *Membership) Invited(now time.Time) []peer.ID {
	var out []peer.ID
	for p := range m.members {
		if m.MemberStatus(p, now) == StatusInvited {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// inviteState describes this node's own invite at now, for NetworkInfo.
func (m *Membership) inviteState(now time.Time) (state string, until time.Time) {
	if m.OwnInvite == nil || m.Cert != nil && m.Cert.Valid(m.ID, now, m.Revocation) == nil {
		return "", time.Time{}
	}
	c := m.OwnInvite.Cap
	switch {
	case c.Valid(m.ID, now) != nil:
		return "expired", c.NotAfter
	case func() bool { _, ok := m.invitation(m.Self, now); return ok }():
		return "admitted", c.NotAfter
	}
	return "used up", c.NotAfter
}

// parseInvite checks the invite of p's Hello at now: a redemption set
// holding a valid capability of this network and p's redemption only.
func (m *Membership) parseInvite(p peer.ID, b []byte, now time.Time) (*netrec.RedemptionSet, error) {
	s, err := netrec.ParseRedemptionSet(b)
	if err != nil {
		return nil, err
	}
	if len(s.Entries) != 1 || s.Entries[0].Member != p {
		return nil, fmt.Errorf("overlay: invite of %s does not carry its own redemption", p)
	}
	if s.Cap.Network() != m.ID {
		return nil, ErrWrongNetwork
	}
	if err := s.Cap.Valid(m.ID, now); err != nil {
		return nil, err
	}
	if e := s.Entries[0]; e.Time.After(now.Add(10 * time.Minute)) {
		return nil, errors.New("overlay: redemption from the future")
	}
	return s, nil
}
