package main

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/skip2/go-qrcode"
	"github.com/urfave/cli/v2"
)

const inviteHelp = `Prints one string that carries everything a new node needs: the network
ID, up to four peers it can dial first (this node and public nodes it is
connected to), and, for a private network, a capability signed by the
owner (only the owner can invite to a private network). On the new node,
with an empty state directory and no daemon flags at all:

   kadlan join kadlan1-...

Members admit whoever presents the invite, without the owner online, until
it expires (--expires) and while its uses (--uses) are not taken; the
owner's node issues an ordinary certificate when it next sees the new
member. The token is a secret until it is used: anyone holding it can
join. Revoke a member admitted by invite like any other.`

func inviteCommand() *cli.Command {
	return &cli.Command{
		Name:        "invite",
		Usage:       "print an invite token for a network (kadlan join TOKEN)",
		ArgsUsage:   "NETWORK",
		Description: inviteHelp,
		Flags: []cli.Flag{jsonFlag,
			&cli.DurationFlag{Name: "expires", Value: 24 * time.Hour, Usage: "the invite is refused after `DURATION`"},
			&cli.IntFlag{Name: "uses", Value: 1, Usage: fmt.Sprintf("`N` nodes may join with it (1..%d)", netrec.MaxUses)},
			&cli.BoolFlag{Name: "qr", Usage: "also print the token as a QR code for the terminal"},
		},
		Action: func(c *cli.Context) error {
			args, err := argsN(c, 1, "NETWORK [--expires DURATION] [--uses N] [--qr]")
			if err != nil {
				return err
			}
			if c.Duration("expires") <= 0 || c.Int("uses") <= 0 {
				return fmt.Errorf("--expires and --uses must be positive")
			}
			req := api.InviteRequest{Network: args[0], ExpiresS: int64(c.Duration("expires").Seconds()), Uses: c.Int("uses")}
			var res api.Invite
			if err := call(c, http.MethodPost, "/v1/networks/invite", req, &res, 30*time.Second); err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, res)
			}
			fmt.Fprintln(c.App.Writer, res.Token)
			if c.Bool("qr") {
				if err := printQR(c.App.Writer, res.Token); err != nil {
					return err
				}
			}
			what := "public network"
			if res.Private {
				what = fmt.Sprintf("private network, %d use(s), until %s", res.Uses, res.Expires)
			}
			fmt.Fprintf(c.App.ErrWriter, "invite to %s (%s) with %d peer(s); on the new node: kadlan join TOKEN\n", res.Network, what, len(res.Addrs))
			if len(res.Addrs) == 0 {
				fmt.Fprintln(c.App.ErrWriter, "warning: this node knows no address to put in the invite; the new node needs --bootstrap")
			}
			return nil
		},
	}
}

// printQR renders s as a QR code in terminal blocks: two modules per
// character cell (upper and lower half blocks), dark on light, with the
// quiet zone the standard asks for.
func printQR(w io.Writer, s string) error {
	q, err := qrcode.New(s, qrcode.Low)
	if err != nil {
		return fmt.Errorf("QR code: %w", err)
	}
	bm := q.Bitmap() // true: dark, quiet zone included
	var b strings.Builder
	for y := 0; y < len(bm); y += 2 {
		for x := range bm[y] {
			top, bottom := bm[y][x], y+1 < len(bm) && bm[y+1][x]
			switch {
			case top && bottom:
				b.WriteRune(' ')
			case top:
				b.WriteRune('▄')
			case bottom:
				b.WriteRune('▀')
			default:
				b.WriteRune('█')
			}
		}
		b.WriteByte('\n')
	}
	_, err = io.WriteString(w, b.String())
	return err
}
