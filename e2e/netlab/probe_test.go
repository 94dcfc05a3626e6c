package netlab

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMain runs the test binary as the probe (see probeMain) when
// NETLAB_PROBE=1, and checks for leaked goroutines otherwise.
func TestMain(m *testing.M) {
	if os.Getenv("NETLAB_PROBE") == "1" {
		os.Exit(probeMain(os.Args[1:]))
	}
	goleak.VerifyTestMain(m)
}

// probeMain is a tiny network tool the tests run inside the lab's
// namespaces (the test binary itself, re-executed):
//
//	udp-echo ADDR              print "listening", answer each datagram with "from SRC"; a datagram
//	                           "relay DEST MSG" makes it send MSG to DEST instead
//	tcp-echo ADDR              print "listening"; per connection write "from SRC\n", count bytes to EOF, write "got N\n"
//	udp-listen LOCAL DEST...   from LOCAL, send "hi" to each DEST and print
//	                           "mapped DEST REPLY"; then print "recv SRC MSG"
//	                           for every datagram, forever
//	udp-send LOCAL DEST MSG WAIT  send MSG from LOCAL; with WAIT > 0 print the
//	                           reply or fail after WAIT
//	tcp-send DEST BYTES WAIT   connect within WAIT, send BYTES bytes, print
//	                           "from SRC got N"
func probeMain(args []string) int {
	if err := probe(args); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 1
	}
	return 0
}

func probe(args []string) error {
	if len(args) == 0 {
		return errors.New("no command")
	}
	switch cmd, a := args[0], args[1:]; {
	case cmd == "udp-echo" && len(a) == 1:
		c, err := net.ListenPacket("udp4", a[0])
		if err != nil {
			return err
		}
		fmt.Println("listening")
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return err
			}
			msg := string(buf[:n])
			if f := strings.SplitN(msg, " ", 3); len(f) == 3 && f[0] == "relay" {
				to, err := net.ResolveUDPAddr("udp4", f[1])
				if err == nil {
					c.WriteTo([]byte(f[2]), to)
				}
				continue
			}
			c.WriteTo([]byte("from "+from.String()), from)
		}
	case cmd == "tcp-echo" && len(a) == 1:
		ln, err := net.Listen("tcp4", a[0])
		if err != nil {
			return err
		}
		fmt.Println("listening")
		for {
			c, err := ln.Accept()
			if err != nil {
				return err
			}
			go func() {
				defer c.Close()
				fmt.Fprintf(c, "from %s\n", c.RemoteAddr())
				n, _ := io.Copy(io.Discard, c)
				fmt.Fprintf(c, "got %d\n", n)
			}()
		}
	case cmd == "udp-listen" && len(a) >= 1:
		c, err := net.ListenPacket("udp4", a[0])
		if err != nil {
			return err
		}
		buf := make([]byte, 2048)
		for _, d := range a[1:] {
			to, err := net.ResolveUDPAddr("udp4", d)
			if err != nil {
				return err
			}
			reply := "none"
			for try := 0; try < 2 && reply == "none"; try++ {
				c.WriteTo([]byte("hi"), to)
				c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				for {
					n, from, err := c.ReadFrom(buf)
					if err != nil {
						break
					}
					if from.String() == to.String() {
						reply = strings.TrimPrefix(string(buf[:n]), "from ")
						break
					}
				}
			}
			fmt.Printf("mapped %s %s\n", d, reply)
		}
		c.SetReadDeadline(time.Time{})
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return err
			}
			fmt.Printf("recv %s %s\n", from, buf[:n])
		}
	case cmd == "udp-send" && len(a) == 4:
		c, err := net.ListenPacket("udp4", a[0])
		if err != nil {
			return err
		}
		defer c.Close()
		to, err := net.ResolveUDPAddr("udp4", a[1])
		if err != nil {
			return err
		}
		wait, err := time.ParseDuration(a[3])
		if err != nil {
			return err
		}
		if _, err := c.WriteTo([]byte(a[2]), to); err != nil {
			return err
		}
		if wait <= 0 {
			return nil
		}
		c.SetReadDeadline(time.Now().Add(wait))
		buf := make([]byte, 2048)
		n, _, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		fmt.Printf("%s\n", buf[:n])
		return nil
	case cmd == "tcp-send" && len(a) == 3:
		size, err := strconv.ParseInt(a[1], 10, 64)
		if err != nil {
			return err
		}
		wait, err := time.ParseDuration(a[2])
		if err != nil {
			return err
		}
		c, err := net.DialTimeout("tcp4", a[0], wait)
		if err != nil {
			return err
		}
		defer c.Close()
		r := bufio.NewReader(c)
		from, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		start := time.Now()
		if _, err := io.CopyN(c, zeros{}, size); err != nil {
			return err
		}
		c.(*net.TCPConn).CloseWrite()
		got, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		fmt.Printf("%s %s in %v\n", strings.TrimSpace(from), strings.TrimSpace(got), time.Since(start).Round(time.Millisecond))
		return nil
	}
	return fmt.Errorf("bad command %q", args)
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) { clear(b); return len(b), nil }

// newTestLab is New for tests: it skips where no lab can run and closes
// the lab when the test ends.
func newTestLab(t *testing.T, opts Options) *Lab {
	t.Helper()
	if err := Check(); err != nil {
		t.Skip(err)
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	l, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Error(err)
		}
	})
	return l
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// probeArgs is the command line that runs the probe with args.
func probeArgs(t *testing.T, args ...string) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{"env", "NETLAB_PROBE=1", exe}, args...)
}

// runProbe runs the probe in h and returns its output.
func runProbe(t *testing.T, h *Host, args ...string) (string, error) {
	t.Helper()
	return h.Lab.Exec(h.NS, probeArgs(t, args...)...)
}

// startProbe starts a long-running probe in h; the lab's Close kills it.
// The returned function reads what it has printed so far.
func startProbe(t *testing.T, h *Host, args ...string) func() string {
	t.Helper()
	log := filepath.Join(h.Lab.Dir(), fmt.Sprintf("probe-%s-%d.log", h.Name, time.Now().UnixNano()))
	if _, err := h.Start(log, probeArgs(t, args...)...); err != nil {
		t.Fatal(err)
	}
	return func() string { b, _ := os.ReadFile(log); return string(b) }
}

// waitFor waits until out() contains want and returns out().
func waitFor(t *testing.T, what string, out func() string, want string) string {
	t.Helper()
	var s string
	err := Eventually(10*time.Second, 20*time.Millisecond, func() error {
		if s = out(); !strings.Contains(s, want) {
			return fmt.Errorf("%s: no %q in %q", what, want, s)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
