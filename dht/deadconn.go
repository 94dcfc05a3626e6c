package dht

import (
	"context"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	manet "github.com/multiformats/go-multiaddr/net"
	mss "github.com/multiformats/go-multistream"
)

// probeTimeout bounds how long an old connection may take to answer.
const probeTimeout = time.Second

// watchReconnects notices a peer that connects again from another IP
// address while this node still holds direct connections to its old one:
// the peer roamed, and those old connections are most likely dead (their
// far end vanished without a word, so nothing closed them). Each is probed
// with a ping on that very connection and closed if it does not answer, so
// that traffic moves to the new connection at once instead of after the
// keep-alive timeout.
func (n *Node) watchReconnects(ctx context.Context) {
	n.Host.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			if isCircuit(c.RemoteMultiaddr()) {
				return
			}
			newIP, err := manet.ToIP(c.RemoteMultiaddr())
			if err != nil {
				return
			}
			var stale []network.Conn
			for _, old := range n.Host.Network().ConnsToPeer(c.RemotePeer()) {
				if old == c || isCircuit(old.RemoteMultiaddr()) {
					continue
				}
				if ip, err := manet.ToIP(old.RemoteMultiaddr()); err == nil && !ip.Equal(newIP) {
					stale = append(stale, old)
				}
			}
			for _, old := range stale {
				if ctx.Err() != nil {
					return
				}
				n.wg.Add(1)
				go func(old network.Conn) {
					defer n.wg.Done()
					if !probeConn(ctx, old) {
						n.logf("dht: %s moved to %s; closing its dead connection from %s", c.RemotePeer(), c.RemoteMultiaddr(), old.RemoteMultiaddr())
						old.Close()
					}
				}(old)
			}
		},
	})
}

// probeConn pings over one specific connection.
func probeConn(ctx context.Context, c network.Conn) bool {
	pctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	s, err := c.NewStream(pctx)
	if err != nil {
		return false
	}
	defer s.Close()
	if dl, ok := pctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	if err := s.SetProtocol(ping.ID); err != nil {
		s.Reset()
		return false
	}
	if err := mss.SelectProtoOrFail(ping.ID, s); err != nil {
		s.Reset()
		return false
	}
	if _, err := pingStream(pctx, s); err != nil {
		s.Reset()
		return false
	}
	return true
}
