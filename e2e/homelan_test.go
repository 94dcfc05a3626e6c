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

// joinAndPing joins every node to id and returns, per node, how long it
// took from `kadlan join` until the network was ok there and the node
// pinged target's virtual address (target is on the network already).
func joinAndPing(t *testing.T, nodes []*labtest.Node, id string, target *labtest.Node) []time.Duration {
	t.Helper()
	tx := waitNet(t, target, id, "ok", 0)
	ip := addrOf(tx.IPv4[0])
	start := make([]time.Time, len(nodes))
	for i, n := range nodes {
		start[i] = time.Now()
		if _, err := n.CLI("join", id); err != nil {
			t.Fatal(err)
		}
	}
	took := make([]time.Duration, len(nodes))
	for i, n := range nodes {
		waitNet(t, n, id, "ok", 1)
		if err := netlab.Eventually(lanBound, 100*time.Millisecond, func() error { return vpingOnce(n, ip) }); err != nil {
			t.Fatalf("%s cannot ping %s (%s) over the virtual LAN: %v", n.Host.Name, target.Host.Name, ip, err)
		}
		took[i] = time.Since(start[i])
	}
	return took
}

// vpingOnce sends one ping and waits up to a second for the reply.
func vpingOnce(n *labtest.Node, ip string) error {
	_, err := n.Host.Lab.Exec(n.Host.NS, "ping", "-c", "1", "-W", "1", ip)
	return err
}

// TestHomeLANNoPublicNode: the home LAN. Five hosts on one private
// segment (192.168.x behind a home router whose Internet side holds no
// kadlan node), default flags but one --bootstrap naming the first host.
// No node is publicly reachable, so the Internet's DHT stays empty; the
// LAN DHT holds the network's records, every member is found, and every
// node pings another over the TAP. Then a sixth host that knows nothing
// but the first is found the same way.
func TestHomeLANNoPublicNode(t *testing.T) {
	lab := labtest.New(t)
	home := lab.NATRouter("home", netlab.EIM, nil)
	a := home.PrivateHost("a").StartNode(t)
	var nodes []*labtest.Node
	nodes = append(nodes, a)
	for i := 1; i < 5; i++ {
		nodes = append(nodes, home.PrivateHost(fmt.Sprintf("h%d", i)).StartNode(t, "--bootstrap", a.BootstrapAddr()))
	}
	for _, n := range nodes[1:] {
		err := netlab.Eventually(lanBound, 200*time.Millisecond, func() error {
			var st api.Status
			if err := n.JSON(&st, "status"); err != nil {
				return err
			}
			if st.RoutingLAN == 0 {
				return fmt.Errorf("%s: LAN routing table empty (WAN %d, reachability %s, dht %s)", n.Host.Name, st.RoutingTable, st.Reachability, st.DHTMode)
			}
			return nil
		})
		if err != nil {
			out, _ := n.CLI("status")
			out2, _ := n.CLI("peers")
			out3, _ := a.CLI("status")
			t.Fatalf("%v\n%s\n%s\n%s", err, out, out2, out3)
		}
	}
	id := createNet(t, a, "--name", "home", "--ipv4", "10.77.0.0/24")
	// Two first, as in the issue, then the other three.
	took := joinAndPing(t, nodes[1:2], id, a)
	took = append(took, joinAndPing(t, nodes[2:], id, nodes[1])...)
	for i, d := range took {
		t.Logf("%s: join to first ping over the TAP: %v", nodes[i+1].Host.Name, d.Round(time.Millisecond))
	}
	// Every pair's link runs on the LAN, and nothing is relayed.
	for _, n := range nodes {
		var st api.Status
		if err := n.JSON(&st, "status"); err != nil {
			t.Fatal(err)
		}
		if st.Reachability == "public" || st.RoutingTable != 0 {
			t.Errorf("%s: reachability %s, WAN routing table %d: the lab meant no public node", n.Host.Name, st.Reachability, st.RoutingTable)
		}
	}
	for _, n := range nodes[1:] {
		m, err := memberStatus(n, id, a.Address)
		if err != nil {
			t.Fatal(err)
		}
		if m.Link && (m.Path != "direct" || m.Scope != "lan") {
			t.Errorf("%s's link to a: path %s %s %s, want direct on the LAN", n.Host.Name, m.Path, m.Transport, m.Scope)
		}
	}
}

