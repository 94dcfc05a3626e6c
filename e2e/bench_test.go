package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/e2e/netlab"
	"github.com/kadlan/kadlan/e2e/netlab/labtest"
)

// TestBenchConnect is `make bench-connect` (KADLAN_BENCH=1): for each
// class of pairs it pings across pairs of nodes that were never connected
// before (KADLAN_BENCH_SIDE nodes per side, default 5: 10 pairs within a
// class, 25 across two), and reports the distribution (mean, p50, p95,
// max) of the time from `kadlan ping` to the first reply, the share of
// pairs that end up direct and the time until they are, each pair polled
// for 10 s from its ping. Beside kadlan, on the same hosts behind the same
// routers and with the same pairs, it measures two anchors (issue 12):
// stock go-libp2p with DCUtR and HyperDHT (see anchors_bench_test.go;
// KADLAN_BENCH_ANCHORS=0 skips them; KADLAN_BENCH_SYSTEMS=go-libp2p,...
// runs only the systems named).
// Timing goals are read off the figures, not asserted. KADLAN_BENCH_RTT=80ms
// runs it over netlab's userspace Internet with that RTT between any two
// hosts (a quarter on each link). Writes bench-connect.json.
func TestBenchConnect(t *testing.T) {
	if os.Getenv("KADLAN_BENCH") == "" {
		t.Skip("benchmark; run with KADLAN_BENCH=1 (make bench)")
	}
	opts, rttMs := benchRTT(t)
	side := envInt("KADLAN_BENCH_SIDE", 5)
	listen := []string{}
	for _, p := range []string{"4242", "443"} {
		listen = append(listen, "--listen", "/ip4/0.0.0.0/tcp/"+p, "--listen", "/ip4/0.0.0.0/tcp/"+p+"/ws")
	}
	listen = append(listen, "--listen", "/ip4/0.0.0.0/udp/4242/quic-v1")
	// Public nodes listen on TCP 443 too only with KADLAN_BENCH_443=1 (the
	// only443 class needs it): in that world 3 of 10 EIM pairs (and full
	// cone pairs) failed with "routing: not found" in this session's runs,
	// against 0 of 10 without it; see README, NAT section.
	with443 := os.Getenv("KADLAN_BENCH_443") != ""
	if !with443 {
		listen = nil
	}
	w := newNATWorldWith(t, opts, listen...)
	only := os.Getenv("KADLAN_BENCH_SYSTEMS")
	run := func(system string) bool { return only == "" || strings.Contains(","+only+",", ","+system+",") }
	var anchors []*anchorSystem
	if os.Getenv("KADLAN_BENCH_ANCHORS") != "0" {
		anchors = startAnchors(t, w, run)
		for _, a := range anchors {
			if a.err != nil {
				fmt.Printf("%s: cannot run here: %v\n", a.name, a.err)
			}
		}
	}
	seq := 0
	// host puts a new host where side s says: on the Internet, or behind
	// a new router of its kind (two for CGNAT: NAT444).
	host := func(s benchSide, i int) *labtest.Host {
		seq++
		if s.public {
			return w.lab.PublicHost(fmt.Sprintf("p%d", seq))
		}
		kind := s.nat
		if len(s.zoo) > 0 {
			kind = s.zoo[i%len(s.zoo)]
		}
		r := w.lab.NATRouter(fmt.Sprintf("r%d", seq), kind, nil)
		if dir := os.Getenv("KADLAN_BENCH_PCAP"); dir != "" {
			// A manual aid: UDP on every router, as text, into dir.
			dump := r.Start(filepath.Join(dir, fmt.Sprintf("r%d.txt", seq)), "tcpdump", "-n", "-i", "any", "-tt", "udp or (tcp[tcpflags] & tcp-syn != 0)")
			t.Cleanup(func() { dump.Kill() })
		}
		if kind == netlab.CGNAT {
			r = w.lab.NATRouter(fmt.Sprintf("h%d", seq), netlab.EIM, r) // a home router behind the carrier's
		}
		return r.PrivateHost(fmt.Sprintf("n%d", seq))
	}
	boot443 := strings.Replace(w.pubs[1].BootstrapAddr(), "/tcp/4242/", "/tcp/443/", 1)
	// A kadlan node is pinged once the DHT can find it (a public node that
	// is not its relay looks it up), so first contact is measured, not the
	// node's start; the time from start to findable is reported apart.
	var findMs []float64
	unfindable := 0
	findable := func(n *labtest.Node, started time.Time) {
		err := netlab.Eventually(30*time.Second, 100*time.Millisecond, func() error {
			_, err := w.boot.CLI("find", "--timeout", "5s", n.Address)
			return err
		})
		if err != nil {
			unfindable++ // its pings count as failed
			t.Logf("%s did not become findable within 30 s: %v", n.Host.Name, err)
			return
		}
		findMs = append(findMs, float64(time.Since(started).Microseconds())/1000)
	}
	kadlanNode := func(h *labtest.Host, i int, s benchSide) *labtest.Node {
		if s.public {
			// Public nodes in DHT client mode: as servers in a lab this
			// small they would all be connected through their routing
			// tables before the first ping, which would measure nothing.
			n := h.StartNode(t, "--dht-mode", "client", "--bootstrap", w.pubs[(i+1)%4].BootstrapAddr())
			// Pinged before its first DHT server is in its table, a node
			// fails at once ("failed to find any peer in table"; all 10
			// pairs at 80 ms RTT once): wait for one, as the anchors' public
			// nodes are waited for.
			err := netlab.Eventually(30*time.Second, 100*time.Millisecond, func() error {
				var st api.Status
				if err := n.JSON(&st, "status"); err != nil {
					return err
				}
				if st.RoutingTable == 0 {
					return fmt.Errorf("%s: routing table empty", n.Host.Name)
				}
				return nil
			})
			if err != nil {
				t.Logf("not joined after 30 s: %v", err)
			}
			return n
		}
		args := []string{"--bootstrap", w.pubs[0].BootstrapAddr()}
		if s.via443 {
			args = []string{"--bootstrap", boot443}
		}
		if s.dhtClient {
			args = append([]string{"--dht-mode", "client"}, args...)
		}
		started := time.Now()
		n := h.StartNode(t, args...)
		defer func() { findable(n, started) }()
		// A node AutoNAT finds reachable (full cone, say) is public and
		// holds no relay reservations: wait for either.
		err := netlab.Eventually(45*time.Second, 250*time.Millisecond, func() error {
			var st api.Status
			if err := n.JSON(&st, "status"); err != nil {
				return err
			}
			if st.Reachability != "public" && len(st.RelayAddrs) == 0 {
				return fmt.Errorf("%s: reachability %s, no relay addresses", n.Host.Name, st.Reachability)
			}
			return nil
		})
		if err != nil {
			// Not fatal: the node is measured as it is (its pings may
			// fail), so that the row says so rather than the run ending.
			t.Logf("not ready after 45 s: %v", err)
		}
		return n
	}
	nat := func(kind netlab.NAT) *benchSide { return &benchSide{nat: kind} }
	classes := []struct {
		name      string
		a, b      *benchSide // b nil: pairs within a's nodes
		relayDied bool       // kadlan only, last: the bootstrap node and a relay of the targets die before the pings
	}{
		{"public-public", &benchSide{public: true}, nil, false},
		{"eim-eim", nat(netlab.EIM), nil, false},
		// Full-cone nodes are public (AutoNAT): DHT clients, as public-public.
		{"fullcone-fullcone", &benchSide{nat: netlab.FullCone, dhtClient: true}, nil, false},
		{"addrrestricted-addrrestricted", &benchSide{nat: netlab.AddressRestricted, dhtClient: true}, nil, false},
		{"cgnat-cgnat", nat(netlab.CGNAT), nil, false},
		{"udpblocked-eim", nat(netlab.UDPBlocked), nat(netlab.EIM), false},
		{"only443-eim", &benchSide{nat: netlab.Only443, via443: true}, nat(netlab.EIM), false},
		// TCP/443-only sites to a target of every other class, whichever
		// relays it chose (DHT clients: full-cone and address-restricted
		// nodes may turn public).
		{"only443-zoo", &benchSide{nat: netlab.Only443, via443: true}, &benchSide{dhtClient: true, zoo: []netlab.NAT{netlab.FullCone, netlab.AddressRestricted, netlab.CGNAT, netlab.UDPBlocked, netlab.Symmetric}}, false},
		{"symmetric-eim", nat(netlab.Symmetric), nat(netlab.EIM), false},
		{"symmetric-symmetric", nat(netlab.Symmetric), nil, false},
		// Right after the bootstrap node and the public node that relays
		// for most targets died: the targets' records still name it.
		{"eim-eim-relaydied", nat(netlab.EIM), nat(netlab.EIM), true},
	}
	if !with443 {
		keep := classes[:0]
		for _, c := range classes {
			if !strings.HasPrefix(c.name, "only443-") {
				keep = append(keep, c)
			}
		}
		classes = keep
		fmt.Println("only443-eim, only443-zoo: skipped (KADLAN_BENCH_443=1 makes public nodes listen on TCP 443 and runs them)")
	}
	if only := os.Getenv("KADLAN_BENCH_CLASSES"); only != "" {
		var keep = classes[:0]
		for _, c := range classes {
			if strings.Contains(","+only+",", ","+c.name+",") {
				keep = append(keep, c)
			}
		}
		classes = keep
	}
	var rows []benchRow
	var report strings.Builder
	fmt.Fprintf(&report, "\n%-9s %-30s %5s %6s  %-29s %8s %7s  %s\n", "system", "pairs (never connected)", "n", "failed", "first reply ms mean/p50/p95/max", "in node", "direct", "to direct p50/p95   findable p50")
	fr := func(m map[string]float64, keys ...string) string {
		if m == nil {
			return "-"
		}
		var out []string
		for _, k := range keys {
			out = append(out, fmt.Sprintf("%.0f", m[k]))
		}
		return strings.Join(out, "/")
	}
	for _, c := range classes {
		// kadlan, then each anchor, one after the other on the same hosts
		// behind the same routers (the same class, side and pairs); a
		// system's nodes are stopped before the next one's start, so each
		// is measured alone.
		var ha, hb []*labtest.Host
		for i := 0; i < side; i++ {
			ha = append(ha, host(*c.a, i))
			if c.b != nil {
				hb = append(hb, host(*c.b, i))
			}
		}
		var sets []func() benchSet
		kadlanSet := func() benchSet {
			findMs, unfindable = nil, 0
			var as, bs []*benchPeer
			for i := 0; i < side; i++ {
				as = append(as, kadlanPeer(kadlanNode(ha[i], i, *c.a)))
				if c.b != nil {
					bs = append(bs, kadlanPeer(kadlanNode(hb[i], i, *c.b)))
				}
			}
			return benchSet{system: "kadlan", as: as, bs: bs, findMs: findMs, unfindable: unfindable}
		}
		if run("kadlan") {
			sets = append(sets, kadlanSet)
		}
		for _, sys := range anchors {
			if c.relayDied {
				break // kills public nodes: kadlan only, and last
			}
			sets = append(sets, func() benchSet {
				set := benchSet{system: sys.name, err: sys.err}
				if sys.err == nil {
					var fa, fb []float64
					var ua, ub int
					set.as, fa, ua = anchorSide(t, sys, ha, *c.a)
					if c.b != nil {
						set.bs, fb, ub = anchorSide(t, sys, hb, *c.b)
					}
					set.findMs, set.unfindable = append(fa, fb...), ua+ub
				}
				return set
			})
		}
		for _, mk := range sets {
			set := mk()
			if c.relayDied && set.system == "kadlan" {
				killRelayOfMost(t, w, set.bs)
			}
			r := measurePairs(t, set, c.name, side, c.b == nil)
			r.RTTms = rttMs
			rows = append(rows, r)
			for _, p := range append(set.as, set.bs...) {
				p.stop() // the next system's and class's pings find only their own
			}
			direct := "-"
			if r.Note == "" {
				direct = fmt.Sprintf("%6.0f%%", 100*r.DirectShare)
			}
			line := fmt.Sprintf("%-9s %-30s %5d %6d  %-29s %8s %7s  %s\n", r.System, c.name, r.Pairs, r.Failed, fr(r.FirstReply, "mean", "p50", "p95", "max"),
				fr(r.InDaemon, "p50"), direct, fr(r.ToDirect, "p50", "p95")+"   "+fr(r.Findable, "p50")+fmt.Sprintf(" (%d unfindable)", r.Unfindable)+r.Note)
			report.WriteString(line)
			fmt.Print(line) // progress: the table is printed whole at the end
		}
	}
	fmt.Fprintf(&report, "first reply: kadlan: wall time of `kadlan ping -c 1` (includes starting the CLI); go-libp2p, hyperdht: wall time of the node's /ping over its Unix-socket API\n")
	fmt.Fprintf(&report, "  (go-libp2p: DHT FindPeer, Connect, one echo round trip; hyperdht: dht.connect(publicKey), one echo round trip). failed: no reply within 10 s.\n")
	fmt.Fprintf(&report, "in node: the node's own measure of the same (kadlan: lookup + connect + first RTT), p50.\n")
	fmt.Fprintf(&report, "findable: a node's start until a public node's lookup finds it (pings wait for it); anchors' nodes of one side start together.\n")
	fmt.Fprintf(&report, "direct: share of pairs whose path became direct within 10 s of their ping; to direct: time from the ping (each pair polled every 20 ms from its reply on;\n")
	fmt.Fprintf(&report, "  hyperdht carries no relayed data, so its path is the punched one from the first reply).\n")
	if opts.Link != nil {
		if st, err := w.lab.SwitchStats(); err == nil {
			fmt.Fprintf(&report, "lab switch: %d frames received, %d delivered, %d lost, %d overflowed, %d write errors\n", st.Received, st.Delivered, st.Lost, st.Overflow, st.WriteErrors)
		}
	}
	t.Log(report.String())
	fmt.Println(report.String())
	writeBenchJSON(t, "bench-connect.json", rows)
}

