// Package netlab builds throw-away network topologies out of Linux network
// namespaces, and runs real kadlan daemons in them. kadlan's end-to-end
// tests use it (through the adapter in package labtest) and so does
// `kadlan demo`.
//
//	       [inet]  bridge br0: the "public Internet", 192.0.0.128/25, 2001:2::/64
//	      /   |    \
//	[pub0] [pub1]  [nat0]  wan 192.0.0.x  ── masquerade ──  br0 192.168.1.1/24
//	                                                            |
//	                                                       [nat0h0] 192.168.1.10
//
// It is an ordinary library: every operation returns an error. Every
// namespace is named with the lab's unique prefix kl<pid>-<n>- and deleted
// by (*Lab).Close, which also kills every process the lab started (by the
// PIDs it started, nothing else); a lab left behind by a process killed
// before it could close is swept by the next New. No namespace has a link
// to the host's own namespace, so nothing started here can reach beyond
// the lab. The "Internet" uses 192.0.0.128/25 and 2001:2::/48: reserved,
// never routed, yet public to go-multiaddr (unlike 198.18.0.0/15 and the
// TEST-NETs), so libp2p relays and hole-punches there as on the Internet.
//
// # Routers
//
// NATRouter builds home and carrier routers with nftables, one per NAT
// kind of RFC 4787 that users sit behind: EIM (endpoint-independent
// mapping, port-restricted filtering, hairpinning: most home routers),
// FullCone, AddressRestricted, Symmetric (random port per destination),
// NoHairpin, UDPBlocked, Only443, and CGNAT (a carrier NAT whose LAN is
// 100.64.0.0/10, for a home router behind it). Every kind drops
// unsolicited WAN input. TestNATZoo checks each one's mapping, filtering,
// hairpinning and egress with a probe; see NAT for how they are built.
//
// # An Internet with latency
//
// This kernel has no netem, so with Options.Link the Internet segment is
// not a kernel bridge but a userspace switch that the Lab owns: an
// AF_PACKET socket on each host's veth port in the inet namespace, MAC
// learning, and per link a delay line each way with the link's one-way
// delay, jitter (without reordering), random loss and a token-bucket rate
// (see LinkShape). A frame crosses the sender's link and the receiver's,
// so the RTT between hosts A and B is 2*(A.Delay+B.Delay); Lab.SetLink
// changes a link at any time. NAT routers' WAN links are ports like any
// other; hosts behind a router share its link. TSO frames cross whole
// (PACKET_VNET_HDR), so one TCP stream gets ~4.5 Gbit/s over perfect links
// (BenchmarkSwitchTCP; the kernel bridge ~18) and 20 MiB take ~0.65 s at
// 40 ms RTT (TestSwitchTraffic). Close stops it. Its self-test, TestSwitchRTT, pings across 80 ms and
// 200 ms configured RTT (measured 81.4 ms and 201.9 ms) and a zero-delay
// link (0.2 ms).
//
//	lab, _ := netlab.New(netlab.Options{Link: &netlab.LinkShape{Delay: 20 * time.Millisecond}})
//	defer lab.Close()
//	a, _ := lab.PublicHost("a")
//	b, _ := lab.PublicHost("b")              // a <-> b: 80 ms RTT
//	lab.SetLink(b, netlab.LinkShape{Delay: 20 * time.Millisecond, Loss: 0.01})
package netlab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// ErrUnsupported is wrapped by the errors of Check (and so of New) when
// this machine cannot run a lab: not root, or ip or nft missing.
var ErrUnsupported = errors.New("netlab: unsupported here")

type unsupported string

func (u unsupported) Error() string        { return string(u) }
func (u unsupported) Is(target error) bool { return target == ErrUnsupported }

// Check reports whether a lab can run here: as root, with ip and nft
// installed. Its error wraps ErrUnsupported and says what is missing.
func Check() error {
	if os.Geteuid() != 0 {
		return unsupported("netlab: a lab creates network namespaces and needs root; run as root (CI does)")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return unsupported(fmt.Sprintf("netlab: %s not installed (apt-get install iproute2 nftables)", tool))
		}
	}
	return nil
}

