package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kadlan/kadlan/e2e/netlab/labtest"
)

// scaleRow is one line of make bench-scale's table.
type scaleRow struct {
	Kind        string  `json:"kind"`                // "e2e" or "in-process"
	Transport   string  `json:"transport,omitempty"` // in-process: tcp or quic on loopback
	N           int     `json:"n"`
	Behind      int     `json:"behind_nat"` // nodes behind a NAT (e2e)
	LinksMean   float64 `json:"links_mean"`
	LinksMax    int     `json:"links_max"`
	MemPerNode  float64 `json:"mem_per_node_mib"` // e2e: RSS of each daemon; in-process: heap / N
	BytesPerSec float64 `json:"background_bytes_per_s_per_node"`
	Pings       int     `json:"first_pings"`
	Failed      int     `json:"first_pings_failed"`
	PingMean    float64 `json:"first_ping_ms_mean"`
	PingP95     float64 `json:"first_ping_ms_p95"`
	PingMax     float64 `json:"first_ping_ms_max"`
	Setup       float64 `json:"setup_s"`
}

var pingTimeRE = regexp.MustCompile(`time=([0-9.]+) ms`)

// firstPing sends one echo from n to ip (10 s for the reply) and returns
// the time ping reports for it, which counts from the echo's send, so the
// ARP resolution the kernel holds it for (the member's lookup) and the
// link's dial are included.
func firstPing(n *labtest.Node, ip string) (float64, error) {
	out, err := n.Host.Lab.Exec(n.Host.NS, "ping", "-c", "1", "-W", "10", ip)
	if err != nil {
		return 0, err
	}
	m := pingTimeRE.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no time in %q", out)
	}
	return strconv.ParseFloat(m[1], 64)
}

