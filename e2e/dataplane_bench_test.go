package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kadlan/kadlan/e2e/netlab"
	"github.com/kadlan/kadlan/e2e/netlab/labtest"
)

// TestBenchDataplane is `make bench-dataplane` (KADLAN_BENCH=1, root): two
// namespaces joined by one veth pair carry, side by side, the raw veth, a
// kadlan network between two real `kadlan daemon`s (TAP to TAP),
// wireguard-go and tinc in switch mode (each skipped with a line saying so
// when not installed). Rounds interleave the systems; each round measures
// per system the idle ping RTT, iperf3 TCP with one stream (ping RTT under
// that load measured meanwhile, CPU time of both sides' daemons from
// /proc/PID/stat) and with 4 streams. It prints medians across rounds and
// the RSS of each daemon after the run. Goals are read off the table, not
// asserted. KADLAN_BENCH_ROUNDS and KADLAN_BENCH_SECS change the defaults
// (3 rounds, 5 s per iperf3 run).
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
	systems := []*dpSystem{{name: "raw veth", ip: b.IPv4}}
	var idle string
	if s := setupKadlan(t, a, b); s != nil {
		systems = append(systems, s)
		// Before any other system runs on the veth: what two joined
		// members send each other with no traffic of their own.
		idle = idleTraffic(t, lab, a, envInt("KADLAN_BENCH_IDLE_SECS", 30))
	}
	only := os.Getenv("KADLAN_BENCH_ONLY") // "kadlan": skip the others
	if only != "" {
		notes = append(notes, "KADLAN_BENCH_ONLY="+only+": wireguard-go and tinc skipped")
	} else if s, why := setupWireguard(t, a, b); s != nil {
		systems = append(systems, s)
	} else {
		notes = append(notes, "wireguard-go: skipped: "+why)
	}
	if only != "" {
	} else if s, why := setupTinc(t, a, b); s != nil {
		systems = append(systems, s)
	} else {
		notes = append(notes, "tinc: skipped: "+why)
	}
	for _, n := range notes {
		fmt.Println(n)
		t.Log(n)
	}
	srv := b.Start(filepath.Join(t.TempDir(), "iperf3-server.log"), "iperf3", "-s")
	defer srv.Kill()
	for _, s := range systems {
		// Warm up ARP/NDP, MAC learning and the links.
		if err := netlab.Eventually(20*time.Second, 200*time.Millisecond, func() error {
			_, err := lab.Exec(a.NS, "ping", "-c", "1", "-W", "1", s.ip)
			return err
		}); err != nil {
			t.Fatalf("%s: %s unreachable: %v", s.name, s.ip, err)
		}
	}
	for r := 0; r < rounds; r++ {
		for _, s := range systems {
			s.measure(t, lab, a, b, secs)
		}
	}
	var rep strings.Builder
	raw := median(systems[0].mbps1)
	fmt.Fprintf(&rep, "\ndata plane: namespaces on one veth, iperf3 TCP %d s per run, medians of %d interleaved rounds\n", secs, rounds)
	fmt.Fprintf(&rep, "%-14s %10s %6s %10s %6s %9s %9s %9s %9s %8s %8s\n",
		"system", "1 stream", "ratio", "4 streams", "ratio", "ping idle", "ping load", "CPU-s/GB", "CPU-s/GB", "RSS", "RSS")
	fmt.Fprintf(&rep, "%-14s %10s %6s %10s %6s %9s %9s %9s %9s %8s %8s\n",
		"", "Mbit/s", "", "Mbit/s", "", "ms", "ms", "sender", "receiver", "sender", "receiver")
	raw4 := median(systems[0].mbps4)
	for _, s := range systems {
		fmt.Fprintf(&rep, "%-14s %10.0f %6.3f %10.0f %6.3f %9.3f %9.3f %9s %9s %8s %8s\n", s.name,
			median(s.mbps1), median(s.mbps1)/raw, median(s.mbps4), median(s.mbps4)/raw4,
			median(s.pingIdle), median(s.pingLoad), cpuCol(s, 0), cpuCol(s, 1), rssCol(s, a, 0), rssCol(s, b, 1))
	}
	fmt.Fprintf(&rep, "per round (min-max of %d): ", rounds)
	for _, s := range systems {
		fmt.Fprintf(&rep, "%s 1 stream %s Mbit/s, ping idle %s ms; ", s.name, spread(s.mbps1, "%.0f"), spread(s.pingIdle, "%.3f"))
	}
	fmt.Fprintln(&rep)
	fmt.Fprintf(&rep, "ratio: to raw veth in the same run. ping: average of 20 pings (idle) and of pings every 50 ms during the 1-stream run (load).\n")
	fmt.Fprintf(&rep, "CPU-s/GB: user+system CPU seconds of the daemon on each side per GB received, 1-stream run. RSS: VmRSS after the run.\n")
	for _, s := range systems {
		if s.version != "" {
			fmt.Fprintf(&rep, "%s: %s\n", s.name, s.version)
		}
		for _, l := range kadlanLinks(s.nodes) {
			fmt.Fprintf(&rep, "  %s\n", l)
		}
	}
	if idle != "" {
		fmt.Fprintln(&rep, idle)
	}
	t.Log(rep.String())
	fmt.Println(rep.String())
	if os.Getenv("KADLAN_BENCH_RELAY") != "0" {
		r := benchRelayed(t, secs)
		t.Log(r)
		fmt.Println(r)
	}
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
	name    string
	ip      string
	comm    string // process name of the daemons, for /proc
	version string
	nodes   []*labtest.Node // kadlan's daemons

	mbps1, mbps4, pingIdle, pingLoad []float64
	cpuA, cpuB                       []float64 // CPU-s per GB
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// vethHosts makes two namespaces of the lab joined by one veth pair, with
// public (to go-multiaddr) addresses, as hosts daemons can run on.
func vethHosts(t *testing.T, lab *labtest.Lab) (*labtest.Host, *labtest.Host) {
	t.Helper()
	mk := func(name, ip4, ip6 string) *labtest.Host {
		h := lab.Namespace(name)
		h.IPv4, h.IPv6 = ip4, ip6
		return h
	}
	a, b := mk("dpa", "192.0.0.129", "2001:2::1"), mk("dpb", "192.0.0.130", "2001:2::2")
	lab.Link(a, "eth0", b, "eth0")
	for _, h := range []*labtest.Host{a, b} {
		for _, c := range [][]string{
			{"ip", "addr", "add", h.IPv4 + "/25", "dev", "eth0"},
			{"ip", "-6", "addr", "add", h.IPv6 + "/64", "dev", "eth0", "nodad"},
		} {
			if _, err := lab.Exec(h.NS, c...); err != nil {
				t.Fatal(err)
			}
		}
	}
	return a, b
}