// benchSide is where the nodes of one side of a class sit.
type benchSide struct {
	public    bool         // on the Internet, no NAT
	nat       netlab.NAT   // else behind a new router of this kind
	dhtClient bool         // a node AutoNAT may find public: DHT client
	via443    bool         // kadlan bootstraps over TCP 443
	zoo       []netlab.NAT // node i behind a router of kind zoo[i % len], not nat
}

// benchRow is one row of bench-connect.json.
type benchRow struct {
	System      string             `json:"system"`
	Class       string             `json:"class"`
	RTTms       float64            `json:"rtt_ms"`
	Pairs       int                `json:"pairs"`
	Failed      int                `json:"failed"`
	FirstReply  map[string]float64 `json:"first_reply_ms"`
	InDaemon    map[string]float64 `json:"in_daemon_ms"`
	DirectShare float64            `json:"direct_share"`
	ToDirect    map[string]float64 `json:"time_to_direct_ms"`
	Findable    map[string]float64 `json:"start_to_findable_ms"` // NATed nodes: start until the DHT finds it
	Unfindable  int                `json:"unfindable_nodes"`     // not found 30 s after start
	Note        string             `json:"note,omitempty"`       // why a system has no figures here
	Errors      map[string]int     `json:"errors,omitempty"`     // failed pings by error (up to " (", at most 100 characters)
	// NotDirect says, for each kadlan pair still relayed 10 s after its
	// ping, what both sides' punching state was then (kadlan peers --json).
	NotDirect []string `json:"not_direct,omitempty"`
}

