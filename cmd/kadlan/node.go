package main

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/daemon"
	"github.com/kadlan/kadlan/dht"
	"github.com/kadlan/kadlan/internal/logs"
	"github.com/kadlan/kadlan/overlay/bounds"
	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/gologshim"
	"github.com/urfave/cli/v2"
)

func idCommand() *cli.Command {
	return &cli.Command{
		Name:  "id",
		Usage: "print this node's address (creating its identity key if missing)",
		Description: "The address is the libp2p peer ID of the Ed25519 key in STATE/identity.key;\n" +
			"it never changes for a state dir. 'key' is SHA-256 of the peer ID: the\n" +
			"node's point in Kademlia's XOR space.",
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if _, err := argsN(c, 0, "[--json]"); err != nil {
				return err
			}
			k, err := dht.LoadOrCreateKey(daemon.KeyPath(c.String("state")))
			if err != nil {
				return userErrorf("%v", err)
			}
			id, err := peer.IDFromPrivateKey(k)
			if err != nil {
				return userErrorf("%v", err)
			}
			key := dht.KademliaKey(id)
			if c.Bool("json") {
				return printJSON(c.App.Writer, map[string]string{"address": id.String(), "key": hex.EncodeToString(key[:])})
			}
			fmt.Fprintln(c.App.Writer, id)
			return nil
		},
	}
}

