package daemon

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/e2e/netlab" // Eventually only
	"github.com/kadlan/kadlan/tap/ether"
	"github.com/kadlan/kadlan/tap/taptest"
	"github.com/libp2p/go-libp2p/core/metrics"
)

// A scale world is n in-process daemons on loopback TCP (the real
// dht.New, kad-dht and libp2p host each) with in-memory devices, all on
// one public network with links on demand. It measures what issue 13
// asks of "a LAN of thousands": links each node holds, heap per node,
// background bytes per node and first-contact latency through the
// on-demand path (address lookup, link, frame).

// scaleNode is one daemon of a scale world and the kernel side of its
// device.
type scaleNode struct {
	td   *testDaemon
	bw   *metrics.BandwidthCounter
	kern *taptest.Device
	mac  ether.MAC
	ip   netip.Addr
	done chan struct{} // closed when the kernel reader ends

	mu  sync.Mutex
	arp map[netip.Addr]chan ether.MAC // waiting for an ARP reply
	got map[uint64]chan struct{}      // waiting for a frame's arrival
}

type scaleWorld struct {
	nodes []*scaleNode
	id    string
	idle  time.Duration
}

// newScaleWorld starts n daemons (each bootstraps from one of the first
// five), creates a public network on the first, joins the others and
// waits until it is ok on every node. logs says whether daemons log to
// the test (off at large n: the test's log buffer would be in the heap);
// maxKnown is Config.MaxKnownMembers.
//
// transport is "tcp" (every connection takes a descriptor at each end,
// both in this process) or "quic" (one UDP socket per node, whatever its
// connections: what lets 500 nodes fit the machine's open-file limit).
func newScaleWorld(t *testing.T, n int, idle time.Duration, logs bool, maxKnown int, transport string) *scaleWorld {
	t.Helper()
	w := &scaleWorld{idle: idle}
	var boots []string
	t0 := time.Now()
	for i := 0; i < n; i++ {
		sn := &scaleNode{bw: metrics.NewBandwidthCounter(), arp: map[netip.Addr]chan ether.MAC{}, got: map[uint64]chan struct{}{}, done: make(chan struct{})}
		testConfigs[t] = func(c *Config) {
			c.LinkIdle, c.Bandwidth, c.MaxKnownMembers = idle, sn.bw, maxKnown
			if transport == "quic" {
				c.Listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
			}
			if !logs {
				c.Logf = nil
			}
		}
		var boot []string
		if len(boots) > 0 {
			boot = []string{boots[i%len(boots)]}
		}
		sn.td = startDaemon(t, boot...)
		if len(boots) < 5 {
			boots = append(boots, sn.td.d.Node.ShareableAddrs()[0])
		}
		w.nodes = append(w.nodes, sn)
	}
	delete(testConfigs, t)
	t.Logf("%d daemons started in %v", n, time.Since(t0).Round(time.Millisecond))
	var created api.NetworkCreated
	w.nodes[0].td.call(t, "POST", "/v1/networks/create", api.NetworkCreateRequest{Name: "city", IPv4: "10.80.0.0/16"}, &created)
	w.id = created.Network
	for _, sn := range w.nodes[1:] {
		sn.td.call(t, "POST", "/v1/networks/join", api.NetworkRequest{Network: w.id}, nil)
	}
	for _, sn := range w.nodes {
		// A guard against a hang, not a timing goal: 20 daemons with -race
		// beside the rest of make test on a busy 2-core machine once took
		// more than 50 s to link the last one.
		x := waitStatusFor(t, sn.td, w.id, "ok", 1, time.Duration(n)*time.Second+2*time.Minute)
		sn.mac = mustMAC(t, x.MAC)
		sn.ip = netip.MustParsePrefix(x.IPv4[0]).Addr()
		sn.td.mu.Lock()
		sn.kern = sn.td.kernel[x.Interface]
		sn.td.mu.Unlock()
		go sn.read()
		t.Cleanup(func() { sn.kern.Close(); <-sn.done })
	}
	return w
}

