package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kadlan/kadlan/e2e/netlab"
	"github.com/kadlan/kadlan/e2e/netlab/labtest"
)

// TestBenchStart measures the time from starting a member's daemon (its
// network state kept from before) to the first ping answered over the
// TAP by the other member, which is already up: the cost of joining the
// DHT, finding the member, connecting, opening the link and switching
// the first frames. Two namespaces on one veth, once with private
// addresses (a LAN) and once with public ones; KADLAN_BENCH_STARTS
// restarts each (default 10). Writes bench-start.json (KADLAN_BENCH_OUT
// names another directory).
func TestBenchStart(t *testing.T) {
	if os.Getenv("KADLAN_BENCH") == "" {
		t.Skip("benchmark; run with KADLAN_BENCH=1 (make bench-start)")
	}
	n := envInt("KADLAN_BENCH_STARTS", 10)
	type row struct {
		Addresses string             `json:"addresses"`
		Starts    int                `json:"starts"`
		StartMs   map[string]float64 `json:"start_to_first_ping_ms"`
		Transport string             `json:"link_transport"`
		Scope     string             `json:"link_scope"`
	}
	var rows []row
	for _, kind := range []struct{ name, a4, b4, prefix string }{
		{"private (LAN)", "192.168.77.1", "192.168.77.2", "/24"},
		{"public", "192.0.0.131", "192.0.0.132", "/25"},
	} {
		lab := labtest.New(t)
		a, b := lab.Namespace("sta"), lab.Namespace("stb")
		a.IPv4, b.IPv4 = kind.a4, kind.b4
		lab.Link(a, "eth0", b, "eth0")
		for _, h := range []*labtest.Host{a, b} {
			if _, err := lab.Exec(h.NS, "ip", "addr", "add", h.IPv4+kind.prefix, "dev", "eth0"); err != nil {
				t.Fatal(err)
			}
		}
		na := a.StartNode(t)
		args := []string{"--bootstrap", na.BootstrapAddr()}
		nb := b.StartNode(t, args...)
		id := createNet(t, na, "--name", "start", "--ipv4", "10.98.0.0/24")
		if _, err := nb.CLI("join", id); err != nil {
			t.Fatal(err)
		}
		ax := waitNet(t, na, id, "ok", 1)
		waitNet(t, nb, id, "ok", 1)
		ip := addrOf(ax.IPv4[0])
		var ms []float64
		for i := 0; i < n; i++ {
			nb.Stop()
			if err := netlab.Eventually(20*time.Second, 20*time.Millisecond, func() error {
				if nb.Running() {
					return fmt.Errorf("b still running")
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			// a notices the link is gone before b returns, as it would
			// after a reboot.
			if err := netlab.Eventually(20*time.Second, 20*time.Millisecond, func() error {
				x, err := network(na, id)
				if err != nil {
					return err
				}
				if x.Links != 0 {
					return fmt.Errorf("a still has %d links", x.Links)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			nb.Start(t, args...)
			err := netlab.Eventually(20*time.Second, 0, func() error {
				_, err := lab.Exec(b.NS, "ping", "-c", "1", "-W", "0.2", ip)
				return err
			})
			if err != nil {
				t.Fatalf("no ping %d s after start: %v", 20, err)
			}
			ms = append(ms, float64(time.Since(start).Microseconds())/1000)
		}
		m, err := memberStatus(nb, id, na.Address)
		if err != nil {
			t.Fatal(err)
		}
		rows = append(rows, row{Addresses: kind.name, Starts: n, StartMs: dist(ms), Transport: m.Transport, Scope: m.Scope})
		lab.Close()
	}
	var rep strings.Builder
	fmt.Fprintf(&rep, "\nstart to first ping: a member's daemon restarted (state kept), until the other member answers a ping over the TAP\n")
	fmt.Fprintf(&rep, "%-14s %6s %8s %8s %8s %8s  %s\n", "addresses", "starts", "mean ms", "p50", "p95", "max", "link")
	for _, r := range rows {
		fmt.Fprintf(&rep, "%-14s %6d %8.0f %8.0f %8.0f %8.0f  %s %s\n", r.Addresses, r.Starts, r.StartMs["mean"], r.StartMs["p50"], r.StartMs["p95"], r.StartMs["max"], r.Transport, r.Scope)
	}
	fmt.Fprintf(&rep, "goal (issue 11): <= 150 ms on a LAN. Includes process start and the API coming up; pings every ~5 ms (one ping process each).\n")
	t.Log(rep.String())
	fmt.Println(rep.String())
	writeBenchJSON(t, "bench-start.json", rows)
}

// dist summarizes samples: mean, p50, p95, max (nearest-rank percentiles).
func dist(xs []float64) map[string]float64 {
	if len(xs) == 0 {
		return nil
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	sum := 0.0
	for _, x := range s {
		sum += x
	}
	rank := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return map[string]float64{"mean": sum / float64(len(s)), "p50": rank(0.5), "p95": rank(0.95), "max": s[len(s)-1]}
}

// writeBenchJSON writes v as indented JSON to name in KADLAN_BENCH_OUT (or
// the current directory).
func writeBenchJSON(t *testing.T, name string, v any) {
	dir := os.Getenv("KADLAN_BENCH_OUT")
	if dir == "" {
		dir = "."
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	path := dir + "/" + name
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	fmt.Println("wrote", path)
}
