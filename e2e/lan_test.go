package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/e2e/netlab"
	"github.com/kadlan/kadlan/e2e/netlab/labtest"
)

// lanBound is how long a network may take to come up between nodes that
// already run.
const lanBound = 45 * time.Second

func createNet(t *testing.T, owner *labtest.Node, args ...string) string {
	t.Helper()
	var res api.NetworkCreated
	if err := owner.JSON(&res, append([]string{"net", "create"}, args...)...); err != nil {
		t.Fatal(err)
	}
	return res.Network
}

func network(n *labtest.Node, id string) (api.Network, error) {
	var nets []api.Network
	if err := n.JSON(&nets, "networks"); err != nil {
		return api.Network{}, err
	}
	for _, x := range nets {
		if x.Network == id {
			return x, nil
		}
	}
	return api.Network{}, fmt.Errorf("%s is not on %s", n.Host.Name, id)
}

// waitNet waits until n's status on id is want and it has links >= links.
func waitNet(t *testing.T, n *labtest.Node, id, want string, links int) api.Network {
	t.Helper()
	var x api.Network
	err := netlab.Eventually(lanBound, 250*time.Millisecond, func() error {
		var err error
		if x, err = network(n, id); err != nil {
			return err
		}
		if x.Status != want || x.Links < links || (want == "ok" && len(x.IPv4) == 0) {
			return fmt.Errorf("%s on %s: status %s, %d links, ipv4 %v; want %s with >= %d links", n.Host.Name, id[:12], x.Status, x.Links, x.IPv4, want, links)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func addrOf(cidr string) string {
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return cidr
	}
	return p.Addr().String()
}

// vping pings ip from n's namespace over the virtual LAN.
func vping(n *labtest.Node, ip string) error {
	args := []string{"ping", "-c", "2", "-i", "0.2", "-W", "2", ip}
	if strings.Contains(ip, ":") {
		args = []string{"ping", "-6", "-c", "2", "-i", "0.2", "-W", "2", ip}
	}
	_, err := n.Host.Lab.Exec(n.Host.NS, args...)
	return err
}

// lanWorld: an owner on the public segment and two members behind two
// different NATs on a private network.
type lanWorld struct {
	*natWorld
	id          string
	owner, a, b *labtest.Node
}

func newLAN(t *testing.T) *lanWorld {
	w := newNATWorld(t)
	l := &lanWorld{natWorld: w}
	l.owner = w.pubs[0]
	l.id = createNet(t, l.owner, "--private", "--name", "lab", "--ipv4", "10.99.0.0/24")
	l.a = w.behind(t, w.lab.NATRouter("natA", netlab.EIM, nil), "a")
	l.b = w.behind(t, w.lab.NATRouter("natB", netlab.EIM, nil), "b")
	for _, n := range []*labtest.Node{l.a, l.b} {
		if _, err := n.CLI("join", l.id); err != nil {
			t.Fatal(err)
		}
		// Without a certificate the node is unauthorized, and the owner
		// sees it as pending.
		waitNet(t, n, l.id, "unauthorized", 0)
	}
	err := netlab.Eventually(lanBound, 250*time.Millisecond, func() error {
		var ms []api.Member
		if err := l.owner.JSON(&ms, "members", l.id); err != nil {
			return err
		}
		pending := 0
		for _, m := range ms {
			if (m.Address == l.a.Address || m.Address == l.b.Address) && m.Status == "pending" {
				pending++
			}
		}
		if pending != 2 {
			return fmt.Errorf("owner sees %d of 2 joiners as pending: %+v", pending, ms)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []*labtest.Node{l.a, l.b} {
		if _, err := l.owner.CLI("net", "authorize", l.id, n.Address); err != nil {
			t.Fatal(err)
		}
	}
	return l
}

// TestPrivateLAN: three nodes, two behind different NATs, on a private
// network after authorization: every pair pings over the virtual IPv4 and
// IPv6 addresses, and iperf3 runs between the two NATed members.
func TestPrivateLAN(t *testing.T) {
	l := newLAN(t)
	nodes := []*labtest.Node{l.owner, l.a, l.b}
	info := map[*labtest.Node]api.Network{}
	for _, n := range nodes {
		info[n] = waitNet(t, n, l.id, "ok", 2)
	}
	for _, x := range nodes {
		for _, y := range nodes {
			if x == y {
				continue
			}
			for _, ip := range []string{addrOf(info[y].IPv4[0]), addrOf(info[y].IPv6[0])} {
				if err := netlab.Eventually(10*time.Second, 200*time.Millisecond, func() error { return vping(x, ip) }); err != nil {
					t.Errorf("%s cannot ping %s's %s over the LAN: %v", x.Host.Name, y.Host.Name, ip, err)
				}
			}
		}
	}
	if t.Failed() {
		return
	}
	mbps := iperf(t, l.a, l.b, addrOf(info[l.b].IPv4[0]), 5)
	t.Logf("iperf3 a -> b over the virtual LAN: %.0f Mbit/s", mbps)
	if mbps <= 0 {
		for _, n := range []*labtest.Node{l.a, l.b} {
			x, _ := network(n, l.id)
			t.Logf("%s counters: %s\nengine: %s\nlinks: %d", n.Host.Name, x.Counters, x.Engine, x.Links)
		}
		t.Fatalf("iperf3 moved no data")
	}
}

// iperf runs an iperf3 TCP test from client to server's ip for secs
// seconds and returns the receiver's Mbit/s.
func iperf(t *testing.T, client, server *labtest.Node, ip string, secs int) float64 {
	t.Helper()
	if _, err := exec.LookPath("iperf3"); err != nil {
		t.Skip("iperf3 not installed (apt-get install iperf3)")
	}
	srv := server.Host.Start(filepath.Join(t.TempDir(), "iperf3-server.log"), "iperf3", "-s", "-1", "-B", ip)
	defer srv.Kill()
	var out string
	var res struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	// Until the server listens: iperf3 3.12 with -J exits 0 even when it
	// cannot connect ("error" in its JSON), so the JSON decides.
	err := netlab.Eventually(10*time.Second, 200*time.Millisecond, func() error {
		var err error
		out, err = client.Host.Lab.Exec(client.Host.NS, "iperf3", "-c", ip, "-t", fmt.Sprint(secs), "-J")
		if err != nil {
			return err
		}
		res.Error = ""
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			return fmt.Errorf("iperf3 output: %v", err)
		}
		if res.Error != "" {
			return fmt.Errorf("iperf3: %s", res.Error)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("iperf3: %v", err)
	}
	if res.End.SumReceived.BitsPerSecond == 0 {
		if len(out) > 3000 {
			out = out[len(out)-3000:]
		}
		t.Logf("iperf3 moved nothing; its output ends: %s", out)
	}
	return res.End.SumReceived.BitsPerSecond / 1e6
}

var (
	udpcastOnce sync.Once
	udpcastBin  string
)

func udpcast(t *testing.T) string {
	t.Helper()
	udpcastOnce.Do(func() {
		udpcastBin = filepath.Join(t.TempDir(), "udpcast")
		if out, err := exec.Command("go", "build", "-o", udpcastBin, "github.com/kadlan/kadlan/e2e/internal/udpcast").CombinedOutput(); err != nil {
			t.Fatalf("building udpcast: %v: %s", err, out)
		}
	})
	return udpcastBin
}

// TestBroadcastReachesContacts: a UDP broadcast (to 255.255.255.255 and to
// the subnet broadcast address) sent on one member arrives at the members
// it talks to.
func TestBroadcastReachesContacts(t *testing.T) {
	l := newLAN(t)
	nodes := []*labtest.Node{l.owner, l.a, l.b}
	info := map[*labtest.Node]api.Network{}
	for _, n := range nodes {
		info[n] = waitNet(t, n, l.id, "ok", 2)
	}
	// a talks to both others (unicast makes them its social neighbours).
	for _, y := range []*labtest.Node{l.owner, l.b} {
		if err := netlab.Eventually(10*time.Second, 200*time.Millisecond, func() error { return vping(l.a, addrOf(info[y].IPv4[0])) }); err != nil {
			t.Fatal(err)
		}
	}
	bcast := "10.99.0.255"
	for i, dst := range []string{"255.255.255.255", bcast} {
		// Bound to a's LAN address, as a game or discovery protocol on
		// that interface would be: the limited broadcast then leaves
		// through the kadlan interface, not the default route.
		got := broadcastTo(t, l.a, addrOf(info[l.a].IPv4[0]), []*labtest.Node{l.owner, l.b}, dst, fmt.Sprint(9000+i))
		for _, y := range []*labtest.Node{l.owner, l.b} {
			if !strings.Contains(got[y.Host.Name], "hello-"+dst) {
				t.Errorf("broadcast to %s from a did not reach %s (got %q)", dst, y.Host.Name, got[y.Host.Name])
			}
		}
	}
}

// TestUnauthorizedAndRevoked: a node without a certificate stays
// unauthorized and reaches nobody; a revoked member is cut off within the
// bound.
func TestUnauthorizedAndRevoked(t *testing.T) {
	l := newLAN(t)
	info := map[*labtest.Node]api.Network{}
	for _, n := range []*labtest.Node{l.owner, l.a, l.b} {
		info[n] = waitNet(t, n, l.id, "ok", 2)
	}
	c := l.behind(t, l.lab.NATRouter("natC", netlab.EIM, nil), "c")
	if _, err := c.CLI("join", l.id); err != nil {
		t.Fatal(err)
	}
	cx := waitNet(t, c, l.id, "unauthorized", 0)
	if len(cx.IPv4) != 0 {
		t.Errorf("unauthorized node got an IPv4 address: %v", cx.IPv4)
	}
	// c's frames reach nobody: pings fail, a's switch sees nothing from it.
	for _, y := range []*labtest.Node{l.owner, l.a, l.b} {
		if err := vping(c, addrOf(info[y].IPv4[0])); err == nil {
			t.Errorf("unauthorized c pinged %s", y.Host.Name)
		}
	}
	after, _ := network(l.a, l.id)
	for _, m := range after.Members {
		if m.Address == c.Address && m.Link {
			t.Errorf("a has a link to the unauthorized node")
		}
	}

	// Revocation: b is cut off.
	if err := vping(l.a, addrOf(info[l.b].IPv4[0])); err != nil {
		t.Fatalf("a cannot ping b before the revocation: %v", err)
	}
	if _, err := l.owner.CLI("net", "revoke", l.id, l.b.Address); err != nil {
		t.Fatal(err)
	}
	revoked := time.Now()
	err := netlab.Eventually(20*time.Second, 500*time.Millisecond, func() error {
		if err := vping(l.a, addrOf(info[l.b].IPv4[0])); err == nil {
			return fmt.Errorf("a still reaches b")
		}
		return nil
	})
	if err != nil {
		t.Fatalf("revoked member still reachable after 20 s: %v", err)
	}
	t.Logf("revoked member cut off within %v", time.Since(revoked).Round(100*time.Millisecond))
	// The revoked member learns it too (pushed along links or from the DHT).
	err = netlab.Eventually(20*time.Second, 500*time.Millisecond, func() error {
		bx, err := network(l.b, l.id)
		if err != nil {
			return err
		}
		if bx.Status != "revoked" {
			return fmt.Errorf("revoked member's own status is %q, want revoked", bx.Status)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	// a and the owner still talk.
	if err := vping(l.a, addrOf(info[l.owner].IPv4[0])); err != nil {
		t.Errorf("a lost the owner after revoking b: %v", err)
	}
}

// TestLANRestart: a member restarted comes back on the same network with
// the same addresses.
func TestLANRestart(t *testing.T) {
	l := newLAN(t)
	before := waitNet(t, l.a, l.id, "ok", 1)
	ownerInfo := waitNet(t, l.owner, l.id, "ok", 1)
	l.a.Stop()
	l.a.Start(t)
	after := waitNet(t, l.a, l.id, "ok", 1)
	if after.MAC != before.MAC || strings.Join(after.IPv4, ",") != strings.Join(before.IPv4, ",") || strings.Join(after.IPv6, ",") != strings.Join(before.IPv6, ",") {
		t.Fatalf("addresses changed across restart: %+v -> %+v", before, after)
	}
	if err := netlab.Eventually(15*time.Second, 300*time.Millisecond, func() error { return vping(l.a, addrOf(ownerInfo.IPv4[0])) }); err != nil {
		t.Fatalf("restarted member cannot ping the owner: %v", err)
	}
}

// TestTUNEmulation: a member whose interface is a TUN with kadlan's
// Ethernet emulation (--device tun: the fallback where no TAP can be made)
// and a member on a TAP share a public network: they ping each other over
// IPv4 and IPv6 (ARP and NDP answered by the emulation), both ways.
func TestTUNEmulation(t *testing.T) {
	lab := labtest.New(t)
	boot := lab.PublicHost("boot").StartNode(t)
	tapNode := lab.PublicHost("tap").StartNode(t, "--bootstrap", boot.BootstrapAddr())
	tunNode := lab.PublicHost("tun").StartNode(t, "--bootstrap", boot.BootstrapAddr(), "--device", "tun")
	id := createNet(t, tapNode, "--name", "tun", "--ipv4", "10.98.0.0/24")
	if _, err := tunNode.CLI("join", id); err != nil {
		t.Fatal(err)
	}
	info := map[*labtest.Node]api.Network{tapNode: waitNet(t, tapNode, id, "ok", 1), tunNode: waitNet(t, tunNode, id, "ok", 1)}
	for x, y := range map[*labtest.Node]*labtest.Node{tapNode: tunNode, tunNode: tapNode} {
		for _, ip := range []string{addrOf(info[y].IPv4[0]), addrOf(info[y].IPv6[0])} {
			if err := netlab.Eventually(10*time.Second, 200*time.Millisecond, func() error { return vping(x, ip) }); err != nil {
				t.Errorf("%s cannot ping %s's %s: %v", x.Host.Name, y.Host.Name, ip, err)
			}
		}
	}
	// The TUN side really is a TUN: the kernel says so.
	out, err := lab.Exec(tunNode.Host.NS, "ip", "-d", "link", "show", info[tunNode].Interface)
	if err != nil || !strings.Contains(out, "tun type tun") {
		t.Fatalf("%s is not a TUN: %v\n%s", info[tunNode].Interface, err, out)
	}
}
