package e2e

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/kadlan/kadlan/e2e/netlab"
)

// TestDebugRoam is a manual aid (KADLAN_DEBUG=1): it leaves a roaming
// topology up for inspection.
func TestDebugRoam(t *testing.T) {
	if os.Getenv("KADLAN_DEBUG") == "" {
		t.Skip("manual debugging aid; set KADLAN_DEBUG=1")
	}
	w := newNATWorld(t)
	natA := w.lab.NATRouter("natA", netlab.EIM, nil)
	natC := w.lab.NATRouter("natC", netlab.EIM, nil)
	r := w.behind(t, natA, "r")
	p := w.pubs[2]
	out, err := p.CLI("ping", "-c", "1", r.Address)
	t.Log(out, err)
	r.Host.Move(natC)
	time.Sleep(3 * time.Second)
	for _, c := range [][]string{{"status"}, {"peers"}} {
		out, err = r.CLI(c...)
		t.Log("r", c, out, err)
	}
	out, err = p.CLI("find", r.Address)
	t.Log("p find", out, err)
	out, err = p.CLI("ping", "-c", "2", "--timeout", "3s", r.Address)
	t.Log("p ping", out, err)
	b, _ := os.ReadFile(r.Log)
	os.WriteFile("/tmp/dbg/r.log", b, 0o644)
	b, _ = os.ReadFile(p.Log)
	os.WriteFile("/tmp/dbg/p.log", b, 0o644)
}

// TestDebugYoungPunch is a manual aid (KADLAN_DEBUG=young): nodes behind
// new routers of one class (KADLAN_DEBUG_NAT, default udpblocked) are
// pinged from an EIM node as soon as they hold relay reservations, and the
// time until the pair is direct is logged with the punch state
// (KADLAN_DEBUG_FROM=u: they ping the EIM node instead). Daemon
// logs (GOLOG_LOG_LEVEL as set by the caller) and a tcpdump of each new
// router's WAN go to /tmp/dbg.
func TestDebugYoungPunch(t *testing.T) {
	if os.Getenv("KADLAN_DEBUG") != "young" {
		t.Skip("manual debugging aid; set KADLAN_DEBUG=young")
	}
	kinds := map[string]netlab.NAT{"udpblocked": netlab.UDPBlocked, "eim": netlab.EIM, "cgnat": netlab.CGNAT, "symmetric": netlab.Symmetric}
	kind, ok := kinds[os.Getenv("KADLAN_DEBUG_NAT")]
	if !ok {
		kind = netlab.UDPBlocked
	}
	os.MkdirAll("/tmp/dbg", 0o755)
	w := newNATWorld(t)
	natA := w.lab.NATRouter("natA", netlab.EIM, nil)
	dumpA := natA.Start("/tmp/dbg/natA.pcap.txt", "tcpdump", "-n", "-i", "any", "-tt", "not", "arp")
	defer dumpA.Kill()
	a := w.behind(t, natA, "a")
	for i := 0; i < 6; i++ {
		r := w.lab.NATRouter(fmt.Sprintf("y%d", i), kind, nil)
		if kind == netlab.CGNAT {
			r = w.lab.NATRouter(fmt.Sprintf("yh%d", i), netlab.EIM, r)
		}
		dump := r.Start(fmt.Sprintf("/tmp/dbg/y%d.pcap.txt", i), "tcpdump", "-n", "-i", "any", "-tt", "not", "arp")
		started := time.Now()
		u := w.behind(t, r, fmt.Sprintf("u%d", i))
		age := time.Since(started)
		from, to := a, u
		if os.Getenv("KADLAN_DEBUG_FROM") == "u" {
			from, to = u, a
		}
		pr, err := pingOnce(from, to, "10s")
		pinged := time.Now()
		p, derr := waitDirect(from, to, 10*time.Second, 100*time.Millisecond)
		t.Logf("u%d: relayed after %v, ping %v connect %.0f ms (%v), direct after %v: %v, path %s punch %+v", i, age.Round(time.Millisecond), pr.RTTms, pr.ConnectMs, err, time.Since(pinged).Round(time.Millisecond), derr, p.Path, p.Punch)
		if q, err := pathTo(u, a); err == nil {
			t.Logf("u%d's view: path %s punch %+v", i, q.Path, q.Punch)
		}
		dump.Kill()
		b, _ := os.ReadFile(u.Log)
		os.WriteFile(fmt.Sprintf("/tmp/dbg/u%d.log", i), b, 0o644)
	}
	b, _ := os.ReadFile(a.Log)
	os.WriteFile("/tmp/dbg/a.log", b, 0o644)
}
