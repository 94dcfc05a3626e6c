package dht

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// leanStranger is an attacker's host that only dials: TCP, no listener, no
// relay.
func leanStranger(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.NoTransports, libp2p.Transport(tcp.NewTCPTransport),
		libp2p.NoListenAddrs, libp2p.DisableRelay(), libp2p.DisableMetrics(),
		libp2p.ResourceManager(&network.NullResourceManager{}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func TestDefaultConnLimitsAreOrdered(t *testing.T) {
	cl := DefaultConnLimits
	if err := cl.check(); err != nil {
		t.Fatal(err)
	}
	sys := resourceLimits(cl).ToPartialLimitConfig().System
	if int(sys.ConnsInbound) < cl.HighWater+connLimitMargin {
		t.Fatalf("resource manager admits %d inbound connections; the connection manager trims only above %d", sys.ConnsInbound, cl.HighWater)
	}
	if int(sys.Conns) < cl.HighWater+connLimitMargin || int(sys.FD) < int(sys.Conns) {
		t.Fatalf("system limits %+v too tight for high water %d", sys, cl.HighWater)
	}
	bad := cl
	bad.HighWater = cl.Inbound
	if err := bad.check(); err == nil {
		t.Fatal("high water at the inbound limit accepted")
	}
}

// TestIdleStrangersAreTrimmedFirst: more idle stranger connections than
// the high water mark are all admitted (the inbound limit is above it),
// trimming brings the node back to its low water mark, a protected member
// link survives, and a new peer still connects.
func TestIdleStrangersAreTrimmedFirst(t *testing.T) {
	// The production marks, with a grace period short enough for a test.
	nd := newNode(t, func(c *Config) { c.ConnLimits.GracePeriod = time.Millisecond })
	cl := nd.ConnLimits()
	if cl.HighWater != DefaultConnLimits.HighWater || cl.Inbound != DefaultConnLimits.Inbound {
		t.Fatalf("limits %+v are not the defaults", cl)
	}
	target := peer.AddrInfo{ID: nd.ID(), Addrs: nd.Host.Addrs()}
	dial := func(h host.Host) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return h.Connect(ctx, target)
	}

	// Member links: as idle as the strangers, so only the protection
	// keeps them (8 of them, so an unprotected set would not survive a
	// trim of more than half the connections by chance).
	var members []host.Host
	var memberConns []network.Conn
	for i := 0; i < 8; i++ {
		m := leanStranger(t)
		if err := dial(m); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the member's connection at the node", func() bool {
			return nd.Host.Network().Connectedness(m.ID()) == network.Connected
		})
		nd.ProtectLink(m.ID(), "net-test")
		members = append(members, m)
		memberConns = append(memberConns, m.Network().ConnsToPeer(nd.ID())[0])
	}

	strangers := cl.HighWater + 16
	for i := 0; i < strangers; i++ {
		if err := dial(leanStranger(t)); err != nil {
			t.Fatalf("idle stranger %d of %d refused (high water %d): %v", i+1, strangers, cl.HighWater, err)
		}
	}
	// Every dial returned after identify, so the node has registered
	// every connection. (Its own trimming may already have begun: it
	// checks every 10 s once above high water.)
	time.Sleep(2 * cl.GracePeriod) // past the (1 ms) grace period

	nd.connMgr.TrimOpenConns(context.Background())
	waitFor(t, "trimming down to the low water mark", func() bool {
		return len(nd.Host.Network().Conns()) <= cl.LowWater+len(members)
	})
	for i, m := range members {
		if nd.Host.Network().Connectedness(m.ID()) != network.Connected || memberConns[i].IsClosed() {
			t.Fatalf("protected member link %d was trimmed", i)
		}
	}

	newcomer := leanStranger(t)
	if err := dial(newcomer); err != nil {
		t.Fatalf("a new peer was refused after trimming: %v", err)
	}
	if nd.UnprotectLink(members[0].ID(), "net-test") {
		t.Fatal("a member is still protected after its only tag was removed")
	}
	t.Logf("%d strangers: %d stranger connections left after trimming (low water %d, high water %d, inbound limit %d)",
		strangers, len(nd.Host.Network().Conns())-1-len(members), cl.LowWater, cl.HighWater, cl.Inbound)
}
