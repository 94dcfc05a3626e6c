package dht

import (
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/host/peerstore/pstoremem"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// The punch gate: no direct dials to the public addresses of a peer that
// is behind NAT, except while a hole punch with it runs.
//
// A node that is not known to be public advertises circuit addresses, and
// until AutoNAT's verdict (15 s and more after start) also its observed
// public addresses: the mappings its NAT made for its connections to
// others, which that NAT's filter keeps closed to anyone else. Dialled
// before a punch, such an address costs twice:
//   - DCUtR first dials the peer directly and waits up to punchDialTimeout
//     before it punches (2.5 s per attempt, in the lab for a node pinged
//     in the first seconds of its peer's life; with QUIC blocked at one
//     side, every such dial waits out the whole timeout);
//   - a TCP dial of the peer's mapping still pending when the punch starts
//     holds the 4-tuple the punch needs, so libp2p's reuseport dial falls
//     back to an ephemeral port, and the other side's NAT drops what comes
//     from it. In the lab (an EIM node pinged by a UDP-blocked one seconds
//     old, 0 ms RTT), the EIM side's direct dial retransmitted its SYN from
//     its listen port until the punch began, every punch SYN it sent came
//     from an ephemeral port, and 6 of 6 such pairs were still relayed 10 s
//     after the first ping; with this gate, 6 of 6 were direct within 33 ms
//     (TestDebugYoungPunch).
//
// So the main host's peerstore (gatedPeerstore) hides the public,
// non-circuit addresses of a peer whose addresses include a circuit, except
// within punchWindow of a punch with the peer starting (DCUtR's and
// birthday punching's own dials: the gate opens for them). Every dial of
// the host reads its addresses there, and so does kad-dht when it answers
// FIND_PEER: nobody is sent a mapping to dial. LAN addresses, circuits,
// and every address of a peer without circuits pass as before. AutoNAT's
// dial-backs are unaffected: libp2p runs them from a swarm with its own
// peerstore and the addresses the peer asked to be dialled on (a gate in
// the connection gater, shared by both swarms, refused them too, so that
// AutoNAT never confirmed a full-cone or port-forwarded node).
//
// Within a window the gate still keeps back what cannot be punched:
//   - a birthday dial opens it for the one address its probe hit (openedFor);
//   - for a DCUtR round, a group of more than mappingPorts ports on one IP
//     and transport (UDP or TCP) is a symmetric NAT's per-destination
//     mappings (libp2p's hole punching sends every address any one peer
//     observed, one per connection). Dialled, each holds one of the eight
//     dials libp2p's swarm runs at once per peer until the round's timeout
//     (QUIC's hole punch keeps sending to it), and the birthday dial that
//     can work waited behind them: at 80 ms RTT, 6 of 49 symmetric-to-EIM
//     pairs were still relayed 10 s after the first ping, each with a hit
//     whose dial left only after the 4 s dial timeout (bench-connect's
//     not_direct, a capture on the EIM side's router).
type punchGate struct {
	mu   sync.Mutex
	open map[peer.ID]punchWindowState
	now  func() time.Time
}

// punchWindowState is one open window: until when, and, for a birthday
// dial, the only public address let out.
type punchWindowState struct {
	until time.Time
	only  []ma.Multiaddr
}

const (
	// punchWindow is how long a punch's dials may go out after it
	// started: a DCUtR round's dial (punchDialTimeout) or a birthday
	// dial (bdayDialTimeout), and a margin.
	punchWindow = bdayDialTimeout + time.Second
	// punchGateMax bounds the open windows kept.
	punchGateMax = 1024
	// mappingPorts is how many ports one IP and transport of a NATed peer
	// may show before they count as a symmetric NAT's mappings: an
	// endpoint-independent NAT shows one per listen port (two: TCP 4242
	// and 443, say).
	mappingPorts = 2
)

func newPunchGate() *punchGate {
	return &punchGate{open: map[peer.ID]punchWindowState{}, now: time.Now}
}

// opened lets direct dials to p out for punchWindow (a DCUtR round).
func (g *punchGate) opened(p peer.ID) { g.openWindow(p, nil) }

// openedFor lets direct dials to p out for punchWindow, to addrs only (a
// birthday dial to the port its probe hit).
func (g *punchGate) openedFor(p peer.ID, addrs ...ma.Multiaddr) { g.openWindow(p, addrs) }

func (g *punchGate) openWindow(p peer.ID, only []ma.Multiaddr) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if len(g.open) >= punchGateMax {
		for q, w := range g.open {
			if now.After(w.until) {
				delete(g.open, q)
			}
		}
	}
	if len(g.open) < punchGateMax {
		g.open[p] = punchWindowState{until: now.Add(punchWindow), only: only}
	}
}

