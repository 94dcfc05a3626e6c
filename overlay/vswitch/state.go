package vswitch

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/libp2p/go-libp2p/core/peer"
)

// savedNetwork is the file format of a joined network.
type savedNetwork struct {
	Version     int              `json:"version"`
	Network     netrec.NetworkID `json:"network"`
	Self        peer.ID          `json:"self"`
	Interface   string           `json:"interface,omitempty"`
	Joined      time.Time        `json:"joined"`
	LastIPv4    netip.Addr       `json:"last_ipv4,omitzero"`
	Definition  []byte           `json:"definition,omitempty"`
	Certificate []byte           `json:"certificate,omitempty"`
	Revocation  []byte           `json:"revocation,omitempty"`
	Members     []savedMember    `json:"members,omitempty"`
	// OwnInvite and Invites are redemption sets (netrec wire form): the
	// invite this node joined with, and the redemptions known per invite.
	OwnInvite []byte   `json:"own_invite,omitempty"`
	Invites   [][]byte `json:"invites,omitempty"`
}

type savedMember struct {
	Address      peer.ID   `json:"address"`
	Certificate  []byte    `json:"certificate,omitempty"`
	Announcement []byte    `json:"announcement,omitempty"`
	LastSeen     time.Time `json:"last_seen,omitzero"`
}

const savedVersion = 1

func marshalOpt(r interface{ Marshal() ([]byte, error) }, isNil bool) []byte {
	if isNil {
		return nil
	}
	b, err := r.Marshal()
	if err != nil {
		return nil
	}
	return b
}

// MarshalState encodes what must survive a restart (JSON): the network's
// records in their signed wire form, verified again by UnmarshalState, and
// the authorized members (pending entries are not kept; see MaxPending).
func (m *Membership) MarshalState() ([]byte, error) {
	s := savedNetwork{Version: savedVersion, Network: m.ID, Self: m.Self, Interface: m.Interface, Joined: m.Joined, LastIPv4: m.LastIPv4,
		Definition:  marshalOpt(m.Def, m.Def == nil),
		Certificate: marshalOpt(m.Cert, m.Cert == nil),
		Revocation:  marshalOpt(m.Revocation, m.Revocation == nil)}
	for p, mem := range m.members {
		if mem.Certificate == nil && !m.authorized(p, mem, time.Time{}) {
			continue // pending entries are not saved (see MaxPending)
		}
		s.Members = append(s.Members, savedMember{Address: p, LastSeen: mem.LastSeen,
			Certificate:  marshalOpt(mem.Certificate, mem.Certificate == nil),
			Announcement: marshalOpt(mem.Announcement, mem.Announcement == nil)})
	}
	slices.SortFunc(s.Members, func(a, b savedMember) int { return strings.Compare(string(a.Address), string(b.Address)) })
	s.OwnInvite = marshalOpt(m.OwnInvite, m.OwnInvite == nil)
	for _, id := range m.InviteIDs() {
		if b := marshalOpt(m.invites[id], false); b != nil {
			s.Invites = append(s.Invites, b)
		}
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("overlay: save: %w", err)
	}
	return append(b, '\n'), nil
}

// UnmarshalState decodes what MarshalState wrote and verifies every record
// in it; a record that no longer verifies is an error (the file was
// tampered with). path names the source in errors.
func UnmarshalState(path string, b []byte) (*Membership, error) {
	var s savedNetwork
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("overlay: load %s: %w", path, err)
	}
	if s.Version != savedVersion {
		return nil, fmt.Errorf("overlay: load %s: version %d, want %d", path, s.Version, savedVersion)
	}
	if err := s.Self.Validate(); err != nil {
		return nil, fmt.Errorf("overlay: load %s: self: %w", path, err)
	}
	m := NewMembership(s.Network, s.Self, s.Joined)
	m.Joined, m.Interface, m.LastIPv4 = s.Joined, s.Interface, s.LastIPv4
	wrap := func(what string, err error) error { return fmt.Errorf("overlay: load %s: %s: %w", path, what, err) }
	if s.Definition != nil {
		d, err := netrec.ParseDefinition(s.Definition)
		if err == nil {
			_, err = m.SetDefinition(d)
		}
		if err != nil {
			return nil, wrap("definition", err)
		}
	}
	if s.Certificate != nil {
		c, err := netrec.ParseCertificate(s.Certificate)
		if err == nil && c.Member != s.Self {
			err = errors.New("not this node's")
		}
		if err == nil {
			_, err = m.AddCertificate(c)
		}
		if err != nil {
			return nil, wrap("certificate", err)
		}
	}
	if s.Revocation != nil {
		r, err := netrec.ParseRevocation(s.Revocation)
		if err == nil {
			_, err = m.SetRevocation(r)
		}
		if err != nil {
			return nil, wrap("revocation", err)
		}
	}
	// Invites: a set that no longer verifies is an error; one whose invite
	// expired is dropped (it admits nobody).
	for _, b := range s.Invites {
		rs, err := netrec.ParseRedemptionSet(b)
		if err != nil {
			return nil, wrap("invite", err)
		}
		if rs.Cap.Network() != m.ID {
			return nil, wrap("invite", ErrWrongNetwork)
		}
		if m.invites == nil {
			m.invites = map[netrec.CapabilityID]*netrec.RedemptionSet{}
		}
		if len(m.invites) < MaxInvites {
			m.invites[rs.Cap.ID] = rs
		}
	}
	if s.OwnInvite != nil {
		rs, err := netrec.ParseRedemptionSet(s.OwnInvite)
		if err == nil && (rs.Cap.Network() != m.ID || len(rs.Entries) != 1 || rs.Entries[0].Member != s.Self) {
			err = errors.New("not this node's")
		}
		if err != nil {
			return nil, wrap("own invite", err)
		}
		m.OwnInvite = rs
	}
	for _, sm := range s.Members {
		if err := sm.Address.Validate(); err != nil || sm.Address == s.Self {
			return nil, wrap("member", fmt.Errorf("bad address %q", sm.Address))
		}
		mem := m.member(sm.Address)
		mem.LastSeen = sm.LastSeen
		if sm.Certificate != nil {
			c, err := netrec.ParseCertificate(sm.Certificate)
			if err == nil && c.Member != sm.Address {
				err = errors.New("for another member")
			}
			if err == nil {
				_, err = m.AddCertificate(c)
			}
			if err != nil {
				return nil, wrap("member certificate", err)
			}
		}
		if sm.Announcement != nil {
			a, err := netrec.ParseAnnouncement(sm.Announcement)
			if err == nil && a.Member != sm.Address {
				err = errors.New("for another member")
			}
			if err == nil {
				_, err = m.AddAnnouncement(a)
			}
			if err != nil {
				return nil, wrap("member announcement", err)
			}
		}
	}
	return m, nil
}
