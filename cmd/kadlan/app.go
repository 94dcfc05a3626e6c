package main

import (
	"io"

	"github.com/urfave/cli/v2"
)

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:    "kadlan",
		Usage:   "a root-less virtual Ethernet over a Kademlia DHT",
		Version: version,
		Writer:  stdout, ErrWriter: stderr,
		HideHelpCommand: true,
	}
	app.Commands = append(app.Commands, extraCommands...)
	return app
}
