// Package netlab builds throw-away network topologies out of Linux network
// namespaces for kadlan's end-to-end tests, and runs real kadlan daemons in
// them.
//
//	       [inet]  bridge br0: the "public Internet", 192.0.0.128/25, 2001:2::/64
//	      /   |    \
//	[pub0] [pub1]  [nat0]  wan 192.0.0.x  ── masquerade ──  br0 192.168.1.1/24
//	                                                            |
//	                                                       [nat0h0] 192.168.1.10
//
// Every namespace is named with the lab's unique prefix and deleted by a
// test cleanup, even when the test fails. No namespace has a link to the
// host's own namespace, so nothing started here can reach beyond the lab.
// The "Internet" uses 192.0.0.128/25 and 2001:2::/48: reserved, never
// routed, yet public to go-multiaddr (unlike 198.18.0.0/15 and the
// TEST-NETs), so libp2p relays and hole-punches there as on the Internet.
package netlab

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// NAT kinds a router can apply.
type NAT int

const (
	// EIM is Linux masquerade: endpoint-independent mapping (source ports
	// kept where possible), stateful filtering. Hole punching works.
	EIM NAT = iota
	// Symmetric is masquerade random,fully-random: a new mapping per
	// destination. Hole punching fails; paths stay relayed.
	Symmetric
	// Only443 is EIM NAT whose firewall lets out nothing but TCP to port 443.
	Only443
)

// TB is the part of testing.TB the lab uses, so that `kadlan demo` can
// drive a lab outside `go test` too.
type TB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	Skip(args ...any)
	Skipf(format string, args ...any)
	Cleanup(func())
	TempDir() string
	Failed() bool
}

// RequireRoot skips the test unless it runs as root with ip and nft.
func RequireRoot(t TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netlab: e2e tests create network namespaces and need root; run as root (CI does) to include them")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("netlab: %s not installed (apt-get install iproute2 nftables)", tool)
		}
	}
}

// Lab is one topology. Create it with New; it is torn down by t.Cleanup.
type Lab struct {
	t      TB
	Prefix string
	inet   string

	mu       sync.Mutex
	nss      []string
	nextPub  int
	nextLink int
	nextLAN  int
	procs    []*Proc
}

var labSeq int
var labMu sync.Mutex

// New creates an empty Internet segment. It skips the test when not root.
func New(t TB) *Lab {
	t.Helper()
	RequireRoot(t)
	labMu.Lock()
	labSeq++
	seq := labSeq
	labMu.Unlock()
	sweepStale()
	l := &Lab{t: t, Prefix: fmt.Sprintf("kl%d-%d-", os.Getpid(), seq)}
	t.Cleanup(l.Close)
	l.inet = l.addNS("inet")
	l.run(l.inet, "ip", "link", "add", "br0", "type", "bridge")
	l.run(l.inet, "ip", "link", "set", "br0", "up")
	return l
}

// sweepStale deletes namespaces that a lab of a test process that no longer
// exists left behind (it was killed before its cleanup ran). Only names
// with netlab's own pattern kl<pid>-<n>- whose pid is dead are touched.
func sweepStale() {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := staleRE.FindStringSubmatch(f[0])
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
			continue
		}
		exec.Command("ip", "netns", "del", f[0]).Run()
	}
}

var staleRE = regexp.MustCompile(`^kl(\d+)-\d+-`)

// Close stops every process and deletes every namespace of the lab.
func (l *Lab) Close() {
	l.mu.Lock()
	procs := l.procs
	l.procs = nil
	nss := l.nss
	l.nss = nil
	l.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	for i := len(nss) - 1; i >= 0; i-- {
		exec.Command("ip", "netns", "del", nss[i]).Run()
	}
}

func (l *Lab) addNS(name string) string {
	ns := l.Prefix + name
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		l.t.Fatalf("netlab: ip netns add %s: %v: %s", ns, err, out)
	}
	l.mu.Lock()
	l.nss = append(l.nss, ns)
	l.mu.Unlock()
	l.run(ns, "ip", "link", "set", "lo", "up")
	return ns
}