// TestLANBesideInternet: a private segment behind one NAT router whose
// Internet side has public nodes. The two LAN members link directly on
// their LAN addresses (not through a relay or the router's public
// address), and reach a member behind another NAT through the public
// nodes.
func TestLANBesideInternet(t *testing.T) {
	w := newNATWorld(t)
	office := w.lab.NATRouter("office", netlab.EIM, nil)
	l1 := w.behind(t, office, "l1")
	l2 := w.behind(t, office, "l2")
	x := w.behind(t, w.lab.NATRouter("natX", netlab.EIM, nil), "x")
	start := time.Now()
	id := createNet(t, w.pubs[0], "--name", "mixed", "--ipv4", "10.78.0.0/24")
	nodes := []*labtest.Node{l1, l2, x}
	for _, n := range nodes {
		if _, err := n.CLI("join", id); err != nil {
			t.Fatal(err)
		}
	}
	info := map[*labtest.Node]api.Network{}
	for _, n := range nodes {
		info[n] = waitNet(t, n, id, "ok", 1)
	}
	for _, pair := range [][2]*labtest.Node{{l1, l2}, {l2, l1}, {l1, x}, {x, l2}} {
		ip := addrOf(info[pair[1]].IPv4[0])
		if err := netlab.Eventually(lanBound, 200*time.Millisecond, func() error { return vping(pair[0], ip) }); err != nil {
			t.Errorf("%s cannot ping %s over the virtual LAN: %v", pair[0].Host.Name, pair[1].Host.Name, err)
		}
	}
	t.Logf("network ok and pinging everywhere %v after its creation", time.Since(start).Round(time.Millisecond))
	lanPrefix := strings.TrimSuffix(l2.Host.IPv4, l2.Host.IPv4[strings.LastIndex(l2.Host.IPv4, ".")+1:])
	err := netlab.Eventually(lanBound, 250*time.Millisecond, func() error {
		m, err := memberStatus(l1, id, l2.Address)
		if err != nil {
			return err
		}
		if !m.Link || m.Path != "direct" || m.Scope != "lan" {
			return fmt.Errorf("l1's link to l2: link %v, path %s via %s, transport %s, scope %s; want a direct link on the LAN", m.Link, m.Path, m.Via, m.Transport, m.Scope)
		}
		p, err := pathTo(l1, l2)
		if err != nil {
			return err
		}
		for _, a := range p.Addrs {
			if strings.Contains(a, "/ip4/"+lanPrefix) && !strings.Contains(a, "p2p-circuit") {
				return nil
			}
		}
		return fmt.Errorf("l1 reaches l2 over %v, none on the LAN %s0/24", p.Addrs, lanPrefix)
	})
	if err != nil {
		t.Error(err)
	}
	t.Logf("l1 and l2 linked on the LAN %v after the network's creation", time.Since(start).Round(time.Millisecond))
}

// TestHomeLANMDNS: the same home LAN with no flag at all but mDNS (the
// real daemon's default; the lab turns it off unless asked): three nodes
// find each other, form the LAN DHT and a network on it.
func TestHomeLANMDNS(t *testing.T) {
	lab := labtest.New(t)
	home := lab.NATRouter("home", netlab.EIM, nil)
	var nodes []*labtest.Node
	for i := 0; i < 3; i++ {
		nodes = append(nodes, home.PrivateHost(fmt.Sprintf("m%d", i)).StartNode(t, "--mdns"))
	}
	for _, n := range nodes {
		err := netlab.Eventually(lanBound, 200*time.Millisecond, func() error {
			var st api.Status
			if err := n.JSON(&st, "status"); err != nil {
				return err
			}
			if st.RoutingLAN < 2 {
				return fmt.Errorf("%s: LAN routing table %d, want the 2 others (found by mDNS)", n.Host.Name, st.RoutingLAN)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	id := createNet(t, nodes[0], "--name", "mdns", "--ipv4", "10.79.0.0/24")
	took := joinAndPing(t, nodes[1:], id, nodes[0])
	for i, d := range took {
		t.Logf("%s: join to first ping over the TAP: %v", nodes[i+1].Host.Name, d.Round(time.Millisecond))
	}
}
