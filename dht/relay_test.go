package dht

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	ma "github.com/multiformats/go-multiaddr"
)

// newNode starts one kadlan node on loopback; mod adjusts its config.
func newNode(t *testing.T, mod func(*Config)) *Node {
	t.Helper()
	k, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "key"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Key:           k,
		ListenAddrs:   []string{"/ip4/127.0.0.1/tcp/0"},
		Reachability:  "public",
		AllowLoopback: true,
		Logf:          t.Logf,
		// The machine's interfaces are not the test's: an address
		// appearing on a shared machine (another test's veth, a DHCP
		// renewal) would make every node close its connections in the
		// middle of a lookup.
		IgnoreInterface: func(string) bool { return true },
	}
	if mod != nil {
		mod(&cfg)
	}
	nd, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nd.Close() })
	return nd
}

// newStranger is an attacker's host: stock libp2p on loopback, nothing of
// kadlan's.
func newStranger(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// relayNode is a kadlan node running the relay service; kadlan nodes that
// use it are DHT clients (as behind NAT), so they do not serve the DHT
// protocol and must be recognised by NodeProtocol.
func relayNode(t *testing.T) *Node {
	return newNode(t, func(c *Config) { c.Relay = "on" })
}

func clientNode(t *testing.T) *Node {
	return newNode(t, func(c *Config) { c.Relay = "off"; c.DHTMode = "client" })
}

func reserve(h host.Host, relay *Node) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := client.Reserve(ctx, h, peer.AddrInfo{ID: relay.ID(), Addrs: relay.Host.Addrs()})
	return err
}

func reservationStatus(t *testing.T, err error) pbv2.Status {
	t.Helper()
	var re client.ReservationError
	if !errors.As(err, &re) {
		t.Fatalf("want a ReservationError, got %v", err)
	}
	return re.Status
}

// dialVia connects from h to dest through relay's circuit only.
func dialVia(h host.Host, relay *Node, dest peer.ID) (network.Conn, error) {
	circ, err := ma.NewMultiaddr("/p2p/" + relay.ID().String() + "/p2p-circuit")
	if err != nil {
		return nil, err
	}
	var addrs []ma.Multiaddr
	for _, a := range relay.Host.Addrs() {
		addrs = append(addrs, a.Encapsulate(circ))
	}
	h.Peerstore().AddAddrs(relay.ID(), relay.Host.Addrs(), time.Hour)
	h.Peerstore().ClearAddrs(dest)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Connect(ctx, peer.AddrInfo{ID: dest, Addrs: addrs}); err != nil {
		return nil, err
	}
	for _, c := range h.Network().ConnsToPeer(dest) {
		if isCircuit(c.RemoteMultiaddr()) {
			return c, nil
		}
	}
	return nil, errors.New("connected, but not through the relay")
}