// run executes a command inside namespace ns ("" is forbidden: tests never
// touch the host's namespace) and fails the test on error.
func (l *Lab) run(ns string, args ...string) string {
	l.t.Helper()
	out, err := l.Exec(ns, args...)
	if err != nil {
		l.t.Fatalf("netlab: %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// Exec runs a command inside ns and returns its combined output.
func (l *Lab) Exec(ns string, args ...string) (string, error) {
	if ns == "" {
		panic("netlab: refusing to run in the host namespace")
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, args...)...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	if err != nil {
		return b.String(), fmt.Errorf("%w: %s", err, strings.TrimSpace(b.String()))
	}
	return b.String(), nil
}

// link creates a veth pair directly inside two namespaces (never in the
// host's), named aName in a and bName in b, and brings both up.
func (l *Lab) link(a, aName, b, bName string) {
	l.t.Helper()
	l.mu.Lock()
	l.nextLink++
	tmpA, tmpB := fmt.Sprintf("kla%d", l.nextLink), fmt.Sprintf("klb%d", l.nextLink)
	l.mu.Unlock()
	// Create with temporary names, then rename: the two ends may share a
	// name (eth0) only once they live in different namespaces.
	if out, err := exec.Command("ip", "link", "add", tmpA, "netns", a, "type", "veth", "peer", "name", tmpB, "netns", b).CombinedOutput(); err != nil {
		l.t.Fatalf("netlab: veth %s<->%s: %v: %s", a, b, err, out)
	}
	l.run(a, "ip", "link", "set", tmpA, "name", aName)
	l.run(b, "ip", "link", "set", tmpB, "name", bName)
	l.run(a, "ip", "link", "set", aName, "up")
	l.run(b, "ip", "link", "set", bName, "up")
}

// Host is one namespace with an address.
type Host struct {
	Lab  *Lab
	Name string
	NS   string
	IPv4 string
	IPv6 string // empty behind NAT
	// attach point for hosts behind this one when it is a router
	lanIdx  int
	lanNet  string // e.g. 192.168.1
	nextLAN int
}

// PublicHost adds a host on the Internet segment.
func (l *Lab) PublicHost(name string) *Host {
	l.mu.Lock()
	l.nextPub++
	i := l.nextPub
	l.mu.Unlock()
	if i > 120 {
		l.t.Fatal("netlab: Internet segment full")
	}
	h := &Host{Lab: l, Name: name, NS: l.addNS(name),
		IPv4: fmt.Sprintf("192.0.0.%d", 128+i), IPv6: fmt.Sprintf("2001:2::%x", i)}
	l.link(h.NS, "eth0", l.inet, fmt.Sprintf("p%d", i))
	l.run(l.inet, "ip", "link", "set", fmt.Sprintf("p%d", i), "master", "br0")
	l.run(h.NS, "ip", "addr", "add", h.IPv4+"/25", "dev", "eth0")
	l.run(h.NS, "ip", "-6", "addr", "add", h.IPv6+"/64", "dev", "eth0", "nodad")
	return h
}

// NATRouter adds a router like a home router: masquerade on its WAN side,
// stateful forwarding (only replies come in), and a WAN input firewall that
// drops unsolicited packets silently (so that, as on real routers, a
// hole-punch packet arriving early leaves no conntrack entry behind that
// would force the router to pick another port for its own side's packet).
// Its WAN side is on the Internet (upstream nil)
// or on the LAN of another router (double NAT), with a private LAN behind.
func (l *Lab) NATRouter(name string, kind NAT, upstream *Host) *Host {
	var r *Host
	if upstream == nil {
		r = l.PublicHost(name)
	} else {
		r = upstream.PrivateHost(name)
	}
	l.mu.Lock()
	l.nextLAN++
	r.lanIdx = l.nextLAN
	l.mu.Unlock()
	r.lanNet = fmt.Sprintf("192.168.%d", r.lanIdx)
	l.run(r.NS, "ip", "link", "set", "eth0", "name", "wan")
	l.run(r.NS, "ip", "link", "add", "br0", "type", "bridge")
	l.run(r.NS, "ip", "link", "set", "br0", "up")
	l.run(r.NS, "ip", "addr", "add", r.lanNet+".1/24", "dev", "br0")
	l.run(r.NS, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	masq := "masquerade"
	if kind == Symmetric {
		masq = "masquerade random,fully-random"
	}
	out := `oifname "wan" accept`
	if kind == Only443 {
		out = `oifname "wan" tcp dport 443 accept`
	}
	rules := fmt.Sprintf(`table ip kadlan_lab {
  chain kl_post { type nat hook postrouting priority 100; oifname "wan" %s; }
  chain kl_forward {
    type filter hook forward priority 0; policy drop;
    ct state established,related accept
    iifname "br0" %s
  }
  chain kl_input {
    type filter hook input priority 0; policy accept;
    iifname "wan" ct state != established,related drop
  }
}
`, masq, out)
	cmd := exec.Command("ip", "netns", "exec", r.NS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if b, err := cmd.CombinedOutput(); err != nil {
		l.t.Fatalf("netlab: nft in %s: %v: %s", r.NS, err, b)
	}
	return r
}

// PrivateHost adds a host on router r's LAN, with r as its default gateway.
func (r *Host) PrivateHost(name string) *Host {
	l := r.Lab
	if r.lanNet == "" {
		l.t.Fatalf("netlab: %s is not a router", r.Name)
	}
	l.mu.Lock()
	r.nextLAN++
	i := r.nextLAN
	l.mu.Unlock()
	h := &Host{Lab: l, Name: name, NS: l.addNS(name), IPv4: fmt.Sprintf("%s.%d", r.lanNet, 9+i)}
	port := fmt.Sprintf("l%d", i)
	l.link(h.NS, "eth0", r.NS, port)
	l.run(r.NS, "ip", "link", "set", port, "master", "br0")
	l.run(h.NS, "ip", "addr", "add", h.IPv4+"/24", "dev", "eth0")
	l.run(h.NS, "ip", "route", "add", "default", "via", r.lanNet+".1")
	return h
}

// Move detaches h from wherever it is and attaches it to router r's LAN with
// a new address (roaming). Processes in h keep running.
func (h *Host) Move(r *Host) {
	l := h.Lab
	l.run(h.NS, "ip", "link", "del", "eth0")
	l.mu.Lock()
	r.nextLAN++
	i := r.nextLAN
	l.mu.Unlock()
	h.IPv4 = fmt.Sprintf("%s.%d", r.lanNet, 9+i)
	h.IPv6 = ""
	port := fmt.Sprintf("l%d", i)
	l.link(h.NS, "eth0", r.NS, port)
	l.run(r.NS, "ip", "link", "set", port, "master", "br0")
	l.run(h.NS, "ip", "addr", "add", h.IPv4+"/24", "dev", "eth0")
	l.run(h.NS, "ip", "route", "add", "default", "via", r.lanNet+".1")
}
