package daemon

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/overlay/netrec"
)

// TestUnicastToUnknownMAC: links on demand by MAC. Three daemons on a
// public network with links on demand, each keeping one member besides
// the owner (--max-members 1), so that A knows the owner only. A's host
// sends unicast frames to B's derived MAC, with no ARP before: A holds
// them, looks B up by its MAC record, links to it, and the frames arrive
// on B's device.
func TestUnicastToUnknownMAC(t *testing.T) {
	testConfigs[t] = func(c *Config) { c.LinkIdle, c.MaxKnownMembers = time.Minute, 1 }
	owner := startDaemon(t)
	boot := owner.d.Node.ShareableAddrs()[0]
	a := startDaemon(t, boot)
	b := startDaemon(t, boot)
	delete(testConfigs, t)

	var created api.NetworkCreated
	owner.call(t, "POST", "/v1/networks/create", api.NetworkCreateRequest{Name: "mac", IPv4: "10.6.0.0/24"}, &created)
	id, err := netrec.ParseNetworkID(created.Network)
	if err != nil {
		t.Fatal(err)
	}
	a.call(t, "POST", "/v1/networks/join", api.NetworkRequest{Network: created.Network}, nil)
	an := waitStatus(t, a, created.Network, "ok", 1)
	b.call(t, "POST", "/v1/networks/join", api.NetworkRequest{Network: created.Network}, nil)
	bn := waitStatus(t, b, created.Network, "ok", 1)
	bID, bMAC := b.d.Node.ID(), mustMAC(t, bn.MAC)
	if bMAC != netrec.MemberMAC(id, bID) {
		t.Fatalf("B's MAC %v is not its derived one", bMAC)
	}

	// B's MAC record is in the DHT (the owner finds it).
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := owner.d.Node.GetFirstValue(ctx, netrec.MACKey(id, bMAC))
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("B's MAC record not found in the DHT: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A knows no record of B: the bound keeps the owner only.
	aj, err := a.d.nets.resolve(created.Network)
	if err != nil {
		t.Fatal(err)
	}
	knowsB := func() bool {
		aj.mu.Lock()
		defer aj.mu.Unlock()
		_, ok := aj.m.Member(bID)
		return ok
	}
	for deadline := time.Now().Add(30 * time.Second); knowsB(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("A keeps knowing B (links %d): the test needs it not to", aj.linkCount())
		}
	}
	lookups := a.d.nets.walks.macLookups.Load()

	ak, bk := a.kernelOf(an), b.kernelOf(bn)
	payload := []byte("to a MAC nobody told me about")
	got := arrival(bk, payload)
	frame := udpFrame(bMAC, mustMAC(t, an.MAC), netip.MustParsePrefix(an.IPv4[0]).Addr(), netip.MustParsePrefix(bn.IPv4[0]).Addr(), payload)
	// As a host would repeat (a retransmission every second), until one
	// arrives.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	timeout := time.After(30 * time.Second)
	for arrived := false; !arrived; {
		if _, err := ak.Write(frame); err != nil {
			t.Fatal(err)
		}
		select {
		case f := <-got:
			if !bytes.Equal(f, frame) {
				t.Fatalf("frame changed in transit:\n got %x\nwant %x", f, frame)
			}
			arrived = true
		case <-tick.C:
		case <-timeout:
			t.Fatal("no frame to B's MAC arrived on B's device")
		}
	}
	if n := a.d.nets.walks.macLookups.Load() - lookups; n == 0 {
		t.Fatal("the frame arrived without a MAC lookup")
	}
	c := aj.engine().Counters()
	if c.UnicastUnresolved == 0 || c.DropUnknownDest != 0 {
		t.Fatalf("A's counters %+v: want the frames to an unknown MAC held, none dropped", c)
	}
	if !knowsB() {
		t.Fatal("A forgot B while linked to it")
	}
}