// Options configure a lab. The zero value is fine.
type Options struct {
	// Bin is the kadlan binary StartNode runs; empty means Binary().
	Bin string
	// Dir holds the nodes' state directories, API sockets and logs. Empty
	// means a new temporary directory, which Close removes; a directory
	// given here is left in place.
	Dir string
	// Link, when not nil, builds the Internet segment as netlab's
	// userspace switch instead of a kernel bridge, and shapes every host's
	// link to it so (delay, jitter, loss, rate: see LinkShape; SetLink
	// changes one host's). Nil is the kernel bridge: no delay, no loss.
	Link *LinkShape
}

// Lab is one topology. Create it with New and end it with Close.
type Lab struct {
	// Prefix starts the name of every namespace of the lab: kl<pid>-<n>-.
	Prefix string
	inet   string
	bin    string
	dir    string
	ownDir bool
	sw     *vswitch // nil: the kernel bridge br0

	mu       sync.Mutex
	closed   bool
	nss      []string
	nextPub  int
	nextLink int
	nextLAN  int
	procs    []*Proc
	nodes    []*Node

	closeOnce sync.Once
	closeErr  error
}

var labSeq int
var labMu sync.Mutex

// New checks that a lab can run here (see Check), deletes namespaces left
// behind by dead processes, and creates an empty Internet segment. On
// error nothing of the lab remains.
func New(opts Options) (*Lab, error) {
	if err := Check(); err != nil {
		return nil, err
	}
	labMu.Lock()
	labSeq++
	seq := labSeq
	labMu.Unlock()
	if opts.Link != nil {
		if err := opts.Link.validate(); err != nil {
			return nil, err
		}
	}
	sweepStale()
	raiseNeighbourLimits()
	l := &Lab{Prefix: fmt.Sprintf("kl%d-%d-", os.Getpid(), seq), bin: opts.Bin, dir: opts.Dir}
	if l.dir == "" {
		dir, err := os.MkdirTemp("", "kadlan-netlab-")
		if err != nil {
			return nil, fmt.Errorf("netlab: %w", err)
		}
		l.dir, l.ownDir = dir, true
	}
	err := func() error {
		var err error
		if l.inet, err = l.addNS("inet"); err != nil {
			return err
		}
		if opts.Link != nil {
			// The switch's ports carry no address of inet's own.
			l.sw = newSwitch(l.inet, *opts.Link)
			_, err := l.run(l.inet, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1", "net.ipv6.conf.all.disable_ipv6=1")
			return err
		}
		if _, err := l.run(l.inet, "ip", "link", "add", "br0", "type", "bridge"); err != nil {
			return err
		}
		_, err = l.run(l.inet, "ip", "link", "set", "br0", "up")
		return err
	}()
	if err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// sweepStale deletes namespaces that a lab of a process that no longer
// exists left behind (it was killed before it could close). Only names
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

// neighbourLimit is the size of the kernel's ARP and NDP tables that
// raiseNeighbourLimits ensures. The tables are shared by every network
// namespace of the machine (gc_thresh3, 1024 by default, counts all
// entries), and a lab of 60 hosts that all talk to each other holds
// about 60 x 60: beyond the limit the kernel refuses new entries
// ("neighbor table overflow!", sendmsg: No buffer space available) and
// hosts of the lab cannot reach each other.
const neighbourLimit = 32768

// raiseNeighbourLimits raises (never lowers) the neighbour table limits
// to neighbourLimit; a failure leaves them as they are.
func raiseNeighbourLimits() {
	for _, fam := range []string{"ipv4", "ipv6"} {
		for i, want := range []int{neighbourLimit / 8, neighbourLimit / 2, neighbourLimit} {
			path := fmt.Sprintf("/proc/sys/net/%s/neigh/default/gc_thresh%d", fam, i+1)
			b, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			if cur, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && cur < want {
				os.WriteFile(path, []byte(strconv.Itoa(want)), 0o644)
			}
		}
	}
}

var staleRE = regexp.MustCompile(`^kl(\d+)-\d+-`)

// Dir is the directory holding the nodes' state, sockets and logs.
func (l *Lab) Dir() string { return l.dir }

// Nodes lists the daemons started in the lab, in order.
func (l *Lab) Nodes() []*Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Node(nil), l.nodes...)
}

// Close kills every process the lab started, deletes every namespace of
// the lab and, when New made it, the lab's directory. It may be called
// more than once and from any goroutine (say, a signal handler while the
// lab is being built): later calls wait for the first and return its
// result, and the lab creates nothing after it.
func (l *Lab) Close() error {
	l.closeOnce.Do(func() { l.closeErr = l.close() })
	return l.closeErr
}

