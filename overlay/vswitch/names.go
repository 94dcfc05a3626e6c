package vswitch

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/libp2p/go-libp2p/core/peer"
)

// NameEntry is one name on a network and the member it stands for.
type NameEntry struct {
	Name   string
	Member peer.ID
	IPv4   netip.Addr // invalid when the member has none (yet)
	IPv6   netip.Addr
}

// Names is the name table of a network as this node sees it.
type Names struct {
	// ByName maps every name (member names and address names) to its
	// member.
	ByName map[string]NameEntry
	// Of is each admitted member's name (self included), when it has one.
	Of map[peer.ID]string
}

// AddressName is the name every member has whatever it calls itself: its
// address in lowercase (52 characters for Ed25519 keys, a valid name).
// Unlike a prefix of the address (12D3KooW... for every Ed25519 key) it
// cannot be taken by another member: folding the case of a base58 address
// keeps about 250 bits of it.
func AddressName(p peer.ID) string {
	s := strings.ToLower(p.String())
	if netrec.ValidName(s) != nil {
		return ""
	}
	return s
}

// conflictName is the name a member gets when another holds its name:
// NAME-xxxxxx with the last 6 characters of its address name.
func conflictName(name string, p peer.ID) string {
	a := AddressName(p)
	if len(a) < 6 {
		return ""
	}
	base := name
	if len(base) > netrec.MaxMemberNameLen-7 {
		base = strings.TrimRight(base[:netrec.MaxMemberNameLen-7], "-")
	}
	return base + "-" + a[len(a)-6:]
}

// Names resolves the names of the admitted members and this node (which
// calls itself selfName, "" for none) at now. A member's name is the one
// in its valid certificate, else the one it announces. Conflicts are
// resolved the same way on every node that knows the same records:
// certified names first, then by address (the smaller keeps the name);
// every other claimant of a name is NAME-xxxxxx (the last 6 characters
// of its address name) unless that too is taken. Every member's
// AddressName resolves as well and beats any chosen name.
func (m *Membership) Names(now time.Time, selfName string) Names {
	type claim struct {
		p         peer.ID
		name      string
		certified bool
	}
	nt := Names{ByName: map[string]NameEntry{}, Of: map[peer.ID]string{}}
	entry := map[peer.ID]NameEntry{}
	var claims []claim
	add := func(p peer.ID, c *netrec.Certificate, announced string, ipv4 netip.Addr) {
		entry[p] = NameEntry{Member: p, IPv4: ipv4, IPv6: netrec.MemberIPv6(m.ID, p)}
		switch {
		case c != nil && c.Name != "" && c.Valid(m.ID, now, m.Revocation) == nil:
			claims = append(claims, claim{p, c.Name, true})
		case announced != "" && netrec.ValidName(announced) == nil:
			claims = append(claims, claim{p, announced, false})
		}
	}
	if m.Def != nil && m.Status(now).Admitted() {
		add(m.Self, m.Cert, selfName, m.IPv4(now).Addr())
	}
	for p, mem := range m.members {
		if !m.authorized(p, mem, now) {
			continue
		}
		announced := ""
		if mem.Announcement != nil {
			announced = mem.Announcement.Name
		}
		add(p, mem.Certificate, announced, m.MemberIPv4(p, now))
	}
	// Address names first: they are unique and beat chosen names.
	for p, e := range entry {
		if a := AddressName(p); a != "" {
			e.Name = a
			nt.ByName[a] = e
		}
	}
	slices.SortFunc(claims, func(a, b claim) int {
		if a.certified != b.certified {
			if a.certified {
				return -1
			}
			return 1
		}
		return strings.Compare(string(a.p), string(b.p))
	})
	var lost []claim
	for _, c := range claims {
		if _, taken := nt.ByName[c.name]; taken {
			lost = append(lost, c)
			continue
		}
		e := entry[c.p]
		e.Name = c.name
		nt.ByName[c.name], nt.Of[c.p] = e, c.name
	}
	for _, c := range lost {
		alt := conflictName(c.name, c.p)
		if _, taken := nt.ByName[alt]; alt == "" || taken {
			continue
		}
		e := entry[c.p]
		e.Name = alt
		nt.ByName[alt], nt.Of[c.p] = e, alt
	}
	return nt
}
