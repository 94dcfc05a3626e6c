// Package labtest adapts netlab to tests: its types wrap netlab's, fail the
// test (t.Fatal) where netlab returns an error, close the lab in a
// t.Cleanup, and skip the test where no lab can run (not root, ip or nft
// missing).
package labtest

import (
	"testing"

	"github.com/kadlan/kadlan/e2e/netlab"
)

// Lab is a netlab.Lab tied to a test.
type Lab struct {
	*netlab.Lab
	t testing.TB
}

// Host is a netlab.Host of a Lab.
type Host struct {
	*netlab.Host
	lab *Lab
}

// Node is a netlab.Node on a Host.
type Node struct {
	*netlab.Node
	Host *Host
}

// New creates a lab whose namespaces, processes and files the test's
// cleanup removes. It skips the test unless netlab.Check passes.
func New(t testing.TB) *Lab {
	t.Helper()
	return NewWith(t, netlab.Options{})
}

// NewWith is New with options (say, Link for an Internet with latency);
// an empty Dir becomes the test's temporary directory.
func NewWith(t testing.TB, opts netlab.Options) *Lab {
	t.Helper()
	if err := netlab.Check(); err != nil {
		t.Skip(err)
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	l, err := netlab.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return &Lab{Lab: l, t: t}
}

// Binary is netlab.Binary, failing t on error.
func Binary(t testing.TB) string {
	t.Helper()
	b, err := netlab.Binary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (l *Lab) host(h *netlab.Host, err error) *Host {
	l.t.Helper()
	if err != nil {
		l.t.Fatal(err)
	}
	return &Host{Host: h, lab: l}
}

// PublicHost adds a host on the Internet segment.
func (l *Lab) PublicHost(name string) *Host {
	l.t.Helper()
	return l.host(l.Lab.PublicHost(name))
}

// NATRouter adds a NAT router on the Internet (upstream nil) or behind
// upstream (double NAT); see netlab.Lab.NATRouter.
func (l *Lab) NATRouter(name string, kind netlab.NAT, upstream *Host) *Host {
	l.t.Helper()
	var up *netlab.Host
	if upstream != nil {
		up = upstream.Host
	}
	return l.host(l.Lab.NATRouter(name, kind, up))
}

// SetLink shapes h's link to the Internet (see netlab.Lab.SetLink).
func (l *Lab) SetLink(h *Host, s netlab.LinkShape) {
	l.t.Helper()
	if err := l.Lab.SetLink(h.Host, s); err != nil {
		l.t.Fatal(err)
	}
}

// Namespace adds a bare host (lo only); see netlab.Lab.Namespace.
func (l *Lab) Namespace(name string) *Host {
	l.t.Helper()
	return l.host(l.Lab.Namespace(name))
}

// Link joins a and b with a veth pair; see netlab.Lab.Link.
func (l *Lab) Link(a *Host, aDev string, b *Host, bDev string) {
	l.t.Helper()
	if err := l.Lab.Link(a.Host, aDev, b.Host, bDev); err != nil {
		l.t.Fatal(err)
	}
}

// PrivateHost adds a host on router r's LAN.
func (r *Host) PrivateHost(name string) *Host {
	r.lab.t.Helper()
	return r.lab.host(r.Host.PrivateHost(name))
}

// Move attaches h to router r's LAN (roaming).
func (h *Host) Move(r *Host) {
	h.lab.t.Helper()
	if err := h.Host.Move(r.Host); err != nil {
		h.lab.t.Fatal(err)
	}
}

// Start runs args in h's namespace with output to logPath.
func (h *Host) Start(logPath string, args ...string) *netlab.Proc {
	h.lab.t.Helper()
	p, err := h.Host.Start(logPath, args...)
	if err != nil {
		h.lab.t.Fatal(err)
	}
	return p
}

// StartNode starts `kadlan daemon args...` on h and waits for its API. If
// t fails, its cleanup logs the last lines of the daemon's log.
func (h *Host) StartNode(t testing.TB, args ...string) *Node {
	t.Helper()
	nd, err := h.Host.StartNode(args...)
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{Node: nd, Host: h}
	n.logOnFailure(t)
	return n
}

// Start (re)starts the daemon with args, keeping state dir and socket.
func (n *Node) Start(t testing.TB, args ...string) {
	t.Helper()
	if err := n.Node.Start(args...); err != nil {
		t.Fatal(err)
	}
	n.logOnFailure(t)
}

func (n *Node) logOnFailure(t testing.TB) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- last log lines of %s (%s):\n%s", n.Host.Name, n.Address, n.LogTail(25))
		}
	})
}