func (l *Lab) close() error {
	l.mu.Lock()
	l.closed = true
	procs := l.procs
	l.procs = nil
	nss := l.nss
	l.nss = nil
	l.mu.Unlock()
	for _, p := range procs {
		p.Kill()
	}
	if l.sw != nil {
		l.sw.close()
	}
	var errs []error
	for i := len(nss) - 1; i >= 0; i-- {
		if out, err := exec.Command("ip", "netns", "del", nss[i]).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("netlab: ip netns del %s: %v: %s", nss[i], err, bytes.TrimSpace(out)))
		}
	}
	if l.ownDir {
		if err := os.RemoveAll(l.dir); err != nil {
			errs = append(errs, fmt.Errorf("netlab: %w", err))
		}
	}
	return errors.Join(errs...)
}

var errClosed = errors.New("netlab: lab closed")

// addNS creates namespace Prefix+name with lo up. The lab's lock is held
// while it is created, so that a concurrent Close cannot miss it.
func (l *Lab) addNS(name string) (string, error) {
	ns := l.Prefix + name
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return "", errClosed
	}
	out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput()
	if err == nil {
		l.nss = append(l.nss, ns)
	}
	l.mu.Unlock()
	if err != nil {
		return "", fmt.Errorf("netlab: ip netns add %s: %v: %s", ns, err, bytes.TrimSpace(out))
	}
	if _, err := l.run(ns, "ip", "link", "set", "lo", "up"); err != nil {
		return "", err
	}
	return ns, nil
}

// run is Exec with the command in the error.
func (l *Lab) run(ns string, args ...string) (string, error) {
	out, err := l.Exec(ns, args...)
	if err != nil {
		return out, fmt.Errorf("netlab: in %s: %s: %w", ns, strings.Join(args, " "), err)
	}
	return out, nil
}

// runAll runs commands in ns one after the other, stopping at the first
// error.
func (l *Lab) runAll(ns string, cmds ...[]string) error {
	for _, c := range cmds {
		if _, err := l.run(ns, c...); err != nil {
			return err
		}
	}
	return nil
}