// setupKadlan starts a daemon on each side, a public network on a and b's
// join, and waits until both have their link.
func setupKadlan(t *testing.T, a, b *labtest.Host) *dpSystem {
	t.Helper()
	na := a.StartNode(t)
	nb := b.StartNode(t, "--bootstrap", na.BootstrapAddr())
	id := createNet(t, na, "--name", "bench", "--ipv4", "10.99.0.0/24")
	if _, err := nb.CLI("join", id); err != nil {
		t.Fatal(err)
	}
	waitNet(t, na, id, "ok", 1)
	x := waitNet(t, nb, id, "ok", 1)
	v, _ := na.CLI("--version")
	return &dpSystem{name: "kadlan", ip: addrOf(x.IPv4[0]), comm: "kadlan", version: strings.TrimSpace(v), nodes: []*labtest.Node{na, nb}}
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

// setupWireguard runs wireguard-go (foreground) on each side with one peer.
func setupWireguard(t *testing.T, a, b *labtest.Host) (*dpSystem, string) {
	t.Helper()
	for _, bin := range []string{"wireguard-go", "wg"} {
		if _, err := exec.LookPath(bin); err != nil {
			return nil, bin + " not installed (apt-get install wireguard-go wireguard-tools)"
		}
	}
	dir := t.TempDir()
	key := func(name string) (string, string) {
		priv, err := exec.Command("wg", "genkey").Output()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, name+".key")
		if err := os.WriteFile(path, priv, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("wg", "pubkey")
		cmd.Stdin = strings.NewReader(string(priv))
		pub, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return path, strings.TrimSpace(string(pub))
	}
	ka, pa := key("a")
	kb, pb := key("b")
	// The UAPI socket (/var/run/wireguard/NAME.sock) is not per
	// namespace: each side needs its own interface name.
	sides := []struct {
		h            *labtest.Host
		key, peerPub string
		ip, peer     string
		dev          string
	}{{a, ka, pb, "10.98.0.1", b.IPv4, fmt.Sprintf("wg%da", os.Getpid()%100000)},
		{b, kb, pa, "10.98.0.2", a.IPv4, fmt.Sprintf("wg%db", os.Getpid()%100000)}}
	for _, s := range sides {
		p := s.h.Start(filepath.Join(dir, s.h.Name+"-wg.log"), "env", "WG_PROCESS_FOREGROUND=1", "wireguard-go", "-f", s.dev)
		_ = p
	}
	for _, s := range sides {
		err := netlab.Eventually(5*time.Second, 50*time.Millisecond, func() error {
			_, err := s.h.Lab.Exec(s.h.NS, "ip", "link", "show", s.dev)
			return err
		})
		if err != nil {
			log, _ := os.ReadFile(filepath.Join(dir, s.h.Name+"-wg.log"))
			return nil, fmt.Sprintf("wireguard-go did not create its interface: %v: %s", err, log)
		}
		for _, c := range [][]string{
			{"wg", "set", s.dev, "private-key", s.key, "listen-port", "51820",
				"peer", s.peerPub, "endpoint", s.peer + ":51820", "allowed-ips", "10.98.0.0/24"},
			{"ip", "addr", "add", s.ip + "/24", "dev", s.dev},
			{"ip", "link", "set", s.dev, "up"},
		} {
			if out, err := s.h.Lab.Exec(s.h.NS, c...); err != nil {
				t.Fatalf("wireguard: %v: %s", err, out)
			}
		}
	}
	v, _ := exec.Command("wireguard-go", "--version").Output()
	return &dpSystem{name: "wireguard-go", ip: "10.98.0.2", comm: "wireguard-go", version: strings.SplitN(strings.TrimSpace(string(v)), "\n", 2)[0] + " (Debian package)"}, ""
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
	for _, s := range sides {
		dir := filepath.Join(base, s.name)
		s.h.Start(filepath.Join(base, s.name+".log"), "tincd", "-c", dir, "-D", "--pidfile", filepath.Join(dir, "pid"))
	}
	v, _ := exec.Command("tincd", "--version").Output()
	return &dpSystem{name: "tinc (switch)", ip: "10.97.0.2", comm: "tincd", version: strings.SplitN(strings.TrimSpace(string(v)), "\n", 2)[0] + ", default ciphers"}, ""
}

// measure runs one round for s.
func (s *dpSystem) measure(t *testing.T, lab *labtest.Lab, a, b *labtest.Host, secs int) {
	t.Helper()
	if rtt, err := pingAvg(lab, a.NS, s.ip, 20, "0.01"); err == nil {
		s.pingIdle = append(s.pingIdle, rtt)
	} else {
		t.Logf("%s: idle ping: %v", s.name, err)
	}
	cpuA0, cpuB0 := cpuOf(a, s.comm), cpuOf(b, s.comm)
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
	if out := os.Getenv("KADLAN_BENCH_PERF"); out != "" && s.comm == "kadlan" {
		// Profile both daemons during the 1-stream run (perf record -g).
		var pids []string
		for _, h := range []*labtest.Host{a, b} {
			for _, p := range pidsOf(h, s.comm) {
				pids = append(pids, strconv.Itoa(p))
			}
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
	if s.comm != "" && bytes > 0 {
		gb := bytes / 1e9
		s.cpuA = append(s.cpuA, (cpuOf(a, s.comm)-cpuA0)/gb)
		s.cpuB = append(s.cpuB, (cpuOf(b, s.comm)-cpuB0)/gb)
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

// cpuOf sums user+system CPU seconds of comm's processes in h's namespace.
func cpuOf(h *labtest.Host, comm string) float64 {
	var sum float64
	for _, pid := range pidsOf(h, comm) {
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
func rssOf(h *labtest.Host, comm string) float64 {
	var sum float64
	for _, pid := range pidsOf(h, comm) {
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

func cpuCol(s *dpSystem, side int) string {
	xs := s.cpuA
	if side == 1 {
		xs = s.cpuB
	}
	if len(xs) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", median(xs))
}

func rssCol(s *dpSystem, h *labtest.Host, _ int) string {
	if s.comm == "" {
		return "-"
	}
	return fmt.Sprintf("%.0f MiB", rssOf(h, s.comm))
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

// idleTraffic measures the bytes crossing h's eth0 (both directions) over
// secs seconds while nothing but the kadlan daemons runs on it: keep-alives,
// DHT refreshes, record republishing and link pings of two joined members.
func idleTraffic(t *testing.T, lab *labtest.Lab, h *labtest.Host, secs int) string {
	t.Helper()
	bytesNow := func() (uint64, error) {
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
	before, err := bytesNow()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Duration(secs) * time.Second) // a measurement window, not a wait for state
	after, err := bytesNow()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("idle traffic between two joined members: %.0f B/s (rx+tx on the veth over %d s; goal <= 300)",
		float64(after-before)/float64(secs), secs)
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
