package dht

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
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
// So while a peer's addresses include a circuit, a dial of one of its
// public, non-circuit addresses is refused unless a hole punch with the
// peer started within punchWindow (DCUtR's and birthday punching's own
// dials: the gate opens for them). A LAN address, a circuit, and any
// address of a peer without circuits pass as before.
type punchGate struct {
	mu   sync.Mutex
	ps   peerstore.Peerstore // set once the host exists; nil lets all pass
	open map[peer.ID]time.Time
	now  func() time.Time
}

const (
	// punchWindow is how long a punch's dials may go out after it
	// started: a DCUtR round's dial (punchDialTimeout) or a birthday
	// dial (bdayDialTimeout), and a margin.
	punchWindow = bdayDialTimeout + time.Second
	// punchGateMax bounds the open windows kept.
	punchGateMax = 1024
)

func newPunchGate() *punchGate {
	return &punchGate{open: map[peer.ID]time.Time{}, now: time.Now}
}

func (g *punchGate) setPeerstore(ps peerstore.Peerstore) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ps = ps
}

// opened lets direct dials to p out for punchWindow.
func (g *punchGate) opened(p peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	if len(g.open) >= punchGateMax {
		for q, until := range g.open {
			if now.After(until) {
				delete(g.open, q)
			}
		}
	}
	if len(g.open) < punchGateMax {
		g.open[p] = now.Add(punchWindow)
	}
}

// allow reports whether a dial of a to p may go out.
func (g *punchGate) allow(p peer.ID, a ma.Multiaddr) bool {
	if isCircuit(a) || !isIPAddr(a) || !manet.IsPublicAddr(a) {
		return true
	}
	g.mu.Lock()
	ps := g.ps
	until, ok := g.open[p]
	now := g.now()
	if ok && now.After(until) {
		delete(g.open, p)
		ok = false
	}
	g.mu.Unlock()
	if ok || ps == nil {
		return true
	}
	for _, pa := range ps.Addrs(p) {
		if isCircuit(pa) {
			return false
		}
	}
	return true
}
