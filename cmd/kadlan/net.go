package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kadlan/kadlan/api"
	"github.com/urfave/cli/v2"
)

func init() {
	extraCommands = append(extraCommands, netCommand(), joinCommand(), leaveCommand(), networksCommand(), membersCommand())
}

const netHelp = `A network is a virtual Ethernet segment. Its ID is derived from its owner's
key, so only the owner can sign for it; no controller has to be online.
Public networks admit anyone; on a private one a member needs a certificate
signed by the owner, which every member verifies itself. Members find each
other through the DHT; each gets a TAP interface with a MAC and an IPv6
address derived from the network ID and its address, and an IPv4 address
from its certificate or derived within the network's pool.`

func netCommand() *cli.Command {
	return &cli.Command{
		Name:        "net",
		Usage:       "create networks and manage their members (owner)",
		Description: netHelp,
		Subcommands: []*cli.Command{
			{
				Name:  "create",
				Usage: "create a network owned by this node and join it",
				Flags: []cli.Flag{jsonFlag,
					&cli.StringFlag{Name: "name", Usage: "a human-readable `NAME`"},
					&cli.BoolFlag{Name: "private", Usage: "members need a certificate (kadlan net authorize)"},
					&cli.StringFlag{Name: "ipv4", Usage: "IPv4 pool `CIDR` (default 10.77.0.0/16)"},
				},
				Action: func(c *cli.Context) error {
					if _, err := argsN(c, 0, "[--name N] [--private] [--ipv4 CIDR]"); err != nil {
						return err
					}
					var res api.NetworkCreated
					req := api.NetworkCreateRequest{Name: c.String("name"), Private: c.Bool("private"), IPv4: c.String("ipv4")}
					if err := call(c, http.MethodPost, "/v1/networks/create", req, &res, 30*time.Second); err != nil {
						return err
					}
					if c.Bool("json") {
						return printJSON(c.App.Writer, res)
					}
					kind := "public"
					if res.Private {
						kind = "private"
					}
					fmt.Fprintf(c.App.Writer, "%s\n", res.Network)
					fmt.Fprintf(c.App.ErrWriter, "created %s network %q (IPv4 pool %s); others join with: kadlan join %s\n", kind, res.Name, res.IPv4, res.Network)
					return nil
				},
			},
			{
				Name:      "authorize",
				Usage:     "issue and publish a member certificate",
				ArgsUsage: "NETWORK ADDRESS",
				Flags: []cli.Flag{jsonFlag,
					&cli.StringFlag{Name: "ipv4", Usage: "fixed IPv4 `ADDRESS` for the member (default: derived)"},
					&cli.DurationFlag{Name: "expires", Usage: "certificate lifetime `DURATION` (default: never)"},
					&cli.StringFlag{Name: "name", Usage: "the member's `NAME` (NAME.NETWORK.kadlan), winning over the one it chose (a-z, 0-9, '-')"},
				},
				Action: func(c *cli.Context) error {
					args, err := argsN(c, 2, "NETWORK ADDRESS [--ipv4 IP] [--expires DURATION] [--name NAME]")
					if err != nil {
						return err
					}
					req := api.NetworkRequest{Network: args[0], Address: args[1], IPv4: c.String("ipv4"), ExpiresS: int64(c.Duration("expires").Seconds()), Name: c.String("name")}
					return simpleNetCall(c, "/v1/networks/authorize", req, "authorized")
				},
			},
			inviteCommand(),
			{
				Name:      "revoke",
				Usage:     "publish a signed revocation of a member's certificates",
				ArgsUsage: "NETWORK ADDRESS",
				Flags:     []cli.Flag{jsonFlag},
				Action: func(c *cli.Context) error {
					args, err := argsN(c, 2, "NETWORK ADDRESS")
					if err != nil {
						return err
					}
					return simpleNetCall(c, "/v1/networks/revoke", api.NetworkRequest{Network: args[0], Address: args[1]}, "revoked")
				},
			},
		},
	}
}

func simpleNetCall(c *cli.Context, path string, req api.NetworkRequest, verb string) error {
	var res map[string]string
	if err := call(c, http.MethodPost, path, req, &res, 30*time.Second); err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, res)
	}
	if res["address"] != "" {
		fmt.Fprintf(c.App.Writer, "%s %s on %s\n", verb, res["address"], res["network"])
	} else {
		fmt.Fprintf(c.App.Writer, "%s %s\n", verb, res["network"])
	}
	return nil
}

const joinHelp = `NETWORK is a network ID (kadlan net create prints it) or an invite token
(kadlan1-..., from kadlan net invite). A token also carries the peers to
start from, so it works on a node that knows no peer yet (the daemon
started with no flags at all); they are kept in the peer cache. On a
private network the token's capability admits this node at once, until
the owner's certificate arrives; 'kadlan networks' shows invite: admitted.`

