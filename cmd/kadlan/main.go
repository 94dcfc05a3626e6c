// Command kadlan runs and controls a root-less virtual Ethernet node.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"
)

// version is stamped by the Makefile (-ldflags "-X main.version=...").
var version = "dev"

// extraCommands lets each command group register itself from its own file
// (sim.go, net.go, ...) with an init function, so that main.go does not need
// to know every command.
var extraCommands []*cli.Command

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// exitError carries an exit code with a one-line message for the user.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

func userErrorf(format string, args ...any) error {
	return &exitError{code: 1, msg: fmt.Sprintf(format, args...)}
}

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	if err := app.RunContext(ctx, args); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			fmt.Fprintln(stderr, "kadlan: "+ee.msg)
			return ee.code
		}
		fmt.Fprintln(stderr, "kadlan: "+err.Error())
		return 1
	}
	return 0
}
