package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kadlan/kadlan/e2e/netlab"
	"github.com/kadlan/kadlan/e2e/netlab/labtest"
)

// punchVariant is a kadlan row of TestBenchDataplane over a hole-punched
// path: two daemons, each behind its own NAT router on the lab's Internet
// segment (a kernel bridge), meet through a public node's relay and go
// direct by punching; the row is measured TAP to TAP once the member link
// is direct on QUIC.
type punchVariant struct {
	name         string
	kindA, kindB netlab.NAT // the client's router, the server's
	how          string
	// ref adds a row "raw via 2 NATs": iperf3 and ping between the same
	// two hosts without kadlan, to the server's router's WAN address, which
	// forwards iperf3's port and echo requests to the server.
	ref bool
}

var punchVariants = map[string]punchVariant{
	"quic/punched":  {"kadlan punched (EIM)", netlab.EIM, netlab.EIM, "DCUtR hole punching between two endpoint-independent NATs", true},
	"quic/birthday": {"kadlan birthday punch", netlab.Symmetric, netlab.EIM, "birthday punching from a symmetric NAT to an endpoint-independent one", false},
}

// dpNAT is the NAT world the punched rows share, built in the bench's lab
// on first use: a bootstrap node and four public nodes (see natWorld), then
// two NAT sites per row.
type dpNAT struct {
	w *natWorld
	n int
}