func daemonCommand() *cli.Command {
	return &cli.Command{
		Name:  "daemon",
		Usage: "run a node: join the DHT and serve the control API",
		Description: "Listens by default on port 4242 for TCP, WebSocket and QUIC (UDP), IPv4\n" +
			"and IPv6: open that one port in a firewall. First peers come from, in\n" +
			"order: the peer cache in STATE (peers seen working), --bootstrap, a\n" +
			"--peers-file, and mDNS on the LAN (on by default). With none known it keeps\n" +
			"running and joins as soon as one appears. kadlan ships no bootstrap list.\n\n" +
			"Logs go to stderr. --metrics serves Prometheus metrics: kadlan_* (DHT,\n" +
			"relay, per network traffic, drops and links) and libp2p's own libp2p_*.\n\n" +
			"--web 127.0.0.1:9443 serves a local page (networks, members to authorize or\n" +
			"revoke, invites, peers, traffic) over the same API as the CLI, behind a token\n" +
			"in STATE/web-token.secret; kadlan web prints its address.",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "listen", Usage: "listen `MULTIADDR` (repeatable; default all interfaces, port 4242, tcp+ws+quic)"},
			&cli.StringSliceFlag{Name: "bootstrap", Aliases: []string{"b"}, Usage: "bootstrap peer `MULTIADDR` ending in /p2p/ADDRESS (repeatable)"},
			&cli.StringFlag{Name: "peers-file", Usage: "`FILE` of bootstrap multiaddrs, one per line, # comments (re-read while waiting)"},
			&cli.BoolFlag{Name: "mdns", Value: true, Usage: "find and announce kadlan nodes on the local network with mDNS (the machine's LAN interfaces, never kadlan's own); --mdns=false on a LAN you do not trust: it tells the LAN this node's address"},
			&cli.StringFlag{Name: "reachability", Value: "auto", Usage: "auto, public or private: whether others can dial this node"},
			&cli.StringFlag{Name: "dht-mode", Value: "auto", Usage: "auto, server or client (auto: server when publicly reachable)"},
			&cli.StringFlag{Name: "relay", Value: "auto", Usage: "relay for others: auto (while publicly reachable), on or off"},
			&cli.IntFlag{Name: "relay-reservations", Value: dht.DefaultRelayLimits.Reservations, Usage: "relay slots held for other nodes"},
			&cli.IntFlag{Name: "relay-circuits", Value: dht.DefaultRelayLimits.CircuitsPerPeer, Usage: "relayed connections per peer that is a member of a network of this node"},
			&cli.IntFlag{Name: "relay-circuits-stranger", Value: dht.DefaultRelayLimits.CircuitsPerStranger, Usage: "relayed connections per peer that is not (as their source)"},
			&cli.DurationFlag{Name: "relay-circuit-duration", Value: dht.DefaultRelayLimits.CircuitDuration, Usage: "reset a relayed connection after `DURATION` (the link reconnects)"},
			&cli.Int64Flag{Name: "relay-circuit-mib", Value: dht.DefaultRelayLimits.CircuitBytes >> 20, Usage: "reset a relayed connection after this many MiB each way"},
			&cli.DurationFlag{Name: "link-idle", Value: bounds.DefaultLinkIdle, Usage: "links on demand: a node links to a few members and to those it sends to, and closes a link after this long without unicast frames either way (0: link to every member and keep the links)"},
			&cli.IntFlag{Name: "max-members", Value: vswitch.DefaultMaxKnown, Usage: "members of a public network this node holds at most (those heard of least recently are forgotten, never linked members or social neighbours; a forgotten member is looked up again by its address when needed)"},
			&cli.StringFlag{Name: "name", Usage: "this node's member `NAME` on its networks, resolvable as NAME.NETWORK.kadlan (a DNS label: a-z, 0-9, '-'; default: the host name made one; a name in the owner's certificate wins)"},
			&cli.BoolFlag{Name: "dns", Value: true, Usage: "answer DNS for members' names on each network's interface address, port 53 (registered with systemd-resolved when it runs here; see README, Names)"},
			&cli.StringFlag{Name: "dns-suffix", Value: daemon.DefaultDNSSuffix, Usage: "the `SUFFIX` of member names: NAME.NETWORK.SUFFIX (one or more labels, e.g. kadlan.internal)"},
			&cli.StringFlag{Name: "device", Value: daemon.DeviceAuto, Usage: "network interfaces: auto (a TAP, or a TUN with Ethernet emulation where no TAP can be made), tap or tun"},
			&cli.StringFlag{Name: "metrics", Usage: "serve Prometheus metrics at http://`HOST:PORT`/metrics, e.g. 127.0.0.1:9464 (default off; the host must be written out, 0.0.0.0 to expose them: they have no authentication)"},
			&cli.StringFlag{Name: "web", Usage: "serve the page for owners and members at http://`HOST:PORT`/, e.g. 127.0.0.1:9443 (default off; kadlan web prints its address with the token; a loopback address unless --web-insecure-remote)"},
			&cli.BoolFlag{Name: "web-insecure-remote", Usage: "let --web listen on a non-loopback address: the page is plain HTTP, so its token crosses that network in the clear"},
			&cli.StringFlag{Name: "log-level", Value: "info", Usage: "log `LEVEL`: " + logs.Levels},
			&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log `FORMAT`: text (timestamped lines) or json (one object per line: time, level, msg)"},
			&cli.BoolFlag{Name: "allow-loopback", Hidden: true, Usage: "advertise loopback addresses (tests on one host)"},
		},
		Action: func(c *cli.Context) error {
			if pos, err := posArgs(c); err != nil {
				return err
			} else if len(pos) > 0 {
				return userErrorf("daemon takes no arguments (got %q); see kadlan daemon --help", pos[0])
			}
			lg, err := logs.New(c.App.ErrWriter, c.String("log-level"), c.String("log-format"))
			if err != nil {
				return userErrorf("daemon: %v (see kadlan daemon --help)", err)
			}
			if os.Getenv("GOLOG_LOG_LEVEL") == "" {
				// libp2p's own loggers (gologshim) write their errors
				// into the same stream and format, tagged logger=SUBSYSTEM;
				// GOLOG_LOG_LEVEL keeps libp2p's handler and levels.
				gologshim.SetDefaultHandler(logs.Floor(lg.Handler(), slog.LevelError))
			}
			name := c.String("name")
			if !c.IsSet("name") {
				name = daemon.DefaultName()
			}
			if err := daemon.CheckName(name, c.String("dns-suffix")); err != nil {
				return userErrorf("daemon: %v (see kadlan daemon --help)", err)
			}
			err = daemon.Run(c.Context, daemon.Config{
				StateDir:      c.String("state"),
				APIPath:       c.String("api"),
				Listen:        c.StringSlice("listen"),
				Bootstrap:     c.StringSlice("bootstrap"),
				PeersFile:     c.String("peers-file"),
				MDNS:          c.Bool("mdns"),
				Reachability:  c.String("reachability"),
				DHTMode:       c.String("dht-mode"),
				AllowLoopback: c.Bool("allow-loopback"),
				Relay:         c.String("relay"),
				Device:        c.String("device"),
				RelayLimits: dht.RelayLimits{
					Reservations:        c.Int("relay-reservations"),
					ReservationsPerIP:   dht.DefaultRelayLimits.ReservationsPerIP,
					CircuitsPerPeer:     c.Int("relay-circuits"),
					CircuitsPerStranger: c.Int("relay-circuits-stranger"),
					CircuitDuration:     c.Duration("relay-circuit-duration"),
					CircuitBytes:        c.Int64("relay-circuit-mib") << 20,
				},
				Metrics:           c.String("metrics"),
				Web:               c.String("web"),
				WebInsecureRemote: c.Bool("web-insecure-remote"),
				LinkIdle:          c.Duration("link-idle"),
				MaxKnownMembers:   c.Int("max-members"),
				Name:              name,
				DNS:               c.Bool("dns"),
				DNSSuffix:         c.String("dns-suffix"),
				Version:           version,
				Logf:              logs.Logf(lg),
			}, nil)
			if err != nil {
				return userErrorf("daemon: %v", err)
			}
			return nil
		},
	}
}

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:  "status",
		Usage: "show this node: address, addresses, reachability, DHT mode and size",
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if _, err := argsN(c, 0, "[--json]"); err != nil {
				return err
			}
			var st api.Status
			if err := call(c, http.MethodGet, "/v1/status", nil, &st, 10*time.Second); err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, st)
			}
			w := c.App.Writer
			fmt.Fprintf(w, "%-14s %s\n", "address:", st.Address)
			fmt.Fprintf(w, "%-14s %s\n", "key:", st.Key)
			fmt.Fprintf(w, "%-14s %s\n", "version:", st.Version)
			fmt.Fprintf(w, "%-14s %s\n", "bootstrap:", st.Bootstrap)
			fmt.Fprintf(w, "%-14s %s\n", "reachability:", st.Reachability)
			if st.AutoNAT != "" {
				fmt.Fprintf(w, "%-14s %s\n", "autonat:", st.AutoNAT)
			}
			fmt.Fprintf(w, "%-14s %s (%d peers in routing table; LAN DHT %d)\n", "dht:", st.DHTMode, st.RoutingTable, st.RoutingLAN)
			fmt.Fprintf(w, "%-14s %d\n", "connected:", st.Connected)
			if cl := st.ConnLimits; cl != nil {
				fmt.Fprintf(w, "%-14s trim to %d above %d (idle strangers first, member links never); refuse above %d in, %d out\n",
					"conn limits:", cl.LowWater, cl.HighWater, cl.Inbound, cl.Outbound)
			}
			if rs := st.RelayService; rs != nil {
				fmt.Fprintf(w, "%-14s %s: kadlan nodes only, %d slots (%d per IP), %d circuits per peer, %s or %d MiB per circuit; serving %d; refused %d reservations, %d circuits\n",
					"relay:", st.Relay, rs.Reservations, rs.ReservationsPerIP, rs.CircuitsPerPeer,
					time.Duration(rs.CircuitDuration*float64(time.Second)), rs.CircuitBytes>>20, rs.Serving, rs.RefusedReservations, rs.RefusedCircuits)
			}
			fmtAddrs(w, "listening", st.ListenAddrs)
			fmtAddrs(w, "observed", st.ObservedAddrs)
			fmtAddrs(w, "relay addrs", st.RelayAddrs)
			return nil
		},
	}
}

