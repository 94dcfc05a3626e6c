package dht

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// Relay keep-alive timing.
const (
	keepaliveEvery   = 5 * time.Second
	keepaliveTimeout = 3 * time.Second
)

// keepRelaysAlive pings, every few seconds, each relay this node depends
// on: the relays holding its reservations and those carrying its relayed
// connections. A relay that died without closing its connections (a crash,
// a cable pulled; QUIC sends nothing then) is noticed within seconds instead
// of at the 30 s idle timeout: its connection is closed, AutoRelay reserves
// elsewhere and watchRelayDeaths drops the circuits through it. The pings
// also keep NAT mappings towards the relays fresh.
func (n *Node) keepRelaysAlive(ctx context.Context) {
	every(ctx, keepaliveEvery, func() {
		var wg sync.WaitGroup
		for _, r := range n.relaysInUse() {
			wg.Add(1)
			go func(r peer.ID) {
				defer wg.Done()
				n.probe(ctx, r)
			}(r)
		}
		wg.Wait()
	})
}

// every calls f every d until ctx ends, on the caller's goroutine.
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f()
	}
}

func (n *Node) relaysInUse() []peer.ID {
	set := map[peer.ID]bool{}
	n.mu.Lock()
	for _, a := range n.relayAddrs {
		if id, err := peer.Decode(relayOf(a)); err == nil {
			set[id] = true
		}
	}
	n.mu.Unlock()
	for _, c := range n.Host.Network().Conns() {
		if isCircuit(c.RemoteMultiaddr()) {
			if id, err := peer.Decode(relayOf(c.RemoteMultiaddr())); err == nil {
				set[id] = true
			}
		}
	}
	out := make([]peer.ID, 0, len(set))
	for id := range set {
		out = append(out, id)
	}
	return out
}

// probe pings r over its current direct connection and closes that
// connection when r does not answer.
func (n *Node) probe(ctx context.Context, r peer.ID) {
	if n.Host.Network().Connectedness(r) != network.Connected {
		return
	}
	c, err := n.pingConnected(ctx, r, keepaliveTimeout)
	if err == nil || c == nil || ctx.Err() != nil {
		return
	}
	n.logf("dht: relay %s does not answer: closing its connection", r)
	c.Close()
}

// pingConnected pings r over a connection it already has, within wait. On
// failure it returns the connection the ping went over (nil when no stream
// could be opened on one).
func (n *Node) pingConnected(ctx context.Context, r peer.ID, wait time.Duration) (network.Conn, error) {
	pctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	s, err := n.Host.NewStream(network.WithNoDial(pctx, "relay probe"), r, ping.ID)
	if err != nil {
		return nil, err
	}
	if _, err := pingStream(pctx, s); err != nil {
		s.Reset()
		return s.Conn(), err
	}
	s.Close()
	return nil, nil
}