// setup builds v's two NAT sites and daemons, a network between them (the
// i-th: its own subnet), and waits until the member link is direct on QUIC.
// It returns the kadlan row and, for v.ref, the raw row across the same
// routers.
func (d *dpNAT) setup(t *testing.T, lab *labtest.Lab, v punchVariant, i int) ([]*dpSystem, string) {
	t.Helper()
	if d.w == nil {
		d.w = newNATWorldIn(t, lab)
	}
	d.n++
	natA := lab.NATRouter(fmt.Sprintf("pn%dna", d.n), v.kindA, nil)
	natB := lab.NATRouter(fmt.Sprintf("pn%dnb", d.n), v.kindB, nil)
	x := d.w.behind(t, natA, fmt.Sprintf("pn%dx", d.n))
	y := d.w.behind(t, natB, fmt.Sprintf("pn%dy", d.n))
	// First contact (relayed), then the punch, before the network: a
	// member link opened on the relayed connection stays there after the
	// punch (nothing moves it to the direct connection), so the network
	// comes once the path is direct and its link opens on it.
	start := time.Now()
	if pr, err := pingOnce(x, y, "10s"); err != nil {
		return nil, fmt.Sprintf("first contact: %v", err)
	} else if pr.ConnectPath != "relayed" {
		return nil, fmt.Sprintf("first contact %s; want relayed", pr.ConnectPath)
	}
	for _, p := range [][2]*labtest.Node{{x, y}, {y, x}} {
		if _, err := waitDirect(p[0], p[1], 60*time.Second, 200*time.Millisecond); err != nil {
			return nil, fmt.Sprintf("%s: no direct path by punching: %v", p[0].Host.Name, err)
		}
	}
	punched := time.Since(start)
	id := createNet(t, x, "--name", fmt.Sprintf("bench%d", i), "--ipv4", fmt.Sprintf("10.99.%d.0/24", i))
	if _, err := y.CLI("join", id); err != nil {
		t.Fatal(err)
	}
	waitNet(t, x, id, "ok", 1)
	net := waitNet(t, y, id, "ok", 1)
	direct := func() error {
		return netlab.Eventually(90*time.Second, 250*time.Millisecond, func() error {
			for _, p := range [][2]*labtest.Node{{x, y}, {y, x}} {
				m, err := memberStatus(p[0], id, p[1].Address)
				if err != nil {
					return err
				}
				if !m.Link || m.Path != "direct" || m.Transport != "quic" {
					return fmt.Errorf("%s's member link: up %v, path %q, transport %q; want direct on quic (%s)", p[0].Host.Name, m.Link, m.Path, m.Transport, peersPath(p[0], p[1]))
				}
			}
			return nil
		})
	}
	if err := direct(); err != nil {
		return nil, err.Error()
	}
	took := time.Since(start) - punched
	// A node that gets its network's addresses reconnects about a second
	// later (it takes them for a network change): let that pass and check
	// the link is direct again.
	time.Sleep(3 * time.Second)
	if err := direct(); err != nil {
		return nil, "after the reconnect: " + err.Error()
	}
	ver, _ := x.CLI("--version")
	wire := fmt.Sprintf("crosses two NAT routers (%s, then %s; nftables masquerade and conntrack) and the lab's Internet bridge: not the raw veth's wire", v.kindA, v.kindB)
	s := &dpSystem{name: v.name, ip: addrOf(net.IPv4[0]), addresses: "nat", version: strings.TrimSpace(ver),
		nodes: []*labtest.Node{x, y}, netID: id, pidsA: nodePids(x), pidsB: nodePids(y), from: x.Host, to: y.Host, wire: wire}
	s.rssIdle = [2]string{rssDetail(s.pidsA), rssDetail(s.pidsB)}
	s.detail = append(s.detail, fmt.Sprintf("%s: direct %.1f s after the first (relayed) contact; member link direct on QUIC %.1f s after the network was created", v.how, punched.Seconds(), took.Seconds()))
	if p, err := pathTo(x, y); err == nil {
		s.detail = append(s.detail, fmt.Sprintf("%s's connections to %s: %s", x.Host.Name, y.Host.Name, strings.Join(p.Addrs, " ")))
	}
	out := []*dpSystem{s}
	if v.ref {
		for _, c := range [][]string{
			{"nft", "add", "table", "ip", "klbench"},
			{"nft", "add", "chain", "ip", "klbench", "pre", "{ type nat hook prerouting priority -110 ; }"},
			{"nft", "add", "rule", "ip", "klbench", "pre", "iifname", "wan", "tcp", "dport", "5201", "dnat", "to", y.Host.IPv4},
			{"nft", "add", "rule", "ip", "klbench", "pre", "iifname", "wan", "icmp", "type", "echo-request", "dnat", "to", y.Host.IPv4},
		} {
			if o, err := lab.Exec(natB.NS, c...); err != nil {
				t.Fatalf("forwarding iperf3 through %s: %v: %s", natB.Name, err, o)
			}
		}
		s.ref = &dpSystem{name: "raw via 2 NATs", ip: natB.IPv4, addresses: "nat", from: x.Host, to: y.Host,
			wire: fmt.Sprintf("the punched row's wire without kadlan: %s to %s's WAN address, forwarded to %s", x.Host.Name, natB.Name, y.Host.Name)}
		out = append(out, s.ref)
	}
	return out, ""
}

// bgPids are the NAT world's public daemons, idle beside the rows.
func (d *dpNAT) bgPids() []int {
	if d.w == nil {
		return nil
	}
	var out []int
	for _, n := range append([]*labtest.Node{d.w.boot}, d.w.pubs...) {
		out = append(out, nodePids(n)...)
	}
	return out
}

// refLine compares a punched row with the raw row across its routers.
func (s *dpSystem) refLine() string {
	r := s.ref
	if r == nil || median(r.mbps1) == 0 || median(r.mbps4) == 0 {
		return ""
	}
	return fmt.Sprintf("%s / %s: 1 stream %.3f, 4 streams %.3f; ping idle %+.3f ms", s.name, r.name,
		median(s.mbps1)/median(r.mbps1), median(s.mbps4)/median(r.mbps4), median(s.pingIdle)-median(r.pingIdle))
}

// peersPath is the path and transport `kadlan peers` shows from a to b.
func peersPath(a, b *labtest.Node) string {
	p, err := pathTo(a, b)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("kadlan peers: %s %s/%s", p.Path, p.Transport, p.Scope)
}