// waitStatusFor is waitStatus with a deadline.
func waitStatusFor(t *testing.T, td *testDaemon, id, want string, links int, within time.Duration) api.Network {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		n, ok := td.network(t, id)
		if ok && n.Status == want && n.Links >= links && len(n.IPv4) > 0 {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("network %s: status %s, %d links (found %v), want status %s with %d links", id, n.Status, n.Links, ok, want, links)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// read is the node's kernel: it hands ARP replies and tagged UDP frames
// to whoever waits for them, and drops everything else.
func (sn *scaleNode) read() {
	defer close(sn.done)
	buf := make([]byte, 2048)
	for {
		n, err := sn.kern.Read(buf)
		if err != nil {
			return
		}
		f := buf[:n]
		h, err := ether.ParseHeader(f)
		if err != nil {
			continue
		}
		switch h.Type {
		case ether.TypeARP:
			a, err := ether.ParseARP(f[ether.HeaderLen:])
			if err != nil || a.Op != ether.ARPReply {
				continue
			}
			sn.mu.Lock()
			if c := sn.arp[a.SenderIP]; c != nil {
				select {
				case c <- a.SenderMAC:
				default:
				}
			}
			sn.mu.Unlock()
		case ether.TypeIPv4:
			if len(f) < 14+28+8 || f[14+9] != 17 || string(f[42:46]) != "scal" {
				continue
			}
			tag := binary.BigEndian.Uint64(f[46:54])
			sn.mu.Lock()
			if c := sn.got[tag]; c != nil {
				delete(sn.got, tag)
				close(c)
			}
			sn.mu.Unlock()
		}
	}
}

// contact is what a host does to reach to for the first time, through
// this node's device: ARP for its address every 200 ms until the node
// answers (a member it does not know is looked up in the DHT), then a
// UDP datagram every second (as ping would repeat) until one arrives at
// to's device. It returns the time from the first ARP request to the
// first arrival.
func (sn *scaleNode) contact(ctx context.Context, to *scaleNode, tag uint64) (time.Duration, error) {
	arp := make(chan ether.MAC, 1)
	arrived := make(chan struct{})
	sn.mu.Lock()
	sn.arp[to.ip] = arp
	sn.mu.Unlock()
	to.mu.Lock()
	to.got[tag] = arrived
	to.mu.Unlock()
	defer func() {
		sn.mu.Lock()
		delete(sn.arp, to.ip)
		sn.mu.Unlock()
		to.mu.Lock()
		delete(to.got, tag)
		to.mu.Unlock()
	}()
	start := time.Now()
	req := ether.AppendARPFrame(nil, ether.Broadcast, sn.mac, ether.ARP{Op: ether.ARPRequest, SenderMAC: sn.mac, SenderIP: sn.ip, TargetIP: to.ip})
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var mac ether.MAC
	for resolved := false; !resolved; {
		if _, err := sn.kern.Write(req); err != nil {
			return 0, err
		}
		select {
		case mac = <-arp:
			resolved = true
		case <-tick.C:
		case <-ctx.Done():
			return 0, fmt.Errorf("ARP for %s unanswered: %w", to.ip, ctx.Err())
		}
	}
	payload := binary.BigEndian.AppendUint64([]byte("scal"), tag)
	frame := udpFrame(mac, sn.mac, sn.ip, to.ip, payload)
	tick.Reset(time.Second)
	for {
		if _, err := sn.kern.Write(frame); err != nil {
			return 0, err
		}
		select {
		case <-arrived:
			return time.Since(start), nil
		case <-tick.C:
		case <-ctx.Done():
			return 0, fmt.Errorf("frame to %s not delivered: %w", to.ip, ctx.Err())
		}
	}
}

// scaleFigures is what one run of a scale world measured.
type scaleFigures struct {
	N            int     `json:"n"`
	Transport    string  `json:"transport"`           // in-process: tcp or quic on loopback
	OpenFiles    float64 `json:"open_files_per_node"` // in-process: the process's descriptors / N, before the window
	Setup        float64 `json:"setup_s"`             // start, join and ok everywhere
	Settle       float64 `json:"settle_s"`            // from then to the quiet window
	LinksMean    float64 `json:"links_mean"`
	LinksMax     int     `json:"links_max"`
	KnownMean    float64 `json:"known_members_mean"`
	KnownMax     int     `json:"known_members_max"`
	HeapPerNode  float64 `json:"heap_per_node_mib"`
	BytesPerSec  float64 `json:"background_bytes_per_s_per_node"` // in + out, stream bytes
	QuietSeconds float64 `json:"quiet_window_s"`
	Contacts     int     `json:"first_contacts"`
	Failed       int     `json:"first_contacts_failed"`
	ContactMean  float64 `json:"first_contact_ms_mean"`
	ContactP95   float64 `json:"first_contact_ms_p95"`
	ContactMax   float64 `json:"first_contact_ms_max"`
	LinksAfter   float64 `json:"links_mean_after_contacts"`
	LinksMaxAft  int     `json:"links_max_after_contacts"`
	// ByProtocol is each protocol's bytes per node since the start (join
	// included), where the background goes.
	ByProtocol map[string]float64 `json:"bytes_per_node_by_protocol"`
	// WindowByProtocol is each protocol's bytes per second per node in
	// the quiet window.
	WindowByProtocol map[string]float64 `json:"window_bytes_per_s_per_node_by_protocol"`
	// WindowWalks is the DHT operations the networks started in the
	// window, per node, by kind.
	WindowWalks map[string]float64 `json:"window_dht_ops_per_node"`
}

// links returns the links and known members of every node.
func (w *scaleWorld) links(t *testing.T) (links, known []int) {
	for _, sn := range w.nodes {
		x, _ := sn.td.network(t, w.id)
		links, known = append(links, x.Links), append(known, x.KnownMembers)
	}
	return links, known
}

func meanMax(xs []int) (float64, int) {
	s, m := 0, 0
	for _, x := range xs {
		s, m = s+x, max(m, x)
	}
	return float64(s) / float64(max(1, len(xs))), m
}

// walks sums the DHT operations the nodes' networks started, by kind.
func (w *scaleWorld) walks() map[string]int64 {
	out := map[string]int64{}
	for _, sn := range w.nodes {
		wk := &sn.td.d.nets.walks
		out["fetches"] += wk.fetches.Load()
		out["provider_walks"] += wk.providerWalks.Load()
		out["address_lookups"] += wk.lookups.Load()
		out["mac_lookups"] += wk.macLookups.Load()
		out["publications"] += wk.publications.Load()
		out["fetches_failed"] += wk.fetchesFailed.Load()
	}
	return out
}

// quiet measures over a window without frames: heap per node (after a
// GC, less base, the heap before the daemons started) and background
// stream bytes per second per node.
func (w *scaleWorld) quiet(window time.Duration, base uint64, f *scaleFigures) {
	before := make([]metrics.Stats, len(w.nodes))
	walksBefore := w.walks()
	protoBefore := map[string]int64{}
	for i, sn := range w.nodes {
		before[i] = sn.bw.GetBandwidthTotals()
		for p, st := range sn.bw.GetBandwidthByProtocol() {
			protoBefore[string(p)] += st.TotalIn + st.TotalOut
		}
	}
	start := time.Now()
	time.Sleep(window) // the window is the measurement, not a wait for state
	secs := time.Since(start).Seconds()
	var bytes int64
	for i, sn := range w.nodes {
		a := sn.bw.GetBandwidthTotals()
		bytes += a.TotalIn - before[i].TotalIn + a.TotalOut - before[i].TotalOut
	}
	f.QuietSeconds = secs
	walksAfter := w.walks()
	f.WindowWalks = map[string]float64{}
	for k, v := range walksAfter {
		f.WindowWalks[k] = float64(v-walksBefore[k]) / float64(len(w.nodes))
	}
	byProto := map[string]int64{}
	for _, sn := range w.nodes {
		for p, st := range sn.bw.GetBandwidthByProtocol() {
			byProto[string(p)] += st.TotalIn + st.TotalOut
		}
	}
	f.ByProtocol = map[string]float64{}
	f.WindowByProtocol = map[string]float64{}
	for p, b := range byProto {
		f.ByProtocol[p] = float64(b) / float64(len(w.nodes))
		if d := b - protoBefore[p]; d > 0 {
			f.WindowByProtocol[p] = float64(d) / secs / float64(len(w.nodes))
		}
	}
	f.BytesPerSec = float64(bytes) / secs / float64(len(w.nodes))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	f.HeapPerNode = float64(ms.HeapAlloc-min(base, ms.HeapAlloc)) / float64(len(w.nodes)) / (1 << 20)
}

// contacts makes every node contact k members it has no link with, par
// at a time, and records the latencies.
func (w *scaleWorld) contacts(t *testing.T, k, par int, f *scaleFigures) []error {
	rng := rand.New(rand.NewPCG(13, uint64(len(w.nodes))))
	type job struct{ from, to *scaleNode }
	var jobs []job
	for i, sn := range w.nodes {
		x, _ := sn.td.network(t, w.id)
		linked := map[string]bool{}
		for _, m := range x.Members {
			linked[m.Address] = m.Link
		}
		for picked := 0; picked < k; {
			j := rng.IntN(len(w.nodes))
			to := w.nodes[j]
			if j == i || linked[to.td.d.Node.ID().String()] {
				continue
			}
			linked[to.td.d.Node.ID().String()] = true
			jobs = append(jobs, job{sn, to})
			picked++
		}
	}
	var mu sync.Mutex
	var lat []float64
	var errs []error
	sem := make(chan struct{}, par)
	var wg sync.WaitGroup
	for i, jb := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			d, err := jb.from.contact(ctx, jb.to, uint64(i)+1)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			lat = append(lat, float64(d.Microseconds())/1000)
		}()
	}
	wg.Wait()
	f.Contacts, f.Failed = len(jobs), len(errs)
	if len(lat) > 0 {
		slices.Sort(lat)
		s := 0.0
		for _, x := range lat {
			s += x
		}
		f.ContactMean = s / float64(len(lat))
		f.ContactP95 = lat[min(len(lat)-1, int(0.95*float64(len(lat))))]
		f.ContactMax = lat[len(lat)-1]
	}
	return errs
}