func joinCommand() *cli.Command {
	cmd := networkIDCommand("join", "join a network by its ID or an invite token (zero configuration)", "/v1/networks/join", "joining")
	cmd.ArgsUsage = "NETWORK|TOKEN"
	cmd.Description = joinHelp + "\n\n" + netHelp
	return cmd
}

func leaveCommand() *cli.Command {
	return networkIDCommand("leave", "leave a network (its interface disappears)", "/v1/networks/leave", "left")
}

// networkIDCommand is a command that takes one NETWORK argument and posts
// it to path.
func networkIDCommand(name, usage, path, verb string) *cli.Command {
	return &cli.Command{
		Name:      name,
		Usage:     usage,
		ArgsUsage: "NETWORK",
		Flags:     []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			args, err := argsN(c, 1, "NETWORK")
			if err != nil {
				return err
			}
			return simpleNetCall(c, path, api.NetworkRequest{Network: args[0]}, verb)
		},
	}
}

func networksCommand() *cli.Command {
	return &cli.Command{
		Name:  "networks",
		Usage: "list joined networks: status, interface, addresses, members",
		Flags: []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if _, err := argsN(c, 0, "[--json]"); err != nil {
				return err
			}
			var nets []api.Network
			if err := call(c, http.MethodGet, "/v1/networks", nil, &nets, 10*time.Second); err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, nets)
			}
			if len(nets) == 0 {
				fmt.Fprintln(c.App.Writer, "no networks; create one with 'kadlan net create' or join one with 'kadlan join NETWORK'")
				return nil
			}
			tw := tabwriter.NewWriter(c.App.Writer, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NETWORK\tNAME\tSTATUS\tINTERFACE\tMAC\tIPV4\tIPV6\tMEMBERS\tLINKS\tNEIGHBOURS")
			for _, n := range nets {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\n", n.Network, dash(n.Name), n.Status, dash(n.Interface), dash(n.MAC),
					dash(strings.Join(n.IPv4, ",")), dash(strings.Join(n.IPv6, ",")), n.KnownMembers, n.Links, n.SocialNeighbours)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(nets) > 0 && nets[0].Bounds != nil {
				if b := nets[0].Bounds; b.OnDemand {
					fmt.Fprintf(c.App.Writer, "links on demand: at least %d kept, others close after %s without unicast (%d dialled by others kept); %d social neighbours at most (MEMBERS: members known here, at most %d on a public network)\n",
						b.MinLinks, time.Duration(b.LinkIdle*float64(time.Second)), b.MaxIdleInbound, b.SocialNeighbours, b.KnownMembers)
				} else {
					fmt.Fprintln(c.App.Writer, "links to every member (kadlan daemon --link-idle 0)")
				}
			}
			for _, n := range nets {
				if n.Error != "" {
					fmt.Fprintf(c.App.Writer, "%s: %s\n", n.Network, printable(n.Error))
				}
			}
			for _, n := range nets {
				if n.DNSZone != "" {
					self := "-"
					if n.MemberName != "" {
						self = n.MemberName + "." + n.DNSZone
					}
					fmt.Fprintf(c.App.Writer, "%s: names NAME.%s (this node: %s), DNS server %s\n", n.Network, printable(n.DNSZone), printable(self), dash(n.DNSServer))
				}
			}
			return nil
		},
	}
}

func membersCommand() *cli.Command {
	return &cli.Command{
		Name:      "members",
		Usage:     "list a network's members with status, addresses and path",
		ArgsUsage: "NETWORK",
		Flags:     []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			args, err := argsN(c, 1, "NETWORK")
			if err != nil {
				return err
			}
			var n api.Network
			if err := call(c, http.MethodPost, "/v1/networks/members", api.NetworkRequest{Network: args[0]}, &n, 10*time.Second); err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, n.Members)
			}
			printMembers(c.App.Writer, n.Members)
			return nil
		},
	}
}

func printMembers(w io.Writer, ms []api.Member) {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tNAME\tSTATUS\tIPV4\tIPV6\tLINK\tPATH\tTRANSPORT")
	for _, m := range ms {
		link := "-"
		if m.Link {
			link = "up"
		}
		path := dash(m.Path)
		if m.Via != "" {
			path += " via " + short(m.Via)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Address, dash(m.Name), m.Status, dash(m.IPv4), m.IPv6, link, path, transport(m.Transport, m.Scope))
	}
	tw.Flush()
}

// transport prints a link's transport and scope ("tcp lan"), or "-".
func transport(t, scope string) string {
	if t == "" {
		return "-"
	}
	return dash(strings.TrimSpace(t + " " + scope))
}

// dash prints s, or "-" for nothing, with control characters escaped
// (see printable).
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return printable(s)
}

// printable escapes what a terminal would act on instead of showing it
// (control characters, escape sequences, bidirectional overrides): names
// come from network records that anyone may write.
func printable(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == utf8.RuneError:
			b.WriteString(`\ufffd`)
		case unicode.IsPrint(r):
			b.WriteRune(r)
		case r < 0x100:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}
