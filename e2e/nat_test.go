package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/e2e/netlab"
	"github.com/kadlan/kadlan/e2e/netlab/labtest"
)

// natWorld is a public segment with a bootstrap node and four public nodes
// (libp2p advertises a NATed node's observed address only after four
// distinct observers saw it), ready for NATed hosts to join.
type natWorld struct {
	lab    *labtest.Lab
	boot   *labtest.Node
	pubs   []*labtest.Node
	byAddr map[string]string // address -> host name, for messages
}

func newNATWorld(t *testing.T, pubArgs ...string) *natWorld {
	return newNATWorldWith(t, netlab.Options{}, pubArgs...)
}

// newNATWorldWith is newNATWorld in a lab built with opts (say, an
// Internet with latency).
func newNATWorldWith(t *testing.T, opts netlab.Options, pubArgs ...string) *natWorld {
	return newNATWorldIn(t, labtest.NewWith(t, opts), pubArgs...)
}

// newNATWorldIn builds the public segment's nodes in an existing lab.
func newNATWorldIn(t *testing.T, lab *labtest.Lab, pubArgs ...string) *natWorld {
	w := &natWorld{lab: lab, byAddr: map[string]string{}}
	w.boot = lab.PublicHost("boot").StartNode(t, pubArgs...)
	for i := 0; i < 4; i++ {
		args := append([]string{"--bootstrap", w.boot.BootstrapAddr()}, pubArgs...)
		w.pubs = append(w.pubs, lab.PublicHost(fmt.Sprintf("pub%d", i)).StartNode(t, args...))
	}
	for _, n := range append([]*labtest.Node{w.boot}, w.pubs...) {
		waitJoined(t, n, 3)
		w.byAddr[n.Address] = n.Host.Name
	}
	return w
}

// behind starts a node on a new host behind router r, bootstrapping from
// pub0, and waits until it holds relay reservations.
func (w *natWorld) behind(t *testing.T, r *labtest.Host, name string, args ...string) *labtest.Node {
	h := r.PrivateHost(name)
	if len(args) == 0 {
		args = []string{"--bootstrap", w.pubs[0].BootstrapAddr()}
	}
	n := h.StartNode(t, args...)
	w.byAddr[n.Address] = name
	waitRelayed(t, n)
	return n
}

