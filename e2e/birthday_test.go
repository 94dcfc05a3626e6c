package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/e2e/netlab"
	"github.com/kadlan/kadlan/e2e/netlab/labtest"
)

// birthdayBound is issue 12's goal: a pair with an endpoint-independent
// side is direct within 10 s of its first contact.
const birthdayBound = 10 * time.Second

// TestBirthdaySymmetricEIM: a node behind a symmetric NAT and one behind
// an endpoint-independent NAT meet through a relay; DCUtR cannot punch
// (the symmetric side's ports differ per destination), the birthday punch
// can: within 10 s the path is direct, over QUIC. (Built with
// -ldflags "-X github.com/kadlan/kadlan/dht.birthdayDisabled=1" and run
// through KADLAN_BIN, the pair stays relayed.)
func TestBirthdaySymmetricEIM(t *testing.T) {
	w := newNATWorld(t)
	natE := w.lab.NATRouter("natE", netlab.EIM, nil)
	natS := w.lab.NATRouter("natS", netlab.Symmetric, nil)
	e := w.behind(t, natE, "e")
	s := w.behind(t, natS, "s")

	start := time.Now()
	pr, err := pingOnce(e, s, "10s")
	if err != nil {
		t.Fatalf("e could not ping s: %v", err)
	}
	if pr.ConnectPath != "relayed" {
		t.Fatalf("first contact %s; want relayed", pr.ConnectPath)
	}
	first := time.Now()
	t.Logf("first reply after %v, relayed via %s", first.Sub(start).Round(time.Millisecond), w.byAddr[pr.ConnectVia])
	var last api.Peer
	last, err = waitDirect(s, e, birthdayBound, 100*time.Millisecond)
	if err != nil {
		t.Fatalf("not direct %v after the first contact: %v", birthdayBound, err)
	}
	t.Logf("direct %v after the first reply: %s %v", time.Since(first).Round(time.Millisecond), last.Transport, last.Addrs)
	if last.Transport != "quic" {
		t.Errorf("direct path over %s, want quic", last.Transport)
	}
	direct := false
	for _, a := range last.Addrs {
		if !strings.Contains(a, "/p2p-circuit") && strings.Contains(a, "/udp/") && strings.Contains(a, "/ip4/"+natE.IPv4+"/") {
			direct = true
		}
	}
	if !direct {
		t.Errorf("s's connections to e: %v; want a QUIC one to natE's address", last.Addrs)
	}
	// Pings use the punched path both ways.
	for _, pair := range [][2]*labtest.Node{{e, s}, {s, e}} {
		pr, err := pingOnce(pair[0], pair[1], "5s")
		if err != nil || pr.Path != "direct" {
			t.Fatalf("ping %s -> %s after the punch: %+v %v", pair[0].Host.Name, pair[1].Host.Name, pr, err)
		}
	}
}

// TestBirthdaySymmetricBoth: two symmetric NATs cannot be punched; the
// pair stays relayed, pings flow, and `kadlan peers` says why.
func TestBirthdaySymmetricBoth(t *testing.T) {
	w := newNATWorld(t)
	natA := w.lab.NATRouter("natA", netlab.Symmetric, nil)
	natB := w.lab.NATRouter("natB", netlab.Symmetric, nil)
	a := w.behind(t, natA, "a")
	b := w.behind(t, natB, "b")
	if _, err := pingOnce(a, b, "10s"); err != nil {
		t.Fatalf("a could not ping b: %v", err)
	}
	want := "both sides behind symmetric NATs"
	for _, pair := range [][2]*labtest.Node{{a, b}, {b, a}} {
		var pu *api.Punch
		err := netlab.Eventually(30*time.Second, 250*time.Millisecond, func() error {
			p, err := pathTo(pair[0], pair[1])
			if err != nil {
				return err
			}
			if p.Path != "relayed" {
				return fmt.Errorf("path %s between two symmetric NATs", p.Path)
			}
			if p.Punch == nil || !strings.HasPrefix(p.Punch.Birthday, want) {
				return fmt.Errorf("punch state %+v", p.Punch)
			}
			pu = p.Punch
			return nil
		})
		if err != nil {
			t.Fatalf("%s's view of %s: %v", pair[0].Host.Name, pair[1].Host.Name, err)
		}
		t.Logf("%s: nat %s, peer %s: %s", pair[0].Host.Name, pu.NAT, pu.PeerNAT, pu.Birthday)
		if pu.NAT != "symmetric" || pu.PeerNAT != "symmetric" {
			t.Errorf("%s: nat %q peer_nat %q, want symmetric both", pair[0].Host.Name, pu.NAT, pu.PeerNAT)
		}
	}
	if pr, err := pingOnce(a, b, "5s"); err != nil || pr.Path != "relayed" {
		t.Fatalf("ping between symmetric NATs: %+v %v", pr, err)
	}
}
