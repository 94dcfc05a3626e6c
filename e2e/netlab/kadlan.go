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

// Binary returns $KADLAN_BIN, or else builds cmd/kadlan once per process
// (with the go tool, into a temporary directory) and returns its path.
func Binary() (string, error) {
	buildOnce.Do(func() {
		if b := os.Getenv("KADLAN_BIN"); b != "" {
			buildBin = b
			return
		}
		dir, err := os.MkdirTemp("", "kadlan-e2e-bin-")
		if err != nil {
			buildErr = fmt.Errorf("netlab: %w", err)
			return
		}
		buildBin = filepath.Join(dir, "kadlan")
		out, err := exec.Command("go", "build", "-o", buildBin, "github.com/kadlan/kadlan/cmd/kadlan").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("netlab: go build: %v: %s", err, out)
		}
	})
	return buildBin, buildErr
}

// Proc is a process started inside a namespace.
type Proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start runs args inside h's namespace with output appended to logPath.
// The process gets SIGKILL when the process that started it dies, and
// Close kills it.
func (h *Host) Start(logPath string, args ...string) (*Proc, error) {
	l := h.Lab
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS}, args...)...)
	cmd.Stdout, cmd.Stderr = f, f
	// If the process driving the lab dies, its daemons die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// The lock is held from the start to the record, so that a concurrent
	// Close either kills the process or prevents its start.
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		f.Close()
		return nil, errClosed
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("netlab: start %v in %s: %w", args, h.NS, err)
	}
	p := &Proc{cmd: cmd, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); f.Close(); close(p.done) }()
	l.procs = append(l.procs, p)
	return p, nil
}

// Pid is the process's PID. `ip netns exec` execs the command, so it is
// the command's own.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig and waits up to 10 s for the process to exit (then
// SIGKILL).
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

// StartNode starts `kadlan daemon args...` on h, with a new state
// directory, API socket and log under the lab's Dir, and waits for its API.
func (h *Host) StartNode(args ...string) (*Node, error) {
	l := h.Lab
	bin := l.bin
	if bin == "" {
		var err error
		if bin, err = Binary(); err != nil {
			return nil, err
		}
	}
	dir, err := os.MkdirTemp(l.dir, h.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("netlab: %w", err)
	}
	n := &Node{Host: h, Bin: bin, State: filepath.Join(dir, "state"), API: filepath.Join(dir, "api.sock"),
		Log: filepath.Join(dir, h.Name+".log")}
	l.mu.Lock()
	l.nodes = append(l.nodes, n)
	l.mu.Unlock()
	if err := n.Start(args...); err != nil {
		return nil, err
	}
	return n, nil
}

// Start (re)starts the daemon with args, keeping state dir and socket, and
// waits up to 20 s for its API.
func (n *Node) Start(args ...string) error {
	n.args = args
	full := []string{n.Bin, "--state", n.State, "--api", n.API, "daemon"}
	if !hasFlag(args, "--mdns") {
		// mDNS is on by default for a real daemon; in a lab it stays off
		// unless a test asks for it, so that peers come from where the
		// test says.
		full = append(full, "--mdns=false")
	}
	full = append(full, args...)
	p, err := n.Host.Start(n.Log, full...)
	if err != nil {
		return err
	}
	n.proc = p
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st struct {
			Address string `json:"address"`
		}
		if err := n.JSON(&st, "status"); err == nil {
			n.Address = st.Address
			return nil
		}
		if n.proc.Exited() || time.Now().After(deadline) {
			b, _ := os.ReadFile(n.Log)
			return fmt.Errorf("netlab: daemon on %s did not come up: %s", n.Host.Name, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// hasFlag reports whether args set flag (as "--flag" or "--flag=...").
func hasFlag(args []string, flag string) bool {
	for _, a := range args {
		if a == flag || strings.HasPrefix(a, flag+"=") {
			return true
		}
	}
	return false
}

// LogTail returns the last n lines of the daemon's log.
func (n *Node) LogTail(lines int) string {
	b, _ := os.ReadFile(n.Log)
	l := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// LogLines returns the last n lines of the daemon's log that contain one
// of substrs (a peer's address, an IP address).
func (n *Node) LogLines(lines int, substrs ...string) string {
	b, _ := os.ReadFile(n.Log)
	var l []string
	for _, line := range strings.Split(string(b), "\n") {
		for _, s := range substrs {
			if strings.Contains(line, s) {
				l = append(l, line)
				break
			}
		}
	}
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}

// Stop ends the daemon with SIGTERM (a clean shutdown).
func (n *Node) Stop() { n.proc.Signal(syscall.SIGTERM) }

// Kill ends the daemon with SIGKILL (a crash).
func (n *Node) Kill() { n.proc.Kill() }

// Running reports whether the daemon process is alive.
func (n *Node) Running() bool { return n.proc != nil && !n.proc.Exited() }

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
