package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/e2e/netlab"
	"github.com/kadlan/kadlan/e2e/netlab/labtest"
)

// The anchors of bench-connect (issue 12): stock go-libp2p (e2e/anchors/
// libp2pnode) and HyperDHT (e2e/anchors/hyperdht/node.js), measured in the
// same lab, run and classes as kadlan. Each runs its own infrastructure on
// the lab's Internet (5 public nodes, like kadlan's) and bootstraps from it
// alone. Both are driven over HTTP on a Unix socket.

// hyperdhtVersion is the npm package the HyperDHT anchor installs at bench
// time into a temporary directory (node_modules is never committed).
const hyperdhtVersion = "6.34.0"

// anchorSystem is one anchor: how to start a node of it on a host.
type anchorSystem struct {
	name  string
	err   error                                      // set when it cannot run here: every row says so
	start func(h *labtest.Host, s benchSide) *anchor // a user node on h
	find  *anchor                                    // the public node whose lookup tells when a node is findable
	infra []string                                   // IPv4 addresses of its public infrastructure
}

// anchor is one running anchor node.
type anchor struct {
	sys  *anchorSystem
	host *labtest.Host
	proc *netlab.Proc
	api  *api.Client
	log  string
	id   string
}

func (a *anchor) do(timeout time.Duration, method, path string, in, out any) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return a.api.Do(ctx, method, path, in, out)
}

type anchorStatus struct {
	ID           string   `json:"id"`
	Reachability string   `json:"reachability"` // go-libp2p
	RelayAddrs   []string `json:"relay_addrs"`  // go-libp2p
	Ready        bool     `json:"ready"`        // hyperdht: server listening
	Firewalled   bool     `json:"firewalled"`   // hyperdht
}

// startAnchor runs args on h with its API socket and log under the lab's
// directory and waits up to 20 s for the API.
func startAnchor(t *testing.T, w *natWorld, sys *anchorSystem, h *labtest.Host, args ...string) *anchor {
	t.Helper()
	dir, err := os.MkdirTemp(w.lab.Dir(), sys.name+"-"+h.Name+"-")
	if err != nil {
		t.Fatal(err)
	}
	a := &anchor{sys: sys, host: h, log: filepath.Join(dir, "node.log")}
	sock := filepath.Join(dir, "api.sock")
	a.api = api.NewClient(sock)
	a.proc = h.Start(a.log, append(args, "--api", sock)...)
	var st anchorStatus
	err = netlab.Eventually(20*time.Second, 50*time.Millisecond, func() error {
		if a.proc.Exited() {
			return fmt.Errorf("exited")
		}
		return a.do(2*time.Second, "GET", "/status", nil, &st)
	})
	if err != nil {
		b, _ := os.ReadFile(a.log)
		t.Fatalf("%s on %s did not come up: %v: %s", sys.name, h.Name, err, b)
	}
	a.id = st.ID
	return a
}

func (a *anchor) stop() { a.proc.Signal(syscall.SIGTERM) }

// ready waits until a user node can be reached: go-libp2p public or with
// relay addresses (as kadlan's nodes are waited for), HyperDHT's server
// announced. It reports what it waited for on timeout, and does not fail:
// the node's pings then count.
func (a *anchor) ready(timeout time.Duration) error {
	var st anchorStatus
	return netlab.Eventually(timeout, 250*time.Millisecond, func() error {
		if err := a.do(2*time.Second, "GET", "/status", nil, &st); err != nil {
			return err
		}
		switch a.sys.name {
		case "go-libp2p":
			if st.Reachability != "public" && len(st.RelayAddrs) == 0 {
				return fmt.Errorf("reachability %s, no relay addresses", st.Reachability)
			}
		case "hyperdht":
			if !st.Ready {
				return fmt.Errorf("server not listening yet (firewalled %v)", st.Firewalled)
			}
		}
		return nil
	})
}

type anchorPing struct {
	FirstReplyMs float64 `json:"first_reply_ms"`
	ConnectMs    float64 `json:"connect_ms"`
	Path         string  `json:"path"`
	Remote       string  `json:"remote"`
}

