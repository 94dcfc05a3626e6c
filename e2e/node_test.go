// Package e2e starts real kadlan daemons in network namespaces (see
// e2e/netlab) and checks what users would see. Run as root; elsewhere the
// tests skip with a message.
package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/e2e/netlab"
	"github.com/kadlan/kadlan/e2e/netlab/labtest"
)

// findBound is how long one `kadlan find` may take in these small labs.
const findBound = 10 * time.Second

func waitJoined(t *testing.T, n *labtest.Node, minRT int) api.Status {
	t.Helper()
	var st api.Status
	err := netlab.Eventually(30*time.Second, 200*time.Millisecond, func() error {
		if err := n.JSON(&st, "status"); err != nil {
			return err
		}
		if st.RoutingTable < minRT {
			return fmt.Errorf("%s: routing table has %d peers, want >= %d (bootstrap %s)", n.Host.Name, st.RoutingTable, minRT, st.Bootstrap)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// findAll has every node in from look up every node in to with the CLI,
// concurrently per source node, and fails on any miss or slow lookup.
func findAll(t *testing.T, from, to []*labtest.Node) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(from)*len(to))
	start := time.Now()
	for _, a := range from {
		wg.Add(1)
		go func(a *labtest.Node) {
			defer wg.Done()
			for _, b := range to {
				if a == b {
					continue
				}
				var res api.FindResult
				err := netlab.Eventually(findBound, 250*time.Millisecond, func() error {
					return a.JSON(&res, "find", "--timeout", "5s", b.Address)
				})
				if err != nil {
					errs <- fmt.Errorf("%s could not find %s: %v", a.Host.Name, b.Host.Name, err)
					continue
				}
				if res.Address != b.Address || len(res.Addrs) == 0 {
					errs <- fmt.Errorf("%s found %s with a wrong answer: %+v", a.Host.Name, b.Host.Name, res)
				}
			}
		}(a)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d nodes found %d nodes each in %v", len(from), len(to), time.Since(start).Round(time.Millisecond))
}

// publicNet starts a bootstrap node and n more public nodes bootstrapping
// from it.
func publicNet(t *testing.T, lab *labtest.Lab, n int) (boot *labtest.Node, nodes []*labtest.Node) {
	boot = lab.PublicHost("boot").StartNode(t)
	for i := 0; i < n; i++ {
		nodes = append(nodes, lab.PublicHost(fmt.Sprintf("pub%d", i)).StartNode(t, "--bootstrap", boot.BootstrapAddr()))
	}
	return boot, nodes
}

// TestFindEveryone: one bootstrap node and ten nodes on the public segment;
// every node finds every other, and routing tables fill.
func TestFindEveryone(t *testing.T) {
	lab := labtest.New(t)
	boot, nodes := publicNet(t, lab, 10)
	all := append([]*labtest.Node{boot}, nodes...)
	for _, n := range all {
		st := waitJoined(t, n, 5)
		if st.Reachability != "public" || st.DHTMode != "server" {
			t.Errorf("%s: reachability %s, dht %s; want public server", n.Host.Name, st.Reachability, st.DHTMode)
		}
	}
	findAll(t, all, all)
	// Ping works by address and reports a direct path on a flat network.
	var pr api.PingResult
	if err := nodes[3].JSON(&pr, "ping", "-c", "2", "-i", "100ms", nodes[7].Address); err != nil {
		t.Fatal(err)
	}
	if pr.Received != 2 || pr.Path != "direct" || len(pr.RTTms) != 2 {
		t.Fatalf("ping: %+v", pr)
	}
	var peers []api.Peer
	if err := nodes[3].JSON(&peers, "peers"); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range peers {
		if p.Address == nodes[7].Address {
			found = p.Path == "direct" && len(p.Addrs) > 0
		}
	}
	if !found {
		t.Fatalf("peers does not list %s as a direct peer: %+v", nodes[7].Address, peers)
	}
}

// TestRootless: the bootstrap node dies (SIGKILL); a newcomer that knows
// any other member joins, and everyone still finds everyone.
func TestRootless(t *testing.T) {
	lab := labtest.New(t)
	boot, nodes := publicNet(t, lab, 5)
	for _, n := range append([]*labtest.Node{boot}, nodes...) {
		waitJoined(t, n, 3)
	}
	boot.Kill()
	late := lab.PublicHost("late").StartNode(t, "--bootstrap", nodes[2].BootstrapAddr())
	waitJoined(t, late, 3)
	all := append([]*labtest.Node{late}, nodes...)
	findAll(t, all, all)
	var st api.Status
	if err := late.JSON(&st, "status"); err != nil || st.Bootstrap != "joined" {
		t.Fatalf("newcomer status %+v, %v", st, err)
	}
}

// TestRestartFromCache: a node stopped and started again with no bootstrap
// flag rejoins from its peer cache, with the same address.
func TestRestartFromCache(t *testing.T) {
	lab := labtest.New(t)
	boot, nodes := publicNet(t, lab, 3)
	for _, n := range append([]*labtest.Node{boot}, nodes...) {
		waitJoined(t, n, 2)
	}
	n := nodes[1]
	before := n.Address
	// Let the cache be written with the routing table it has now.
	time.Sleep(500 * time.Millisecond)
	n.Stop()
	boot.Kill() // the restarted node must not rely on its original bootstrap peer
	n.Start(t)  // no --bootstrap, no peers file
	if n.Address != before {
		t.Fatalf("address changed across restart: %s -> %s", before, n.Address)
	}
	st := waitJoined(t, n, 1)
	if st.Bootstrap != "joined" {
		t.Fatalf("bootstrap state %q after restart", st.Bootstrap)
	}
	findAll(t, []*labtest.Node{n}, []*labtest.Node{nodes[0], nodes[2]})
	findAll(t, []*labtest.Node{nodes[0], nodes[2]}, []*labtest.Node{n})
}

// TestMDNSJoin: two nodes on one LAN segment, started with --mdns and no
// bootstrap peer at all, find each other and join. (mDNS runs only inside
// the lab's namespaces.)
func TestMDNSJoin(t *testing.T) {
	lab := labtest.New(t)
	a := lab.PublicHost("lan0").StartNode(t, "--mdns")
	b := lab.PublicHost("lan1").StartNode(t, "--mdns")
	waitJoined(t, a, 1)
	waitJoined(t, b, 1)
	findAll(t, []*labtest.Node{a, b}, []*labtest.Node{a, b})
}

// TestJoinsWhenAPeerAppears: a node started with no peer known keeps
// running, says how to give it one, and joins as soon as a line appears in
// its peers file.
func TestJoinsWhenAPeerAppears(t *testing.T) {
	lab := labtest.New(t)
	other := lab.PublicHost("other").StartNode(t)
	pf := filepath.Join(t.TempDir(), "community.peers")
	if err := os.WriteFile(pf, []byte("# kadlan community peers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lonely := lab.PublicHost("lonely").StartNode(t, "--peers-file", pf)
	time.Sleep(2500 * time.Millisecond)
	var st api.Status
	if err := lonely.JSON(&st, "status"); err != nil {
		t.Fatal(err)
	}
	if st.Bootstrap != "waiting" || st.RoutingTable != 0 {
		t.Fatalf("with no peer known: %+v", st)
	}
	if b, _ := os.ReadFile(lonely.Log); !strings.Contains(string(b), "--bootstrap") {
		t.Errorf("the daemon did not say how to give it a peer; log:\n%s", b)
	}
	f, _ := os.OpenFile(pf, os.O_APPEND|os.O_WRONLY, 0)
	fmt.Fprintln(f, other.BootstrapAddr()+"  # added while the node waits")
	f.Close()
	waitJoined(t, lonely, 1)
	findAll(t, []*labtest.Node{lonely}, []*labtest.Node{other})
}
