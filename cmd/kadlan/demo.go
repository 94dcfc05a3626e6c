package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/e2e/netlab"
	"github.com/kadlan/kadlan/internal/udpcast"
	"github.com/urfave/cli/v2"
)

func init() { extraCommands = append(extraCommands, demoCommand()) }

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:  "demo",
		Usage: "show a root-less network in throw-away network namespaces (needs root)",
		Description: "Builds a small Internet out of Linux network namespaces (192.0.0.128/25, a\n" +
			"reserved range with no route out of this machine), starts real kadlan\n" +
			"daemons in it, kills the bootstrap node, and shows that a newcomer still\n" +
			"joins through any other member and everyone finds everyone. Then two nodes\n" +
			"behind NAT routers join a private network and ping each other over their\n" +
			"TAP interfaces, and one hears the other's broadcast. Everything it creates\n" +
			"is deleted when it ends.",
		Flags: []cli.Flag{&cli.IntFlag{Name: "nodes", Value: 6, Usage: "public nodes besides the bootstrap node"}},
		Subcommands: []*cli.Command{{
			// Run by the demo inside its namespaces to send and receive a
			// UDP broadcast.
			Name:   "udp",
			Hidden: true,
			Action: func(c *cli.Context) error {
				a := c.Args().Slice()
				switch {
				case len(a) == 4 && a[0] == "send":
					return udpcast.Send(a[1], a[2], a[3])
				case len(a) == 3 && a[0] == "recv":
					port, _ := strconv.Atoi(a[1])
					d, _ := time.ParseDuration(a[2])
					msg, err := udpcast.Recv(port, d)
					if err != nil {
						return userErrorf("%v", err)
					}
					fmt.Fprintln(c.App.Writer, msg)
					return nil
				}
				return userErrorf("usage: kadlan demo udp send ADDR:PORT MSG SRCIP | recv PORT TIMEOUT")
			},
		}},
		Action: func(c *cli.Context) error {
			if os.Geteuid() != 0 {
				return userErrorf("demo creates network namespaces: run it as root (sudo kadlan demo)")
			}
			self, err := os.Executable()
			if err != nil {
				return userErrorf("demo: %v", err)
			}
			os.Setenv("KADLAN_BIN", self)
			tb := newDemoTB(c.App.Writer)
			defer tb.cleanup()
			return tb.run(func() { runDemo(tb, c.App.Writer, c.Int("nodes")) })
		},
	}
}