// benchPeer adapts an anchor node to the benchmark's pair loop.
func (a *anchor) benchPeer() *benchPeer {
	p := &benchPeer{name: a.host.Name, stop: a.stop}
	p.ping = func(to *benchPeer) (benchPing, error) {
		var r anchorPing
		err := a.do(15*time.Second, "POST", "/ping", map[string]any{"id": to.id, "timeout_ms": 10000}, &r)
		if err != nil {
			return benchPing{}, err
		}
		bp := benchPing{inNode: r.FirstReplyMs}
		if a.sys.name == "hyperdht" {
			// No relayed data: the stream that opened is the path. It is
			// direct unless its remote end is one of the lab's DHT nodes.
			host := r.Remote[:max(0, strings.LastIndex(r.Remote, ":"))]
			bp.direct = host != "" && !contains(a.sys.infra, host)
		}
		return bp, nil
	}
	if a.sys.name == "go-libp2p" {
		p.path = func(to *benchPeer) string {
			var r struct {
				Path string `json:"path"`
			}
			if a.do(2*time.Second, "GET", "/path?id="+to.id, nil, &r) != nil || r.Path == "none" {
				return ""
			}
			return r.Path
		}
	}
	p.id = a.id
	return p
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// findable waits up to 30 s until the system's finder looks n up.
func (sys *anchorSystem) findable(n *anchor) error {
	return netlab.Eventually(30*time.Second, 100*time.Millisecond, func() error {
		return sys.find.do(10*time.Second, "POST", "/find", map[string]any{"id": n.id, "timeout_ms": 5000}, nil)
	})
}

// startAnchors builds (go-libp2p) or installs (HyperDHT) the anchors and
// starts each one's infrastructure in w's lab. An anchor that cannot run
// here comes back with err set.
func startAnchors(t *testing.T, w *natWorld, run func(system string) bool) []*anchorSystem {
	dir := t.TempDir()
	var out []*anchorSystem
	if run("go-libp2p") {
		out = append(out, startLibp2pAnchor(t, w, dir))
	}
	if run("hyperdht") {
		out = append(out, startHyperDHTAnchor(t, w, dir))
	}
	return out
}

func startLibp2pAnchor(t *testing.T, w *natWorld, dir string) *anchorSystem {
	sys := &anchorSystem{name: "go-libp2p"}
	bin := filepath.Join(dir, "libp2pnode")
	build := exec.Command("nice", "-n", "10", "go", "build", "-o", bin, "github.com/kadlan/kadlan/e2e/anchors/libp2pnode")
	if out, err := build.CombinedOutput(); err != nil {
		sys.err = fmt.Errorf("go build: %v: %s", err, out)
		return sys
	}
	const infraListen = "/ip4/0.0.0.0/tcp/4001,/ip4/0.0.0.0/udp/4001/quic-v1,/ip6/::/tcp/4001,/ip6/::/udp/4001/quic-v1"
	addr := func(a *anchor) string { return fmt.Sprintf("/ip4/%s/tcp/4001/p2p/%s", a.host.IPv4, a.id) }
	boot := startAnchor(t, w, sys, w.lab.PublicHost("lboot"), bin, "--infra", "--listen", infraListen)
	sys.find = boot
	sys.infra = append(sys.infra, boot.host.IPv4)
	var pubs []*anchor
	for i := 0; i < 4; i++ {
		p := startAnchor(t, w, sys, w.lab.PublicHost(fmt.Sprintf("lpub%d", i)), bin, "--infra", "--listen", infraListen, "--bootstrap", addr(boot))
		pubs = append(pubs, p)
		sys.infra = append(sys.infra, p.host.IPv4)
	}
	seq := 0
	sys.start = func(h *labtest.Host, s benchSide) *anchor {
		seq++
		args := []string{bin, "--bootstrap", addr(pubs[0])}
		if s.public {
			args = []string{bin, "--bootstrap", addr(pubs[seq%4])} // spread as kadlan's
		}
		if s.dhtClient || s.public {
			args = append(args, "--dht-mode", "client")
		}
		return startAnchor(t, w, sys, h, args...)
	}
	return sys
}

func startHyperDHTAnchor(t *testing.T, w *natWorld, dir string) *anchorSystem {
	sys := &anchorSystem{name: "hyperdht"}
	script, err := filepath.Abs("anchors/hyperdht/node.js")
	if err != nil {
		sys.err = err
		return sys
	}
	if _, err := exec.LookPath("node"); err != nil {
		sys.err = fmt.Errorf("node not installed (apt-get install nodejs npm)")
		return sys
	}
	npm := exec.Command("npm", "install", "--no-audit", "--no-fund", "--prefix", dir, "hyperdht@"+hyperdhtVersion)
	if out, err := npm.CombinedOutput(); err != nil {
		sys.err = fmt.Errorf("npm install hyperdht@%s: %v: %s", hyperdhtVersion, err, out)
		return sys
	}
	mod := filepath.Join(dir, "node_modules", "hyperdht")
	cmd := func(extra ...string) []string { return append([]string{"node", script, "--module", mod}, extra...) }
	bh := w.lab.PublicHost("hboot")
	bootAt := bh.IPv4 + ":49737"
	boot := startAnchor(t, w, sys, bh, cmd("--bootstrapper", bootAt)...)
	sys.infra = append(sys.infra, bh.IPv4)
	for i := 0; i < 4; i++ {
		p := startAnchor(t, w, sys, w.lab.PublicHost(fmt.Sprintf("hpub%d", i)), cmd("--infra", "--bootstrap", bootAt)...)
		sys.infra = append(sys.infra, p.host.IPv4)
		if i == 0 {
			sys.find = p // a public node that is not the bootstrapper looks nodes up
		}
	}
	_ = boot
	sys.start = func(h *labtest.Host, s benchSide) *anchor {
		return startAnchor(t, w, sys, h, cmd("--bootstrap", bootAt)...)
	}
	return sys
}

// anchorSide starts a node of sys on each host (of side s), all at once,
// and waits for each to be ready and findable (the time from start to
// findable is reported as for kadlan).
func anchorSide(t *testing.T, sys *anchorSystem, hosts []*labtest.Host, s benchSide) (peers []*benchPeer, findMs []float64, unfindable int) {
	nodes := make([]*anchor, len(hosts))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range hosts {
		started := time.Now()
		nodes[i] = sys.start(hosts[i], s)
		wg.Add(1)
		go func(a *anchor) {
			defer wg.Done()
			if err := a.ready(60 * time.Second); err != nil {
				t.Logf("%s on %s not ready after 60 s: %v", sys.name, a.host.Name, err)
			}
			err := sys.findable(a)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				unfindable++
				t.Logf("%s on %s did not become findable within 30 s: %v", sys.name, a.host.Name, err)
				return
			}
			findMs = append(findMs, float64(time.Since(started).Microseconds())/1000)
		}(nodes[i])
	}
	wg.Wait()
	for _, a := range nodes {
		peers = append(peers, a.benchPeer())
	}
	return peers, findMs, unfindable
}
