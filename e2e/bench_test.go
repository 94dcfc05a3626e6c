package e2e

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/e2e/netlab"
	"github.com/kadlan/kadlan/e2e/netlab/labtest"
)

// TestBenchConnect is `make bench`'s connection benchmark (KADLAN_BENCH=1):
// for each class of pairs it pings across 10 pairs of nodes that were never
// connected before, and prints medians of the time from `kadlan ping` to
// the first reply, the time until the path is direct, and the share of
// pairs that end up direct. Timing goals are read off the figures, not
// asserted. KADLAN_BENCH_RTT=80ms runs it over netlab's userspace
// Internet with that RTT between any two hosts (a quarter on each link).
func TestBenchConnect(t *testing.T) {
	if os.Getenv("KADLAN_BENCH") == "" {
		t.Skip("benchmark; run with KADLAN_BENCH=1 (make bench)")
	}
	var opts netlab.Options
	if v := os.Getenv("KADLAN_BENCH_RTT"); v != "" {
		rtt, err := time.ParseDuration(v)
		if err != nil || rtt < 0 {
			t.Fatalf("KADLAN_BENCH_RTT=%q: want a duration such as 80ms", v)
		}
		opts.Link = &netlab.LinkShape{Delay: rtt / 4}
		fmt.Printf("lab Internet: %v RTT between any two hosts\n", rtt)
	}
	w := newNATWorldWith(t, opts)
	const side = 5 // 5 nodes per class give 10 distinct pairs
	classes := []struct {
		name string
		make func(i int) *labtest.Node
	}{
		// Public nodes in DHT client mode: as servers in a lab this small
		// they would all be connected through their routing tables before
		// the first ping, which would measure nothing.
		{"public-public", func(i int) *labtest.Node {
			return w.lab.PublicHost(fmt.Sprintf("bp%d", i)).StartNode(t, "--dht-mode", "client", "--bootstrap", w.pubs[i%4].BootstrapAddr())
		}},
		{"EIM NAT-EIM NAT", func(i int) *labtest.Node {
			return w.behind(t, w.lab.NATRouter(fmt.Sprintf("be%d", i), netlab.EIM, nil), fmt.Sprintf("be%dh", i))
		}},
		{"symmetric-symmetric", func(i int) *labtest.Node {
			return w.behind(t, w.lab.NATRouter(fmt.Sprintf("bs%d", i), netlab.Symmetric, nil), fmt.Sprintf("bs%dh", i))
		}},
	}
	var report strings.Builder
	fmt.Fprintf(&report, "\n%-22s %6s %14s %14s %14s %10s\n", "pairs (never connected)", "n", "first reply", "in-daemon", "direct after", "direct")
	for _, c := range classes {
		var nodes []*labtest.Node
		for i := 0; i < side; i++ {
			nodes = append(nodes, c.make(i))
		}
		var first, internal, direct []float64
		ok, n := 0, 0
		for i := 0; i < side; i++ {
			for j := i + 1; j < side; j++ {
				a, b := nodes[i], nodes[j]
				n++
				if p, err := pathTo(a, b); err == nil {
					t.Fatalf("%s: %s and %s are already connected (%s): not a first contact", c.name, a.Host.Name, b.Host.Name, p.Path)
				}
				start := time.Now()
				var pr api.PingResult
				if err := a.JSON(&pr, "ping", "-c", "1", "--timeout", "10s", b.Address); err != nil {
					t.Logf("%s: %s -> %s: %v", c.name, a.Host.Name, b.Host.Name, err)
					continue
				}
				first = append(first, float64(time.Since(start).Microseconds())/1000)
				internal = append(internal, pr.ConnectMs+pr.RTTms[0])
				err := netlab.Eventually(5*time.Second, 20*time.Millisecond, func() error {
					p, err := pathTo(a, b)
					if err != nil || p.Path != "direct" {
						return fmt.Errorf("not direct")
					}
					return nil
				})
				if err == nil {
					ok++
					direct = append(direct, float64(time.Since(start).Microseconds())/1000)
				}
			}
		}
		fmt.Fprintf(&report, "%-22s %6d %11.1f ms %11.1f ms %11s %6d/%d\n", c.name, n, median(first), median(internal), msOrDash(direct), ok, n)
	}
	fmt.Fprintf(&report, "first reply: wall time of `kadlan ping -c 1` (includes starting the CLI); in-daemon: lookup + connect + first RTT.\n")
	fmt.Fprintf(&report, "direct after: median time from the ping until `kadlan peers` shows a direct path (pairs that got one), polled every 20 ms.\n")
	if opts.Link != nil {
		if st, err := w.lab.SwitchStats(); err == nil {
			fmt.Fprintf(&report, "lab switch: %d frames received, %d delivered, %d lost, %d overflowed, %d write errors\n", st.Received, st.Delivered, st.Lost, st.Overflow, st.WriteErrors)
		}
	}
	t.Log(report.String())
	fmt.Println(report.String())
}

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
