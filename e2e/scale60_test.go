package e2e

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kadlan/kadlan/e2e/netlab"
	"github.com/kadlan/kadlan/e2e/netlab/labtest"
)

// scaleListen makes scale worlds' daemons listen on IPv4 only: the lab's
// public hosts share one IPv6 /64, and libp2p's resource manager admits
// at most 8 connections at once from one /56 (and 16 new ones at once,
// then one per 5 s: rcmgr's defaults), so 60 nodes on IPv6 refuse each
// other ("rate limit exceeded") where on the Internet most would come
// from different prefixes (see README).
var scaleListen = []string{"--listen", "/ip4/0.0.0.0/tcp/4242", "--listen", "/ip4/0.0.0.0/udp/4242/quic-v1"}

// scaleIdle is --link-idle in the scale test and benchmark: short, so
// that a minute without traffic is past it and shows the quiet bound.
const scaleIdle = 30 * time.Second

// pingAny pings ip from n (5 echoes 0.5 s apart, 3 s for the last reply):
// a reply to any counts, as the first waits for lookup and link.
func pingAny(n *labtest.Node, ip string) error {
	_, err := n.Host.Lab.Exec(n.Host.NS, "ping", "-c", "5", "-i", "0.5", "-W", "3", ip)
	return err
}

// linksOf returns every node's link count on id (-1 where it does not
// answer).
func linksOf(nodes []*labtest.Node, id string) []int {
	out := make([]int, len(nodes))
	for i, nd := range nodes {
		out[i] = -1
		if x, err := network(nd, id); err == nil {
			out[i] = x.Links
		}
	}
	return out
}