func peersCommand() *cli.Command {
	return &cli.Command{
		Name:  "peers",
		Usage: "list connected peers with their path (direct or relayed) and RTT",
		Flags: []cli.Flag{jsonFlag},
		Subcommands: []*cli.Command{{
			Name:  "export",
			Usage: "print this node's shareable multiaddrs (for someone's peers file)",
			Flags: []cli.Flag{jsonFlag},
			Action: func(c *cli.Context) error {
				if _, err := argsN(c, 0, "[--json]"); err != nil {
					return err
				}
				var res struct {
					Addrs []string `json:"addrs"`
				}
				if err := call(c, http.MethodGet, "/v1/peers/export", nil, &res, 10*time.Second); err != nil {
					return err
				}
				if c.Bool("json") {
					return printJSON(c.App.Writer, res)
				}
				if len(res.Addrs) == 0 {
					return userErrorf("this node has no shareable address yet (no listener, or not reachable)")
				}
				fmt.Fprintf(c.App.Writer, "# kadlan peer, exported %s\n", time.Now().UTC().Format(time.RFC3339))
				for _, a := range res.Addrs {
					fmt.Fprintln(c.App.Writer, a)
				}
				return nil
			},
		}},
		Action: func(c *cli.Context) error {
			if _, err := argsN(c, 0, "[--json] | export"); err != nil {
				return err
			}
			var ps []api.Peer
			if err := call(c, http.MethodGet, "/v1/peers", nil, &ps, 10*time.Second); err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, ps)
			}
			tw := tabwriter.NewWriter(c.App.Writer, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ADDRESS\tPATH\tTRANSPORT\tRTT\tMULTIADDR")
			for _, p := range ps {
				path := p.Path
				if p.Via != "" {
					path += " via " + short(p.Via)
				}
				if pu := p.Punch; pu != nil {
					path += fmt.Sprintf(" (punched %d×, %d failed", pu.Attempts, pu.Failures)
					if pu.NextInS > 0 {
						path += fmt.Sprintf(", again in %.0fs", pu.NextInS)
					}
					path += ")"
				}
				rtt := "-"
				if p.RTTms > 0 {
					rtt = fmt.Sprintf("%.2fms", p.RTTms)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Address, path, transport(p.Transport, p.Scope), rtt, strings.Join(p.Addrs, " "))
			}
			tw.Flush()
			return nil
		},
	}
}