func runDemo(tb *demoTB, w io.Writer, n int) {
	step := func(format string, args ...any) { fmt.Fprintf(w, "\n== "+format+"\n", args...) }
	lab := netlab.New(tb)
	step("A public Internet segment (namespaces %s*), one bootstrap node and %d nodes", lab.Prefix, n)
	boot := lab.PublicHost("boot").StartNode(tb)
	fmt.Fprintf(w, "boot   %-15s %s\n", boot.Host.IPv4, boot.Address)
	var nodes []*netlab.Node
	for i := 0; i < n; i++ {
		nd := lab.PublicHost(fmt.Sprintf("node%d", i)).StartNode(tb, "--bootstrap", boot.BootstrapAddr())
		nodes = append(nodes, nd)
		fmt.Fprintf(w, "node%d  %-15s %s   (kadlan daemon --bootstrap %s)\n", i, nd.Host.IPv4, nd.Address, short(boot.BootstrapAddr()))
	}
	step("Kademlia routing tables fill as the nodes look themselves up")
	for i, nd := range append([]*netlab.Node{boot}, nodes...) {
		var st api.Status
		netlab.Eventually(20*time.Second, 200*time.Millisecond, func() error {
			if err := nd.JSON(&st, "status"); err != nil {
				return err
			}
			if st.RoutingTable < n/2 {
				return fmt.Errorf("routing table %d", st.RoutingTable)
			}
			return nil
		})
		name := "boot "
		if i > 0 {
			name = fmt.Sprintf("node%d", i-1)
		}
		fmt.Fprintf(w, "%s  %s, dht %s, %d peers in routing table\n", name, st.Reachability, st.DHTMode, st.RoutingTable)
	}
	step("The bootstrap node is killed (SIGKILL): nothing depends on it")
	boot.Kill()
	late := lab.PublicHost("late").StartNode(tb, "--bootstrap", nodes[len(nodes)/2].BootstrapAddr())
	fmt.Fprintf(w, "late   %-15s %s   (bootstraps from node%d, an ordinary member)\n", late.Host.IPv4, late.Address, len(nodes)/2)
	step("The newcomer finds every node by address through the DHT")
	for i, nd := range nodes {
		var res api.FindResult
		err := netlab.Eventually(15*time.Second, 250*time.Millisecond, func() error { return late.JSON(&res, "find", nd.Address) })
		if err != nil {
			tb.Fatalf("late could not find node%d: %v", i, err)
		}
		fmt.Fprintf(w, "find node%d: %6.1f ms  %s\n", i, res.ElapsedMs, res.Addrs[0])
	}
	step("And pings one of them")
	var pr api.PingResult
	if err := late.JSON(&pr, "ping", "-c", "3", "-i", "200ms", nodes[0].Address); err != nil {
		tb.Fatalf("ping: %v", err)
	}
	fmt.Fprintf(w, "ping node0: rtt %v ms, path %s\n", pr.RTTms, pr.Path)

	step("Two home routers (nftables masquerade) with a node behind each")
	var homes []*netlab.Node
	for _, name := range []string{"alice", "bob"} {
		r := lab.NATRouter(name+"-router", netlab.EIM, nil)
		h := r.PrivateHost(name)
		nd := h.StartNode(tb, "--bootstrap", nodes[1].BootstrapAddr())
		homes = append(homes, nd)
		var st api.Status
		netlab.Eventually(30*time.Second, 250*time.Millisecond, func() error {
			if err := nd.JSON(&st, "status"); err != nil {
				return err
			}
			if len(st.RelayAddrs) == 0 {
				return fmt.Errorf("no relay yet")
			}
			return nil
		})
		fmt.Fprintf(w, "%-6s %-15s behind %s (%s): %s, relay slots on public DHT neighbours: %d addresses\n",
			name, h.IPv4, r.Name, r.IPv4, nd.Address, len(st.RelayAddrs))
	}
	alice, bob := homes[0], homes[1]

	step("node0 creates a private network; alice and bob join, node0 authorizes them")
	var created api.NetworkCreated
	if err := nodes[0].JSON(&created, "net", "create", "--private", "--name", "demo-lan", "--ipv4", "10.42.0.0/24"); err != nil {
		tb.Fatalf("net create: %v", err)
	}
	id := created.Network
	fmt.Fprintf(w, "network %s (owner node0)\n", id)
	for _, nd := range homes {
		if _, err := nd.CLI("join", id); err != nil {
			tb.Fatalf("join: %v", err)
		}
		netStatus(tb, nd, id, "unauthorized")
	}
	fmt.Fprintf(w, "before authorization: alice and bob are 'unauthorized'\n")
	for _, nd := range homes {
		if _, err := nodes[0].CLI("net", "authorize", id, nd.Address); err != nil {
			tb.Fatalf("authorize: %v", err)
		}
	}
	lan := map[*netlab.Node]api.Network{}
	for _, nd := range append([]*netlab.Node{nodes[0]}, homes...) {
		lan[nd] = netStatus(tb, nd, id, "ok")
	}
	for _, nd := range homes {
		x := lan[nd]
		fmt.Fprintf(w, "%s: %s ok, interface %s, MAC %s, %s, %s\n", map[*netlab.Node]string{alice: "alice", bob: "bob"}[nd], id[:12], x.Interface, x.MAC, x.IPv4[0], x.IPv6[0])
	}

	step("alice pings bob over the virtual LAN (the kernel's ping, through TAP devices)")
	bobIP := strings.Split(lan[bob].IPv4[0], "/")[0]
	var out string
	err := netlab.Eventually(15*time.Second, 300*time.Millisecond, func() error {
		var err error
		out, err = alice.Host.Lab.Exec(alice.Host.NS, "ping", "-c", "3", "-i", "0.3", "-W", "2", bobIP)
		return err
	})
	if err != nil {
		tb.Fatalf("LAN ping: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		fmt.Fprintln(w, "  "+line)
	}
	var ms []api.Member
	alice.JSON(&ms, "members", id)
	for _, m := range ms {
		if m.Address == bob.Address {
			fmt.Fprintf(w, "alice's path to bob: %s %s\n", m.Path, m.Via)
		}
	}
	step("alice broadcasts (UDP to 255.255.255.255:9999, as a LAN game would); bob hears it")
	aliceIP := strings.Split(lan[alice].IPv4[0], "/")[0]
	heard := make(chan string, 1)
	go func() {
		out, err := bob.Host.Lab.Exec(bob.Host.NS, bob.Bin, "demo", "udp", "recv", "9999", "8s")
		if err != nil {
			out = "nothing: " + err.Error()
		}
		heard <- strings.TrimSpace(out)
	}()
	time.Sleep(300 * time.Millisecond)
	for i := 0; i < 3; i++ {
		alice.Host.Lab.Exec(alice.Host.NS, alice.Bin, "demo", "udp", "send", "255.255.255.255:9999", "hello from alice's LAN game", aliceIP)
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Fprintf(w, "bob heard: %s\n", <-heard)
	step("Done: no root server, relay list or controller took part. Cleaning up the namespaces.")
}

// netStatus waits until n's status on network id is want.
func netStatus(tb *demoTB, n *netlab.Node, id, want string) api.Network {
	var got api.Network
	err := netlab.Eventually(45*time.Second, 250*time.Millisecond, func() error {
		var nets []api.Network
		if err := n.JSON(&nets, "networks"); err != nil {
			return err
		}
		for _, x := range nets {
			if x.Network == id {
				got = x
				if x.Status == want && (want != "ok" || len(x.IPv4) > 0 && x.Links > 0) {
					return nil
				}
				return fmt.Errorf("status %s", x.Status)
			}
		}
		return fmt.Errorf("not on the network")
	})
	if err != nil {
		tb.Fatalf("%s on %s: %v (want %s)", n.Host.Name, id, err, want)
	}
	return got
}

// demoTB runs a netlab outside `go test`: Fatal aborts the demo, cleanups
// run in reverse order at the end.
type demoTB struct {
	w        io.Writer
	cleanups []func()
	failed   bool
	dirs     []string
}

type demoAbort struct{ msg string }

func newDemoTB(w io.Writer) *demoTB { return &demoTB{w: w} }

func (d *demoTB) run(f func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			a, ok := r.(demoAbort)
			if !ok {
				panic(r)
			}
			err = userErrorf("demo: %s", a.msg)
		}
	}()
	f()
	return nil
}

func (d *demoTB) cleanup() {
	for i := len(d.cleanups) - 1; i >= 0; i-- {
		d.cleanups[i]()
	}
	for _, dir := range d.dirs {
		os.RemoveAll(dir)
	}
}

func (d *demoTB) Helper()                           {}
func (d *demoTB) Logf(format string, args ...any)   { fmt.Fprintf(d.w, format+"\n", args...) }
func (d *demoTB) Fatal(args ...any)                 { d.failed = true; panic(demoAbort{fmt.Sprint(args...)}) }
func (d *demoTB) Fatalf(format string, args ...any) { d.Fatal(fmt.Sprintf(format, args...)) }
func (d *demoTB) Skip(args ...any)                  { d.Fatal(args...) }
func (d *demoTB) Skipf(format string, args ...any)  { d.Fatalf(format, args...) }
func (d *demoTB) Cleanup(f func())                  { d.cleanups = append(d.cleanups, f) }
func (d *demoTB) Failed() bool                      { return d.failed }
func (d *demoTB) TempDir() string {
	dir, err := os.MkdirTemp("", "kadlan-demo-")
	if err != nil {
		d.Fatal(err)
	}
	d.dirs = append(d.dirs, dir)
	return dir
}