// benchPeer is one node of any system, as the pair loop sees it.
type benchPeer struct {
	name string
	id   string
	node *labtest.Node // kadlan's; nil for the anchors
	// ping makes first contact with to and round-trips one message.
	ping func(to *benchPeer) (benchPing, error)
	// path is "direct", "relayed" or "" (not connected); nil: the path
	// never changes after the first reply (benchPing.direct says it).
	path func(to *benchPeer) string
	stop func()
}

type benchPing struct {
	inNode float64 // the node's own measure of first contact, ms
	direct bool    // with path nil: the first reply came over a direct path
}

// benchSet is one system's nodes for a class.
type benchSet struct {
	system     string
	err        error // the system cannot run here
	as, bs     []*benchPeer
	findMs     []float64
	unfindable int
}

func kadlanPeer(n *labtest.Node) *benchPeer {
	c := api.NewClient(n.API)
	p := &benchPeer{name: n.Host.Name, id: n.Address, node: n, stop: n.Stop}
	p.ping = func(to *benchPeer) (benchPing, error) {
		var pr api.PingResult
		if err := n.JSON(&pr, "ping", "-c", "1", "--timeout", "10s", to.id); err != nil {
			return benchPing{}, err
		}
		return benchPing{inNode: pr.ConnectMs + pr.RTTms[0]}, nil
	}
	p.path = func(to *benchPeer) string {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		var ps []api.Peer
		if c.Do(ctx, "GET", "/v1/peers", nil, &ps) != nil {
			return ""
		}
		for _, q := range ps {
			if q.Address == to.id {
				return q.Path
			}
		}
		return ""
	}
	return p
}

