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

// TestHolePunchAgain: the direct path between two endpoint-independent
// NATs is blocked while they first meet, so libp2p's three DCUtR rounds
// fail and the pair stays relayed. Once the block is lifted, kadlan's own
// later rounds (20 s after connecting, then with a doubling backoff) make
// the path direct; libp2p alone would stay relayed for the connection's
// life. The two are members of a network whose link opened on the relayed
// connection: once the pair is direct, the link moves to the direct path
// (before, it stayed on the relay until the circuit's limit).
func TestHolePunchAgain(t *testing.T) {
	w := newNATWorld(t)
	natA := w.lab.NATRouter("natA", netlab.EIM, nil)
	natB := w.lab.NATRouter("natB", netlab.EIM, nil)
	a := w.behind(t, natA, "a")
	b := w.behind(t, natB, "b")

	// natA drops everything between itself and natB's WAN address, both
	// ways: the relays (public nodes) stay reachable.
	block := func(on bool) {
		t.Helper()
		if !on {
			if _, err := w.lab.Exec(natA.NS, "nft", "delete", "table", "inet", "klblock"); err != nil {
				t.Fatalf("lifting the block: %v", err)
			}
			return
		}
		for _, cmd := range [][]string{
			{"nft", "add", "table", "inet", "klblock"},
			{"nft", "add", "chain", "inet", "klblock", "blockfwd", "{ type filter hook forward priority -10 ; }"},
			{"nft", "add", "chain", "inet", "klblock", "blockin", "{ type filter hook prerouting priority -310 ; }"},
			{"nft", "add", "rule", "inet", "klblock", "blockfwd", "ip", "daddr", natB.IPv4, "drop"},
			{"nft", "add", "rule", "inet", "klblock", "blockin", "ip", "saddr", natB.IPv4, "drop"},
		} {
			if _, err := w.lab.Exec(natA.NS, cmd...); err != nil {
				t.Fatalf("blocking natA <-> natB: %v", err)
			}
		}
	}
	block(true)

	start := time.Now()
	pr, err := pingOnce(a, b, "10s")
	if err != nil {
		t.Fatalf("a could not ping b: %v", err)
	}
	if pr.ConnectPath != "relayed" {
		t.Fatalf("first contact %s; want relayed", pr.ConnectPath)
	}
	// Wait until libp2p's three rounds have failed on b's side (b got the
	// relayed connection, so b starts the rounds) and kadlan's next one is
	// planned.
	var pu *api.Punch
	err = netlab.Eventually(60*time.Second, 250*time.Millisecond, func() error {
		p, err := pathTo(b, a)
		if err != nil {
			return err
		}
		if p.Path != "relayed" {
			return fmt.Errorf("b's path to a is %s while blocked: the block leaks", p.Path)
		}
		if p.Punch == nil || p.Punch.Failures < 3 || p.Punch.NextInS == 0 {
			return fmt.Errorf("b's punch state with a: %+v", p.Punch)
		}
		pu = p.Punch
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("relayed after %v: %d rounds, %d failed (%s), next in %.0f s", time.Since(start).Round(time.Millisecond), pu.Attempts, pu.Failures, pu.LastError, pu.NextInS)
	id := createNet(t, a, "--name", "punched", "--ipv4", "10.79.0.0/24")
	if _, err := b.CLI("join", id); err != nil {
		t.Fatal(err)
	}
	waitNet(t, a, id, "ok", 1)
	waitNet(t, b, id, "ok", 1)
	linkPath := func(x, y *labtest.Node) (string, error) {
		m, err := memberStatus(x, id, y.Address)
		if err != nil {
			return "", err
		}
		if !m.Link {
			return "", fmt.Errorf("%s has no link to %s", x.Host.Name, y.Host.Name)
		}
		return m.Path, nil
	}
	if p, err := linkPath(a, b); err != nil || p != "relayed" {
		t.Fatalf("a's member link to b while blocked: %q %v; want relayed", p, err)
	}
	block(false)
	lifted := time.Now()
	if _, err := waitDirect(a, b, 90*time.Second, 250*time.Millisecond); err != nil {
		t.Fatalf("no direct path after the block was lifted: %v", err)
	}
	t.Logf("direct %v after the block was lifted", time.Since(lifted).Round(time.Millisecond))
	if pr, err := pingOnce(a, b, "5s"); err != nil || pr.Path != "direct" {
		t.Fatalf("ping after the punch: %+v %v", pr, err)
	}
	err = netlab.Eventually(30*time.Second, 250*time.Millisecond, func() error {
		for _, pair := range [][2]*labtest.Node{{a, b}, {b, a}} {
			p, err := linkPath(pair[0], pair[1])
			if err != nil {
				return err
			}
			if p != "direct" {
				return fmt.Errorf("%s's member link to %s is %s", pair[0].Host.Name, pair[1].Host.Name, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("the pair is direct, its member link is not: %v", err)
	}
	t.Logf("member link direct %v after the block was lifted", time.Since(lifted).Round(time.Millisecond))
}

// TestAddressRestrictedNAT: behind an address-restricted NAT (endpoint-
// independent mapping, address-dependent filtering) AutoNAT's dial-backs
// get in, since they come from servers the node contacted, so AutoNAT says
// public; nobody else can dial the node. kadlan keeps it private, with its
// relays, until a node it never contacted reaches it: another node behind
// such a NAT reaches it (relayed, then direct by punching). Before, it
// dropped its relays and every first contact failed.
func TestAddressRestrictedNAT(t *testing.T) {
	w := newNATWorld(t)
	natA := w.lab.NATRouter("natA", netlab.AddressRestricted, nil)
	natB := w.lab.NATRouter("natB", netlab.AddressRestricted, nil)
	a := w.behind(t, natA, "a")
	b := w.behind(t, natB, "b")
	var st api.Status
	err := netlab.Eventually(90*time.Second, 500*time.Millisecond, func() error {
		if err := b.JSON(&st, "status"); err != nil {
			return err
		}
		if !strings.HasPrefix(st.AutoNAT, "public") {
			return fmt.Errorf("AutoNAT has not judged b yet (%q)", st.AutoNAT)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		if err := b.JSON(&st, "status"); err != nil {
			t.Fatal(err)
		}
		if st.Reachability != "private" || st.DHTMode != "client" || len(st.RelayAddrs) == 0 {
			t.Fatalf("%s: b is %s (%s), dht %s, %d relay addresses; want private with relays", when, st.Reachability, st.AutoNAT, st.DHTMode, len(st.RelayAddrs))
		}
	}
	check("after AutoNAT's verdict")
	t.Logf("b: reachability %s; autonat: %s", st.Reachability, st.AutoNAT)
	start := time.Now()
	pr, err := pingOnce(a, b, "10s")
	if err != nil {
		t.Fatalf("a cannot reach b behind an address-restricted NAT: %v", err)
	}
	t.Logf("first reply after %v, %s", time.Since(start).Round(time.Millisecond), pr.ConnectPath)
	if _, err := waitDirect(a, b, 20*time.Second, 200*time.Millisecond); err != nil {
		t.Fatalf("no direct path between two address-restricted NATs: %v", err)
	}
	// a's punched connection came from an address b sent to: b stays private.
	check("after the punch")
}
