package e2e

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kadlan/kadlan/e2e/netlab"
	"github.com/kadlan/kadlan/e2e/netlab/labtest"
)

// TestBenchDataplane is `make bench-dataplane` (KADLAN_BENCH=1, root): two
// namespaces joined by one veth pair, which holds public (192.0.0.128/25)
// and private (192.168.99.0/24) addresses, carry side by side the raw
// veth; kadlan networks between pairs of real `kadlan daemon`s (TAP to
// TAP), each pair on one kind of address and with one kind of link: the
// default (TCP, a public link moved from QUIC) and QUIC only (the daemons
// listen on QUIC alone); upstream wireguard-go, built once from the module
// proxy into the user's cache dir, as the anchor; and, when installed,
// Debian's wireguard-go and tinc in switch mode (each skipped with a line
// saying why). Rounds interleave the systems; each round measures per
// system the idle ping RTT, iperf3 TCP with one stream (ping RTT under that
// load measured meanwhile, CPU time of both sides' daemons from
// /proc/PID/stat) and with 4 streams. It prints medians across rounds,
// ratios to the raw veth and to upstream wireguard-go of the same run, the
// link's transport and scope (`kadlan members --json`) with each kadlan
// row, and the RSS of each daemon after the run, and writes
// bench-dataplane.json (in KADLAN_BENCH_OUT, else the current directory).
// Goals are read off the table, not asserted. KADLAN_BENCH_ROUNDS and
// KADLAN_BENCH_SECS change the defaults (3 rounds, 5 s per iperf3 run);
// KADLAN_BENCH_ONLY=kadlan skips the other systems; KADLAN_BENCH_KADLAN
// lists the kadlan rows (default "tcp/public,quic/public,tcp/lan,quic/lan,
// quic/punched"; quic/punched and quic/birthday run between two NAT sites
// over a hole-punched path, see punchVariants, with quic/punched's raw
// reference row "raw via 2 NATs" across the same routers);
// KADLAN_BENCH_BASE=BIN adds a row "kadlan base" (as tcp/public) run by
// another kadlan binary (or the same one), for a before/after in one run;
// KADLAN_BENCH_DAEMON_ENV and KADLAN_BENCH_BASE_ENV ("GOGC=50 ...") set the
// environment of the other kadlan daemons and of the base row's;
// KADLAN_BENCH_RELAY=0 skips the relayed run.
func TestBenchDataplane(t *testing.T) {
	if os.Getenv("KADLAN_BENCH") == "" {
		t.Skip("benchmark; run with KADLAN_BENCH=1 (make bench-dataplane)")
	}
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Skip("iperf3 not installed (apt-get install iperf3)")
	}
	rounds, secs := envInt("KADLAN_BENCH_ROUNDS", 3), envInt("KADLAN_BENCH_SECS", 5)
	lab := labtest.New(t)
	a, b := vethHosts(t, lab)
	var notes []string
	note := func(format string, args ...any) {
		n := fmt.Sprintf(format, args...)
		notes = append(notes, n)
		fmt.Println(n)
		t.Log(n)
	}
	systems := []*dpSystem{{name: "raw veth", ip: b.IPv4, addresses: "public"}}
	want := os.Getenv("KADLAN_BENCH_KADLAN")
	if want == "" {
		want = "tcp/public,quic/public,tcp/lan,quic/lan,quic/punched"
	}
	base := os.Getenv("KADLAN_BENCH_BASE")
	if base != "" {
		want += ",base/public"
	}
	var idle float64
	idleSecs := envInt("KADLAN_BENCH_IDLE_SECS", 30)
	var nat dpNAT // the punched rows' NAT sites and public nodes
	for i, v := range strings.Split(want, ",") {
		if pv, ok := punchVariants[v]; ok {
			ss, why := nat.setup(t, lab, pv, i)
			if ss == nil {
				note("kadlan %s: skipped: %s", v, why)
				continue
			}
			ss[0].perfDone = len(systems) > 1
			systems = append(systems, ss...)
			continue
		}
		kv, ok := kadlanVariants[v]
		if v == "base/public" {
			kv.bin, kv.base = base, true
		}
		if !ok {
			t.Fatalf("KADLAN_BENCH_KADLAN: unknown row %q (known: tcp/public, quic/public, tcp/lan, quic/lan, quic/punched, quic/birthday)", v)
		}
		s, why := setupKadlan(t, a, b, kv, i)
		if s == nil {
			note("kadlan %s: skipped: %s", v, why)
			continue
		}
		s.perfDone = len(systems) > 1 // KADLAN_BENCH_PERF profiles the first kadlan row
		systems = append(systems, s)
		if idle == 0 {
			// Before any other system runs on the veth: what two joined
			// members send each other with no traffic of their own.
			idle = idleTraffic(t, lab, a, idleSecs)
		}
	}
	only := os.Getenv("KADLAN_BENCH_ONLY") // "kadlan": skip the others
	if only != "" {
		note("KADLAN_BENCH_ONLY=%s: wireguard-go and tinc skipped", only)
	} else {
		if bin, version, why := upstreamWireguard(t); bin == "" {
			note("wireguard-go (upstream): skipped: %s", why)
		} else if s, why := setupWireguard(t, a, b, bin, "wireguard-go", version, 0); s != nil {
			systems = append(systems, s)
		} else {
			note("wireguard-go (upstream): skipped: %s", why)
		}
		if bin, err := exec.LookPath("wireguard-go"); err != nil {
			note("wireguard-go (Debian): skipped: not installed (apt-get install wireguard-go)")
		} else {
			v, _ := exec.Command(bin, "--version").Output()
			version := strings.SplitN(strings.TrimSpace(string(v)), "\n", 2)[0] + " (Debian package)"
			if s, why := setupWireguard(t, a, b, bin, "wireguard-go Debian", version, 1); s != nil {
				systems = append(systems, s)
			} else {
				note("wireguard-go (Debian): skipped: %s", why)
			}
		}
		if s, why := setupTinc(t, a, b); s != nil {
			systems = append(systems, s)
		} else {
			note("tinc: skipped: %s", why)
		}
	}
	servers := map[*labtest.Host]bool{}
	for _, s := range systems {
		if s.from == nil {
			s.from, s.to = a, b
		}
		if !servers[s.to] {
			servers[s.to] = true
			srv := s.to.Start(filepath.Join(t.TempDir(), "iperf3-server.log"), "iperf3", "-s")
			defer srv.Kill()
		}
	}
	for _, s := range systems {
		// Warm up ARP/NDP, MAC learning and the links.
		if err := netlab.Eventually(20*time.Second, 200*time.Millisecond, func() error {
			_, err := lab.Exec(s.from.NS, "ping", "-c", "1", "-W", "1", s.ip)
			return err
		}); err != nil {
			t.Fatalf("%s: %s unreachable: %v", s.name, s.ip, err)
		}
	}
	bg, roundsStart := nat.bgPids(), time.Now()
	bgCPU := cpuPids(bg)
	for r := 0; r < rounds; r++ {
		for _, s := range systems {
			s.measure(t, lab, secs)
		}
	}
	if len(bg) > 0 {
		note("the NAT rows' %d public daemons (bootstrap, relays), idle beside every row: %.1f CPU-s over the %.0f s of rounds",
			len(bg), cpuPids(bg)-bgCPU, time.Since(roundsStart).Seconds())
	}
	for _, s := range systems {
		s.rssA, s.rssB = rssPids(s.pidsA), rssPids(s.pidsB)
		if len(s.nodes) > 0 {
			s.rssEnd = [2]string{rssDetail(s.pidsA), rssDetail(s.pidsB)}
		}
		if len(s.nodes) == 2 { // the link as it ended the run
			if m, err := memberStatus(s.nodes[0], s.netID, s.nodes[1].Address); err == nil {
				s.transport, s.scope, s.path = m.Transport, m.Scope, m.Path
			}
			if s.wire != "" {
				s.detail = append(s.detail, fmt.Sprintf("after the run: kadlan members: %s %s/%s; %s", s.path, s.transport, s.scope, peersPath(s.nodes[0], s.nodes[1])))
			}
		}
	}
	var rep strings.Builder
	raw, raw4 := median(systems[0].mbps1), median(systems[0].mbps4)
	var wg1 float64
	for _, s := range systems {
		if s.name == "wireguard-go" {
			wg1 = median(s.mbps1)
		}
	}
	fmt.Fprintf(&rep, "\ndata plane: namespaces on one veth, iperf3 TCP %d s per run, medians of %d interleaved rounds\n", secs, rounds)
	fmt.Fprintf(&rep, "%-22s %-13s %9s %6s %6s %9s %6s %9s %9s %8s %8s %7s %7s\n",
		"system", "link", "1 stream", "ratio", "x wg", "4 streams", "ratio", "ping idle", "ping load", "CPU-s/GB", "CPU-s/GB", "RSS", "RSS")
	fmt.Fprintf(&rep, "%-22s %-13s %9s %6s %6s %9s %6s %9s %9s %8s %8s %7s %7s\n",
		"", "", "Mbit/s", "raw", "", "Mbit/s", "raw", "ms", "ms", "sender", "receiver", "sender", "recv")
	var rows []dpRow
	for _, s := range systems {
		wgCol := "-"
		if wg1 > 0 {
			wgCol = fmt.Sprintf("%.2f", median(s.mbps1)/wg1)
		}
		fmt.Fprintf(&rep, "%-22s %-13s %9.0f %6.3f %6s %9.0f %6.3f %9.3f %9.3f %8s %8s %7s %7s\n", s.name, s.link(),
			median(s.mbps1), median(s.mbps1)/raw, wgCol, median(s.mbps4), median(s.mbps4)/raw4,
			median(s.pingIdle), median(s.pingLoad), cpuCol(s.cpuA), cpuCol(s.cpuB), rssCol(s, s.rssA), rssCol(s, s.rssB))
		rows = append(rows, s.row(raw, raw4, wg1, median(systems[0].pingIdle)))
	}
	fmt.Fprintf(&rep, "per round (min-max of %d):\n", rounds)
	for _, s := range systems {
		fmt.Fprintf(&rep, "  %-22s 1 stream %s Mbit/s, 4 streams %s, ping idle %s ms\n", s.name, spread(s.mbps1, "%.0f"), spread(s.mbps4, "%.0f"), spread(s.pingIdle, "%.3f"))
	}
	fmt.Fprintf(&rep, "ratio: to raw veth, x wg: to upstream wireguard-go, 1 stream, both in the same run. link: transport/scope of the member link\n")
	fmt.Fprintf(&rep, "(kadlan members --json, after the run). ping: average of 20 pings (idle) and of pings every 50 ms during the 1-stream run (load).\n")
	fmt.Fprintf(&rep, "CPU-s/GB: user+system CPU seconds of the daemon on each side per GB received, 1-stream run. RSS: VmRSS after the run.\n")
	for _, s := range systems {
		if s.version != "" {
			fmt.Fprintf(&rep, "%s: %s\n", s.name, s.version)
		}
		if s.rssIdle[0] != "" {
			fmt.Fprintf(&rep, "  RSS sender / receiver: joined, before traffic %s / %s; after the run %s / %s\n", s.rssIdle[0], s.rssIdle[1], s.rssEnd[0], s.rssEnd[1])
		}
		if s.wire != "" {
			fmt.Fprintf(&rep, "%s: %s\n", s.name, s.wire)
		}
		for _, l := range s.detail {
			fmt.Fprintf(&rep, "  %s\n", l)
		}
		if l := s.refLine(); l != "" {
			fmt.Fprintf(&rep, "  %s\n", l)
		}
		for _, l := range kadlanLinks(s.nodes) {
			fmt.Fprintf(&rep, "  %s\n", l)
		}
	}
	if idle > 0 {
		fmt.Fprintf(&rep, "idle traffic between two joined members (kadlan %s): %.0f B/s (rx+tx on the veth over %d s; goal <= 300)\n", systems[1].link(), idle, idleSecs)
	}
	t.Log(rep.String())
	fmt.Println(rep.String())
	out := dpReport{Date: time.Now().UTC().Format(time.RFC3339), Rounds: rounds, Secs: secs, IdleTrafficBps: idle, Systems: rows, Notes: notes}
	if len(systems) > 1 {
		out.Kadlan = systems[1].version
	}
	if os.Getenv("KADLAN_BENCH_RELAY") != "0" {
		r := benchRelayed(t, secs)
		t.Log(r)
		fmt.Println(r)
		out.Relayed = strings.TrimSpace(r)
	}
	writeBenchJSON(t, "bench-dataplane.json", out)
}

