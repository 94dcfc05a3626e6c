package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/e2e/netlab"
	"github.com/kadlan/kadlan/e2e/netlab/labtest"
)

// onDemandNet starts n public nodes (see scaleNet) with a short --link-idle, puts them all on one public network and waits
// until it is ok everywhere. It returns the nodes and the network.
func onDemandNet(t *testing.T, n int, idle string) ([]*labtest.Node, string, map[*labtest.Node]string) {
	_, nodes, id, ips := scaleNet(t, n, false, "--link-idle", idle)
	return nodes, id, ips
}

// natMix are the NAT classes of scaleNet's nodes behind NATs, in turn.
var natMix = []netlab.NAT{netlab.EIM, netlab.FullCone, netlab.CGNAT, netlab.Symmetric, netlab.AddressRestricted}

// scaleNet starts n nodes in a new lab with args: public hosts, and with
// nat every third behind a router of the NAT zoo of its own (natMix in
// turn; CGNAT in front of a home EIM NAT). Each bootstraps from one of the
// first five public nodes (one node would meet every newcomer's dials at
// once); the first creates a public network that all join; scaleNet waits
// until it is ok everywhere and returns the lab, the nodes, the network
// and each node's IPv4 address on it.
func scaleNet(t *testing.T, n int, nat bool, args ...string) (*labtest.Lab, []*labtest.Node, string, map[*labtest.Node]string) {
	lab := labtest.New(t)
	var nodes []*labtest.Node
	nodes = append(nodes, lab.PublicHost("n0").StartNode(t, args...))
	var boots []string // the first five public nodes, in turn
	for i := 1; i < n; i++ {
		if last := nodes[len(nodes)-1]; len(boots) < 5 && last.Host.IPv6 != "" { // public
			boots = append(boots, last.BootstrapAddr())
		}
		boot := append([]string{"--bootstrap", boots[i%len(boots)]}, args...)
		name := fmt.Sprintf("n%d", i)
		if !nat || i%3 != 2 {
			nodes = append(nodes, lab.PublicHost(name).StartNode(t, boot...))
			continue
		}
		kind := natMix[(i/3)%len(natMix)]
		r := lab.NATRouter(fmt.Sprintf("r%d", i), kind, nil)
		if kind == netlab.CGNAT {
			r = lab.NATRouter(fmt.Sprintf("h%d", i), netlab.EIM, r)
		}
		nodes = append(nodes, r.PrivateHost(name).StartNode(t, boot...))
	}
	id := createNet(t, nodes[0], "--name", "city", "--ipv4", "10.80.0.0/16")
	for _, nd := range nodes[1:] {
		if _, err := nd.CLI("join", id); err != nil {
			t.Fatal(err)
		}
	}
	ips := map[*labtest.Node]string{}
	joined := time.Now()
	within := lanBound + time.Duration(n)*time.Second // 60 nodes on 2 shared cores join slowly
	for _, nd := range nodes {
		var x api.Network
		err := netlab.Eventually(within-time.Since(joined), 250*time.Millisecond, func() error {
			var err error
			if x, err = network(nd, id); err != nil {
				return err
			}
			if x.Status != "ok" || x.Links < 1 || len(x.IPv4) == 0 {
				return fmt.Errorf("%s, %v after the joins: status %s, %d links, ipv4 %v; want ok with a link", nd.Host.Name, time.Since(joined).Round(time.Second), x.Status, x.Links, x.IPv4)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		ips[nd] = addrOf(x.IPv4[0])
	}
	t.Logf("%d nodes ok on the network %v after the joins", n, time.Since(joined).Round(time.Second))
	return lab, nodes, id, ips
}

type engineStats struct {
	IdleClosed     uint64 `json:"idle_closed"`
	PendingHeld    uint64 `json:"pending_held"`
	PendingDropped uint64 `json:"pending_dropped"`
}

// TestLinksOnDemand: twelve nodes on one network do not link to every
// other member: each dials a few seed links (so a broadcast reaches
// someone), links to the members it sends to when it sends, and closes
// those after --link-idle. Every node pings three others it never talked
// to; every ping is answered. After the idle time the average node is
// back to its seed links (at most 2 x MinLinks: its own and those others
// chose), well below the 11 of a full mesh.
func TestLinksOnDemand(t *testing.T) {
	const n, idle = 12, 3 * time.Second
	nodes, id, ips := onDemandNet(t, n, idle.String())
	minLinks := 0
	for _, nd := range nodes {
		x, err := network(nd, id)
		if err != nil {
			t.Fatal(err)
		}
		if x.Bounds == nil || !x.Bounds.OnDemand {
			t.Fatalf("%s: bounds %+v, want links on demand", nd.Host.Name, x.Bounds)
		}
		minLinks = x.Bounds.MinLinks
	}
	avgLinks := func() (float64, int) {
		total, most := 0, 0
		for _, nd := range nodes {
			x, err := network(nd, id)
			if err != nil {
				t.Fatal(err)
			}
			total += x.Links
			most = max(most, x.Links)
		}
		return float64(total) / float64(len(nodes)), most
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var wg sync.WaitGroup
	for _, nd := range nodes {
		targets := rng.Perm(n)[:4]
		wg.Add(1)
		go func() { // nodes ping at once, each its targets in turn
			defer wg.Done()
			for _, k := range targets {
				to := nodes[k]
				if to == nd {
					continue
				}
				// The first echo waits for the lookup and the link (and
				// the kernel's next ARP request): a reply to any of 5
				// counts.
				if _, err := nd.Host.Lab.Exec(nd.Host.NS, "ping", "-c", "5", "-i", "0.5", "-W", "3", ips[to]); err != nil {
					t.Errorf("%s cannot ping %s (%s): %v", nd.Host.Name, to.Host.Name, ips[to], err)
				}
			}
		}()
	}
	wg.Wait()
	during, most := avgLinks()
	t.Logf("after the pings: %.1f links per node on average, %d at most (full mesh: %d)", during, most, n-1)
	// Idle: on-demand links close, seeds stay.
	err := netlab.Eventually(idle+30*time.Second, 500*time.Millisecond, func() error {
		avg, most := avgLinks()
		if avg > float64(2*minLinks) {
			return fmt.Errorf("%.1f links per node on average (at most %d), want <= %d once idle", avg, most, 2*minLinks)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	var closed uint64
	for _, nd := range nodes {
		x, _ := network(nd, id)
		var st engineStats
		json.Unmarshal(x.Engine, &st)
		closed += st.IdleClosed
	}
	after, most := avgLinks()
	t.Logf("idle: %.1f links per node on average, %d at most; %d links closed for idleness", after, most, closed)
	if closed == 0 {
		t.Error("no link was closed for idleness")
	}
}
