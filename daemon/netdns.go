package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kadlan/kadlan/internal/dnszone"
	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/kadlan/kadlan/tap"
)

// DefaultDNSSuffix ends every network's zone: NAME.NETWORK.kadlan.
const DefaultDNSSuffix = "kadlan"

// dnsRetry is how long a responder that could not listen waits to retry;
// nameMissEvery how often a query for an unknown name may start a search
// for members.
const (
	dnsRetry      = 30 * time.Second
	nameMissEvery = 5 * time.Second
)

// CheckName validates a --name (one label) and a --dns-suffix (one or
// more labels: "kadlan", "kadlan.internal").
func CheckName(name, suffix string) error {
	if name != "" {
		if err := netrec.ValidName(name); err != nil {
			return fmt.Errorf("--name: %w", err)
		}
	}
	if len(suffix) > 100 {
		return fmt.Errorf("--dns-suffix: %d characters, want at most 100", len(suffix))
	}
	for _, l := range strings.Split(suffix, ".") {
		if err := netrec.ValidName(l); err != nil {
			return fmt.Errorf("--dns-suffix %q: %w", suffix, err)
		}
	}
	return nil
}

// DefaultName is the member name of a node given no --name: the host
// name made a valid name ("" if nothing is left of it).
func DefaultName() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return netrec.SanitizeName(h)
}

// zoneOf is the DNS zone of a network: its name made a label (or, with
// no usable name, the first 8 characters of its ID), then the suffix.
func zoneOf(id netrec.NetworkID, def *netrec.Definition, suffix string) string {
	label := ""
	if def != nil {
		label = netrec.SanitizeName(def.Name)
	}
	if label == "" {
		label = id.String()[:8]
	}
	return label + "." + suffix
}

// dnsState is the network's responder, owned by its run loop.
type dnsState struct {
	addr   netip.Addr // the IPv4 address served on; invalid: none
	zone   string
	cancel context.CancelFunc
	done   []chan struct{}
	// failIP could not be listened on at failed (retried after dnsRetry).
	failIP netip.Addr
	failed time.Time
}

// refreshNames recomputes the name table the responder answers from and
// `kadlan members` shows. j.mu is held.
func (j *joined) refreshNames(now time.Time) {
	nt := j.m.Names(now, j.mgr.name)
	j.names.Store(&nt)
}

// lookupName answers the responder from the latest name table (no lock:
// the responder must never wait for the network's mutex).
func (j *joined) lookupName(name string) (netip.Addr, netip.Addr, bool) {
	var e vswitch.NameEntry
	ok := false
	if nt := j.names.Load(); nt != nil {
		e, ok = nt.ByName[name]
	}
	if !ok || !e.IPv4.IsValid() {
		select {
		case j.nameMiss <- struct{}{}:
		default:
		}
	}
	return e.IPv4, e.IPv6, ok
}

// dnsStep starts, moves or stops the responder so that it serves the
// interface's current IPv4 address (and IPv6) while the node is ok on the
// network. Run loop only.
func (j *joined) dnsStep(now time.Time) {
	if !j.mgr.dns {
		return
	}
	j.mu.Lock()
	ip, v6, dev, iface := j.devIPv4.Addr(), j.m.IPv6(), j.dev, j.m.Interface
	zone := zoneOf(j.m.ID, j.m.Def, j.mgr.dnsSuffix)
	ok := j.m.Status(now) == vswitch.StatusOK
	j.mu.Unlock()
	if _, real := dev.(tap.Addresser); !real || !ok {
		ip = netip.Addr{} // in-memory devices (tests) have no address to serve on
	}
	d := &j.dns
	if ip == d.addr && zone == d.zone || ip.IsValid() && ip == d.failIP && zone == d.zone && now.Sub(d.failed) < dnsRetry {
		return
	}
	j.stopDNS()
	if !ip.IsValid() {
		return
	}
	srv := dnszone.NewServer(dnszone.New(zone, j.lookupName), j.mgr.logf)
	ctx, cancel := context.WithCancel(j.ctx)
	var done []chan struct{}
	var listened []netip.Addr
	for _, a := range []netip.Addr{ip, v6} {
		pc, ln, err := dnszone.Listen(netip.AddrPortFrom(a, 53))
		if err != nil {
			if a == ip { // the first: nothing runs yet
				cancel()
				d.failIP, d.failed, d.zone = ip, now, zone
				j.mgr.logf("networks: %s: DNS responder on %s: %v (retrying every %s)", j.m.ID.Short(), a, err, dnsRetry)
				return
			}
			j.mgr.logf("networks: %s: DNS responder on %s: %v", j.m.ID.Short(), a, err)
			continue
		}
		c := make(chan struct{})
		if !j.g.Go(func() { defer close(c); srv.Serve(ctx, pc, ln) }) {
			pc.Close()
			ln.Close()
			cancel()
			return
		}
		done = append(done, c)
		listened = append(listened, a)
	}
	*d = dnsState{addr: ip, zone: zone, cancel: cancel, done: done}
	j.mu.Lock()
	j.dnsServer = ip
	j.mu.Unlock()
	j.mgr.logf("networks: %s: DNS responder for %s on %v port 53", j.m.ID.Short(), zone, listened)
	if j.mgr.resolved != nil {
		j.mgr.resolved(ctx, iface, ip, zone)
	}
}

