package taptest

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var nsCounter atomic.Uint32

// Netns is a network namespace created for one test.
type Netns struct {
	Name string // for `ip netns exec Name ...`
	fd   int
	ino  uint64
}

// NewNetns creates a fresh network namespace named with prefix, the PID
// and a counter, deleted when the test ends. It skips the test unless it
// runs as root with ip(8) available. Nothing is ever created in the
// caller's own namespace.
func NewNetns(t testing.TB, prefix string) *Netns {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: needs root to create a private network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("skipping: ip(8) is needed to create a network namespace")
	}
	name := fmt.Sprintf("%s-%d-%d-%d", prefix, os.Getpid(), time.Now().UnixNano()%1e5, nsCounter.Add(1))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("skipping: ip netns add: %v: %s", err, out)
	}
	fd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		exec.Command("ip", "netns", "del", name).Run()
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	ns := &Netns{Name: name, fd: fd, ino: st.Ino}
	t.Cleanup(func() {
		unix.Close(fd)
		exec.Command("ip", "netns", "del", name).Run()
	})
	return ns
}

// Do runs fn on a goroutine whose OS thread has entered the namespace and
// waits for it. The thread stays locked and is discarded when fn returns,
// so no other goroutine ever runs in the namespace. Sockets and devices
// fn creates belong to the namespace and stay usable from any goroutine.
func (ns *Netns) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // deliberately never unlocked
		if err := unix.Setns(ns.fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns.Name, err)
			return
		}
		var cur unix.Stat_t
		if err := unix.Stat("/proc/thread-self/ns/net", &cur); err != nil || cur.Ino != ns.ino {
			errc <- fmt.Errorf("not inside %s after setns (%v)", ns.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Exec runs a command inside the namespace (ip netns exec) and returns its
// combined output.
func (ns *Netns) Exec(name string, args ...string) ([]byte, error) {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...).CombinedOutput()
}
