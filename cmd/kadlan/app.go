package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/daemon"
	"github.com/urfave/cli/v2"
)

const appHelp = `kadlan joins a Kademlia DHT that has no root servers: any node can be
anyone's bootstrap peer. A node's address is its libp2p peer ID (an Ed25519
key); SHA-256 of it is its place in the DHT's XOR space.

Start a node, then talk to it from another terminal:

   kadlan daemon --bootstrap /ip4/192.0.2.7/tcp/4242/p2p/12D3KooW...
   kadlan status
   kadlan ping 12D3KooW...

After a first join the node remembers working peers, so a restart needs no
--bootstrap at all. Share your own node with 'kadlan peers export'.

Networks are virtual Ethernet segments between nodes, owned by a key, not
run by a controller:

   kadlan net create --private --name lab   # prints NETWORK
   kadlan join NETWORK                      # on another node
   kadlan net authorize NETWORK ADDRESS     # the owner admits it
   kadlan networks                          # interface, addresses, members

Researchers: 'kadlan sim' simulates the same algorithms on up to 10^6 nodes.`

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:                   "kadlan",
		Usage:                  "a root-less virtual Ethernet over a Kademlia DHT",
		Description:            appHelp,
		Version:                version,
		Writer:                 stdout,
		ErrWriter:              stderr,
		HideHelpCommand:        true,
		UseShortOptionHandling: true,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "state", Usage: "state `DIR` (identity, peer cache, networks)", EnvVars: []string{"KADLAN_STATE"}, Value: defaultStateDir()},
			&cli.StringFlag{Name: "api", Usage: "control socket `PATH` (default: STATE/kadlan.sock)", EnvVars: []string{"KADLAN_API"}},
		},
		ExitErrHandler: func(*cli.Context, error) {}, // run() prints errors once
	}
	app.Commands = []*cli.Command{
		idCommand(), daemonCommand(), statusCommand(), peersCommand(), findCommand(), pingCommand(),
	}
	app.Commands = append(app.Commands, extraCommands...)
	return app
}

func defaultStateDir() string {
	if os.Geteuid() == 0 {
		return "/var/lib/kadlan"
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "kadlan")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "kadlan")
	}
	return ".kadlan"
}

func apiPath(c *cli.Context) string {
	if p := c.String("api"); p != "" {
		return p
	}
	return filepath.Join(c.String("state"), daemon.SocketFile)
}

func client(c *cli.Context) *api.Client { return api.NewClient(apiPath(c)) }

var jsonFlag = &cli.BoolFlag{Name: "json", Usage: "print JSON (stable field names, see README)"}

// call runs one API request with the CLI's usual timeout handling and turns
// errors into one-line user errors.
func call(c *cli.Context, method, path string, in, out any, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(c.Context, timeout)
	defer cancel()
	if err := client(c).Do(ctx, method, path, in, out); err != nil {
		return userErrorf("%v", err)
	}
	return nil
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func fmtAddrs(w io.Writer, label string, as []string) {
	if len(as) == 0 {
		fmt.Fprintf(w, "%-14s -\n", label+":")
		return
	}
	for i, a := range as {
		if i == 0 {
			fmt.Fprintf(w, "%-14s %s\n", label+":", a)
		} else {
			fmt.Fprintf(w, "%-14s %s\n", "", a)
		}
	}
}
