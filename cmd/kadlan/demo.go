package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
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
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "nodes", Value: 6, Usage: "public nodes besides the bootstrap node"},
			&cli.DurationFlag{Name: "rtt", Usage: "round-trip time between any two hosts on the lab's Internet, through netlab's userspace switch (e.g. 80ms; 0: a kernel bridge, sub-millisecond)"},
		},
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
			return demo(c.App.Writer, self, c.Int("nodes"), c.Duration("rtt"))
		},
	}
}

// demo builds a lab, runs the demo in it and deletes the lab, also when
// it fails or is interrupted (SIGINT, SIGTERM).
// With rtt > 0 the lab's Internet is netlab's userspace switch with a
// quarter of rtt on each host's link (a frame crosses two links each way).
func demo(w io.Writer, bin string, n int, rtt time.Duration) error {
	if n < 2 {
		return userErrorf("demo: --nodes must be at least 2")
	}
	if rtt < 0 {
		return userErrorf("demo: --rtt must not be negative")
	}
	if err := netlab.Check(); err != nil {
		return userErrorf("demo: %v", err)
	}
	// Catch the signals before the first namespace exists.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	opts := netlab.Options{Bin: bin}
	if rtt > 0 {
		opts.Link = &netlab.LinkShape{Delay: rtt / 4}
		fmt.Fprintf(w, "== the lab's Internet: a userspace switch, %v RTT between any two hosts\n", rtt)
	}
	lab, err := netlab.New(opts)
	if err != nil {
		return userErrorf("demo: %v", err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case s := <-sigs:
			// A second signal ends the process at once; the next lab
			// sweeps what is left.
			signal.Stop(sigs)
			fmt.Fprintf(w, "\n== %v: stopping the daemons and deleting the namespaces %s*\n", s, lab.Prefix)
			cancel(errInterrupted{s})
			lab.Close() // the demo's next step fails at once
		case <-ctx.Done():
		}
	}()
	err = runDemo(ctx, lab, w, n)
	var intr errInterrupted
	if cause := context.Cause(ctx); errors.As(cause, &intr) {
		err = cause
	} else if err != nil {
		for _, nd := range lab.Nodes() {
			fmt.Fprintf(w, "--- last log lines of %s (%s):\n%s\n", nd.Host.Name, nd.Address, nd.LogTail(25))
		}
	}
	cancel(nil)
	<-stopped
	if cerr := lab.Close(); cerr != nil {
		fmt.Fprintf(w, "demo: cleaning up: %v\n", cerr)
		if err == nil {
			err = cerr
		}
	}
	if err != nil {
		return userErrorf("demo: %v", err)
	}
	return nil
}

type errInterrupted struct{ sig os.Signal }

func (e errInterrupted) Error() string {
	return fmt.Sprintf("interrupted (%v); namespaces deleted", e.sig)
}

// wait retries f every interval until it returns nil, timeout passes or
// ctx ends, and returns the last error.
func wait(ctx context.Context, timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(interval):
		}
	}
}

