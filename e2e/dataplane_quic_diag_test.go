package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kadlan/kadlan/e2e/netlab"
	"github.com/kadlan/kadlan/e2e/netlab/labtest"
)

// TestBenchQUICBatches (KADLAN_BENCH=1, needs tcpdump) shows whether
// quic-go's UDP GSO is in use on a QUIC-only member link (quic/public of
// TestBenchDataplane): during a 1-stream iperf3 run tcpdump in each
// namespace counts the UDP datagrams each daemon hands its veth and their
// sizes. A GSO send is one datagram of several packets (longer than the
// MTU); without GSO every packet is its own. It prints the veth's offload
// features, the share of bytes sent in GSO batches and the packets per
// batch. KADLAN_BENCH_DAEMON_ENV=QUIC_GO_DISABLE_GSO=1 shows the other
// case.
func TestBenchQUICBatches(t *testing.T) {
	lab, a, b, s := dumpedLink(t, "quic/public")
	secs := envInt("KADLAN_BENCH_SECS", 5)
	srv := b.Start(filepath.Join(t.TempDir(), "iperf3.log"), "iperf3", "-s")
	defer srv.Kill()
	var rep strings.Builder
	feat, err := lab.Exec(a.NS, "ethtool", "-k", "eth0")
	if err != nil {
		fmt.Fprintf(&rep, "  ethtool -k: %v\n", err)
	}
	for _, l := range strings.Split(feat, "\n") {
		for _, k := range []string{"tx-udp-segmentation", "rx-gro:", "rx-udp-gro-forwarding", "generic-receive-offload", "generic-segmentation-offload"} {
			if strings.Contains(l, k) {
				fmt.Fprintf(&rep, "  veth %s\n", strings.TrimSpace(l))
			}
		}
	}
	dir := t.TempDir()
	var dumps []*netlab.Proc
	for _, h := range []*labtest.Host{a, b} {
		dumps = append(dumps, h.Start(filepath.Join(dir, h.Name+".txt"), "tcpdump", "-i", "eth0", "-n", "-l", "-Q", "out", "-c", "20000", "udp port 4243"))
	}
	time.Sleep(time.Second) // tcpdump starting: a measurement window, not a wait for state
	udp0 := [2]map[string]int{udpCounters(lab, a), udpCounters(lab, b)}
	mbps, _, err := iperfRun(lab, a.NS, s.ip, secs, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range []*labtest.Host{a, b} {
		c := udpCounters(lab, h)
		fmt.Fprintf(&rep, "  %s: UDP during the run (/proc/net/snmp): InDatagrams %d, OutDatagrams %d, RcvbufErrors %d, SndbufErrors %d, InErrors %d\n", h.Name,
			c["InDatagrams"]-udp0[i]["InDatagrams"], c["OutDatagrams"]-udp0[i]["OutDatagrams"], c["RcvbufErrors"]-udp0[i]["RcvbufErrors"],
			c["SndbufErrors"]-udp0[i]["SndbufErrors"], c["InErrors"]-udp0[i]["InErrors"])
	}
	for _, n := range s.nodes {
		log, _ := os.ReadFile(n.Log)
		for _, l := range strings.Split(string(log), "\n") {
			if strings.Contains(l, "buffer size") || strings.Contains(l, "GSO") || strings.Contains(l, "ECN") {
				fmt.Fprintf(&rep, "  %s log: %s\n", n.Host.Name, l)
			}
		}
	}
	for _, d := range dumps {
		d.Kill()
	}
	fmt.Fprintf(&rep, "QUIC-only link %s: %.0f Mbit/s 1 stream; datagrams each daemon sent on its veth (tcpdump, first 20000 of the run)\n", s.version, mbps)
	for _, h := range []*labtest.Host{a, b} {
		b, _ := os.ReadFile(filepath.Join(dir, h.Name+".txt"))
		var sizes []int
		for _, l := range strings.Split(string(b), "\n") {
			if i := strings.LastIndex(l, "length "); i >= 0 {
				if n, err := strconv.Atoi(strings.TrimSpace(l[i+7:])); err == nil {
					sizes = append(sizes, n)
				}
			}
		}
		sort.Ints(sizes)
		var total, big, bigBytes, packet int // packet: the largest single one
		for _, n := range sizes {
			total += n
			if n > 1472 {
				big++
				bigBytes += n
			} else {
				packet = max(packet, n)
			}
		}
		if len(sizes) == 0 {
			fmt.Fprintf(&rep, "  %s: nothing captured\n", h.Name)
			continue
		}
		per := "-"
		if big > 0 && packet > 0 {
			per = fmt.Sprintf("%.1f", float64(bigBytes)/float64(big)/float64(packet))
		}
		fmt.Fprintf(&rep, "  %s: %d datagrams, median %d B, max %d B; %d longer than the MTU (GSO batches) = %.0f%% of bytes, mean %s packets of %d B per batch\n",
			h.Name, len(sizes), sizes[len(sizes)/2], sizes[len(sizes)-1], big, 100*float64(bigBytes)/float64(max(total, 1)), per, packet)
	}
	t.Log(rep.String())
	fmt.Println(rep.String())
}

// udpCounters reads the Udp line of h's /proc/net/snmp.
func udpCounters(lab *labtest.Lab, h *labtest.Host) map[string]int {
	out, _ := lab.Exec(h.NS, "cat", "/proc/net/snmp")
	var keys []string
	m := map[string]int{}
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if keys == nil {
			keys = f[1:]
			continue
		}
		for i, v := range f[1:] {
			if i < len(keys) {
				m[keys[i]], _ = strconv.Atoi(v)
			}
		}
	}
	return m
}