// stopDNS stops the responder and waits for it. Run loop only.
func (j *joined) stopDNS() {
	d := &j.dns
	if d.cancel != nil {
		d.cancel()
		for _, c := range d.done {
			<-c
		}
	}
	*d = dnsState{failIP: d.failIP, failed: d.failed}
	j.mu.Lock()
	j.dnsServer = netip.Addr{}
	j.mu.Unlock()
}

// resolvedCommands are the resolvectl calls that make systemd-resolved
// send queries for zone (and only for it: the ~ makes it a routing-only
// domain) to addr on iface.
func resolvedCommands(iface string, addr netip.Addr, zone string) [][]string {
	return [][]string{
		{"resolvectl", "dns", iface, addr.String()},
		{"resolvectl", "domain", iface, "~" + zone},
	}
}

// ResolvedRegistrar returns the function that registers a responder with
// systemd-resolved, or nil when resolved does not serve this network
// namespace (or resolvectl is missing): then nothing is registered, and
// the README says what to add to another resolver. run executes one
// command (nil: os/exec); logf reports failures.
func ResolvedRegistrar(run func(ctx context.Context, argv []string) error, logf func(string, ...any)) func(ctx context.Context, iface string, addr netip.Addr, zone string) {
	if _, err := exec.LookPath("resolvectl"); err != nil || !resolvedInThisNetns() {
		return nil
	}
	return resolvedRegistrar(run, logf)
}

// resolvedRegistrar is ResolvedRegistrar without the check that resolved
// runs here.
func resolvedRegistrar(run func(ctx context.Context, argv []string) error, logf func(string, ...any)) func(ctx context.Context, iface string, addr netip.Addr, zone string) {
	if run == nil {
		run = func(ctx context.Context, argv []string) error {
			out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, bytes.TrimSpace(out))
			}
			return nil
		}
	}
	return func(ctx context.Context, iface string, addr netip.Addr, zone string) {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		for _, argv := range resolvedCommands(iface, addr, zone) {
			if err := run(rctx, argv); err != nil {
				logf("networks: %v: %v", argv, err)
				return
			}
		}
		logf("networks: systemd-resolved sends *.%s to %s on %s", zone, addr, iface)
	}
}

// stubListening reports whether /proc/self/net/udp (the sockets of this
// network namespace) shows resolved's stub listener, 127.0.0.53:53.
func stubListening(procNetUDP []byte) bool {
	for _, line := range bytes.Split(procNetUDP, []byte("\n")) {
		f := bytes.Fields(line)
		// Host byte order: 3500007F on little-endian machines.
		if len(f) > 1 && (string(f[1]) == "3500007F:0035" || string(f[1]) == "7F000035:0035") {
			return true
		}
	}
	return false
}

// resolvedInThisNetns reports whether systemd-resolved runs in this
// process's network namespace. resolvectl talks to the resolved of the
// host over D-Bus whatever namespace it runs in, and would configure the
// host's interface that has the same index: a node in a namespace (the
// e2e tests) must leave it alone. Resolved without a stub listener, in a
// process this one may not inspect, goes unseen: then nothing is
// registered (README, Names, says what to configure instead).
func resolvedInThisNetns() bool {
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		return false
	}
	// The stub listener in this namespace, and the namespace is init's
	// (so that it is the resolved on the other end of D-Bus, not some
	// other server on 127.0.0.53 in a namespace of a test).
	if b, err := os.ReadFile("/proc/self/net/udp"); err == nil && stubListening(b) {
		if ns, err := os.Readlink("/proc/1/ns/net"); err == nil && ns == self {
			return true
		}
	}
	// Or the process itself in this namespace, which needs the right to
	// look at another user's process (not under the shipped unit, whose
	// capabilities exclude it).
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return false
	}
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
		if err != nil || string(bytes.TrimSpace(comm)) != "systemd-resolve" {
			continue
		}
		ns, err := os.Readlink(filepath.Join("/proc", e.Name(), "ns", "net"))
		if err == nil && ns == self {
			return true
		}
		if errors.Is(err, os.ErrPermission) {
			return false
		}
	}
	return false
}