// dpReport is bench-dataplane.json.
type dpReport struct {
	Date           string   `json:"date"`
	Kadlan         string   `json:"kadlan_version,omitempty"`
	Rounds         int      `json:"rounds"`
	Secs           int      `json:"iperf_secs"`
	IdleTrafficBps float64  `json:"idle_traffic_bytes_per_s,omitempty"` // kadlan's first row
	Systems        []dpRow  `json:"systems"`
	Relayed        string   `json:"relayed,omitempty"`
	Notes          []string `json:"notes,omitempty"`
}

// dpRow is one system of bench-dataplane.json.
type dpRow struct {
	System    string `json:"system"`
	Version   string `json:"version,omitempty"`
	Addresses string `json:"addresses"`           // public or private
	Transport string `json:"transport,omitempty"` // kadlan: of the member link after the run
	Scope     string `json:"scope,omitempty"`
	Path      string `json:"path,omitempty"`
	Wire      string `json:"wire,omitempty"` // when not the raw veth's: what the row crosses
	// Reference is the raw row across the same wire, with the ratios to it.
	Reference string   `json:"reference,omitempty"`
	RatioRef1 float64  `json:"ratio_reference_1_stream,omitempty"`
	RatioRef4 float64  `json:"ratio_reference_4_streams,omitempty"`
	Detail    []string `json:"detail,omitempty"`

	Mbps1       dpStat     `json:"mbps_1_stream"`
	Mbps4       dpStat     `json:"mbps_4_streams"`
	RatioRaw1   float64    `json:"ratio_raw_1_stream"`
	RatioRaw4   float64    `json:"ratio_raw_4_streams"`
	RatioWG1    float64    `json:"ratio_wireguard_go_1_stream,omitempty"`
	PingIdleMs  dpStat     `json:"ping_idle_ms"`
	PingLoadMs  dpStat     `json:"ping_load_ms"`
	CPUPerGB    [2]float64 `json:"cpu_s_per_gb_sender_receiver"`
	RSSMiB      [2]float64 `json:"rss_mib_sender_receiver"`
	RSSBefore   [2]string  `json:"rss_before_traffic,omitempty"` // kadlan: anon + file split
	RSSAfter    [2]string  `json:"rss_after_run,omitempty"`
	RawRTTAdded float64    `json:"ping_idle_added_ms"` // over the raw veth's
}