// TestScale is `make test-scale` (KADLAN_SCALE=1; about 12 minutes, not
// part of make test): 60 daemons on one public network (--link-idle 30s).
// After a minute without traffic every node holds at most MinLinks +
// MaxIdleInbound links (9, from the bounds it reports); every node then
// pings 5 random others over the TAP and every ping is answered; then for
// 5 minutes 30% of the nodes per minute are killed (SIGKILL) and
// restarted while pings between running nodes continue: >= 99% of them
// are answered; finally a UDP broadcast from one node reaches the members
// it talked to.
func TestScale(t *testing.T) {
	if os.Getenv("KADLAN_SCALE") == "" {
		t.Skip("60 daemons for about 12 minutes; run with KADLAN_SCALE=1 (make test-scale)")
	}
	n := envInt("KADLAN_SCALE_N", 60)
	churnFor := time.Duration(envInt("KADLAN_SCALE_CHURN_MIN", 5)) * time.Minute
	args := append([]string{"--link-idle", scaleIdle.String()}, scaleListen...)
	started := time.Now()
	_, nodes, id, ips := scaleNet(t, n, false, args...)
	t.Logf("%d daemons up and on the network in %v", n, time.Since(started).Round(time.Second))
	x, err := network(nodes[0], id)
	if err != nil {
		t.Fatal(err)
	}
	quiet := x.Bounds.MinLinks + x.Bounds.MaxIdleInbound

	// 1. A minute without traffic: links close down to the quiet bound.
	time.Sleep(time.Minute) // the test's premise: a minute without traffic
	err = netlab.Eventually(scaleIdle, time.Second, func() error {
		for i, l := range linksOf(nodes, id) {
			if l < 0 || l > quiet {
				return fmt.Errorf("n%d holds %d links after a quiet minute, want <= %d (MinLinks + MaxIdleInbound)", i, l, quiet)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	mean, most := meanMaxInt(linksOf(nodes, id))
	t.Logf("quiet: %.1f links per node, %d at most (bound %d, full mesh %d)", mean, most, quiet, n-1)

	// 2. Every node pings 5 others.
	rng := rand.New(rand.NewPCG(13, 60))
	var wg sync.WaitGroup
	var mu sync.Mutex
	failed := 0
	for i, nd := range nodes {
		var targets []*labtest.Node
		for _, k := range rng.Perm(n) {
			if k != i && len(targets) < 5 {
				targets = append(targets, nodes[k])
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, to := range targets {
				if err := pingAny(nd, ips[to]); err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
					t.Errorf("%s cannot ping %s (%s): %v", nd.Host.Name, to.Host.Name, ips[to], err)
				}
			}
		}()
	}
	wg.Wait()
	mean, most = meanMaxInt(linksOf(nodes, id))
	t.Logf("pings: %d of %d answered; then %.1f links per node, %d at most", 5*n-failed, 5*n, mean, most)

	// 3. Churn: every 10 s, 5% of the nodes (30% a minute) are killed and
	// restarted with their state; pings between nodes that stay up for
	// the whole ping go on meanwhile. n0 (the owner, a bootstrap) stays.
	c := newChurn(nodes, args)
	stop := make(chan struct{})
	var pw sync.WaitGroup
	for g := range 6 {
		pw.Add(1)
		go func() {
			defer pw.Done()
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				a, b := r.IntN(n), r.IntN(n)
				if a == b {
					continue
				}
				c.ping(a, b, func() error { return pingAny(nodes[a], ips[nodes[b]]) })
			}
		}()
	}
	per := max(1, n*5/100)
	churnRng := rand.New(rand.NewPCG(3, 4))
	for end := time.Now().Add(churnFor); time.Now().Before(end); {
		for _, k := range churnRng.Perm(n - 1)[:per] {
			if err := c.restart(k+1, id); err != nil {
				t.Errorf("restart of n%d: %v", k+1, err)
			}
		}
		time.Sleep(10 * time.Second) // the churn's rhythm
	}
	close(stop)
	pw.Wait()
	c.wait()
	ok, counted, skipped := c.result()
	t.Logf("churn: %d restarts in %v; %d of %d pings answered (%.2f%%), %d not counted (an end restarted meanwhile)",
		c.restarts, churnFor, ok, counted, 100*float64(ok)/float64(max(1, counted)), skipped)
	if counted == 0 || float64(ok) < 0.99*float64(counted) {
		t.Errorf("under churn %d of %d pings answered, want >= 99%%", ok, counted)
	}
	for _, f := range c.failed {
		t.Logf("churn: ping %s", f)
	}
	for _, e := range c.errs {
		t.Error(e)
	}

	// 4. A broadcast from n1 reaches the members it talks to.
	from := nodes[1]
	contacts := []*labtest.Node{nodes[2], nodes[3], nodes[4]}
	for _, y := range contacts {
		if err := netlab.Eventually(20*time.Second, 200*time.Millisecond, func() error { return vping(from, ips[y]) }); err != nil {
			t.Fatal(err)
		}
	}
	got := broadcastTo(t, from, ips[from], contacts, "255.255.255.255", "9100")
	for _, y := range contacts {
		if !strings.Contains(got[y.Host.Name], "hello-255.255.255.255") {
			t.Errorf("broadcast from %s did not reach its contact %s (got %q)", from.Host.Name, y.Host.Name, got[y.Host.Name])
		}
	}
	t.Logf("broadcast: reached %d of %d contacts", len(got), len(contacts))
}

func meanMaxInt(xs []int) (float64, int) {
	s, m := 0, 0
	for _, x := range xs {
		s, m = s+x, max(m, x)
	}
	return float64(s) / float64(max(1, len(xs))), m
}

// broadcastTo sends a UDP broadcast to dst:port from n (bound to its
// address on the network, 3 times) and returns what each receiver got.
func broadcastTo(t *testing.T, n *labtest.Node, src string, receivers []*labtest.Node, dst, port string) map[string]string {
	bin := udpcast(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := map[string]string{}
	for _, y := range receivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := y.Host.Lab.Exec(y.Host.NS, bin, "recv", port, "8s")
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				got[y.Host.Name] = strings.TrimSpace(out)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // receivers bound
	for range 3 {
		if _, err := n.Host.Lab.Exec(n.Host.NS, bin, "send", dst+":"+port, "hello-"+dst, src); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	wg.Wait()
	return got
}

// churn kills and restarts nodes and counts the pings between nodes that
// stayed up meanwhile.
type churn struct {
	nodes []*labtest.Node
	args  []string

	mu       sync.Mutex
	gen      []int  // restarts per node
	down     []bool // killed, or restarted and not ok on the network yet
	restarts int
	ok, all  int
	skipped  int
	errs     []error        // restarted nodes that did not come back
	failed   []string       // the first pings that failed (the share is the goal)
	wg       sync.WaitGroup // restarted nodes being waited for
}

func newChurn(nodes []*labtest.Node, args []string) *churn {
	return &churn{nodes: nodes, args: args, gen: make([]int, len(nodes)), down: make([]bool, len(nodes))}
}

// restart kills node k, starts it again with its state and, in the
// background, waits until it is ok on id again.
func (c *churn) restart(k int, id string) error {
	c.mu.Lock()
	if c.down[k] {
		c.mu.Unlock()
		return nil // still coming back
	}
	c.down[k] = true
	c.gen[k]++
	c.restarts++
	c.mu.Unlock()
	nd := c.nodes[k]
	nd.Kill()
	if err := netlab.Eventually(10*time.Second, 20*time.Millisecond, func() error {
		if nd.Running() {
			return fmt.Errorf("n%d still running after SIGKILL", k)
		}
		return nil
	}); err != nil {
		return err
	}
	if err := nd.Node.Start(c.args...); err != nil {
		return err
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := netlab.Eventually(time.Minute, 250*time.Millisecond, func() error {
			x, err := network(nd, id)
			if err != nil {
				return err
			}
			if x.Status != "ok" || x.Links == 0 {
				return fmt.Errorf("n%d restarted: status %s, %d links", k, x.Status, x.Links)
			}
			return nil
		})
		c.mu.Lock()
		defer c.mu.Unlock()
		if err != nil {
			c.errs = append(c.errs, err)
		}
		c.down[k] = false
	}()
	return nil
}

// ping runs f (a ping from a to b) if both are up, and counts its result
// unless either was restarted meanwhile.
func (c *churn) ping(a, b int, f func() error) {
	c.mu.Lock()
	if c.down[a] || c.down[b] {
		c.mu.Unlock()
		time.Sleep(100 * time.Millisecond) // no pair up right now; try another
		return
	}
	ga, gb := c.gen[a], c.gen[b]
	c.mu.Unlock()
	err := f()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen[a] != ga || c.gen[b] != gb {
		c.skipped++
		return
	}
	c.all++
	if err == nil {
		c.ok++
	} else if len(c.failed) < 10 {
		c.failed = append(c.failed, fmt.Sprintf("n%d -> n%d: %v", a, b, err))
	}
}

func (c *churn) wait() { c.wg.Wait() }

func (c *churn) result() (ok, counted, skipped int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ok, c.all, c.skipped
}
