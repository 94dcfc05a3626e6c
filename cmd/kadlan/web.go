package main

import (
	"fmt"
	"net/http"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/urfave/cli/v2"
)

func init() { extraCommands = append(extraCommands, webCommand()) }

const webHelp = `Prints the address of the daemon's page (kadlan daemon --web HOST:PORT)
with its token in the fragment: open it in a browser on this machine. The
page shows this node, its networks and members (Authorize, Revoke, Invite
with a QR code, Create network), its peers with path and RTT, and each
network's traffic. It talks to the daemon over the same API as the CLI.

The token is in STATE/web-token.secret (mode 0600) and stays the same
across restarts; delete the file and restart the daemon to change it.
Anyone with the token controls the node: do not share the address.`

func webCommand() *cli.Command {
	return &cli.Command{
		Name:        "web",
		Usage:       "print the address (with its token) of the daemon's page for owners and members",
		Description: webHelp,
		Flags:       []cli.Flag{jsonFlag},
		Action: func(c *cli.Context) error {
			if _, err := argsN(c, 0, "[--json]"); err != nil {
				return err
			}
			var res *api.Web
			if err := call(c, http.MethodGet, "/v1/web", nil, &res, 10*time.Second); err != nil {
				return err
			}
			if res == nil {
				return userErrorf("the daemon serves no page: start it with --web 127.0.0.1:9443 (see kadlan daemon --help)")
			}
			if c.Bool("json") {
				return printJSON(c.App.Writer, res)
			}
			fmt.Fprintln(c.App.Writer, res.URL)
			return nil
		},
	}
}