// dpStat is the median and spread of one figure over the rounds.
type dpStat struct {
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Rounds []float64 `json:"rounds"`
}

func stat(xs []float64) dpStat {
	s := dpStat{Median: median(xs), Rounds: xs}
	for i, x := range xs {
		if i == 0 || x < s.Min {
			s.Min = x
		}
		if i == 0 || x > s.Max {
			s.Max = x
		}
	}
	return s
}

// row is s's JSON row; raw, raw4 and rawIdle are the raw veth's medians,
// wg1 upstream wireguard-go's (0 when it did not run).
func (s *dpSystem) row(raw, raw4, wg1, rawIdle float64) dpRow {
	r := dpRow{System: s.name, Version: s.version, Addresses: s.addresses, Transport: s.transport, Scope: s.scope, Path: s.path,
		Mbps1: stat(s.mbps1), Mbps4: stat(s.mbps4), PingIdleMs: stat(s.pingIdle), PingLoadMs: stat(s.pingLoad),
		CPUPerGB: [2]float64{median(s.cpuA), median(s.cpuB)}, RSSMiB: [2]float64{s.rssA, s.rssB},
		RSSBefore: s.rssIdle, RSSAfter: s.rssEnd, Wire: s.wire, Detail: s.detail}
	if s.ref != nil && median(s.ref.mbps1) > 0 && median(s.ref.mbps4) > 0 {
		r.Reference = s.ref.name
		r.RatioRef1, r.RatioRef4 = r.Mbps1.Median/median(s.ref.mbps1), r.Mbps4.Median/median(s.ref.mbps4)
	}
	if raw > 0 {
		r.RatioRaw1 = r.Mbps1.Median / raw
	}
	if raw4 > 0 {
		r.RatioRaw4 = r.Mbps4.Median / raw4
	}
	if wg1 > 0 {
		r.RatioWG1 = r.Mbps1.Median / wg1
	}
	r.RawRTTAdded = r.PingIdleMs.Median - rawIdle
	return r
}

// benchRelayed measures a relayed member link: two nodes behind symmetric
// NATs (no hole punching) on a public network, their link through a public
// kadlan node's relay service (default limits: 1 GiB each way and 1 h per
// circuit, then the link reconnects). One iperf3 run, 1 stream.
func benchRelayed(t *testing.T, secs int) string {
	t.Helper()
	lab := labtest.New(t)
	// Two public nodes: a node behind NAT wants reservations on two relays.
	relay := lab.PublicHost("relay").StartNode(t)
	relay2 := lab.PublicHost("relay2").StartNode(t, "--bootstrap", relay.BootstrapAddr())
	waitJoined(t, relay2, 1)
	var nodes []*labtest.Node
	for _, name := range []string{"ra", "rb"} {
		r := lab.NATRouter(name+"nat", netlab.Symmetric, nil)
		n := r.PrivateHost(name).StartNode(t, "--bootstrap", relay.BootstrapAddr())
		waitRelayed(t, n)
		nodes = append(nodes, n)
	}
	id := createNet(t, nodes[0], "--name", "relayed", "--ipv4", "10.96.0.0/24")
	if _, err := nodes[1].CLI("join", id); err != nil {
		t.Fatal(err)
	}
	waitNet(t, nodes[0], id, "ok", 1)
	x := waitNet(t, nodes[1], id, "ok", 1)
	ip := addrOf(x.IPv4[0])
	path := "?"
	for _, m := range x.Members {
		if m.Address == nodes[0].Address {
			path = m.Path
		}
	}
	// A node that gets its network's addresses reconnects about a second
	// later (the daemon takes them for a network change), which resets the
	// link once: let that pass.
	time.Sleep(3 * time.Second)
	srv := nodes[1].Host.Start(filepath.Join(t.TempDir(), "iperf3-relay.log"), "iperf3", "-s")
	defer srv.Kill()
	if err := netlab.Eventually(20*time.Second, 200*time.Millisecond, func() error {
		_, err := lab.Exec(nodes[0].Host.NS, "ping", "-c", "1", "-W", "1", ip)
		return err
	}); err != nil {
		return fmt.Sprintf("relayed: %s unreachable: %v\n", ip, err)
	}
	rtt, _ := pingAvg(lab, nodes[0].Host.NS, ip, 20, "0.01")
	if os.Getenv("KADLAN_BENCH_LOGS") != "" {
		out, _ := lab.Exec(nodes[0].Host.NS, "iperf3", "-c", ip, "-t", strconv.Itoa(secs))
		t.Log(out)
		for _, n := range append(nodes, relay) {
			log, _ := os.ReadFile(n.Log)
			t.Logf("%s:\n%s", n.Host.Name, log)
		}
	}
	mbps, _, err := iperfRun(lab, nodes[0].Host.NS, ip, secs, 1)
	if err != nil {
		return fmt.Sprintf("relayed: iperf3: %v\n", err)
	}
	return fmt.Sprintf("relayed (two symmetric NATs, through a public kadlan relay; member path %s): %.0f Mbit/s 1 stream, ping idle %.3f ms; relays' RSS %.0f and %.0f MiB\n",
		path, mbps, rtt, rssOf(relay.Host, "kadlan"), rssOf(relay2.Host, "kadlan"))
}