// TestBenchScale is the e2e half of `make bench-scale` (KADLAN_BENCH=1):
// for each size of KADLAN_BENCH_SCALE_E2E (default 10,30,60) a lab with
// that many real daemons, a third of them behind NATs of the zoo (natMix),
// on one public network with --link-idle 30s (IPv4 only: scaleListen); after 45 s of settling
// (past the idle time) a 30 s window without traffic gives the bytes per
// second on every host's interface, then links and RSS per daemon; then
// every node pings two members it has no link with (one echo each). It
// appends its row to bench-scale-e2e.jsonl, then prints the table of
// those rows and the in-process rows that make bench-scale's first step
// wrote (bench-scale-inprocess.jsonl) and writes bench-scale.json.
func TestBenchScale(t *testing.T) {
	if os.Getenv("KADLAN_BENCH") == "" {
		t.Skip("benchmark; run with KADLAN_BENCH=1 (make bench-scale)")
	}
	sizes := os.Getenv("KADLAN_BENCH_SCALE_E2E")
	if sizes == "" {
		sizes = "10,30,60"
	}
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 3 {
			t.Fatalf("KADLAN_BENCH_SCALE_E2E: %q is not a size", s)
		}
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			r := benchScaleE2E(t, n)
			if out := os.Getenv("KADLAN_BENCH_OUT"); out != "" {
				appendRow(t, filepath.Join(out, "bench-scale-e2e.jsonl"), r)
			}
		})
	}
	out := os.Getenv("KADLAN_BENCH_OUT")
	if out == "" {
		return // the rows were logged
	}
	rows := append(readRows(t, filepath.Join(out, "bench-scale-e2e.jsonl")), readInProcess(t, filepath.Join(out, "bench-scale-inprocess.jsonl"))...)
	fmt.Println("| kind | N | behind NAT | links mean / max | memory per node MiB | background B/s per node | first pings (failed) | first ping ms mean / p95 / max | setup s |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, r := range rows {
		mem := "RSS"
		if r.Kind != "e2e" {
			mem = "heap/N"
		}
		kind := r.Kind
		if r.Transport != "" {
			kind += " (" + r.Transport + ")"
		}
		fmt.Printf("| %s | %d | %d | %.1f / %d | %.1f (%s) | %.0f | %d (%d) | %.0f / %.0f / %.0f | %.0f |\n", kind, r.N, r.Behind,
			r.LinksMean, r.LinksMax, r.MemPerNode, mem, r.BytesPerSec, r.Pings, r.Failed, r.PingMean, r.PingP95, r.PingMax, r.Setup)
	}
	for _, kind := range []string{"e2e", "in-process"} {
		var first, last *scaleRow
		for i := range rows {
			if rows[i].Kind == kind {
				if first == nil {
					first = &rows[i]
				}
				last = &rows[i]
			}
		}
		if first != nil && last != first {
			fmt.Printf("%s: N=%d against N=%d per node: memory %.2fx, background bytes %.2fx, links %.2fx, first ping mean %.2fx (goal: <= 1.2x)\n", kind, last.N, first.N,
				last.MemPerNode/first.MemPerNode, last.BytesPerSec/first.BytesPerSec, last.LinksMean/first.LinksMean, last.PingMean/first.PingMean)
		}
	}
	b, _ := json.MarshalIndent(rows, "", "  ")
	if err := os.WriteFile(filepath.Join(out, "bench-scale.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func benchScaleE2E(t *testing.T, n int) scaleRow {
	started := time.Now()
	lab, nodes, id, ips := scaleNet(t, n, true, append([]string{"--link-idle", scaleIdle.String()}, scaleListen...)...)
	r := scaleRow{Kind: "e2e", N: n, Behind: n / 3, Setup: time.Since(started).Seconds()}
	time.Sleep(scaleIdle + 15*time.Second) // settling past the idle time is part of the method
	before := make([]uint64, n)
	for i, nd := range nodes {
		b, err := ifaceBytes(lab, nd.Host)
		if err != nil {
			t.Fatal(err)
		}
		before[i] = b
	}
	w0 := time.Now()
	time.Sleep(30 * time.Second) // the measurement window, not a wait for state
	secs := time.Since(w0).Seconds()
	var bytes uint64
	for i, nd := range nodes {
		b, err := ifaceBytes(lab, nd.Host)
		if err != nil {
			t.Fatal(err)
		}
		bytes += b - before[i]
	}
	r.BytesPerSec = float64(bytes) / secs / float64(n)
	r.LinksMean, r.LinksMax = meanMaxInt(linksOf(nodes, id))
	var rss float64
	for _, nd := range nodes {
		rss += rssPids(nodePids(nd))
	}
	r.MemPerNode = rss / float64(n)

	rng := rand.New(rand.NewPCG(13, uint64(n)))
	var mu sync.Mutex
	var lat []float64
	var failed [][2]*labtest.Node // pinger, target
	var wg sync.WaitGroup
	for i, nd := range nodes {
		x, err := network(nd, id)
		if err != nil {
			t.Fatal(err)
		}
		linked := map[string]bool{}
		for _, m := range x.Members {
			linked[m.Address] = m.Link
		}
		var targets []*labtest.Node
		for _, k := range rng.Perm(n) {
			if k != i && !linked[nodes[k].Address] && len(targets) < 2 {
				targets = append(targets, nodes[k])
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, to := range targets {
				ms, err := firstPing(nd, ips[to])
				mu.Lock()
				r.Pings++
				if err == nil {
					lat = append(lat, ms)
				} else {
					r.Failed++
				}
				if err != nil {
					failed = append(failed, [2]*labtest.Node{nd, to})
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// What each daemon of a failed first ping logged of the other and
	// says of it: the evidence for why it failed. Taken a while after
	// the pings, since a dial still under way logs when it ends (a
	// diagnostic's wait, not a measurement).
	if len(failed) > 0 {
		time.Sleep(10 * time.Second)
	}
	for _, f := range failed {
		nd, to := f[0], f[1]
		t.Logf("first ping %s -> %s failed\n%s's log of %s:\n%s\n%s's log of %s:\n%s\n%s: %s\n%s: %s", nd.Host.Name, to.Host.Name,
			nd.Host.Name, to.Host.Name, nd.LogLines(12, to.Address, ips[to]+" ", ips[to]+":"), to.Host.Name, nd.Host.Name, to.LogLines(12, nd.Address, ips[nd]+" ", ips[nd]+":"),
			nd.Host.Name, viewOf(nd, id, to), to.Host.Name, viewOf(to, id, nd))
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		sum := 0.0
		for _, x := range lat {
			sum += x
		}
		r.PingMean, r.PingP95, r.PingMax = sum/float64(len(lat)), lat[min(len(lat)-1, int(0.95*float64(len(lat))))], lat[len(lat)-1]
	}
	t.Logf("e2e %d: %+v", n, r)
	return r
}

// viewOf is what n's daemon says of member m on network id and of its
// own counters: evidence for a failed first contact.
func viewOf(n *labtest.Node, id string, m *labtest.Node) string {
	x, err := network(n, id)
	if err != nil {
		return err.Error()
	}
	var mem any = "not known"
	for _, e := range x.Members {
		if e.Address == m.Address {
			mem = e
		}
	}
	return fmt.Sprintf("member %+v; links %d; counters %s; engine %s", mem, x.Links, x.Counters, x.Engine)
}

// appendRow appends r to the JSON lines file path (the rows of earlier
// runs stay, so that sizes can be run apart).
func appendRow(t *testing.T, path string, r scaleRow) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, _ := json.Marshal(r)
	fmt.Fprintf(f, "%s\n", b)
}

// readRows reads the rows appendRow wrote (none if the file is missing).
func readRows(t *testing.T, path string) []scaleRow {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var rows []scaleRow
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r scaleRow
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		rows = append(rows, r)
	}
	return rows
}

// readInProcess reads the rows the in-process half wrote (none if the
// file is missing).
func readInProcess(t *testing.T, path string) []scaleRow {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var rows []scaleRow
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var x struct {
			N          int     `json:"n"`
			Transport  string  `json:"transport"`
			Setup      float64 `json:"setup_s"`
			LinksMean  float64 `json:"links_mean"`
			LinksMax   int     `json:"links_max"`
			Heap       float64 `json:"heap_per_node_mib"`
			Bytes      float64 `json:"background_bytes_per_s_per_node"`
			Contacts   int     `json:"first_contacts"`
			Failed     int     `json:"first_contacts_failed"`
			Mean       float64 `json:"first_contact_ms_mean"`
			ContactP95 float64 `json:"first_contact_ms_p95"`
			ContactMax float64 `json:"first_contact_ms_max"`
		}
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		rows = append(rows, scaleRow{Kind: "in-process", Transport: x.Transport, N: x.N, LinksMean: x.LinksMean, LinksMax: x.LinksMax, MemPerNode: x.Heap, BytesPerSec: x.Bytes,
			Pings: x.Contacts, Failed: x.Failed, PingMean: x.Mean, PingP95: x.ContactP95, PingMax: x.ContactMax, Setup: x.Setup})
	}
	return rows
}
