package dht

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Circuits through relays this node is not connected to wait for their
// relay. libp2p's circuit transport runs one circuit dial per destination
// at a time (it deduplicates them across relays), and a circuit dial first
// connects to its relay: a circuit through a dead relay, which a target's
// records still name after the relay died, held every other circuit to
// that target until the dial to the dead relay timed out (5 s in
// TestEveryNATClass's relay-died case, with a live relay's circuit queued behind
// it). kad-dht's lookup dials the target too (it queries the peer it looks
// for), with every address the lookup heard. So while Connect runs for a
// target, the connection gater refuses circuits to it through relays this
// node is not connected to; Connect dials all their relays at once on the
// side, and each relay that answers lets its circuits through. A relay
// that looks connected may be dead too (QUIC sends nothing when a peer
// crashes: the connection lingers until keep-alives or the idle timeout
// notice): each connected relay named by the target's circuits is pinged
// at once, and one that does not answer within a few of its RTTs has its
// connection closed, which ends the circuit dial queued on it, and is
// refused as a relay for deadRelayFor. A dead relay then costs at most that
// wait, not its dial timeout.
type relayGate struct {
	n      *Node
	target peer.ID

	mu      sync.Mutex
	refs    int                        // Connects to target running (relayGates)
	probed  map[peer.ID]bool           // connected relays pinged
	started map[peer.ID]bool           // relays being (or done being) connected
	ok      map[peer.ID]bool           // relays that answered
	held    map[peer.ID][]ma.Multiaddr // circuits through started relays
}

// maxGatedRelays bounds the relays one Connect dials on the side.
const maxGatedRelays = 8

// relayGates holds the gate of every target a Connect runs for; the
// connection gater asks it about every address it is to dial.
type relayGates struct {
	mu   sync.Mutex
	m    map[peer.ID]*relayGate
	dead map[peer.ID]time.Time // relays that did not answer a probe, until
}

func newRelayGates() *relayGates {
	return &relayGates{m: map[peer.ID]*relayGate{}, dead: map[peer.ID]time.Time{}}
}

// deadRelayFor is how long a relay that did not answer is refused.
const deadRelayFor = 10 * time.Second

// markDead refuses dials to relay r for deadRelayFor.
func (r *relayGates) markDead(relay peer.ID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := time.Now()
	for p, until := range r.dead {
		if now.After(until) {
			delete(r.dead, p)
		}
	}
	if len(r.dead) < 4*maxGatedRelays {
		r.dead[relay] = now.Add(deadRelayFor)
	}
}

// isDead reports whether relay did not answer a probe lately.
func (r *relayGates) isDead(relay peer.ID) bool {
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	until, ok := r.dead[relay]
	return ok && time.Now().Before(until)
}

// open returns target's gate (shared by concurrent Connects) and its
// release.
func (r *relayGates) open(n *Node, target peer.ID) (*relayGate, func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	g := r.m[target]
	if g == nil {
		g = &relayGate{n: n, target: target, probed: map[peer.ID]bool{}, started: map[peer.ID]bool{}, ok: map[peer.ID]bool{}, held: map[peer.ID][]ma.Multiaddr{}}
		r.m[target] = g
	}
	g.refs++
	return g, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if g.refs--; g.refs == 0 {
			delete(r.m, target)
		}
	}
}

// allow reports whether the swarm may dial a for p: anything but a circuit
// through a relay that p's running Connect has not seen answer.
func (r *relayGates) allow(p peer.ID, a ma.Multiaddr) bool {
	if r == nil || !isCircuit(a) {
		return true
	}
	r.mu.Lock()
	g := r.m[p]
	r.mu.Unlock()
	if g == nil {
		return true
	}
	relay, err := peer.Decode(relayOf(a))
	if err != nil || r.isDead(relay) {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ok[relay] {
		return true
	}
	return !g.started[relay] && g.n.Host.Network().Connectedness(relay) == network.Connected
}

// split returns the relays of addrs' circuits to connect to first (those
// this node is not connected to and has not started on), and the connected
// ones to probe (once each).
func (g *relayGate) split(addrs []ma.Multiaddr) (relays []peer.AddrInfo, probe []peer.ID) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, a := range addrs {
		if !isCircuit(a) {
			continue
		}
		r, err := peer.Decode(relayOf(a))
		if err != nil || g.ok[r] {
			continue
		}
		if !g.started[r] {
			if g.n.Host.Network().Connectedness(r) == network.Connected {
				if !g.probed[r] && len(g.probed) < maxGatedRelays {
					g.probed[r] = true
					probe = append(probe, r)
				}
				continue
			}
			if len(g.started) >= maxGatedRelays {
				continue
			}
			g.started[r] = true
			relays = append(relays, peer.AddrInfo{ID: r, Addrs: relayAddrs(a, g.n.Host.Peerstore().Addrs(r))})
		}
		if !ma.Contains(g.held[r], a) {
			g.held[r] = append(g.held[r], a)
		}
	}
	return relays, probe
}

// probeRelay pings connected relay r; when it does not answer within
// probeWait, its connections are closed (ending any circuit dial waiting on
// them) and it is refused as a relay for deadRelayFor.
func (n *Node) probeRelay(ctx context.Context, r peer.ID) {
	_, err := n.pingConnected(ctx, r, probeWait(n.Host.Peerstore().LatencyEWMA(r)))
	if err == nil || ctx.Err() != nil {
		return // the Connect is over, not the relay
	}
	n.logf("dht: relay %s does not answer (%v): closing its connection", r, err)
	n.gates.markDead(r)
	for _, c := range n.Host.Network().ConnsToPeer(r) {
		c.Close()
	}
}

// probeWait is how long a connected relay has to answer a ping: four of
// its RTTs, at least 300 ms and at most 2 s; 1 s when its RTT is unknown.
func probeWait(rtt time.Duration) time.Duration {
	if rtt <= 0 {
		return time.Second
	}
	return min(max(4*rtt, 300*time.Millisecond), 2*time.Second)
}

// connect dials relay r and, once it answers, returns its circuits (which
// the gater now lets through) for the caller to dial.
func (g *relayGate) connect(ctx context.Context, r peer.AddrInfo) ([]ma.Multiaddr, error) {
	err := g.n.Host.Connect(ctx, r)
	g.mu.Lock()
	defer g.mu.Unlock()
	circ := g.held[r.ID]
	delete(g.held, r.ID)
	if err != nil {
		g.n.gates.markDead(r.ID)
		return nil, err
	}
	g.ok[r.ID] = true
	return circ, nil
}

// relayAddrs is the relay's part of circuit address a (what precedes
// /p2p/RELAY/p2p-circuit) and the relay's known addresses.
func relayAddrs(a ma.Multiaddr, known []ma.Multiaddr) []ma.Multiaddr {
	var head ma.Multiaddr
	for _, c := range a {
		if c.Protocol().Code == ma.P_P2P {
			break
		}
		head = append(head, c)
	}
	out := append([]ma.Multiaddr(nil), known...)
	if len(head) > 0 && !ma.Contains(out, head) {
		out = append([]ma.Multiaddr{head}, out...)
	}
	return out
}

// relayDialTimeout bounds a relay's connection on the side of a Connect.
const relayDialTimeout = 10 * time.Second