// Exec runs a command inside namespace ns and returns its combined output.
// ns must be one of the lab's namespaces: Exec refuses anything else (in
// particular "", the host's own namespace).
func (l *Lab) Exec(ns string, args ...string) (string, error) {
	if !strings.HasPrefix(ns, l.Prefix) || ns == l.Prefix {
		return "", fmt.Errorf("netlab: refusing to run outside the lab's namespaces (%q)", ns)
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

// Link creates a veth pair directly inside the namespaces of a and b (never
// in the host's), named aDev in a and bDev in b, and brings both ends up.
func (l *Lab) Link(a *Host, aDev string, b *Host, bDev string) error {
	return l.link(a.NS, aDev, b.NS, bDev)
}

func (l *Lab) link(a, aName, b, bName string) error {
	l.mu.Lock()
	l.nextLink++
	tmpA, tmpB := fmt.Sprintf("kla%d", l.nextLink), fmt.Sprintf("klb%d", l.nextLink)
	l.mu.Unlock()
	// Create with temporary names, then rename: the two ends may share a
	// name (eth0) only once they live in different namespaces.
	if out, err := exec.Command("ip", "link", "add", tmpA, "netns", a, "type", "veth", "peer", "name", tmpB, "netns", b).CombinedOutput(); err != nil {
		return fmt.Errorf("netlab: veth %s<->%s: %v: %s", a, b, err, bytes.TrimSpace(out))
	}
	if err := l.runAll(a, []string{"ip", "link", "set", tmpA, "name", aName}, []string{"ip", "link", "set", aName, "up"}); err != nil {
		return err
	}
	return l.runAll(b, []string{"ip", "link", "set", tmpB, "name", bName}, []string{"ip", "link", "set", bName, "up"})
}

// Host is one namespace with an address.
type Host struct {
	Lab  *Lab
	Name string
	NS   string
	IPv4 string
	IPv6 string // empty behind NAT
	// inetPort is the host's port on the Internet segment (in inet), if
	// it has one.
	inetPort string
	// attach point for hosts behind this one when it is a router
	lanIdx  int
	lanNet  string // e.g. 192.168.1
	nextLAN int
}

// Namespace adds a bare host: a namespace of the lab with only lo, no
// address and no link (connect it with Link; set IPv4 and IPv6 to the
// addresses you give it).
func (l *Lab) Namespace(name string) (*Host, error) {
	ns, err := l.addNS(name)
	if err != nil {
		return nil, err
	}
	return &Host{Lab: l, Name: name, NS: ns}, nil
}

// PublicHost adds a host on the Internet segment.
func (l *Lab) PublicHost(name string) (*Host, error) {
	l.mu.Lock()
	l.nextPub++
	i := l.nextPub
	l.mu.Unlock()
	if i > 120 {
		return nil, errors.New("netlab: Internet segment full")
	}
	h, err := l.Namespace(name)
	if err != nil {
		return nil, err
	}
	h.IPv4, h.IPv6 = fmt.Sprintf("192.0.0.%d", 128+i), fmt.Sprintf("2001:2::%x", i)
	port := fmt.Sprintf("p%d", i)
	if err := l.link(h.NS, "eth0", l.inet, port); err != nil {
		return nil, err
	}
	h.inetPort = port
	if l.sw != nil {
		if err := l.sw.addPort(port); err != nil {
			return nil, err
		}
	} else if _, err := l.run(l.inet, "ip", "link", "set", port, "master", "br0"); err != nil {
		return nil, err
	}
	if err := l.runAll(h.NS,
		[]string{"ip", "addr", "add", h.IPv4 + "/25", "dev", "eth0"},
		[]string{"ip", "-6", "addr", "add", h.IPv6 + "/64", "dev", "eth0", "nodad"}); err != nil {
		return nil, err
	}
	return h, nil
}

// PrivateHost adds a host on router r's LAN, with r as its default gateway.
func (r *Host) PrivateHost(name string) (*Host, error) {
	l := r.Lab
	if r.lanNet == "" {
		return nil, fmt.Errorf("netlab: %s is not a router", r.Name)
	}
	h, err := l.Namespace(name)
	if err != nil {
		return nil, err
	}
	if err := h.attach(r); err != nil {
		return nil, err
	}
	return h, nil
}

// attach links h to router r's LAN with the next address there.
func (h *Host) attach(r *Host) error {
	l := h.Lab
	l.mu.Lock()
	r.nextLAN++
	i := r.nextLAN
	l.mu.Unlock()
	h.IPv4 = fmt.Sprintf("%s.%d", r.lanNet, 9+i)
	port := fmt.Sprintf("l%d", i)
	if err := l.link(h.NS, "eth0", r.NS, port); err != nil {
		return err
	}
	if _, err := l.run(r.NS, "ip", "link", "set", port, "master", "br0"); err != nil {
		return err
	}
	return l.runAll(h.NS,
		[]string{"ip", "addr", "add", h.IPv4 + "/24", "dev", "eth0"},
		[]string{"ip", "route", "add", "default", "via", r.lanNet + ".1"})
}

// Move detaches h from wherever it is and attaches it to router r's LAN with
// a new address (roaming). Processes in h keep running.
func (h *Host) Move(r *Host) error {
	if r.lanNet == "" {
		return fmt.Errorf("netlab: %s is not a router", r.Name)
	}
	if _, err := h.Lab.run(h.NS, "ip", "link", "del", "eth0"); err != nil {
		return err
	}
	h.IPv6, h.inetPort = "", ""
	return h.attach(r)
}

// SetLink shapes h's link to the Internet segment (see LinkShape). h is a
// public host or a router on the Internet; to delay a host behind NAT,
// shape its router's link. It needs a lab built with Options.Link.
func (l *Lab) SetLink(h *Host, s LinkShape) error {
	if err := s.validate(); err != nil {
		return err
	}
	if l.sw == nil {
		return errors.New("netlab: SetLink needs a lab with Options.Link (the userspace switch)")
	}
	if h.inetPort == "" {
		return fmt.Errorf("netlab: %s has no link to the Internet segment", h.Name)
	}
	return l.sw.setShape(h.inetPort, s)
}

// SwitchStats reports what the userspace switch (Options.Link) did with
// frames so far; it is an error on a lab with the kernel bridge.
func (l *Lab) SwitchStats() (SwitchStats, error) {
	if l.sw == nil {
		return SwitchStats{}, errors.New("netlab: SwitchStats needs a lab with Options.Link (the userspace switch)")
	}
	return l.sw.stats(), nil
}
