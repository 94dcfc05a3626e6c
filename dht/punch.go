package dht

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/prometheus/client_golang/prometheus"
)

// Hole punching. libp2p's DCUtR runs when a relayed connection arrives and
// gives up after three rounds; a pair whose first rounds failed (a NAT
// mapping that had not settled, a lost packet, a path blocked for a while)
// stays relayed for as long as it lives. kadlan creates the DCUtR service
// itself, not through libp2p's host, so that it can punch again: a peer
// reached only through a relay is punched again 20 s after it connected,
// then with a backoff doubling to 5 min, for as long as it stays relayed.
// Symmetric NATs on both sides never punch through; such a pair keeps
// trying at the slowest pace and `kadlan peers` says so.

const (
	punchFirstRetry  = 20 * time.Second // after libp2p's own three rounds
	punchMaxBackoff  = 5 * time.Minute
	punchParallel    = 4  // hole punches kadlan starts at once
	punchObserved    = 32 // observed addresses kept for punching
	punchObservedTTL = 10 * time.Minute
	punchPeers       = 1024 // relayed peers whose punch state is kept
	punchTick        = 5 * time.Second
	// punchDialTimeout bounds each DCUtR round's simultaneous dial (and its
	// direct dial before the rounds). libp2p's default, 5 s, is what a
	// round that cannot work costs before the next: nodes a few seconds
	// old (findable since relays vouch for them) often failed the first
	// round, and at 0 ms RTT 56% of UDP-blocked to EIM pairs were still
	// relayed 10 s after their first contact. A punch that works completes
	// in a few RTTs (TCP or QUIC, Noise, the muxer: 2.9 s p50 to direct at
	// 200 ms RTT, the round trips of the exchange included), so 2.5 s
	// serves RTTs up to about 400 ms.
	punchDialTimeout = 2500 * time.Millisecond
)

var errNoIDService = errors.New("the libp2p host has no identify service")

// PunchState is what the node knows of its hole punches with one peer.
type PunchState struct {
	Attempts  int           // DCUtR rounds, in either role
	Failures  int           // rounds that ended without a direct path
	LastError string        // of the last failed round
	Last      time.Time     // end of the last round
	NextIn    time.Duration // until kadlan punches again (0: not scheduled)
	// Birthday punching (birthday.go).
	NAT          string // this node's NAT mapping: symmetric, endpoint-independent or unknown
	PeerNAT      string // the peer's, as it said in the last exchange
	Birthday     string // outcome of the last exchange, or "running"
	BirthdayRuns int    // exchanges with the peer, in either role
}

type punchPeer struct {
	state   PunchState
	next    time.Time
	backoff time.Duration
	running bool
	// initiator: a relayed connection came in from the peer, so this node
	// starts the rounds (the other side waits, as in DCUtR).
	initiator bool
}

type observedAddr struct {
	addr ma.Multiaddr
	seen time.Time
}

// puncher owns the DCUtR service and the re-punch loop.
type puncher struct {
	h    host.Host
	svc  *holepunch.Service
	logf func(string, ...any)
	gate *punchGate // opened for a punch's dials; may be nil

	mu       sync.Mutex
	observed map[string]observedAddr
	peers    map[peer.ID]*punchPeer
	now      func() time.Time
}

// newPuncher starts libp2p's hole-punching service on h with kadlan's
// address source and tracer. reg, if not nil, gets libp2p's metrics.
func newPuncher(h host.Host, dialTimeout time.Duration, reg prometheus.Registerer, logf func(string, ...any)) (*puncher, error) {
	p := &puncher{h: h, logf: logf, observed: map[string]observedAddr{}, peers: map[peer.ID]*punchPeer{}, now: time.Now}
	ids, ok := h.(interface{ IDService() identify.IDService })
	if !ok {
		return nil, errNoIDService
	}
	opts := []holepunch.Option{holepunch.DirectDialTimeout(dialTimeout)}
	if reg != nil {
		opts = append(opts, holepunch.WithMetricsAndEventTracer(holepunch.NewMetricsTracer(holepunch.WithRegisterer(reg)), p))
	} else {
		opts = append(opts, holepunch.WithTracer(p))
	}
	svc, err := holepunch.NewService(h, ids.IDService(), p.addrs, opts...)
	if err != nil {
		return nil, err
	}
	p.svc = svc
	return p, nil
}

// addrs are the addresses a hole punch offers the other side: the host's
// public direct addresses and what peers observed of this node (one
// observer suffices, as for libp2p's own service).
func (p *puncher) addrs() []ma.Multiaddr {
	var out []ma.Multiaddr
	seen := map[string]bool{}
	add := func(a ma.Multiaddr) {
		if a == nil || isCircuit(a) || !manet.IsPublicAddr(a) || seen[string(a.Bytes())] {
			return
		}
		seen[string(a.Bytes())] = true
		out = append(out, a)
	}
	for _, a := range p.h.Addrs() {
		add(a)
	}
	p.mu.Lock()
	now := p.now()
	for k, o := range p.observed {
		if now.Sub(o.seen) > punchObservedTTL {
			delete(p.observed, k)
			continue
		}
		add(o.addr)
	}
	p.mu.Unlock()
	return out
}

