package e2e

import (
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