// quietBound is what a node may hold on a quiet network once idle links
// closed: its own seeds (MinLinks) and the seeds others chose that it
// keeps (MaxIdleInbound). While it talks, its social neighbours' links
// come on top.
func quietBound(b *api.LinkBounds) int { return b.MinLinks + b.MaxIdleInbound }

// TestScaleLinksBounded: twenty daemons on one public network with links
// on demand hold a bounded number of links each (the bounds their
// networks report, not N-1) and know at most 8 members (--max-members 8,
// those with a link kept on top); every node reaches two members it had
// no link with through the on-demand path (lookup, link, frame), and once
// idle every node is back within the quiet bound.
//
// It runs in make test-scale (KADLAN_SCALE=1), not in make test: under two
// CPU hogs with -race one of the 20 stayed without a link for over two
// minutes (its 3 s idle timeout against a starved scheduler, or a real
// stall: not settled; see issue 13's note).
func TestScaleLinksBounded(t *testing.T) {
	if os.Getenv("KADLAN_SCALE") == "" {
		t.Skip("20 in-process daemons; run with KADLAN_SCALE=1 (make test-scale)")
	}
	const n, idle, maxKnown = 20, 3 * time.Second, 8
	w := newScaleWorld(t, n, idle, false, maxKnown, "tcp")
	x, _ := w.nodes[0].td.network(t, w.id)
	if x.Bounds == nil || !x.Bounds.OnDemand || x.Bounds.MaxIdleInbound == 0 || x.Bounds.KnownMembers != maxKnown {
		t.Fatalf("bounds %+v, want links on demand", x.Bounds)
	}
	quiet, talking := quietBound(x.Bounds), quietBound(x.Bounds)+x.Bounds.SocialNeighbours
	if quiet >= n-1 {
		t.Fatalf("quiet bound %d: the test needs more than %d nodes", quiet, quiet+1)
	}
	var f scaleFigures
	for _, err := range w.contacts(t, 2, 8, &f) {
		t.Error(err)
	}
	links, _ := w.links(t)
	f.LinksMean, f.LinksMax = meanMax(links)
	for i, l := range links {
		if l > talking {
			t.Errorf("node %d holds %d links while talking, want <= %d", i, l, talking)
		}
	}
	t.Logf("%d nodes: %d first contacts, %d failed, mean %.0f ms, p95 %.0f ms, max %.0f ms; links after them mean %.1f max %d",
		n, f.Contacts, f.Failed, f.ContactMean, f.ContactP95, f.ContactMax, f.LinksMean, f.LinksMax)
	err := netlab.Eventually(idle+30*time.Second, 250*time.Millisecond, func() error {
		links, known := w.links(t)
		for i, l := range links {
			if l > quiet {
				return fmt.Errorf("node %d holds %d links once idle, want <= %d (MinLinks + MaxIdleInbound)", i, l, quiet)
			}
			// Members with a link are kept beyond the bound.
			if known[i] > maxKnown+l {
				return fmt.Errorf("node %d knows %d members with %d links, want <= %d + links", i, known[i], l, maxKnown)
			}
		}
		f.LinksMean, f.LinksMax = meanMax(links)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("idle: links mean %.1f max %d (quiet bound %d, full mesh %d)", f.LinksMean, f.LinksMax, quiet, n-1)
}

// TestBenchScale is the in-process half of `make bench-scale`
// (KADLAN_BENCH_SCALE=10,100,250,500, the sizes to run): for each size it
// starts a scale world (--link-idle 30s), lets it settle for 45 s (past
// the idle time), measures a quiet window (KADLAN_BENCH_QUIET, default
// 30s), then has every node contact two members it has no link with, 16
// at a time, and prints one JSON line per size, also appended to
// KADLAN_BENCH_OUT/bench-scale-inprocess.jsonl for the e2e half's table.
// benchIdle is --link-idle in the benchmark.
const benchIdle = 30 * time.Second

// fdsPerNode is the open files an in-process node needs, with a margin,
// by transport (see newScaleWorld).
var fdsPerNode = map[string]int{"tcp": 100, "quic": 20}

func TestBenchScale(t *testing.T) {
	sizes := os.Getenv("KADLAN_BENCH_SCALE")
	if sizes == "" {
		t.Skip("benchmark; run with KADLAN_BENCH_SCALE=10,100,250,500 (make bench-scale)")
	}
	dur := func(env string, def time.Duration) time.Duration {
		v := os.Getenv(env)
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s: %v", env, err)
		}
		return d
	}
	quiet := dur("KADLAN_BENCH_QUIET", 30*time.Second)
	transport := os.Getenv("KADLAN_BENCH_TRANSPORT")
	if transport == "" {
		transport = "quic"
	}
	if _, ok := fdsPerNode[transport]; !ok {
		t.Fatalf("KADLAN_BENCH_TRANSPORT: %q: want tcp or quic", transport)
	}
	// Settling past the idle time is part of the method; a longer settle
	// (KADLAN_BENCH_SETTLE) lets discovery's rounds back off (1 to 10 min)
	// before the window, for the steady state.
	settle := dur("KADLAN_BENCH_SETTLE", benchIdle+15*time.Second)
	var ns []int
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 {
			t.Fatalf("KADLAN_BENCH_SCALE: %q is not a size", s)
		}
		// Both ends of every loopback connection are in this process:
		// about 80 descriptors per node (README, Scale). Short of them,
		// dials fail and first contacts with them: that would measure the
		// limit, not kadlan. Checked for every size before any runs.
		var lim syscall.Rlimit
		if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err == nil && lim.Cur < uint64(fdsPerNode[transport]*n) {
			t.Fatalf("KADLAN_BENCH_SCALE: %d in-process nodes over %s need about %d open files; the limit is %d (hard %d): raise it (ulimit -n; a hard limit needs CAP_SYS_RESOURCE), measure fewer nodes or use KADLAN_BENCH_TRANSPORT=quic", n, transport, fdsPerNode[transport]*n, lim.Cur, lim.Max)
		}
		ns = append(ns, n)
	}
	for _, n := range ns {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			started := time.Now()
			w := newScaleWorld(t, n, benchIdle, false, 0, transport)
			f := scaleFigures{N: n, Transport: transport, Setup: time.Since(started).Seconds(), Settle: settle.Seconds()}
			t.Logf("%d daemons up and joined in %v", n, time.Since(started).Round(time.Second))
			time.Sleep(settle) // a measurement's method, not a wait for state
			if fds, err := os.ReadDir("/proc/self/fd"); err == nil {
				f.OpenFiles = float64(len(fds)) / float64(n)
			}
			links, known := w.links(t)
			f.LinksMean, f.LinksMax = meanMax(links)
			f.KnownMean, f.KnownMax = meanMax(known)
			w.quiet(quiet, ms.HeapAlloc, &f)
			errs := w.contacts(t, 2, 16, &f)
			for i, err := range errs {
				if i < 5 {
					t.Logf("first contact failed: %v", err)
				}
			}
			links, _ = w.links(t)
			f.LinksAfter, f.LinksMaxAft = meanMax(links)

			b, _ := json.Marshal(f)
			fmt.Printf("scale-inprocess: %s\n", b)
			if dir := os.Getenv("KADLAN_BENCH_OUT"); dir != "" {
				fh, err := os.OpenFile(filepath.Join(dir, "bench-scale-inprocess.jsonl"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(fh, "%s\n", b)
				fh.Close()
			}
		})
	}
}
