package netlab

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestLine: the delay line's arithmetic, without a lab.
func TestLine(t *testing.T) {
	t0 := time.Unix(1000, 0)
	ln := newLine(LinkShape{Delay: 20 * time.Millisecond}, 1)
	if at, ok := ln.admit(t0, 1500); !ok || at != t0.Add(20*time.Millisecond) {
		t.Fatalf("delay: %v %v", at, ok)
	}
	// 8 Mbit/s: 1000 bytes take 1 ms; the second frame waits for the first.
	ln = newLine(LinkShape{Rate: 8e6}, 1)
	a1, _ := ln.admit(t0, 1000)
	a2, _ := ln.admit(t0, 1000)
	if a1 != t0.Add(time.Millisecond) || a2 != t0.Add(2*time.Millisecond) {
		t.Fatalf("rate: %v %v", a1.Sub(t0), a2.Sub(t0))
	}
	// A backlog longer than MaxQueueDelay drops.
	var dropped int
	for i := 0; i < 200; i++ {
		if _, ok := ln.admit(t0, 1000); !ok {
			dropped++
		}
	}
	if dropped != 101 { // 99 fit in the 100 ms behind the first two
		t.Fatalf("rate: %d of 200 dropped, want 101", dropped)
	}
	// Jitter never reorders and stays within bounds.
	ln = newLine(LinkShape{Delay: 10 * time.Millisecond, Jitter: 5 * time.Millisecond}, 1)
	var last time.Time
	for i := 0; i < 1000; i++ {
		now := t0.Add(time.Duration(i) * 100 * time.Microsecond)
		at, ok := ln.admit(now, 100)
		if !ok || at.Before(last) || at.Sub(now) < 5*time.Millisecond || at.Sub(now) > 15*time.Millisecond+time.Millisecond {
			t.Fatalf("jitter: frame %d leaves after %v (last %v)", i, at.Sub(now), last.Sub(t0))
		}
		last = at
	}
	// Loss 1 drops all, 0.5 about half.
	ln = newLine(LinkShape{Loss: 1}, 1)
	if _, ok := ln.admit(t0, 100); ok {
		t.Fatal("loss 1 delivered")
	}
	ln.set(LinkShape{Loss: 0.5})
	var kept int
	for i := 0; i < 1000; i++ {
		if _, ok := ln.admit(t0, 100); ok {
			kept++
		}
	}
	if kept < 400 || kept > 600 {
		t.Fatalf("loss 0.5 kept %d of 1000", kept)
	}
	for _, bad := range []LinkShape{{Delay: -1}, {Loss: 1.5}, {Rate: -1}} {
		if bad.validate() == nil {
			t.Errorf("%+v validated", bad)
		}
	}
}

var rttRE = regexp.MustCompile(`rtt min/avg/max/mdev = ([0-9.]+)/([0-9.]+)/([0-9.]+)/([0-9.]+) ms`)

// pingAvg pings to from h count times (after one warm-up ping that
// resolves the neighbour) and returns the average RTT.
func pingAvg(t *testing.T, h *Host, to string, count int) time.Duration {
	t.Helper()
	if out, err := h.Lab.Exec(h.NS, "ping", "-c", "1", "-W", "3", to); err != nil {
		t.Fatalf("warm-up ping %s -> %s: %v: %s", h.Name, to, err, out)
	}
	out, err := h.Lab.Exec(h.NS, "ping", "-q", "-c", strconv.Itoa(count), "-i", "0.1", "-W", "3", to)
	if err != nil {
		t.Fatalf("ping %s -> %s: %v: %s", h.Name, to, err, out)
	}
	m := rttRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("ping output: %s", out)
	}
	avg, _ := strconv.ParseFloat(m[2], 64)
	return time.Duration(avg * float64(time.Millisecond))
}

func within(got, want time.Duration, frac float64) bool {
	d := float64(got - want)
	return d <= frac*float64(want) && -d <= frac*float64(want)
}