// dpSystem is one data plane under test: the address of side b on it and
// the daemons on each side (none for the raw veth).
type dpSystem struct {
	name      string
	ip        string
	addresses string // public or private: of the veth the system runs over
	version   string
	// The daemons' processes on each side (none for the raw veth).
	pidsA, pidsB []int
	nodes        []*labtest.Node // kadlan's daemons
	netID        string
	// kadlan: the member link (kadlan members --json), read after the run.
	transport, scope, path string

	mbps1, mbps4, pingIdle, pingLoad []float64
	cpuA, cpuB                       []float64 // CPU-s per GB
	rssA, rssB                       float64   // MiB after the run
	rssIdle, rssEnd                  [2]string // kadlan: anon/file split before and after the run
	perfDone                         bool
	// from and to run the ping and iperf3 client and server (nil: the veth
	// pair's two namespaces); wire says what lies between them when it is
	// not the veth; ref is the raw row across the same wire; detail lines
	// go under the table.
	from, to *labtest.Host
	wire     string
	ref      *dpSystem
	detail   []string
}

// link is the member link's transport and scope, or the kind of
// addresses for a system without one.
func (s *dpSystem) link() string {
	if s.transport != "" {
		return s.transport + "/" + s.scope
	}
	if len(s.nodes) > 0 {
		return "?/" + s.addresses
	}
	return "-"
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// vethHosts makes two namespaces of the lab joined by one veth pair, with
// public (to go-multiaddr) addresses and private ones beside them, as hosts
// daemons can run on.
func vethHosts(t *testing.T, lab *labtest.Lab) (*labtest.Host, *labtest.Host) {
	t.Helper()
	mk := func(name, ip4, ip6 string) *labtest.Host {
		h := lab.Namespace(name)
		h.IPv4, h.IPv6 = ip4, ip6
		return h
	}
	a, b := mk("dpa", "192.0.0.129", "2001:2::1"), mk("dpb", "192.0.0.130", "2001:2::2")
	lab.Link(a, "eth0", b, "eth0")
	for i, h := range []*labtest.Host{a, b} {
		for _, c := range [][]string{
			{"ip", "addr", "add", h.IPv4 + "/25", "dev", "eth0"},
			{"ip", "addr", "add", fmt.Sprintf("192.168.99.%d/24", i+1), "dev", "eth0"},
			{"ip", "-6", "addr", "add", h.IPv6 + "/64", "dev", "eth0", "nodad"},
		} {
			if _, err := lab.Exec(h.NS, c...); err != nil {
				t.Fatal(err)
			}
		}
	}
	return a, b
}

// kadlanVariant is one kadlan row: the addresses the daemons listen on
// (and only those), and the link transport expected.
type kadlanVariant struct {
	name      string
	addresses string // public or private
	ipA, ipB  string
	port      int
	quicOnly  bool
	bin       string // another kadlan binary (KADLAN_BENCH_BASE)
	base      bool   // the base row: KADLAN_BENCH_BASE_ENV instead of KADLAN_BENCH_DAEMON_ENV
}

var kadlanVariants = map[string]kadlanVariant{
	"tcp/public":  {"kadlan", "public", "192.0.0.129", "192.0.0.130", 4242, false, "", false},
	"quic/public": {"kadlan QUIC only", "public", "192.0.0.129", "192.0.0.130", 4243, true, "", false},
	"tcp/lan":     {"kadlan LAN", "private", "192.168.99.1", "192.168.99.2", 4244, false, "", false},
	"quic/lan":    {"kadlan LAN QUIC only", "private", "192.168.99.1", "192.168.99.2", 4245, true, "", false},
	// base/public is tcp/public run by the binary KADLAN_BENCH_BASE names
	// (added to the rows when it is set): a before/after in one run.
	"base/public": {"kadlan base", "public", "192.0.0.129", "192.0.0.130", 4246, false, "", false},
}

func (v kadlanVariant) listen(ip string) []string {
	quic := fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", ip, v.port)
	if v.quicOnly {
		return []string{"--listen", quic}
	}
	return []string{"--listen", fmt.Sprintf("/ip4/%s/tcp/%d", ip, v.port), "--listen", quic}
}

// setupKadlan starts a daemon on each side listening on v's addresses
// only, a network on a (the i-th: its own subnet) and b's join, and waits
// until both have their link, on TCP unless v is QUIC only.
func setupKadlan(t *testing.T, a, b *labtest.Host, v kadlanVariant, i int) (*dpSystem, string) {
	t.Helper()
	// KADLAN_BENCH_DAEMON_ENV ("GOGC=50 GOMEMLIMIT=24MiB"): the daemons'
	// environment only (other systems may be Go programs too).
	envVar := "KADLAN_BENCH_DAEMON_ENV"
	if v.base {
		envVar = "KADLAN_BENCH_BASE_ENV" // the base row's own
	}
	if env := strings.Fields(os.Getenv(envVar)); len(env) > 0 {
		for _, kv := range env {
			k, val, _ := strings.Cut(kv, "=")
			old, had := os.LookupEnv(k)
			os.Setenv(k, val)
			defer func() {
				if had {
					os.Setenv(k, old)
				} else {
					os.Unsetenv(k)
				}
			}()
		}
	}
	na := a.StartNode(t, v.listen(v.ipA)...)
	if v.bin != "" {
		na.Stop()
		na.Bin = v.bin
		na.Start(t, v.listen(v.ipA)...)
	}
	boot := fmt.Sprintf("/ip4/%s/tcp/%d/p2p/%s", v.ipA, v.port, na.Address)
	if v.quicOnly {
		boot = fmt.Sprintf("/ip4/%s/udp/%d/quic-v1/p2p/%s", v.ipA, v.port, na.Address)
	}
	nb := b.StartNode(t, append(v.listen(v.ipB), "--bootstrap", boot)...)
	if v.bin != "" {
		nb.Stop()
		nb.Bin = v.bin
		nb.Start(t, append(v.listen(v.ipB), "--bootstrap", boot)...)
	}
	id := createNet(t, na, "--name", fmt.Sprintf("bench%d", i), "--ipv4", fmt.Sprintf("10.99.%d.0/24", i))
	if _, err := nb.CLI("join", id); err != nil {
		t.Fatal(err)
	}
	waitNet(t, na, id, "ok", 1)
	x := waitNet(t, nb, id, "ok", 1)
	want := "tcp"
	if v.quicOnly {
		want = "quic"
	}
	// A public link starts on QUIC and moves to TCP in the background.
	if err := netlab.Eventually(20*time.Second, 100*time.Millisecond, func() error {
		m, err := memberStatus(na, id, nb.Address)
		if err != nil {
			return err
		}
		if m.Transport != want || !m.Link {
			return fmt.Errorf("link on %q (link up %v), want %s", m.Transport, m.Link, want)
		}
		return nil
	}); err != nil {
		return nil, err.Error()
	}
	ver, _ := na.CLI("--version")
	s := &dpSystem{name: v.name, ip: addrOf(x.IPv4[0]), addresses: v.addresses, version: strings.TrimSpace(ver),
		nodes: []*labtest.Node{na, nb}, netID: id, pidsA: nodePids(na), pidsB: nodePids(nb)}
	s.rssIdle = [2]string{rssDetail(s.pidsA), rssDetail(s.pidsB)}
	if env := os.Getenv(envVar); env != "" {
		s.version += " (daemons' environment: " + env + ")"
	}
	return s, ""
}

// nodePids finds n's daemon among its namespace's processes of its binary by its
// state directory on the command line (`ip netns exec` execs the command).
func nodePids(n *labtest.Node) []int {
	var out []int
	comm := filepath.Base(n.Bin) // the kernel keeps 15 bytes of it
	if len(comm) > 15 {
		comm = comm[:15]
	}
	for _, pid := range pidsOf(n.Host, comm) {
		cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && strings.Contains(string(cmd), "\x00"+n.State+"\x00") {
			out = append(out, pid)
		}
	}
	return out
}

// kadlanLinks returns the daemons' log lines about offload and links.
func kadlanLinks(nodes []*labtest.Node) []string {
	var out []string
	for _, n := range nodes {
		log, _ := os.ReadFile(n.Log)
		for _, line := range strings.Split(string(log), "\n") {
			if os.Getenv("KADLAN_BENCH_LOGS") != "" || strings.Contains(line, "offload") || strings.Contains(line, " link ") || strings.Contains(line, "QUIC to TCP") {
				if i := strings.Index(line, "networks: "); i >= 0 {
					line = line[i:]
				}
				out = append(out, n.Host.Name+": "+line)
			}
		}
	}
	return out
}

// upstreamWireguard returns upstream wireguard-go (with its offloads),
// built once with `go install golang.zx2c4.com/wireguard@VERSION` into
// the user's cache dir (KADLAN_BENCH_WG_VERSION, default latest; delete
// the cache dir to rebuild), and its version line; or why not.
func upstreamWireguard(t *testing.T) (bin, version, why string) {
	t.Helper()
	ver := os.Getenv("KADLAN_BENCH_WG_VERSION")
	if ver == "" {
		ver = "latest"
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", "", err.Error()
	}
	dir := filepath.Join(cache, "kadlan-bench", "wireguard-go@"+ver)
	bin = filepath.Join(dir, "wireguard")
	if _, err := os.Stat(bin); err != nil {
		gobin, err := exec.LookPath("go")
		if err != nil {
			gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", "", err.Error()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "nice", "-n", "5", gobin, "install", "golang.zx2c4.com/wireguard@"+ver)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", "", fmt.Sprintf("go install golang.zx2c4.com/wireguard@%s: %v: %s", ver, err, strings.TrimSpace(string(out)))
		}
		fmt.Println("built upstream wireguard-go into", dir)
	}
	v, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return "", "", fmt.Sprintf("%s --version: %v", bin, err)
	}
	return bin, strings.SplitN(strings.TrimSpace(string(v)), "\n", 2)[0] + " (upstream, go install @" + ver + ")", ""
}

