package netlab

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func nsExists(t *testing.T, ns string) bool {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == ns {
			return true
		}
	}
	return false
}

// TestClose: Close kills what the lab started and deletes its namespaces
// and directory; a closed lab creates nothing; Close may be called again.
func TestClose(t *testing.T) {
	if err := Check(); err != nil {
		if !errors.Is(err, ErrUnsupported) {
			t.Fatalf("Check error %v does not wrap ErrUnsupported", err)
		}
		t.Skip(err)
	}
	l, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !strings.HasPrefix(l.Prefix, "kl") || !strings.Contains(l.Prefix, "-") {
		t.Fatalf("prefix %q", l.Prefix)
	}
	r, err := l.NATRouter("r", EIM, nil)
	if err != nil {
		t.Fatal(err)
	}
	h, err := r.PrivateHost("h")
	if err != nil {
		t.Fatal(err)
	}
	p, err := h.Start(filepath.Join(l.Dir(), "sleep.log"), "sleep", "600")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Exec("", "true"); err == nil {
		t.Fatal("Exec ran in the host's namespace")
	}
	if out, err := l.Exec(h.NS, "ping", "-c", "1", "-W", "2", "192.168.1.1"); err != nil {
		t.Fatalf("private host cannot reach its router: %v: %s", err, out)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if !p.Exited() || syscall.Kill(p.Pid(), 0) == nil {
		t.Fatal("process still running after Close")
	}
	for _, ns := range []string{l.inet, r.NS, h.NS} {
		if nsExists(t, ns) {
			t.Fatalf("namespace %s left after Close", ns)
		}
	}
	if _, err := os.Stat(l.Dir()); !os.IsNotExist(err) {
		t.Fatalf("lab directory left after Close: %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := l.PublicHost("late"); err == nil {
		t.Fatal("a closed lab added a host")
	}
	if nsExists(t, l.Prefix+"late") {
		t.Fatal("a closed lab created a namespace")
	}
}

// TestNotRouter: a host that is no router has no LAN.
func TestNotRouter(t *testing.T) {
	if err := Check(); err != nil {
		t.Skip(err)
	}
	l, err := New(Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	h, err := l.PublicHost("pub")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.PrivateHost("behind"); err == nil {
		t.Fatal("PrivateHost behind a public host")
	}
	if err := h.Move(h); err == nil {
		t.Fatal("Move to a public host")
	}
}