// observe keeps an address a peer saw this node's connection come from.
func (p *puncher) observe(a ma.Multiaddr) {
	if a == nil || !manet.IsPublicAddr(a) {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	p.observed[string(a.Bytes())] = observedAddr{addr: a, seen: now}
	if len(p.observed) > punchObserved {
		var oldK string
		var old time.Time
		for k, o := range p.observed {
			if oldK == "" || o.seen.Before(old) {
				oldK, old = k, o.seen
			}
		}
		delete(p.observed, oldK)
	}
}

// Trace records the outcome of every DCUtR round (holepunch.EventTracer).
func (p *puncher) Trace(evt *holepunch.Event) {
	if _, ok := evt.Evt.(*holepunch.StartHolePunchEvt); ok && p.gate != nil {
		p.gate.opened(evt.Remote) // the round's dials follow at once
		return
	}
	end, ok := evt.Evt.(*holepunch.EndHolePunchEvt)
	if !ok {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pp := p.peerLocked(evt.Remote)
	if pp == nil {
		return
	}
	pp.state.Attempts++
	pp.state.Last = p.now()
	if !end.Success {
		pp.state.Failures++
		pp.state.LastError = end.Error
		// The next round waits a backoff from the end of this one (libp2p's
		// own three rounds take up to 20 s).
		if at := pp.state.Last.Add(pp.backoff); at.After(pp.next) {
			pp.next = at
		}
	}
}

// peerLocked returns the state of rp, creating it while fewer than
// punchPeers are kept.
func (p *puncher) peerLocked(rp peer.ID) *punchPeer {
	if pp := p.peers[rp]; pp != nil {
		return pp
	}
	if len(p.peers) >= punchPeers {
		return nil
	}
	pp := &punchPeer{next: p.now().Add(punchFirstRetry), backoff: punchFirstRetry}
	p.peers[rp] = pp
	return pp
}

// State returns the punch state with rp, if any round ran or is planned.
func (p *puncher) State(rp peer.ID) (PunchState, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pp := p.peers[rp]
	if pp == nil {
		return PunchState{}, false
	}
	s := pp.state
	if d := pp.next.Sub(p.now()); d > 0 && pp.initiator {
		s.NextIn = d
	}
	return s, true
}

// relayedOnly reports whether every connection to rp is relayed, and
// whether one of them came in (this node is DCUtR's initiator for it, as
// libp2p would be on a fresh relayed connection).
func relayedOnly(conns []network.Conn) (relayed, inbound bool) {
	if len(conns) == 0 {
		return false, false
	}
	for _, c := range conns {
		if !isCircuit(c.RemoteMultiaddr()) {
			return false, false
		}
		if c.Stat().Direction == network.DirInbound {
			inbound = true
		}
	}
	return true, inbound
}

// due lists the peers to punch now, and forgets peers that are gone or
// direct. It marks them running and moves their next round on.
func (p *puncher) due() []peer.ID {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	live := map[peer.ID]bool{}
	var out []peer.ID
	running := 0
	for _, pp := range p.peers {
		if pp.running {
			running++
		}
	}
	for _, rp := range p.h.Network().Peers() {
		relayed, inbound := relayedOnly(p.h.Network().ConnsToPeer(rp))
		if !relayed {
			continue
		}
		live[rp] = true
		pp := p.peerLocked(rp)
		if pp != nil {
			pp.initiator = inbound
		}
		if pp == nil || pp.running || !inbound || now.Before(pp.next) || running >= punchParallel {
			continue
		}
		pp.running = true
		running++
		pp.next = now.Add(pp.backoff)
		pp.backoff = min(2*pp.backoff, punchMaxBackoff)
		out = append(out, rp)
	}
	for rp, pp := range p.peers {
		if !live[rp] && !pp.running {
			delete(p.peers, rp)
		}
	}
	return out
}

func (p *puncher) done(rp peer.ID) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if pp := p.peers[rp]; pp != nil {
		pp.running = false
	}
}

// ready reports whether the service has registered DCUtR (it waits for a
// public address first); DirectConnect blocks until then.
func (p *puncher) ready() bool {
	for _, id := range p.h.Mux().Protocols() {
		if id == holepunch.Protocol {
			return true
		}
	}
	return false
}

// run punches again for relayed peers until ctx ends. The caller's wg owns
// run and every punch it starts; close the service first so that running
// punches end.
func (p *puncher) run(ctx context.Context, wg *sync.WaitGroup, tick time.Duration) {
	every(ctx, tick, func() {
		if !p.ready() {
			return
		}
		for _, rp := range p.due() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer p.done(rp)
				if err := p.svc.DirectConnect(rp); err != nil && ctx.Err() == nil {
					p.logf("dht: hole punch with %s again: %v", rp, err)
				}
			}()
		}
	})
}

// watchObserved feeds identify's observed addresses to the puncher.
func (n *Node) watchObserved(ctx context.Context) error {
	return n.onEvent(ctx, new(event.EvtPeerIdentificationCompleted), func(e any) {
		ev := e.(event.EvtPeerIdentificationCompleted)
		n.punch.observe(ev.ObservedAddr)
		n.bday.observe(ev.Conn, ev.ObservedAddr)
	})
}