// waitRelayed waits until n advertises circuit addresses through public
// DHT neighbours (its relays).
func waitRelayed(t *testing.T, n *labtest.Node) api.Status {
	t.Helper()
	var st api.Status
	err := netlab.Eventually(45*time.Second, 250*time.Millisecond, func() error {
		if err := n.JSON(&st, "status"); err != nil {
			return err
		}
		relays := map[string]bool{}
		for _, a := range st.RelayAddrs {
			if i := strings.Index(a, "/p2p/"); i >= 0 {
				relays[strings.SplitN(a[i+5:], "/", 2)[0]] = true
			}
		}
		if len(relays) < 2 {
			return fmt.Errorf("%s holds reservations on %d relays, want >= 2 (routing table %d, reachability %s)", n.Host.Name, len(relays), st.RoutingTable, st.Reachability)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// pingOnce runs `kadlan ping -c 1` from a to b.
func pingOnce(a, b *labtest.Node, timeout string) (api.PingResult, error) {
	var pr api.PingResult
	err := a.JSON(&pr, "ping", "-c", "1", "--timeout", timeout, b.Address)
	return pr, err
}

// relaysOf lists the public nodes (not the bootstrap node) that hold
// relay reservations for the node whose status is st, in w.pubs' order.
func (w *natWorld) relaysOf(st api.Status) []*labtest.Node {
	var out []*labtest.Node
	for _, p := range w.pubs {
		for _, a := range st.RelayAddrs {
			if strings.Contains(a, "/p2p/"+p.Address+"/") {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

func (w *natWorld) isPublic(addr string) bool {
	for _, p := range append([]*labtest.Node{w.boot}, w.pubs...) {
		if p.Address == addr {
			return true
		}
	}
	return false
}

// pathTo returns a's current path to b from `kadlan peers`.
func pathTo(a, b *labtest.Node) (api.Peer, error) {
	var ps []api.Peer
	if err := a.JSON(&ps, "peers"); err != nil {
		return api.Peer{}, err
	}
	for _, p := range ps {
		if p.Address == b.Address {
			return p, nil
		}
	}
	return api.Peer{}, fmt.Errorf("%s is not connected to %s", a.Host.Name, b.Host.Name)
}

// TestHolePunchEIM: two nodes behind two endpoint-independent NATs meet
// after the bootstrap node is gone. The first reply comes through a public
// node's relay; DCUtR then moves the path to direct.
func TestHolePunchEIM(t *testing.T) {
	w := newNATWorld(t)
	natA := w.lab.NATRouter("natA", netlab.EIM, nil)
	natB := w.lab.NATRouter("natB", netlab.EIM, nil)
	a := w.behind(t, natA, "a")
	b := w.behind(t, natB, "b")
	w.boot.Kill()

	start := time.Now()
	pr, err := pingOnce(a, b, "10s")
	if err != nil {
		t.Fatalf("a could not ping b: %v", err)
	}
	t.Logf("first reply after %v (connected in %.1f ms %s via %s; rtt %v ms over %s)",
		time.Since(start).Round(time.Millisecond), pr.ConnectMs, pr.ConnectPath, w.byAddr[pr.ConnectVia], pr.RTTms, pr.Path)
	if pr.ConnectPath != "relayed" || !w.isPublic(pr.ConnectVia) {
		t.Fatalf("first contact %s via %q; want relayed through one of the public nodes", pr.ConnectPath, pr.ConnectVia)
	}
	// Within a bound the path becomes direct, and pings use it.
	if _, err := waitDirect(a, b, 20*time.Second, 200*time.Millisecond); err != nil {
		t.Fatalf("hole punching did not give a direct path: %v", err)
	}
	t.Logf("direct after %v", time.Since(start).Round(time.Millisecond))
	pr, err = pingOnce(a, b, "5s")
	if err != nil || pr.Path != "direct" {
		t.Fatalf("ping after hole punch: %+v %v", pr, err)
	}
	// Reachability was learnt from ordinary peers (AutoNAT), not configured.
	var st api.Status
	netlab.Eventually(60*time.Second, time.Second, func() error {
		if err := a.JSON(&st, "status"); err != nil {
			return err
		}
		if st.Reachability != "private" {
			return fmt.Errorf("reachability %s", st.Reachability)
		}
		return nil
	})
	if st.Reachability != "private" || st.DHTMode != "client" {
		t.Errorf("a behind NAT: reachability %s, dht %s; want private client", st.Reachability, st.DHTMode)
	}
}

// TestSymmetricNATRelayed: behind a symmetric NAT hole punching cannot
// work; pings still flow through a public node's relay.
func TestSymmetricNATRelayed(t *testing.T) {
	w := newNATWorld(t)
	natA := w.lab.NATRouter("natA", netlab.EIM, nil)
	natS := w.lab.NATRouter("natS", netlab.Symmetric, nil)
	a := w.behind(t, natA, "a")
	s := w.behind(t, natS, "s")
	for i := 0; i < 3; i++ {
		pr, err := pingOnce(a, s, "10s")
		if err != nil {
			t.Fatalf("ping %d to the symmetric-NAT node: %v", i, err)
		}
		if pr.Path == "relayed" && !w.isPublic(pr.Via) {
			t.Fatalf("relayed via %q, not a public node", pr.Via)
		}
		t.Logf("ping %d: %v ms, %s via %s", i, pr.RTTms, pr.Path, w.byAddr[pr.Via])
	}
}

// TestDoubleNAT: a node behind a NAT behind another NAT is reachable.
func TestDoubleNAT(t *testing.T) {
	w := newNATWorld(t)
	outer := w.lab.NATRouter("outer", netlab.EIM, nil)
	inner := w.lab.NATRouter("inner", netlab.EIM, outer)
	d := w.behind(t, inner, "d")
	pr, err := pingOnce(w.pubs[2], d, "10s")
	if err != nil {
		t.Fatalf("public node could not ping the double-NATed node: %v", err)
	}
	t.Logf("public -> double NAT: %v ms, %s via %s", pr.RTTms, pr.Path, w.byAddr[pr.Via])
	natA := w.lab.NATRouter("natA", netlab.EIM, nil)
	a := w.behind(t, natA, "a")
	if pr, err = pingOnce(a, d, "10s"); err != nil {
		t.Fatalf("NATed node could not ping the double-NATed node: %v", err)
	}
	t.Logf("NAT -> double NAT: %v ms, %s via %s", pr.RTTms, pr.Path, w.byAddr[pr.Via])
}

// TestOnly443: a site whose firewall lets out only TCP to port 443 joins
// through public nodes that also listen on 443, and reaches others.
func TestOnly443(t *testing.T) {
	listen := []string{}
	for _, p := range []string{"4242", "443"} {
		listen = append(listen, "--listen", "/ip4/0.0.0.0/tcp/"+p, "--listen", "/ip4/0.0.0.0/tcp/"+p+"/ws")
	}
	listen = append(listen, "--listen", "/ip4/0.0.0.0/udp/4242/quic-v1")
	w := newNATWorld(t, listen...)
	fw := w.lab.NATRouter("corp", netlab.Only443, nil)
	boot443 := strings.Replace(w.pubs[1].BootstrapAddr(), "/tcp/4242/", "/tcp/443/", 1)
	c := w.behind(t, fw, "c", "--bootstrap", boot443)
	pr, err := pingOnce(c, w.pubs[3], "10s")
	if err != nil {
		t.Fatalf("443-only node could not ping a public node: %v", err)
	}
	t.Logf("443-only -> public: %v ms, %s", pr.RTTms, pr.Path)
	natA := w.lab.NATRouter("natA", netlab.EIM, nil)
	a := w.behind(t, natA, "a")
	if pr, err = pingOnce(a, c, "10s"); err != nil {
		t.Fatalf("NATed node could not ping the 443-only node: %v", err)
	}
	t.Logf("NAT -> 443-only: %v ms, %s via %s", pr.RTTms, pr.Path, w.byAddr[pr.Via])
}

// TestRelayFailover: the relay carrying a relayed path dies; the path comes
// back through another public node.
func TestRelayFailover(t *testing.T) {
	w := newNATWorld(t)
	natA := w.lab.NATRouter("natA", netlab.EIM, nil)
	natS := w.lab.NATRouter("natS", netlab.Symmetric, nil)
	a := w.behind(t, natA, "a")
	s := w.behind(t, natS, "s")
	pr, err := pingOnce(a, s, "10s")
	if err != nil {
		t.Fatal(err)
	}
	if pr.Path != "relayed" {
		t.Skipf("path to the symmetric-NAT node is %s; failover needs a relayed path", pr.Path)
	}
	var relay *labtest.Node
	for _, p := range append([]*labtest.Node{w.boot}, w.pubs...) {
		if p.Address == pr.Via {
			relay = p
		}
	}
	if relay == nil {
		t.Fatalf("relay %s is not a public node", pr.Via)
	}
	t.Logf("relayed via %s; killing it", relay.Host.Name)
	relay.Kill()
	killed := time.Now()
	err = netlab.Eventually(30*time.Second, 500*time.Millisecond, func() error {
		pr, err = pingOnce(a, s, "3s")
		if err != nil {
			return err
		}
		if pr.Via == relay.Address {
			return fmt.Errorf("still via the dead relay")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("no path after the relay died: %v", err)
	}
	t.Logf("path back after %v: %s via %s", time.Since(killed).Round(time.Millisecond), pr.Path, w.byAddr[pr.Via])
}

// TestRoaming: a node moves to another NAT site (new LAN address, new
// public address); a peer reaches it by its unchanged address within 10 s.
func TestRoaming(t *testing.T) {
	w := newNATWorld(t)
	natA := w.lab.NATRouter("natA", netlab.EIM, nil)
	natC := w.lab.NATRouter("natC", netlab.EIM, nil)
	r := w.behind(t, natA, "r")
	p := w.pubs[2]
	if _, err := pingOnce(p, r, "10s"); err != nil {
		t.Fatal(err)
	}
	r.Host.Move(natC)
	moved := time.Now()
	pr, err := reachableAfterMove(p, r, natA, natC, 10*time.Second)
	if err != nil {
		t.Fatalf("not reachable over the new site 10 s after roaming: %v", err)
	}
	t.Logf("reachable again %v after the move, %s via %s", time.Since(moved).Round(time.Millisecond), pr.Path, w.byAddr[pr.Via])
}

// reachableAfterMove waits up to timeout until p reaches r, which just
// moved from site old to site cur: r answers, over its new site (a
// connection whose remote address is cur's public address, or a relay),
// and p holds no connection to the old site any more. A ping may succeed
// sooner over the old QUIC connection (quic-go follows the client's new
// address), whose recorded address is then stale: r closes it once it
// notices the move, so this waits for that state rather than the first
// reply.
func reachableAfterMove(p, r *labtest.Node, old, cur *labtest.Host, timeout time.Duration) (api.PingResult, error) {
	var pr api.PingResult
	err := netlab.Eventually(timeout, 100*time.Millisecond, func() error {
		var err error
		if pr, err = pingOnce(p, r, "2s"); err != nil {
			return err
		}
		peerEntry, err := pathTo(p, r)
		if err != nil {
			return err
		}
		viaNew := false
		for _, a := range peerEntry.Addrs {
			if strings.Contains(a, "/ip4/"+cur.IPv4+"/") || strings.Contains(a, "/p2p-circuit") {
				viaNew = true
			}
			if strings.Contains(a, "/ip4/"+old.IPv4+"/") {
				return fmt.Errorf("%s still holds a connection to %s's old site: %s", p.Host.Name, r.Host.Name, a)
			}
		}
		if !viaNew {
			return fmt.Errorf("%s reaches %s over %v, not over its new site %s", p.Host.Name, r.Host.Name, peerEntry.Addrs, cur.IPv4)
		}
		return nil
	})
	return pr, err
}

// waitDirect waits until a's path to b is direct and returns b's entry.
func waitDirect(a, b *labtest.Node, timeout, every time.Duration) (api.Peer, error) {
	var last api.Peer
	err := netlab.Eventually(timeout, every, func() error {
		p, err := pathTo(a, b)
		if err != nil {
			return err
		}
		last = p
		if p.Path != "direct" {
			return fmt.Errorf("path still %s via %s (punch %+v)", p.Path, p.Via, p.Punch)
		}
		return nil
	})
	return last, err
}