// filter returns p's addresses without the public, non-circuit ones if
// they include a circuit and no punch with p is under way.
func (g *punchGate) filter(p peer.ID, addrs []ma.Multiaddr) []ma.Multiaddr {
	natted := false
	for _, a := range addrs {
		if isCircuit(a) {
			natted = true
			break
		}
	}
	if !natted {
		return addrs
	}
	g.mu.Lock()
	w, ok := g.open[p]
	now := g.now()
	if ok && now.After(w.until) {
		delete(g.open, p)
		ok = false
	}
	g.mu.Unlock()
	var mappings map[mappingGroup]bool
	if ok && w.only == nil {
		mappings = symmetricGroups(addrs)
	}
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		switch {
		case !publicDirect(a):
			out = append(out, a)
		case !ok:
		case w.only != nil:
			if slices.ContainsFunc(w.only, a.Equal) {
				out = append(out, a)
			}
		default:
			if g, _, ok := groupOf(a); !ok || !mappings[g] {
				out = append(out, a)
			}
		}
	}
	return out
}

// publicDirect reports whether a is a public IP address that is not a
// circuit: what the gate holds back.
func publicDirect(a ma.Multiaddr) bool {
	return !isCircuit(a) && isIPAddr(a) && manet.IsPublicAddr(a)
}

// mappingGroup is one IP and transport (UDP or TCP) of a peer's addresses.
type mappingGroup struct {
	ip  string
	udp bool
}

// groupOf returns a's group and its port.
func groupOf(a ma.Multiaddr) (mappingGroup, string, bool) {
	ip, err := manet.ToIP(a)
	if err != nil {
		return mappingGroup{}, "", false
	}
	if port, err := a.ValueForProtocol(ma.P_UDP); err == nil {
		return mappingGroup{ip: ip.String(), udp: true}, port, true
	}
	port, err := a.ValueForProtocol(ma.P_TCP)
	return mappingGroup{ip: ip.String()}, port, err == nil
}

// symmetricGroups returns the groups of public addresses with more than
// mappingPorts ports: a symmetric NAT's mappings.
func symmetricGroups(addrs []ma.Multiaddr) map[mappingGroup]bool {
	ports := map[mappingGroup]map[string]bool{}
	for _, a := range addrs {
		if !publicDirect(a) {
			continue
		}
		g, port, ok := groupOf(a)
		if !ok {
			continue
		}
		if ports[g] == nil {
			ports[g] = map[string]bool{}
		}
		ports[g][port] = true
	}
	out := map[mappingGroup]bool{}
	for g, ps := range ports {
		if len(ps) > mappingPorts {
			out[g] = true
		}
	}
	return out
}

// certifiedPeerstore is what libp2p's host uses of its peerstore.
type certifiedPeerstore interface {
	peerstore.Peerstore
	peerstore.CertifiedAddrBook
}

// gatedPeerstore is the main host's peerstore with the punch gate on
// Addrs.
type gatedPeerstore struct {
	certifiedPeerstore
	gate *punchGate
}

func newGatedPeerstore(gate *punchGate) (*gatedPeerstore, error) {
	ps, err := pstoremem.NewPeerstore()
	if err != nil {
		return nil, err
	}
	return &gatedPeerstore{certifiedPeerstore: ps, gate: gate}, nil
}

// Addrs returns p's addresses through the punch gate.
func (g *gatedPeerstore) Addrs(p peer.ID) []ma.Multiaddr {
	return g.gate.filter(p, g.certifiedPeerstore.Addrs(p))
}