// TestSwitchRTT is the self-test of the userspace Internet: ping between
// two public hosts whose links have 20 ms one-way delay each (80 ms RTT)
// shows that RTT within 10%; SetLink changes it to 200 ms; a zero shape
// gives a sub-millisecond ping; loss 1 drops everything.
func TestSwitchRTT(t *testing.T) {
	l := newTestLab(t, Options{Link: &LinkShape{Delay: 20 * time.Millisecond}})
	a := must[*Host](t)(l.PublicHost("a"))
	b := must[*Host](t)(l.PublicHost("b"))
	if got := pingAvg(t, a, b.IPv4, 10); !within(got, 80*time.Millisecond, 0.1) {
		t.Errorf("RTT %v, want 80ms ±10%%", got)
	} else {
		t.Logf("configured 80ms: ping avg %v", got)
	}
	if got := pingAvg(t, a, b.IPv6, 5); !within(got, 80*time.Millisecond, 0.1) {
		t.Errorf("IPv6 RTT %v, want 80ms ±10%%", got)
	}
	for _, h := range []*Host{a, b} {
		if err := l.SetLink(h, LinkShape{Delay: 50 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	if got := pingAvg(t, a, b.IPv4, 5); !within(got, 200*time.Millisecond, 0.1) {
		t.Errorf("RTT %v, want 200ms ±10%%", got)
	} else {
		t.Logf("configured 200ms: ping avg %v", got)
	}
	// Jitter spreads the RTTs (mdev) around the same average.
	for _, h := range []*Host{a, b} {
		if err := l.SetLink(h, LinkShape{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := l.Exec(a.NS, "ping", "-q", "-c", "20", "-i", "0.05", "-W", "3", b.IPv4)
	m := rttRE.FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("ping with jitter: %v: %s", err, out)
	}
	avg, _ := strconv.ParseFloat(m[2], 64)
	mdev, _ := strconv.ParseFloat(m[4], 64)
	if avg < 72 || avg > 92 || mdev < 1 {
		t.Errorf("jitter 5ms per link crossing: avg %.1f ms, mdev %.1f ms; want ~80 and > 1", avg, mdev)
	} else {
		t.Logf("configured 80ms, jitter 5ms per crossing: avg %.1f ms, mdev %.1f ms", avg, mdev)
	}
	for _, h := range []*Host{a, b} {
		if err := l.SetLink(h, LinkShape{}); err != nil {
			t.Fatal(err)
		}
	}
	if got := pingAvg(t, a, b.IPv4, 10); got > 5*time.Millisecond {
		t.Errorf("zero-delay RTT %v, want < 5ms", got)
	} else {
		t.Logf("configured 0: ping avg %v", got)
	}
	if err := l.SetLink(b, LinkShape{Loss: 1}); err != nil {
		t.Fatal(err)
	}
	if out, err := l.Exec(a.NS, "ping", "-c", "5", "-i", "0.1", "-W", "1", b.IPv4); err == nil || !strings.Contains(out, "100% packet loss") {
		t.Errorf("ping through a link with loss 1: %v: %s", err, out)
	}
	if err := l.SetLink(a, LinkShape{Delay: -1}); err == nil {
		t.Error("SetLink took a negative delay")
	}
}

// TestSwitchTraffic: across 40 ms RTT links a TCP transfer completes, a
// host behind a NAT router reaches a public host, and a rate limit holds.
func TestSwitchTraffic(t *testing.T) {
	l := newTestLab(t, Options{Link: &LinkShape{Delay: 10 * time.Millisecond}})
	srv := must[*Host](t)(l.PublicHost("srv"))
	cli := must[*Host](t)(l.PublicHost("cli"))
	r := must[*Host](t)(l.NATRouter("r", EIM, nil))
	home := must[*Host](t)(r.PrivateHost("home"))
	waitFor(t, "tcp-echo", startProbe(t, srv, "tcp-echo", ":7000"), "listening")

	const size = 20 << 20
	out, err := runProbe(t, cli, "tcp-send", srv.IPv4+":7000", strconv.Itoa(size), "10s")
	if err != nil || !strings.Contains(out, fmt.Sprintf("got %d", size)) {
		t.Fatalf("TCP transfer: %v: %s", err, out)
	}
	t.Logf("20 MiB over TCP at 40ms RTT: %s", strings.TrimSpace(out))

	out, err = runProbe(t, home, "tcp-send", srv.IPv4+":7000", "100000", "10s")
	if err != nil || !strings.Contains(out, "from "+r.IPv4+":") || !strings.Contains(out, "got 100000") {
		t.Fatalf("from behind NAT: %v: %s", err, out)
	}
	if got := pingAvg(t, home, srv.IPv4, 5); !within(got, 40*time.Millisecond, 0.15) {
		t.Errorf("RTT from behind NAT %v, want 40ms", got)
	}

	// 20 Mbit/s on the client's link: 2.5 MB take about a second.
	if err := l.SetLink(cli, LinkShape{Rate: 20e6}); err != nil {
		t.Fatal(err)
	}
	out, err = runProbe(t, cli, "tcp-send", srv.IPv4+":7000", strconv.Itoa(2500000), "10s")
	if err != nil {
		t.Fatalf("rate-limited transfer: %v: %s", err, out)
	}
	// The probe times the transfer itself (not its own start).
	m := regexp.MustCompile(` in (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("rate-limited transfer: %s", out)
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		t.Fatal(err)
	}
	mbit := 2500000 * 8 / d.Seconds() / 1e6
	t.Logf("20 Mbit/s link: %.1f Mbit/s (%s)", mbit, strings.TrimSpace(out))
	if mbit > 22 || mbit < 10 {
		t.Errorf("rate-limited transfer ran at %.1f Mbit/s, want ~20", mbit)
	}
}

// TestSwitchKeepsProcesses: adding ports to the switch (a thread moves
// into inet and back for each) kills none of the processes started
// before: their Pdeathsig follows the thread that forked them, so a
// thread that died in inet would take them along.
func TestSwitchKeepsProcesses(t *testing.T) {
	l := newTestLab(t, Options{Link: &LinkShape{}})
	var procs []*Proc
	for i := 0; i < 8; i++ {
		h := must[*Host](t)(l.PublicHost(fmt.Sprintf("h%d", i)))
		procs = append(procs, must[*Proc](t)(h.Start(l.Dir()+"/sleep.log", "sleep", "600")))
	}
	// One more round of ports after the last start.
	for i := 0; i < 4; i++ {
		must[*Host](t)(l.PublicHost(fmt.Sprintf("late%d", i)))
	}
	for i, p := range procs {
		if p.Exited() {
			t.Errorf("process %d started before later ports were added has died", i)
		}
	}
}

// TestSwitchMove: a public host that moves behind a router (its port in
// inet disappears) leaves the switch working, and reaches the Internet
// through the router's port.
func TestSwitchMove(t *testing.T) {
	l := newTestLab(t, Options{Link: &LinkShape{Delay: 5 * time.Millisecond}})
	p := must[*Host](t)(l.PublicHost("p"))
	m := must[*Host](t)(l.PublicHost("m"))
	r := must[*Host](t)(l.NATRouter("r", EIM, nil))
	if got := pingAvg(t, m, p.IPv4, 3); !within(got, 20*time.Millisecond, 0.15) {
		t.Errorf("before the move: RTT %v, want 20ms", got)
	}
	if err := m.Move(r); err != nil {
		t.Fatal(err)
	}
	if err := l.SetLink(m, LinkShape{}); err == nil {
		t.Error("SetLink on a host that left the Internet segment")
	}
	if got := pingAvg(t, m, p.IPv4, 3); !within(got, 20*time.Millisecond, 0.15) {
		t.Errorf("after the move: RTT %v, want 20ms", got)
	}
	if got := pingAvg(t, r, p.IPv4, 3); !within(got, 20*time.Millisecond, 0.15) {
		t.Errorf("router: RTT %v, want 20ms", got)
	}
}
