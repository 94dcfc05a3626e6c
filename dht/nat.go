package dht

import (
	"context"
	"fmt"
	"sort"
	"sync/atomic"
	"time"

	"github.com/kadlan/kadlan/overlay/relaychoice"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
)

// RelayLimits bound what this node spends relaying for others. Zero fields
// take the defaults of DefaultRelayLimits.
type RelayLimits struct {
	Reservations       int `json:"reservations"`         // relay slots held for other nodes
	ReservationsPerIP  int `json:"reservations_per_ip"`  // slots per source IP (CGNAT users share one)
	ReservationsPerASN int `json:"reservations_per_asn"` // slots per IPv6 source ASN
	CircuitsPerPeer    int `json:"circuits_per_peer"`    // open relayed connections per peer
	// CircuitsPerStranger bounds the relayed connections that a peer which
	// is no member of a network of this node may have open through it as
	// their source (members get CircuitsPerPeer).
	CircuitsPerStranger int           `json:"circuits_per_stranger"`
	CircuitDuration     time.Duration `json:"circuit_duration"` // a relayed connection is reset after this
	CircuitBytes        int64         `json:"circuit_bytes"`    // ... or after this many bytes each way
}

// DefaultRelayLimits suit a small public machine. libp2p's own defaults
// (2 min and 128 KiB per circuit) cut a data path in the middle of a
// transfer; kadlan nodes behind symmetric NATs live on relayed paths, so a
// circuit here lasts an hour or 1 GiB, after which the link reconnects.
// One IP holds at most 4 of the 128 slots (a household or a CGNAT exit
// with a few kadlan nodes), one IPv6 ASN at most 32: a stranger needs 32
// IPs, not 4, to take every slot.
var DefaultRelayLimits = RelayLimits{
	Reservations:        128,
	ReservationsPerIP:   4,
	ReservationsPerASN:  32,
	CircuitsPerPeer:     16,
	CircuitsPerStranger: 4,
	CircuitDuration:     time.Hour,
	CircuitBytes:        1 << 30,
}

func (l RelayLimits) withDefaults() RelayLimits {
	d := DefaultRelayLimits
	if l.Reservations > 0 {
		d.Reservations = l.Reservations
	}
	if l.ReservationsPerIP > 0 {
		d.ReservationsPerIP = l.ReservationsPerIP
	}
	if l.ReservationsPerASN > 0 {
		d.ReservationsPerASN = l.ReservationsPerASN
	}
	if l.CircuitsPerPeer > 0 {
		d.CircuitsPerPeer = l.CircuitsPerPeer
	}
	if l.CircuitsPerStranger > 0 {
		d.CircuitsPerStranger = l.CircuitsPerStranger
	}
	if l.CircuitDuration > 0 {
		d.CircuitDuration = l.CircuitDuration
	}
	if l.CircuitBytes > 0 {
		d.CircuitBytes = l.CircuitBytes
	}
	return d
}

func (l RelayLimits) resources() relayv2.Resources {
	r := relayv2.DefaultResources()
	r.MaxReservations = l.Reservations
	r.MaxReservationsPerIP = l.ReservationsPerIP
	r.MaxReservationsPerASN = l.ReservationsPerASN
	r.MaxCircuits = l.CircuitsPerPeer
	r.Limit = &relayv2.RelayLimit{Duration: l.CircuitDuration, Data: l.CircuitBytes}
	return r
}

// Number of relays a private node keeps reservations on.
const numRelays = relaychoice.Count