// measurePairs pings across the pairs of set (within as when within, else
// as x bs), one pair after the other, and watches each pair's path for 10 s
// from its ping while the next pairs are pinged.
func measurePairs(t *testing.T, set benchSet, class string, side int, within bool) benchRow {
	pairs := side * (side - 1) / 2
	if !within {
		pairs = side * side
	}
	r := benchRow{System: set.system, Class: class, Pairs: pairs}
	if set.err != nil {
		r.Failed, r.Note = pairs, " not run: "+set.err.Error()
		return r
	}
	type pair struct{ a, b *benchPeer }
	var ps []pair
	for i := range set.as {
		if within {
			for j := i + 1; j < len(set.as); j++ {
				ps = append(ps, pair{set.as[i], set.as[j]})
			}
		} else {
			for _, b := range set.bs {
				ps = append(ps, pair{set.as[i], b})
			}
		}
	}
	var first, internal, toDirect []float64
	var mu sync.Mutex
	watching := map[int]time.Time{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			mu.Lock()
			ks := map[int]time.Time{}
			for k, st := range watching {
				ks[k] = st
			}
			mu.Unlock()
			select {
			case <-stop:
				if len(ks) == 0 {
					return
				}
			default:
			}
			for k, st := range ks {
				direct := ps[k].a.path(ps[k].b) == "direct"
				mu.Lock()
				if direct {
					toDirect = append(toDirect, float64(time.Since(st).Microseconds())/1000)
				}
				expired := !direct && time.Since(st) > 10*time.Second
				if direct || expired {
					delete(watching, k)
				}
				mu.Unlock()
				if expired && ps[k].a.node != nil && ps[k].b.node != nil {
					nd, bothSymmetric := notDirect(ps[k].a.node, ps[k].b.node)
					mu.Lock()
					r.NotDirect = append(r.NotDirect, nd)
					mu.Unlock()
					t.Logf("%s %s: %s -> %s still not direct 10 s after the ping: %s", set.system, class, ps[k].a.name, ps[k].b.name, nd)
					if !bothSymmetric { // else relayed as designed
						keepLogs(t, class+": "+ps[k].a.name+" -> "+ps[k].b.name+" not direct", []*labtest.Node{ps[k].a.node, ps[k].b.node})
					}
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	for k, p := range ps {
		if p.a.path != nil {
			if path := p.a.path(p.b); path != "" {
				if set.system == "kadlan" {
					t.Fatalf("%s: %s and %s are already connected (%s): not a first contact", class, p.a.name, p.b.name, path)
				}
				t.Logf("%s %s: %s and %s are already connected (%s): not a first contact", set.system, class, p.a.name, p.b.name, path)
			}
		}
		start := time.Now()
		res, err := p.a.ping(p.b)
		if err != nil {
			r.Failed++
			t.Logf("%s %s: %s -> %s: %v", set.system, class, p.a.name, p.b.name, err)
			if r.Errors == nil {
				r.Errors = map[string]int{}
			}
			r.Errors[errKind(err)]++
			continue
		}
		ms := float64(time.Since(start).Microseconds()) / 1000
		first = append(first, ms)
		internal = append(internal, res.inNode)
		mu.Lock()
		if p.a.path != nil {
			watching[k] = start
		} else if res.direct {
			toDirect = append(toDirect, ms)
		}
		mu.Unlock()
	}
	close(stop)
	<-done
	r.FirstReply, r.InDaemon, r.ToDirect = dist(first), dist(internal), dist(toDirect)
	r.Findable, r.Unfindable = dist(set.findMs), set.unfindable
	if pairs > 0 {
		r.DirectShare = float64(len(toDirect)) / float64(pairs)
	}
	return r
}

// errKind is an error without what differs between pairs: the CLI command,
// peer IDs, go-libp2p's lookup trace (in parentheses); at most 100
// characters.
func errKind(err error) string {
	e := err.Error()
	if i := strings.Index(e, "exit status 1: "); i >= 0 {
		e = e[i+len("exit status 1: "):]
	}
	if i := strings.IndexAny(e, "(\n"); i > 0 {
		e = strings.TrimSpace(e[:i]) // go-libp2p's lookup trace, swarm's list of dial errors
	}
	e = peerIDRE.ReplaceAllString(e, "ID")
	return e[:min(len(e), 100)]
}

var peerIDRE = regexp.MustCompile(`12D3Koo[1-9A-HJ-NP-Za-km-z]+|[0-9a-f]{64}`)

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func msOrDash(xs []float64) string {
	if len(xs) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f ms", median(xs))
}

// notDirect is a relayed pair's punching state from both ends, as
// `kadlan peers --json` gives it, and whether a says both are behind
// symmetric NATs (relayed as designed).
func notDirect(a, b *labtest.Node) (string, bool) {
	bothSymmetric := false
	view := func(x, y *labtest.Node) string {
		p, err := pathTo(x, y)
		if err != nil {
			return err.Error()
		}
		if p.Punch == nil {
			return p.Path + ", no punch state"
		}
		q := *p.Punch
		if x == a {
			bothSymmetric = q.NAT == "symmetric" && q.PeerNAT == "symmetric"
		}
		return fmt.Sprintf("%s, dcutr %d/%d failed (%s), nat %s/%s, birthday %q after %d runs", p.Path, q.Failures, q.Attempts, q.LastError, q.NAT, q.PeerNAT, q.Birthday, q.BirthdayRuns)
	}
	return a.Host.Name + ": " + view(a, b) + "; " + b.Host.Name + ": " + view(b, a), bothSymmetric
}

// killRelayOfMost kills the bootstrap node and the public node that holds
// relay reservations for most of the kadlan nodes of targets.
func killRelayOfMost(t *testing.T, w *natWorld, targets []*benchPeer) {
	count := map[*labtest.Node]int{}
	for _, tp := range targets {
		n := tp.node
		if n == nil {
			continue
		}
		var st api.Status
		if err := n.JSON(&st, "status"); err != nil {
			continue
		}
		for _, p := range w.relaysOf(st) {
			count[p]++
		}
	}
	var dead *labtest.Node
	for p, c := range count {
		if dead == nil || c > count[dead] {
			dead = p
		}
	}
	w.boot.Kill()
	if dead == nil {
		t.Logf("relay died: no target holds a reservation on a public node; only the bootstrap node was killed")
		return
	}
	dead.Kill()
	t.Logf("relay died: killed the bootstrap node and %s, a relay of %d of %d targets", dead.Host.Name, count[dead], len(targets))
}