// setupWireguard runs wireguard-go bin (foreground) on each side with one
// peer, configured through its UAPI socket (no wireguard-tools needed);
// slot i gives it its own port, subnet and interface names.
func setupWireguard(t *testing.T, a, b *labtest.Host, bin, name, version string, i int) (*dpSystem, string) {
	t.Helper()
	dir := t.TempDir()
	type keys struct{ priv, pub string }
	gen := func() keys {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return keys{hex.EncodeToString(k.Bytes()), hex.EncodeToString(k.PublicKey().Bytes())}
	}
	ka, kb := gen(), gen()
	port := 51820 + i
	subnet := fmt.Sprintf("10.98.%d", i)
	// The UAPI socket (/var/run/wireguard/NAME.sock) is not per
	// namespace: each side needs its own interface name.
	sides := []struct {
		h        *labtest.Host
		key      keys
		peerPub  string
		ip, peer string
		dev      string
		pids     *[]int
	}{{a, ka, kb.pub, subnet + ".1", b.IPv4, fmt.Sprintf("wg%d%da", os.Getpid()%10000, i), nil},
		{b, kb, ka.pub, subnet + ".2", a.IPv4, fmt.Sprintf("wg%d%db", os.Getpid()%10000, i), nil}}
	s := &dpSystem{name: name, ip: subnet + ".2", addresses: "public", version: version}
	sides[0].pids, sides[1].pids = &s.pidsA, &s.pidsB
	for _, sd := range sides {
		p := sd.h.Start(filepath.Join(dir, sd.h.Name+"-wg.log"), "env", "WG_PROCESS_FOREGROUND=1", bin, "-f", sd.dev)
		*sd.pids = []int{p.Pid()}
	}
	for _, sd := range sides {
		sock := "/var/run/wireguard/" + sd.dev + ".sock"
		err := netlab.Eventually(5*time.Second, 50*time.Millisecond, func() error {
			_, err := os.Stat(sock)
			return err
		})
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(dir, sd.h.Name+"-wg.log"))
			return nil, fmt.Sprintf("wireguard-go did not open its UAPI socket: %v: %s", err, log)
		}
		conf := fmt.Sprintf("set=1\nprivate_key=%s\nlisten_port=%d\nreplace_peers=true\npublic_key=%s\nendpoint=%s:%d\nreplace_allowed_ips=true\nallowed_ip=%s.0/24\n\n",
			sd.key.priv, port, sd.peerPub, sd.peer, port, subnet)
		if err := uapiSet(sock, conf); err != nil {
			return nil, fmt.Sprintf("wireguard-go UAPI: %v", err)
		}
		for _, c := range [][]string{
			{"ip", "addr", "add", sd.ip + "/24", "dev", sd.dev},
			{"ip", "link", "set", sd.dev, "up"},
		} {
			if out, err := sd.h.Lab.Exec(sd.h.NS, c...); err != nil {
				t.Fatalf("wireguard: %v: %s", err, out)
			}
		}
	}
	return s, ""
}