// TestRelayServesKadlanNodesOnly: a stranger (stock libp2p, no kadlan
// protocol) is refused a reservation and cannot open a circuit, even to a
// kadlan node that holds one; a kadlan node behind NAT (a DHT client) gets
// a reservation and other kadlan nodes reach it through the relay; and two
// strangers cannot relay between themselves.
func TestRelayServesKadlanNodesOnly(t *testing.T) {
	relay := relayNode(t)

	stranger := newStranger(t)
	err := reserve(stranger, relay)
	if err == nil {
		t.Fatal("a stranger got a relay reservation")
	}
	if st := reservationStatus(t, err); st != pbv2.Status_PERMISSION_DENIED {
		t.Fatalf("stranger's reservation: status %v, want PERMISSION_DENIED", st)
	}

	member := clientNode(t)
	if member.DHTMode() != "client" {
		t.Fatalf("member is a DHT %s; the test needs a client", member.DHTMode())
	}
	if err := reserve(member.Host, relay); err != nil {
		t.Fatalf("a kadlan node (DHT client) was refused a reservation: %v", err)
	}

	// A stranger cannot reach the member through the relay.
	refusedBefore := relay.RelayStatus().RefusedCircuits
	other := newStranger(t)
	if c, err := dialVia(other, relay, member.ID()); err == nil {
		t.Fatalf("a stranger opened a circuit to a kadlan node: %s", c.RemoteMultiaddr())
	}
	if got := relay.RelayStatus().RefusedCircuits; got <= refusedBefore {
		t.Fatalf("refused circuits %d -> %d: the stranger's circuit was not refused by the ACL", refusedBefore, got)
	}
	// Nor reach the other stranger (which holds no reservation).
	if _, err := dialVia(other, relay, stranger.ID()); err == nil {
		t.Fatal("two strangers relayed through a kadlan relay")
	}

	// Another kadlan node does reach the member through the relay.
	peerNode := clientNode(t)
	c, err := dialVia(peerNode.Host, relay, member.ID())
	if err != nil {
		t.Fatalf("kadlan node could not reach a kadlan node through the relay: %v", err)
	}
	t.Logf("kadlan circuit: %s", c.RemoteMultiaddr())
	// And a kadlan node cannot reach a peer that holds no reservation.
	if _, err := dialVia(peerNode.Host, relay, stranger.ID()); err == nil {
		t.Fatal("a circuit was opened to a peer without a reservation")
	}

	st := relay.RelayStatus()
	if st.RefusedReservations < 1 || st.AllowedReservations < 1 || st.AllowedCircuits < 1 {
		t.Fatalf("relay status counters: %+v", st)
	}
}

// TestRelayPerIPShare: peers that claim kadlan's protocol (any attacker can
// register the handler) still get only ReservationsPerIP slots from one
// IP; all test hosts share 127.0.0.1.
func TestRelayPerIPShare(t *testing.T) {
	relay := relayNode(t)
	const perIP = 4
	for i := 0; i <= perIP; i++ {
		faker := newStranger(t)
		faker.SetStreamHandler(NodeProtocol, handleNodeProtocol)
		err := reserve(faker, relay)
		if i < perIP {
			if err != nil {
				t.Fatalf("reservation %d of %d from one IP refused: %v", i+1, perIP, err)
			}
			continue
		}
		if err == nil {
			t.Fatalf("reservation %d from one IP granted; the per-IP share is %d", i+1, perIP)
		}
		if st := reservationStatus(t, err); st != pbv2.Status_RESERVATION_REFUSED {
			t.Fatalf("reservation %d: status %v, want RESERVATION_REFUSED", i+1, st)
		}
	}
	if got := relay.RelayStatus().Limits.ReservationsPerIP; got != perIP {
		t.Fatalf("status says %d reservations per IP, want %d", got, perIP)
	}
}

// TestRelayStrangerCircuits: a kadlan node that is no member of a network
// of the relay's may have CircuitsPerStranger circuits open through it; a
// member gets more (CircuitsPerPeer).
func TestRelayStrangerCircuits(t *testing.T) {
	var member atomic.Bool
	relay := newNode(t, func(c *Config) {
		c.Relay = "on"
		c.RelayLimits.CircuitsPerStranger = 2
		c.IsMember = func(peer.ID) bool { return member.Load() }
	})
	var dests []*Node
	for range 3 {
		d := clientNode(t)
		if err := reserve(d.Host, relay); err != nil {
			t.Fatal(err)
		}
		dests = append(dests, d)
	}
	src := clientNode(t)
	for i, d := range dests[:2] {
		if _, err := dialVia(src.Host, relay, d.ID()); err != nil {
			t.Fatalf("circuit %d of a stranger refused: %v", i+1, err)
		}
	}
	if _, err := dialVia(src.Host, relay, dests[2].ID()); err == nil {
		t.Fatal("a stranger's third circuit was opened (limit 2)")
	}
	if n := relay.RelayStatus().RefusedStranger; n != 1 {
		t.Fatalf("refused_stranger %d, want 1", n)
	}
	member.Store(true)
	if sw, ok := src.Host.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(dests[2].ID()) // the refused dial left a back-off
	}
	if _, err := dialVia(src.Host, relay, dests[2].ID()); err != nil {
		t.Fatalf("a member's third circuit refused: %v", err)
	}
}
