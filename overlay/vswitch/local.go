package vswitch

import (
	"net/netip"
	"slices"
	"time"

	"github.com/kadlan/kadlan/tap/ether"
	"github.com/libp2p/go-libp2p/core/peer"
)

// HandleLocal processes a frame read from the local device at now.
func (s *Switch) HandleLocal(now time.Time, frame []byte) []Output {
	s.reset()
	s.replay.Begin(now)
	s.counters.LocalIn++
	h, err := ether.ParseHeader(frame)
	if err != nil {
		s.counters.DropMalformed++
		return nil
	}
	if h.Src != s.cfg.MAC && (!s.cfg.AllowBridging || h.Src.IsMulticast() || s.isMemberMAC(h.Src)) {
		s.counters.DropLocalSource++
		return nil
	}
	if h.Dst.IsMulticast() {
		if s.snoop(now, h, frame) || s.answerLocally(now, h, frame) {
			return s.out
		}
		s.originate(now, h, frame)
		return s.out
	}
	p, ok := s.byMAC[h.Dst]
	if !ok && s.cfg.AllowBridging {
		p, ok = s.learned.Lookup(h.Dst, now)
	}
	if !ok && h.Dst.IsLocal() && h.Dst != s.cfg.MAC {
		// Perhaps a member's derived MAC (they are all locally
		// administered): the driver holds the frame and looks it up.
		s.counters.UnicastUnresolved++
		s.noteUnresolved(Unresolved{MAC: h.Dst})
		s.emitInput(Output{Kind: ToUnresolved, MAC: h.Dst, Msg: Message{Kind: MsgFrame, Payload: frame}})
		return s.out
	}
	if !ok {
		s.counters.DropUnknownDest++
		return nil
	}
	s.counters.UnicastOut++
	s.social.Touch(p, now)
	s.emitInput(Output{Kind: ToPeer, Peer: p, Msg: Message{Kind: MsgFrame, Payload: frame}})
	return s.out
}

func (s *Switch) isMemberMAC(m ether.MAC) bool {
	_, ok := s.byMAC[m]
	return ok
}

// snoop consumes the local host's IGMP/MLD reports: it joins or leaves the
// groups and, when its group set changed, announces it to the social
// neighbours at once. It reports whether frame was such a report.
func (s *Switch) snoop(now time.Time, h ether.Header, frame []byte) bool {
	var ok bool
	s.changes, ok = parseReport(s.changes[:0], h, frame)
	if !ok {
		return false
	}
	s.counters.ReportsSnooped++
	changed := false
	for _, c := range s.changes {
		if c.join != s.groups[c.mac] {
			changed = true
			if c.join {
				s.JoinGroup(c.mac)
			} else {
				s.LeaveGroup(c.mac)
			}
		}
	}
	if changed {
		s.announceGroups(now)
	}
	return true
}

// answerLocally answers an ARP request or neighbour solicitation for a
// member's address (or swallows a probe for our own) and reports whether it
// did.
func (s *Switch) answerLocally(now time.Time, h ether.Header, frame []byte) bool {
	switch h.Type {
	case ether.TypeARP:
		a, err := ether.ParseARP(frame[ether.HeaderLen:])
		if err != nil || a.Op != ether.ARPRequest {
			return false
		}
		if a.TargetIP == s.cfg.IPv4 && a.SenderIP != a.TargetIP {
			s.counters.DropOwnDAD++ // a probe for our own address: nobody else has it
			return true
		}
		if a.SenderIP == a.TargetIP {
			return false
		}
		m := s.memberByIP(a.TargetIP)
		if m == nil {
			s.noteUnresolved(Unresolved{IP: a.TargetIP})
			s.noteAsked(now, a.TargetIP, askedAddr{src: h.Src, arp: a})
			return false
		}
		s.answerARP(h.Src, a, m)
		return true
	case ether.TypeIPv6:
		n, err := ether.ParseNDP(frame[ether.HeaderLen:])
		if err != nil || n.Type != ether.ICMPv6NeighborSol {
			return false
		}
		if n.Target == s.cfg.IPv6 || n.Target == ether.LinkLocal(s.cfg.MAC) {
			s.counters.DropOwnDAD++
			return true
		}
		m := s.memberByIP(n.Target)
		if m == nil {
			if !n.Src.IsUnspecified() { // not someone's DAD
				s.noteUnresolved(Unresolved{IP: n.Target})
				s.noteAsked(now, n.Target, askedAddr{src: h.Src, ndp: n, isNDP: true})
			}
			return false
		}
		s.answerNDP(h.Src, n, m)
		return true
	}
	return false
}