// uapiSet sends a set operation to a wireguard-go UAPI socket and checks
// its errno.
func uapiSet(sock, conf string) error {
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(conf)); err != nil {
		return err
	}
	buf := make([]byte, 256)
	n, err := c.Read(buf)
	if err != nil {
		return err
	}
	if reply := strings.TrimSpace(string(buf[:n])); reply != "errno=0" {
		return fmt.Errorf("reply %q", reply)
	}
	return nil
}

// setupTinc runs tincd in switch mode (a TAP on each side, Ethernet
// switched by tinc) with default ciphers.
func setupTinc(t *testing.T, a, b *labtest.Host) (*dpSystem, string) {
	t.Helper()
	if _, err := exec.LookPath("tincd"); err != nil {
		return nil, "tincd not installed (apt-get install tinc)"
	}
	base := t.TempDir()
	sides := []struct {
		h          *labtest.Host
		name, peer string
		ip         string
	}{{a, "a", "b", "10.97.0.1"}, {b, "b", "a", "10.97.0.2"}}
	for _, s := range sides {
		dir := filepath.Join(base, s.name)
		if err := os.MkdirAll(filepath.Join(dir, "hosts"), 0o700); err != nil {
			t.Fatal(err)
		}
		conf := fmt.Sprintf("Name = %s\nMode = switch\nDeviceType = tap\nInterface = tincb0\nAddressFamily = ipv4\nConnectTo = %s\n", s.name, s.peer)
		up := fmt.Sprintf("#!/bin/sh\nip addr add %s/24 dev $INTERFACE\nip link set $INTERFACE up\n", s.ip)
		host := fmt.Sprintf("Address = %s\nPort = 655\n", s.h.IPv4)
		for f, c := range map[string]string{"tinc.conf": conf, "tinc-up": up, "hosts/" + s.name: host} {
			if err := os.WriteFile(filepath.Join(dir, f), []byte(c), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		if out, err := exec.Command("tincd", "-c", dir, "-K2048").CombinedOutput(); err != nil {
			return nil, fmt.Sprintf("tincd -K: %v: %s", err, out)
		}
	}
	for _, s := range sides { // exchange host files (with public keys)
		src := filepath.Join(base, s.peer, "hosts", s.peer)
		c, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(base, s.name, "hosts", s.peer), c, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var pids [2][]int
	for i, s := range sides {
		dir := filepath.Join(base, s.name)
		p := s.h.Start(filepath.Join(base, s.name+".log"), "tincd", "-c", dir, "-D", "--pidfile", filepath.Join(dir, "pid"))
		pids[i] = []int{p.Pid()}
	}
	v, _ := exec.Command("tincd", "--version").Output()
	return &dpSystem{name: "tinc (switch)", ip: "10.97.0.2", addresses: "public", pidsA: pids[0], pidsB: pids[1],
		version: strings.SplitN(strings.TrimSpace(string(v)), "\n", 2)[0] + ", default ciphers"}, ""
}

// measure runs one round for s.
func (s *dpSystem) measure(t *testing.T, lab *labtest.Lab, secs int) {
	t.Helper()
	a := s.from
	if rtt, err := pingAvg(lab, a.NS, s.ip, 20, "0.01"); err == nil {
		s.pingIdle = append(s.pingIdle, rtt)
	} else {
		t.Logf("%s: idle ping: %v", s.name, err)
	}
	cpuA0, cpuB0 := cpuPids(s.pidsA), cpuPids(s.pidsB)
	var wg sync.WaitGroup
	var loadRTT float64
	var loadErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(time.Second)
		n := (secs - 2) * 20
		loadRTT, loadErr = pingAvg(lab, a.NS, s.ip, max(n, 5), "0.05")
	}()
	if out := os.Getenv("KADLAN_BENCH_PERF"); out != "" && len(s.nodes) > 0 && !s.perfDone {
		// Profile both daemons of the first kadlan row during its first
		// 1-stream run (perf record -g).
		s.perfDone = true
		var pids []string
		for _, p := range append(append([]int(nil), s.pidsA...), s.pidsB...) {
			pids = append(pids, strconv.Itoa(p))
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := exec.Command("perf", "record", "-F", "499", "-g", "-o", out, "-p", strings.Join(pids, ","), "--", "sleep", strconv.Itoa(secs)).CombinedOutput()
			if err != nil {
				t.Logf("perf: %v: %s", err, out)
			}
		}()
	}
	mbps, bytes, err := iperfRun(lab, a.NS, s.ip, secs, 1)
	wg.Wait()
	if err != nil {
		t.Logf("%s: iperf3: %v", s.name, err)
		return
	}
	s.mbps1 = append(s.mbps1, mbps)
	if loadErr == nil {
		s.pingLoad = append(s.pingLoad, loadRTT)
	} else {
		t.Logf("%s: ping under load: %v", s.name, loadErr)
	}
	if len(s.pidsA) > 0 && bytes > 0 {
		gb := bytes / 1e9
		s.cpuA = append(s.cpuA, (cpuPids(s.pidsA)-cpuA0)/gb)
		s.cpuB = append(s.cpuB, (cpuPids(s.pidsB)-cpuB0)/gb)
	}
	if mbps, _, err := iperfRun(lab, a.NS, s.ip, secs, 4); err == nil {
		s.mbps4 = append(s.mbps4, mbps)
	} else {
		t.Logf("%s: iperf3 -P 4: %v", s.name, err)
	}
	t.Logf("round: %s: %.0f Mbit/s (1), %.0f (4), ping idle %.3f ms, load %.3f ms", s.name,
		last(s.mbps1), last(s.mbps4), last(s.pingIdle), last(s.pingLoad))
}

func last(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	return xs[len(xs)-1]
}

// iperfRun runs an iperf3 TCP client and returns the receiver's Mbit/s and
// bytes received.
func iperfRun(lab *labtest.Lab, ns, ip string, secs, streams int) (float64, float64, error) {
	var out string
	var err error
	for i := 0; i < 3; i++ { // the server may still be finishing the last test
		out, err = lab.Exec(ns, "iperf3", "-c", ip, "-t", strconv.Itoa(secs), "-P", strconv.Itoa(streams), "-J")
		if err == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if err != nil {
		return 0, 0, err
	}
	var res struct {
		End struct {
			SumReceived struct {
				Bytes         float64 `json:"bytes"`
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return 0, 0, fmt.Errorf("iperf3 output: %v", err)
	}
	return res.End.SumReceived.BitsPerSecond / 1e6, res.End.SumReceived.Bytes, nil
}

// pingAvg returns the average RTT in ms of count pings.
func pingAvg(lab *labtest.Lab, ns, ip string, count int, interval string) (float64, error) {
	out, err := lab.Exec(ns, "ping", "-q", "-c", strconv.Itoa(count), "-i", interval, "-W", "1", ip)
	if err != nil {
		return 0, err
	}
	const key = "rtt min/avg/max/mdev = "
	i := strings.Index(out, key)
	if i < 0 {
		return 0, fmt.Errorf("ping output: %s", out)
	}
	f := strings.Split(strings.Fields(out[i+len(key):])[0], "/")
	return strconv.ParseFloat(f[1], 64)
}

// pidsOf lists the processes named comm in h's namespace.
func pidsOf(h *labtest.Host, comm string) []int {
	if comm == "" {
		return nil
	}
	out, err := exec.Command("ip", "netns", "pids", h.NS).Output()
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			continue
		}
		c, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err == nil && strings.TrimSpace(string(c)) == comm {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cpuPids sums user+system CPU seconds of pids.
func cpuPids(pids []int) float64 {
	var sum float64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		if len(f) < 13 {
			continue
		}
		ut, _ := strconv.ParseFloat(f[11], 64)
		st, _ := strconv.ParseFloat(f[12], 64)
		sum += (ut + st) / 100 // USER_HZ
	}
	return sum
}

// rssOf sums VmRSS (MiB) of comm's processes in h's namespace.
func rssOf(h *labtest.Host, comm string) float64 { return rssPids(pidsOf(h, comm)) }

// rssPids sums VmRSS (MiB) of pids.
func rssPids(pids []int) float64 {
	var sum float64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
				kb, _ := strconv.ParseFloat(f[1], 64)
				sum += kb / 1024
			}
		}
	}
	return sum
}

// rssDetail is the resident memory of pids from smaps_rollup: anonymous
// (heap, stacks, buffers) and file-backed (the binary's pages), MiB.
func rssDetail(pids []int) string {
	var anon, file float64
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			kb, _ := strconv.ParseFloat(f[1], 64)
			switch f[0] {
			case "Anonymous:":
				anon += kb / 1024
			case "Rss:":
				file += kb / 1024
			}
		}
	}
	return fmt.Sprintf("%.0f (anon %.0f + file %.0f) MiB", file, anon, file-anon)
}