func findCommand() *cli.Command {
	return &cli.Command{
		Name:      "find",
		Usage:     "look a node's addresses up in the DHT",
		ArgsUsage: "ADDRESS (or a unique prefix of a known one)",
		Flags:     []cli.Flag{jsonFlag, &cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "give up after `DURATION`"}},
		Action: func(c *cli.Context) error {
			args, err := argsN(c, 1, "ADDRESS")
			if err != nil {
				return err
			}
			var res api.FindResult
			to := c.Duration("timeout")
			req := api.FindRequest{Address: args[0], TimeoutMs: int(to.Milliseconds())}
			if err := call(c, http.MethodPost, "/v1/find", req, &res, to+5*time.Second); err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, res)
			}
			fmt.Fprintf(c.App.Writer, "%s found in %.1f ms\n", res.Address, res.ElapsedMs)
			for _, a := range res.Addrs {
				fmt.Fprintln(c.App.Writer, "  "+a)
			}
			return nil
		},
	}
}

func pingCommand() *cli.Command {
	return &cli.Command{
		Name:      "ping",
		Usage:     "reach a node by address (DHT lookup if needed) and measure RTTs",
		ArgsUsage: "ADDRESS",
		Flags: []cli.Flag{jsonFlag,
			&cli.IntFlag{Name: "count", Aliases: []string{"c"}, Value: 3, Usage: "number of pings"},
			&cli.DurationFlag{Name: "interval", Aliases: []string{"i"}, Value: time.Second, Usage: "wait `DURATION` between pings"},
			&cli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "give up connecting after `DURATION`"},
		},
		Action: func(c *cli.Context) error {
			args, err := argsN(c, 1, "ADDRESS [-c N]")
			if err != nil {
				return err
			}
			n := c.Int("count")
			if n < 1 || n > 10000 {
				return userErrorf("--count must be between 1 and 10000")
			}
			iv := c.Duration("interval")
			to := c.Duration("timeout")
			req := api.PingRequest{Address: args[0], Count: n, IntervalMs: int(iv.Milliseconds()),
				TimeoutMs: int((to + time.Duration(n)*iv).Milliseconds())}
			var res api.PingResult
			if err := call(c, http.MethodPost, "/v1/ping", req, &res, to+time.Duration(n)*iv+5*time.Second); err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, res)
			}
			w := c.App.Writer
			fmt.Fprintf(w, "PING %s (connected in %.1f ms)\n", res.Address, res.ConnectMs)
			for i, r := range res.RTTms {
				fmt.Fprintf(w, "reply %d: rtt=%.3f ms path=%s\n", i+1, r, res.Paths[i])
			}
			path := res.Path
			if res.Via != "" {
				path += " via " + res.Via
			}
			fmt.Fprintf(w, "%d sent, %d received, path %s\n", res.Sent, res.Received, path)
			return nil
		},
	}
}

func short(s string) string {
	if len(s) > 16 {
		return s[:8] + "…" + s[len(s)-6:]
	}
	return s
}