// natOptions returns the libp2p options for relaying, AutoRelay fed by DHT
// neighbours, and hole punching. nodeRef is filled once the node exists;
// the peer source reads the routing table through it.
func natOptions(cfg Config, nodeRef *atomic.Pointer[Node], acl *relayACL) ([]libp2p.Option, error) {
	var opts []libp2p.Option
	limits := cfg.RelayLimits.withDefaults()
	switch cfg.Relay {
	case "", "auto":
		// libp2p runs the service while AutoNAT (or our start-up belief)
		// says the node is public.
		opts = append(opts, libp2p.EnableRelayService(relayv2.WithResources(limits.resources()), relayv2.WithACL(acl)))
	case "on", "off":
		// "on" starts the service unconditionally (see startRelay);
		// "off" never does.
	default:
		return nil, fmt.Errorf("dht: relay %q: want auto, on or off", cfg.Relay)
	}
	opts = append(opts,
		libp2p.EnableRelay(),
		// Hole punching: kadlan runs DCUtR itself (punch.go).
		libp2p.EnableAutoRelayWithPeerSource(
			func(ctx context.Context, num int) <-chan peer.AddrInfo {
				return relayCandidates(ctx, nodeRef.Load(), num)
			},
			autorelay.WithNumRelays(numRelays),
			autorelay.WithMinCandidates(1),
			autorelay.WithMaxCandidates(16),
			autorelay.WithBootDelay(0),
			autorelay.WithBackoff(15*time.Second),
			autorelay.WithMinInterval(2*time.Second),
			autorelay.WithMaxCandidateAge(10*time.Minute),
		),
		// One swarm option list (libp2p.SwarmOpts replaces, not adds).
		libp2p.SwarmOpts(swarm.WithDialRanker(kadlanRanker)),
	)
	return opts, nil
}

// watchRelayAddrs keeps the circuit addresses AutoRelay reserved. libp2p's
// address manager (with AutoNAT v1) advertises them only once AutoNAT has
// said "private", 15-20 s after start; kadlan advertises them as soon as
// they exist while the node is not known to be public (see addrsFactory),
// so a node behind NAT is findable and reachable within a second or two.
func (n *Node) watchRelayAddrs(ctx context.Context) error {
	return n.onEvent(ctx, new(event.EvtAutoRelayAddrsUpdated), func(e any) {
		addrs := e.(event.EvtAutoRelayAddrsUpdated).RelayAddrs
		n.mu.Lock()
		n.relayAddrs = append([]ma.Multiaddr(nil), addrs...)
		n.mu.Unlock()
	})
}

// watchRelayDeaths closes relayed connections whose relay went away: when
// the connection to relay R closes, every circuit through R is dead too,
// but libp2p would only notice at the circuits' idle timeout (30 s for
// QUIC). Closing them at once lets the next dial take another relay.
func (n *Node) watchRelayDeaths(ctx context.Context) error {
	return n.onEvent(ctx, new(event.EvtPeerConnectednessChanged), func(e any) {
		ev := e.(event.EvtPeerConnectednessChanged)
		if ev.Connectedness == network.Connected {
			return
		}
		gone := ev.Peer.String()
		for _, c := range n.Host.Network().Conns() {
			if isCircuit(c.RemoteMultiaddr()) && relayOf(c.RemoteMultiaddr()) == gone {
				n.logf("dht: relay %s is gone: closing the circuit to %s", gone, c.RemotePeer())
				c.Close()
			}
		}
	})
}

// addrsFactory decides what the node advertises: no unusable addresses,
// its relay addresses while it is not known to be public, and at most two
// circuit addresses per relay.
func addrsFactory(filter func([]ma.Multiaddr) []ma.Multiaddr, nodeRef *atomic.Pointer[Node]) func([]ma.Multiaddr) []ma.Multiaddr {
	return func(in []ma.Multiaddr) []ma.Multiaddr {
		out := filter(in)
		if n := nodeRef.Load(); n != nil {
			n.mu.Lock()
			relay := n.relayAddrs
			public := n.reachability == network.ReachabilityPublic
			n.mu.Unlock()
			if n.bday != nil {
				out = n.bday.hide(out)
			}
			if !public {
				have := map[string]bool{}
				for _, a := range out {
					have[string(a.Bytes())] = true
				}
				for _, a := range relay {
					if !have[string(a.Bytes())] {
						out = append(out, a)
					}
				}
			}
		}
		return trimCircuitAddrs(out)
	}
}

// startRelay runs the relay service regardless of reachability (--relay=on).
func (n *Node) startRelay() error {
	opts := append(relayMetricsOptions(n.cfg.Metrics), relayv2.WithResources(n.RelayLimits().resources()), relayv2.WithACL(n.acl))
	r, err := relayv2.New(n.Host, opts...)
	if err != nil {
		return fmt.Errorf("dht: relay service: %w", err)
	}
	n.relay = r
	return nil
}

