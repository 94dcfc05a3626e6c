package netlab

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
)

// Binary builds bin/kadlan once per test process (or uses $KADLAN_BIN).
func Binary(t TB) string {
	t.Helper()
	buildOnce.Do(func() {
		if b := os.Getenv("KADLAN_BIN"); b != "" {
			buildBin = b
			return
		}
		dir, err := os.MkdirTemp("", "kadlan-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		buildBin = filepath.Join(dir, "kadlan")
		out, err := exec.Command("go", "build", "-o", buildBin, "github.com/kadlan/kadlan/cmd/kadlan").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// Proc is a process started inside a namespace.
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start runs args inside h's namespace with output to logPath.
func (h *Host) Start(logPath string, args ...string) *Proc {
	l := h.Lab
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	// If the test process dies, its daemons die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		l.t.Fatalf("netlab: start %v: %v", args, err)
	}
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); f.Close(); close(p.done) }()
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return p
}

// Signal sends sig and waits up to 10 s for the process to exit (then
// SIGKILL). `ip netns exec` execs the command, so the PID is the daemon's.
func (p *Proc) Signal(sig syscall.Signal) {
	if p.Exited() {
		return
	}
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// Kill stops the process with SIGKILL and waits for it.
func (p *Proc) Kill() { p.Signal(syscall.SIGKILL) }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Node is a kadlan daemon running on a Host with its own state dir and API
// socket (the socket is a file, so the CLI runs outside the namespace and
// sends nothing on any network).
type Node struct {
	Host    *Host
	Bin     string
	State   string
	API     string
	Log     string
	Address string
	proc    *Proc
	args    []string
}

// StartNode starts `kadlan daemon args...` on h and waits for its API.
func (h *Host) StartNode(t TB, args ...string) *Node {
	t.Helper()
	dir := t.TempDir()
	n := &Node{Host: h, Bin: Binary(t), State: filepath.Join(dir, "state"), API: filepath.Join(dir, "api.sock"),
		Log: filepath.Join(dir, h.Name+".log")}
	n.Start(t, args...)
	return n
}

// Start (re)starts the daemon with args, keeping state dir and socket.
func (n *Node) Start(t TB, args ...string) {
	t.Helper()
	n.args = args
	full := append([]string{n.Bin, "--state", n.State, "--api", n.API, "daemon"}, args...)
	n.proc = n.Host.Start(n.Log, full...)
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(n.Log)
			lines := strings.Split(strings.TrimSpace(string(b)), "\n")
			if len(lines) > 25 {
				lines = lines[len(lines)-25:]
			}
			t.Logf("--- last log lines of %s (%s):\n%s", n.Host.Name, n.Address, strings.Join(lines, "\n"))
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st struct {
			Address string `json:"address"`
		}
		if err := n.JSON(&st, "status"); err == nil {
			n.Address = st.Address
			return
		}
		if n.proc.Exited() || time.Now().After(deadline) {
			b, _ := os.ReadFile(n.Log)
			t.Fatalf("netlab: daemon on %s did not come up: %s", n.Host.Name, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop ends the daemon with SIGTERM (a clean shutdown).
func (n *Node) Stop() { n.proc.Signal(syscall.SIGTERM) }

// Kill ends the daemon with SIGKILL (a crash).
func (n *Node) Kill() { n.proc.Kill() }

// Running reports whether the daemon process is alive.
func (n *Node) Running() bool { return !n.proc.Exited() }

// CLI runs `kadlan --state S --api A args...` and returns stdout; stderr goes
// into the error.
func (n *Node) CLI(args ...string) (string, error) {
	cmd := exec.Command(n.Bin, append([]string{"--state", n.State, "--api", n.API}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("kadlan %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

// JSON runs a CLI command with --json and decodes its output into v.
func (n *Node) JSON(v any, args ...string) error {
	out, err := n.CLI(append(args, "--json")...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("kadlan %s --json: %v: %q", strings.Join(args, " "), err, out)
	}
	return nil
}

// BootstrapAddr is a multiaddr of n on its host's IPv4 address, for
// --bootstrap.
func (n *Node) BootstrapAddr() string {
	return fmt.Sprintf("/ip4/%s/tcp/4242/p2p/%s", n.Host.IPv4, n.Address)
}

// Eventually retries f every interval until it returns nil or timeout
// passes, and returns the last error.
func Eventually(timeout, interval time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(interval)
	}
}
