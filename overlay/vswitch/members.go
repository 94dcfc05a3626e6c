package vswitch

import (
	"net/netip"
	"slices"
	"time"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/libp2p/go-libp2p/core/peer"
)

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
		if mi.Status == StatusInvited {
			if c, ok := m.invitation(p, now); ok {
				mi.Expires = c.NotAfter
			}
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
	Expires   time.Time              `json:"expires,omitzero"` // own certificate, or invite while admitted by one
	// Invite is this node's own invite while it has no valid certificate:
	// "admitted" (ok by the invite until Expires), "used up" (every use
	// taken by others) or "expired"; empty otherwise.
	Invite  string       `json:"invite,omitempty"`
	Members []MemberInfo `json:"members"`
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
	if state, until := m.inviteState(now); state != "" {
		ni.Invite, ni.Expires = state, until
	}
	return ni
}