func (s *Switch) answerARP(src ether.MAC, a ether.ARP, m *SwitchMember) {
	reply := ether.ARP{Op: ether.ARPReply, SenderMAC: m.MAC, SenderIP: a.TargetIP, TargetMAC: a.SenderMAC, TargetIP: a.SenderIP}
	s.emitLocal(s.synth(func(b []byte) []byte { return ether.AppendARPFrame(b, src, m.MAC, reply) }))
	s.counters.ARPAnswered++
}

func (s *Switch) answerNDP(src ether.MAC, n ether.NDP, m *SwitchMember) {
	na := ether.NDP{Type: ether.ICMPv6NeighborAdv, Src: n.Target, Dst: n.Src, Target: n.Target, Flags: 0x60, LLAddr: m.MAC}
	if n.Src.IsUnspecified() { // someone else's DAD: tell everyone
		na.Dst, na.Flags = netip.MustParseAddr("ff02::1"), 0x20
	}
	s.emitLocal(s.synth(func(b []byte) []byte { return ether.AppendNDPFrame(b, src, m.MAC, na) }))
	s.counters.NDPAnswered++
}

// askedAddr is a request of the local host for an address no known
// member held.
type askedAddr struct {
	src   ether.MAC
	arp   ether.ARP
	ndp   ether.NDP
	isNDP bool
	at    time.Time
}

// askedFor is how long a request waits for its answer: the kernel asks
// again after 1 s and gives up after 3 requests.
const askedFor = 3 * time.Second

// noteAsked keeps the host's request for ip (the newest one per address).
func (s *Switch) noteAsked(now time.Time, ip netip.Addr, q askedAddr) {
	if s.asked == nil {
		s.asked = map[netip.Addr]askedAddr{}
	}
	if _, ok := s.asked[ip]; !ok && len(s.asked) >= maxUnresolved {
		for a, old := range s.asked {
			if now.Sub(old.at) > askedFor {
				delete(s.asked, a)
			}
		}
		if len(s.asked) >= maxUnresolved {
			return
		}
	}
	q.at = now
	s.asked[ip] = q
}

// AnswerAsked answers the local host's requests for addresses that a
// member now holds (one a lookup just added): without it the host's first
// request went unanswered and its first packet waited for the kernel's
// next request, 1 s later. Requests older than askedFor are dropped.
func (s *Switch) AnswerAsked(now time.Time) []Output {
	s.reset()
	for ip, q := range s.asked {
		if now.Sub(q.at) > askedFor {
			delete(s.asked, ip)
			continue
		}
		m := s.memberByIP(ip)
		if m == nil {
			continue
		}
		delete(s.asked, ip)
		if q.isNDP {
			s.answerNDP(q.src, q.ndp, m)
		} else {
			s.answerARP(q.src, q.arp, m)
		}
	}
	return s.out
}

// Unresolved is a destination the local host wanted that no known member
// holds: an address it asked for (ARP, NDP), or, with IP invalid, the MAC
// of a unicast frame it sent (held meanwhile: see ToUnresolved).
type Unresolved struct {
	IP  netip.Addr
	MAC ether.MAC
}

// String names the destination: its IP address if it has one, else its
// MAC.
func (u Unresolved) String() string {
	if u.IP.IsValid() {
		return u.IP.String()
	}
	return u.MAC.String()
}

// maxUnresolved bounds the destinations waiting for TakeUnresolved.
const maxUnresolved = 16

func (s *Switch) noteUnresolved(u Unresolved) {
	if !u.IP.IsValid() && u.MAC.IsZero() || slices.Contains(s.unresolved, u) || len(s.unresolved) >= maxUnresolved {
		return
	}
	s.unresolved = append(s.unresolved, u)
}

// TakeUnresolved returns and forgets the destinations the local host
// wanted that no known member holds, at most 16: addresses it asked for
// (ARP requests, neighbour solicitations) and MACs it sent unicast frames
// to. Links on demand look them up (netrec.AddressKey, netrec.MACKey) and
// add the member: the host's next request is answered, and the frames
// held for a MAC go to its member (Resolve).
func (s *Switch) TakeUnresolved() []Unresolved {
	if len(s.unresolved) == 0 {
		return nil
	}
	out := s.unresolved
	s.unresolved = nil
	return out
}

// Resolve returns the member that holds mac, a destination this switch
// handed out as ToUnresolved, once the member is known, and counts the
// frames the driver held for it as sent (UnicastOut), making the member a
// social neighbour as those frames would have.
func (s *Switch) Resolve(now time.Time, mac ether.MAC, frames int) (peer.ID, bool) {
	p, ok := s.byMAC[mac]
	if !ok {
		return "", false
	}
	s.counters.UnicastOut += uint64(frames)
	s.social.Touch(p, now)
	return p, true
}

func (s *Switch) memberByIP(ip netip.Addr) *SwitchMember {
	if !ip.IsValid() {
		return nil
	}
	if p, ok := s.byIP[ip]; ok {
		return s.members[p]
	}
	return nil
}
