package dht

import (
	"context"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	kaddht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/multiformats/go-multihash"
)

// TestLANDHTWithoutPublicNodes: nodes that are not publicly reachable (a
// home LAN, an intranet) serve no WAN DHT, so its routing tables stay
// empty; the LAN DHT fills from the private addresses they reach each
// other on, and providers announced by one are found by another.
func TestLANDHTWithoutPublicNodes(t *testing.T) {
	var nodes []*Node
	for range 3 {
		// "auto" on loopback: not public, so the WAN DHT is a client.
		// (Forced "private" would do too, but then libp2p never closes its
		// AutoNAT dialer host, which goleak reports.)
		nodes = append(nodes, newNode(t, func(c *Config) {
			c.Reachability = "auto"
			c.DHTOptions = []kaddht.Option{kaddht.NamespacedValidator("t", anyRecord{})}
		}))
	}
	for _, n := range nodes[1:] {
		connect(t, n.Host, nodes[0])
	}
	for _, n := range nodes {
		waitFor(t, "LAN routing tables", func() bool { return n.LANRoutingTable() >= 1 })
		if got := n.DHT.RoutingTable().Size(); got != 0 {
			t.Errorf("WAN routing table holds %d peers: no node here is public", got)
		}
		if n.DHTMode() != "client" {
			t.Errorf("WAN DHT mode %s, want client for a private node", n.DHTMode())
		}
	}
	mh, _ := multihash.Sum([]byte("kadlan lan test"), multihash.SHA2_256, -1)
	c := cid.NewCidV1(cid.Raw, mh)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := nodes[1].Provide(ctx, c); err != nil {
		t.Fatalf("provide on the LAN: %v", err)
	}
	found := false
	for ai := range nodes[2].FindProviders(ctx, c, 4) {
		if ai.ID == nodes[1].ID() {
			found = true
		}
	}
	if !found {
		t.Fatalf("node 2 did not find node 1 as provider over the LAN DHT")
	}
	// A poll (GetValueQuorum) asks the WAN DHT first and falls back to
	// the LAN's when that fails, as it does here.
	if err := nodes[1].PutValue(ctx, "/t/poll", []byte("v1")); err != nil {
		t.Fatalf("put on the LAN: %v", err)
	}
	v, err := nodes[2].GetValueQuorum(ctx, "/t/poll", 1)
	if err != nil || string(v) != "v1" {
		t.Fatalf("poll over the LAN DHT: %q, %v", v, err)
	}
	if _, err := nodes[2].GetValueQuorum(ctx, "/t/none", 1); err == nil {
		t.Fatal("poll of a key no one holds succeeded")
	}
}

// anyRecord is a record validator that takes any value (the first wins).
type anyRecord struct{}

func (anyRecord) Validate(string, []byte) error        { return nil }
func (anyRecord) Select(string, [][]byte) (int, error) { return 0, nil }