func cpuCol(xs []float64) string {
	if len(xs) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", median(xs))
}

func rssCol(s *dpSystem, mib float64) string {
	if len(s.pidsA) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f MiB", mib)
}

// TestBenchRelayed is the relayed part of TestBenchDataplane alone
// (KADLAN_BENCH=1).
func TestBenchRelayed(t *testing.T) {
	if os.Getenv("KADLAN_BENCH") == "" {
		t.Skip("benchmark; run with KADLAN_BENCH=1 (make bench-dataplane)")
	}
	r := benchRelayed(t, envInt("KADLAN_BENCH_SECS", 5))
	t.Log(r)
	fmt.Println(r)
}

// idleTraffic returns the bytes per second crossing h's eth0 (both directions) over
// secs seconds while nothing but the kadlan daemons runs on it: keep-alives,
// DHT refreshes, record republishing and link pings of two joined members.
func idleTraffic(t *testing.T, lab *labtest.Lab, h *labtest.Host, secs int) float64 {
	t.Helper()
	before, err := ifaceBytes(lab, h)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Duration(secs) * time.Second) // a measurement window, not a wait for state
	after, err := ifaceBytes(lab, h)
	if err != nil {
		t.Fatal(err)
	}
	return float64(after-before) / float64(secs)
}

// ifaceBytes returns the bytes received and sent on h's eth0 so far.
func ifaceBytes(lab *labtest.Lab, h *labtest.Host) (uint64, error) {
	out, err := lab.Exec(h.NS, "ip", "-j", "-s", "link", "show", "eth0")
	if err != nil {
		return 0, err
	}
	var links []struct {
		Stats struct {
			RX struct{ Bytes uint64 } `json:"rx"`
			TX struct{ Bytes uint64 } `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil || len(links) != 1 {
		return 0, fmt.Errorf("ip -j -s link: %v: %s", err, out)
	}
	return links[0].Stats.RX.Bytes + links[0].Stats.TX.Bytes, nil
}

// spread prints the smallest and largest of xs.
func spread(xs []float64, format string) string {
	if len(xs) == 0 {
		return "-"
	}
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	return fmt.Sprintf(format+"-"+format, lo, hi)
}

// TestBenchPingPath (KADLAN_BENCH=1, needs tcpdump) splits the idle ping
// RTT over a kadlan link (tcp/public) into its hops: tcpdump runs in both
// namespaces (one clock), and for each ping the times at which the echo
// request and reply cross each TAP and the veth give the time spent in
// each daemon's send and receive paths, on the wire and in the kernel.
// KADLAN_BENCH_PINGS pings (default 100) KADLAN_BENCH_PING_INTERVAL
// seconds apart (default 0.02); medians in µs.
func TestBenchPingPath(t *testing.T) {
	lab, a, b, s := dumpedLink(t, "tcp/public")
	dir := t.TempDir()
	var dumps []*netlab.Proc
	for _, h := range []*labtest.Host{a, b} {
		dumps = append(dumps, h.Start(filepath.Join(dir, h.Name+".txt"), "tcpdump", "-i", "any", "-n", "-tt", "-l", "--immediate-mode", "icmp or tcp port 4242"))
	}
	// tcpdump prints "listening on" once it captures.
	for _, h := range []*labtest.Host{a, b} {
		if err := netlab.Eventually(10*time.Second, 50*time.Millisecond, func() error {
			out, _ := os.ReadFile(filepath.Join(dir, h.Name+".txt"))
			if !strings.Contains(string(out), "listening on") {
				return fmt.Errorf("tcpdump in %s not capturing", h.Name)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	n := envInt("KADLAN_BENCH_PINGS", 100)
	every := os.Getenv("KADLAN_BENCH_PING_INTERVAL")
	if every == "" {
		every = "0.02"
	}
	rtt, err := pingAvg(lab, a.NS, s.ip, n, every)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := pingAvg(lab, a.NS, b.IPv4, n, every)
	for _, d := range dumps {
		d.Signal(syscall.SIGINT)
	}
	ea, eb := readDump(t, filepath.Join(dir, "dpa.txt")), readDump(t, filepath.Join(dir, "dpb.txt"))
	hops := []string{"a: TAP -> veth (send)", "wire", "b: veth -> TAP (receive)", "b: kernel (echo)", "b: TAP -> veth (send)", "wire back", "a: veth -> TAP (receive)", "total"}
	us := make([][]float64, len(hops))
	for seq, req := range ea.tapOut {
		var tt [9]float64
		tt[1] = req
		ok := true
		next := func(xs []float64, after float64) float64 {
			for _, x := range xs {
				if x >= after {
					return x
				}
			}
			ok = false
			return after
		}
		tt[2] = next(ea.vethOut, tt[1])
		tt[3] = next(eb.vethIn, tt[2])
		tt[4], ok = eb.tapIn[seq], ok && eb.tapIn[seq] > 0
		tt[5], ok = eb.tapOutReply[seq], ok && eb.tapOutReply[seq] > 0
		tt[6] = next(eb.vethOut, tt[5])
		tt[7] = next(ea.vethIn, tt[6])
		tt[8], ok = ea.tapInReply[seq], ok && ea.tapInReply[seq] > 0
		if !ok {
			continue
		}
		for i := 0; i < 7; i++ {
			us[i] = append(us[i], (tt[i+2]-tt[i+1])*1e6)
		}
		us[7] = append(us[7], (tt[8]-tt[1])*1e6)
	}
	var rep strings.Builder
	fmt.Fprintf(&rep, "\nping path over a kadlan link (%s, %s): %d pings %s s apart, %d matched; ping RTT %.3f ms (raw veth %.3f ms)\n", s.link(), s.version, n, every, len(us[7]), rtt, raw)
	for i, h := range hops {
		fmt.Fprintf(&rep, "  %-26s median %6.0f us  p90 %6.0f us\n", h, median(us[i]), pct(us[i], 0.9))
	}
	t.Log(rep.String())
	fmt.Println(rep.String())
}

// pingDump is what one namespace's tcpdump saw: ICMP echo requests and
// replies on the TAP by sequence number, and the times of TCP segments with
// data on the veth.
type pingDump struct {
	tapOut, tapIn, tapOutReply, tapInReply map[int]float64
	vethOut, vethIn                        []float64
}

func readDump(t *testing.T, path string) pingDump {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := pingDump{tapOut: map[int]float64{}, tapIn: map[int]float64{}, tapOutReply: map[int]float64{}, tapInReply: map[int]float64{}}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		ts, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		dev, dir := f[1], f[2]
		switch {
		case strings.HasPrefix(dev, "kl") && strings.Contains(line, "ICMP echo"):
			i := strings.Index(line, ", seq ")
			if i < 0 {
				continue
			}
			seq, _ := strconv.Atoi(strings.TrimSuffix(strings.Fields(line[i+6:])[0], ","))
			req := strings.Contains(line, "echo request")
			switch {
			case req && dir == "Out":
				d.tapOut[seq] = ts
			case req && dir == "In":
				d.tapIn[seq] = ts
			case !req && dir == "Out":
				d.tapOutReply[seq] = ts
			case !req && dir == "In":
				d.tapInReply[seq] = ts
			}
		case dev == "eth0" && strings.Contains(line, "Flags [") && !strings.HasSuffix(line, "length 0"):
			if dir == "Out" {
				d.vethOut = append(d.vethOut, ts)
			} else {
				d.vethIn = append(d.vethIn, ts)
			}
		}
	}
	return d
}

// pct is the nearest-rank p-quantile of xs.
func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[max(0, min(len(s)-1, int(p*float64(len(s)))))]
}

// dumpedLink is the set-up of the benchmarks that watch one kadlan row
// with tcpdump (KADLAN_BENCH=1; skipped without tcpdump): the veth pair,
// the row's two daemons on it, and a first ping across.
func dumpedLink(t *testing.T, row string) (*labtest.Lab, *labtest.Host, *labtest.Host, *dpSystem) {
	t.Helper()
	if os.Getenv("KADLAN_BENCH") == "" {
		t.Skip("benchmark; run with KADLAN_BENCH=1")
	}
	if _, err := exec.LookPath("tcpdump"); err != nil {
		t.Skip("tcpdump not installed (apt-get install tcpdump)")
	}
	lab := labtest.New(t)
	a, b := vethHosts(t, lab)
	s, why := setupKadlan(t, a, b, kadlanVariants[row], 0)
	if s == nil {
		t.Fatal(why)
	}
	if err := netlab.Eventually(20*time.Second, 200*time.Millisecond, func() error {
		_, err := lab.Exec(a.NS, "ping", "-c", "1", "-W", "1", s.ip)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return lab, a, b, s
}