// relayCandidates sends up to num public DHT neighbours, nearest to this
// node's own key first: a private node's relays are the public nodes that
// Kademlia already makes it talk to. No relay list exists anywhere.
func relayCandidates(ctx context.Context, n *Node, num int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo, num)
	go func() {
		defer close(out)
		if n == nil {
			return
		}
		cands := n.relayNeighbours()
		if len(cands) == 0 {
			// An empty routing table: walk towards our own key to fill it.
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			n.DHT.GetClosestPeers(lctx, string(n.ID()))
			cancel()
			cands = n.relayNeighbours()
		}
		for i, ai := range cands {
			if i >= num {
				return
			}
			select {
			case out <- ai:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// relayNeighbours lists public peers known to serve as relays or found in
// the routing table (DHT servers are publicly reachable), sorted by XOR
// distance from this node's key (relaychoice.Choose, which the simulator
// also runs).
func (n *Node) relayNeighbours() []peer.AddrInfo {
	var cands []relaychoice.Candidate[peer.ID]
	direct := map[peer.ID][]ma.Multiaddr{}
	add := func(p peer.ID) {
		if _, ok := direct[p]; ok || p == n.ID() {
			return
		}
		direct[p] = nil
		for _, a := range n.Host.Peerstore().Addrs(p) {
			if !isCircuit(a) {
				direct[p] = append(direct[p], a)
			}
		}
		cands = append(cands, relaychoice.Candidate[peer.ID]{ID: p, Key: KademliaKey(p), Usable: len(direct[p]) > 0})
	}
	for _, p := range n.DHT.RoutingTable().ListPeers() {
		add(p)
	}
	for _, p := range n.Host.Network().Peers() {
		if ok, _ := n.Host.Peerstore().SupportsProtocols(p, "/libp2p/circuit/relay/0.2.0/hop"); len(ok) > 0 {
			add(p)
		}
	}
	var out []peer.AddrInfo
	for _, p := range relaychoice.Choose(KademliaKey(n.ID()), cands, -1) {
		out = append(out, peer.AddrInfo{ID: p, Addrs: direct[p]})
	}
	return out
}

// relayFirstRanker is libp2p's default dial ranking, except for relay
// addresses: a node that advertises circuit addresses is behind NAT, its
// direct addresses mostly time out, and the relayed path is the quick
// first contact that DCUtR then upgrades. So one address per relay (the
// best-ranked) is dialled at once, in parallel across relays, and the
// relays' other addresses only 300 ms later: a dead relay's addresses
// cannot hold up the living ones, and the wait for direct addresses
// (500 ms in libp2p) is gone.
func relayFirstRanker(addrs []ma.Multiaddr) []network.AddrDelay {
	res := swarm.DefaultDialRanker(addrs)
	first := map[string]bool{}
	for i := range res {
		if !isCircuit(res[i].Addr) {
			continue
		}
		relay := relayOf(res[i].Addr)
		if !first[relay] {
			first[relay] = true
			res[i].Delay = 0
		} else {
			res[i].Delay = 300 * time.Millisecond
		}
	}
	sort.SliceStable(res, func(i, j int) bool { return res[i].Delay < res[j].Delay })
	return res
}

// trimCircuitAddrs keeps at most two circuit addresses per relay (the
// first TCP and the first QUIC one, IPv4 before IPv6): a relay reachable
// over six transports would otherwise multiply every advertisement and
// every dial by six.
func trimCircuitAddrs(in []ma.Multiaddr) []ma.Multiaddr {
	type kinds struct{ tcp, quic bool }
	seen := map[string]*kinds{}
	var circ []ma.Multiaddr
	out := in[:0:0]
	for _, a := range in {
		if isCircuit(a) {
			circ = append(circ, a)
		} else {
			out = append(out, a)
		}
	}
	score := func(a ma.Multiaddr) int {
		s := 0
		if _, err := a.ValueForProtocol(ma.P_IP4); err != nil {
			s += 2
		}
		if _, err := a.ValueForProtocol(ma.P_WS); err == nil {
			s++
		}
		return s
	}
	sort.SliceStable(circ, func(i, j int) bool { return score(circ[i]) < score(circ[j]) })
	for _, a := range circ {
		r := relayOf(a)
		k := seen[r]
		if k == nil {
			k = &kinds{}
			seen[r] = k
		}
		_, err := a.ValueForProtocol(ma.P_QUIC_V1)
		if isQUIC := err == nil; isQUIC {
			if k.quic {
				continue
			}
			k.quic = true
		} else {
			if k.tcp {
				continue
			}
			k.tcp = true
		}
		out = append(out, a)
	}
	return out
}