func runDemo(ctx context.Context, lab *netlab.Lab, w io.Writer, n int) error {
	step := func(format string, args ...any) { fmt.Fprintf(w, "\n== "+format+"\n", args...) }
	node := func(host string, args ...string) (*netlab.Node, error) {
		h, err := lab.PublicHost(host)
		if err != nil {
			return nil, err
		}
		return h.StartNode(args...)
	}
	step("A public Internet segment (namespaces %s*), one bootstrap node and %d nodes", lab.Prefix, n)
	boot, err := node("boot")
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "boot   %-15s %s\n", boot.Host.IPv4, boot.Address)
	var nodes []*netlab.Node
	for i := 0; i < n; i++ {
		nd, err := node(fmt.Sprintf("node%d", i), "--bootstrap", boot.BootstrapAddr())
		if err != nil {
			return err
		}
		nodes = append(nodes, nd)
		fmt.Fprintf(w, "node%d  %-15s %s   (kadlan daemon --bootstrap %s)\n", i, nd.Host.IPv4, nd.Address, short(boot.BootstrapAddr()))
	}
	step("Kademlia routing tables fill as the nodes look themselves up")
	for i, nd := range append([]*netlab.Node{boot}, nodes...) {
		var st api.Status
		if wait(ctx, 20*time.Second, 200*time.Millisecond, func() error {
			if err := nd.JSON(&st, "status"); err != nil {
				return err
			}
			if st.RoutingTable < n/2 {
				return fmt.Errorf("routing table %d", st.RoutingTable)
			}
			return nil
		}); ctx.Err() != nil { // a slow table is shown as it is
			return context.Cause(ctx)
		}
		name := "boot "
		if i > 0 {
			name = fmt.Sprintf("node%d", i-1)
		}
		fmt.Fprintf(w, "%s  %s, dht %s, %d peers in routing table\n", name, st.Reachability, st.DHTMode, st.RoutingTable)
	}
	step("The bootstrap node is killed (SIGKILL): nothing depends on it")
	boot.Kill()
	late, err := node("late", "--bootstrap", nodes[len(nodes)/2].BootstrapAddr())
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "late   %-15s %s   (bootstraps from node%d, an ordinary member)\n", late.Host.IPv4, late.Address, len(nodes)/2)
	step("The newcomer finds every node by address through the DHT")
	for i, nd := range nodes {
		var res api.FindResult
		err := wait(ctx, 15*time.Second, 250*time.Millisecond, func() error { return late.JSON(&res, "find", nd.Address) })
		if err != nil {
			return fmt.Errorf("late could not find node%d: %w", i, err)
		}
		fmt.Fprintf(w, "find node%d: %6.1f ms  %s\n", i, res.ElapsedMs, res.Addrs[0])
	}
	step("And pings one of them")
	var pr api.PingResult
	if err := late.JSON(&pr, "ping", "-c", "3", "-i", "200ms", nodes[0].Address); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	fmt.Fprintf(w, "ping node0: rtt %v ms, path %s\n", pr.RTTms, pr.Path)

	step("Two home routers (nftables masquerade) with a node behind each")
	var homes []*netlab.Node
	for _, name := range []string{"alice", "bob"} {
		r, err := lab.NATRouter(name+"-router", netlab.EIM, nil)
		if err != nil {
			return err
		}
		h, err := r.PrivateHost(name)
		if err != nil {
			return err
		}
		nd, err := h.StartNode("--bootstrap", nodes[1].BootstrapAddr())
		if err != nil {
			return err
		}
		homes = append(homes, nd)
		var st api.Status
		if wait(ctx, 30*time.Second, 250*time.Millisecond, func() error {
			if err := nd.JSON(&st, "status"); err != nil {
				return err
			}
			if len(st.RelayAddrs) == 0 {
				return fmt.Errorf("no relay yet")
			}
			return nil
		}); ctx.Err() != nil { // a slow table is shown as it is
			return context.Cause(ctx)
		}
		fmt.Fprintf(w, "%-6s %-15s behind %s (%s): %s, relay slots on public DHT neighbours: %d addresses\n",
			name, h.IPv4, r.Name, r.IPv4, nd.Address, len(st.RelayAddrs))
	}
	alice, bob := homes[0], homes[1]

	step("node0 creates a private network; alice and bob join, node0 authorizes them")
	var created api.NetworkCreated
	if err := nodes[0].JSON(&created, "net", "create", "--private", "--name", "demo-lan", "--ipv4", "10.42.0.0/24"); err != nil {
		return fmt.Errorf("net create: %w", err)
	}
	id := created.Network
	fmt.Fprintf(w, "network %s (owner node0)\n", id)
	for _, nd := range homes {
		if _, err := nd.CLI("join", id); err != nil {
			return fmt.Errorf("join: %w", err)
		}
		if _, err := netStatus(ctx, nd, id, "unauthorized"); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "before authorization: alice and bob are 'unauthorized'\n")
	for _, nd := range homes {
		if _, err := nodes[0].CLI("net", "authorize", id, nd.Address); err != nil {
			return fmt.Errorf("authorize: %w", err)
		}
	}
	lan := map[*netlab.Node]api.Network{}
	for _, nd := range append([]*netlab.Node{nodes[0]}, homes...) {
		if lan[nd], err = netStatus(ctx, nd, id, "ok"); err != nil {
			return err
		}
	}
	for _, nd := range homes {
		x := lan[nd]
		fmt.Fprintf(w, "%s: %s ok, interface %s, MAC %s, %s, %s\n", map[*netlab.Node]string{alice: "alice", bob: "bob"}[nd], id[:12], x.Interface, x.MAC, x.IPv4[0], x.IPv6[0])
	}

	step("alice pings bob over the virtual LAN (the kernel's ping, through TAP devices)")
	bobIP := strings.Split(lan[bob].IPv4[0], "/")[0]
	var out string
	err = wait(ctx, 15*time.Second, 300*time.Millisecond, func() error {
		var err error
		out, err = lab.Exec(alice.Host.NS, "ping", "-c", "3", "-i", "0.3", "-W", "2", bobIP)
		return err
	})
	if err != nil {
		return fmt.Errorf("LAN ping: %w", err)
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
		out, err := lab.Exec(bob.Host.NS, bob.Bin, "demo", "udp", "recv", "9999", "8s")
		if err != nil {
			out = "nothing: " + err.Error()
		}
		heard <- strings.TrimSpace(out)
	}()
	time.Sleep(300 * time.Millisecond)
	for i := 0; i < 3; i++ {
		lab.Exec(alice.Host.NS, alice.Bin, "demo", "udp", "send", "255.255.255.255:9999", "hello from alice's LAN game", aliceIP)
		time.Sleep(200 * time.Millisecond)
	}
	fmt.Fprintf(w, "bob heard: %s\n", <-heard)
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	step("Done: no root server, relay list or controller took part. Cleaning up the namespaces.")
	return nil
}

// netStatus waits until n's status on network id is want.
func netStatus(ctx context.Context, n *netlab.Node, id, want string) (api.Network, error) {
	var got api.Network
	err := wait(ctx, 45*time.Second, 250*time.Millisecond, func() error {
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
		return got, fmt.Errorf("%s on %s: %w (want %s)", n.Host.Name, id, err, want)
	}
	return got, nil
}
