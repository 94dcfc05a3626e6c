package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/overlay"
	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/overlay/vswitch"
)

// engineOf returns the engine of a joined network (nil before it runs).
func engineOf(t *testing.T, td *testDaemon, id string) *overlay.Engine {
	t.Helper()
	j, err := td.d.nets.resolve(id)
	if err != nil {
		t.Fatal(err)
	}
	return j.engine()
}

// TestRecordFloodIsBounded: a member pushes 20,000 distinct garbage records
// along its link (issue 10: 300k pushes once started 282k goroutines and
// wrote a log line each). The receiver handles them on one goroutine per
// network, drops what its bounded queue cannot hold, logs a few lines, and
// keeps the link.
func TestRecordFloodIsBounded(t *testing.T) {
	var recordLines atomic.Int64
	owner := startDaemonFull(t, nil, func(s string) {
		if strings.Contains(s, "record from") {
			recordLines.Add(1)
		}
	})
	member := startDaemon(t, owner.d.Node.ShareableAddrs()[0])
	var created api.NetworkCreated
	owner.call(t, "POST", "/v1/networks/create", api.NetworkCreateRequest{Name: "flood"}, &created)
	member.call(t, "POST", "/v1/networks/join", api.NetworkRequest{Network: created.Network}, nil)
	waitStatus(t, member, created.Network, "ok", 1)
	waitStatus(t, owner, created.Network, "ok", 1)
	eng := engineOf(t, member, created.Network)

	base := runtime.NumGoroutine()
	peak := base
	const pushes = 20000
	for i := 0; i < pushes; {
		msg := vswitch.Message{Kind: vswitch.MsgRecord, Payload: []byte(fmt.Sprintf("garbage record %d", i))}
		if eng.SendAll(msg) == 0 {
			time.Sleep(time.Millisecond) // the link queue is full: let it drain
			continue
		}
		i++
		if i%500 == 0 {
			peak = max(peak, runtime.NumGoroutine())
		}
	}
	// Then a valid record (a newer announcement of the member): once the
	// owner holds it, everything pushed before it on the link has been
	// handled or dropped. It may be dropped too while the queue is full,
	// so it is pushed again, newer each time, until it arrives.
	oj, err := owner.d.nets.resolve(created.Network)
	if err != nil {
		t.Fatal(err)
	}
	mj, _ := member.d.nets.resolve(created.Network)
	memberID := member.d.Node.ID()
	arrived := false
	for try := 0; try < 60 && !arrived; try++ {
		at := time.Now().Add(time.Duration(try+1) * time.Second).Truncate(time.Second)
		mj.mu.Lock()
		ip := mj.m.IPv4(time.Now()).Addr()
		mj.mu.Unlock()
		ann, err := netrec.NewAnnouncement(member.d.nets.key, mj.m.ID, ip, at)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := ann.Marshal()
		eng.SendAll(vswitch.Message{Kind: vswitch.MsgRecord, Payload: b})
		for wait := time.Now().Add(time.Second); time.Now().Before(wait); time.Sleep(10 * time.Millisecond) {
			peak = max(peak, runtime.NumGoroutine())
			oj.mu.Lock()
			mem, _ := oj.m.Member(memberID)
			oj.mu.Unlock()
			if mem.Announcement != nil && !mem.Announcement.Time.Before(at) {
				arrived = true
				break
			}
		}
	}
	if !arrived {
		t.Fatal("the owner never took the member's valid record after the flood")
	}
	if peak > base+100 {
		t.Fatalf("goroutines rose from %d to %d during the flood", base, peak)
	}
	if n := recordLines.Load(); n > 5 {
		t.Fatalf("%d log lines about bad records, want a few", n)
	}
	n := waitStatus(t, owner, created.Network, "ok", 1)
	st := oj.engineStats()
	t.Logf("goroutines %d -> peak %d; %d record log lines; records queued %d, dropped at the full queue %d; owner still ok with %d link(s)",
		base, peak, recordLines.Load(), st.RecordsQueued, st.RecordsDropped, n.Links)
}

// TestCorruptNetworkFileIsShown: a saved network that no longer loads (a
// damaged file) is listed with status error and why, instead of vanishing,
// and leave removes it; a crashed write's temporary file is cleaned up.
func TestCorruptNetworkFileIsShown(t *testing.T) {
	dir := t.TempDir()
	netDir := filepath.Join(dir, "state", "networks")
	if err := os.MkdirAll(netDir, 0o700); err != nil {
		t.Fatal(err)
	}
	const id = "b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1"
	os.WriteFile(filepath.Join(netDir, id+".json"), []byte(`{"version": 1, "network": "trunc`), 0o600)
	stale := filepath.Join(dir, "state", ".networks.tmp-123")
	os.WriteFile(stale, []byte("partial"), 0o600)
	old := time.Now().Add(-time.Hour)
	os.Chtimes(stale, old, old)
	testStateDirs[t] = dir
	td := startDaemon(t)
	delete(testStateDirs, t)
	n, ok := td.network(t, id)
	if !ok || n.Status != "error" || !strings.Contains(n.Error, "unreadable") {
		t.Fatalf("corrupt network listed as %+v (found %v)", n, ok)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale temporary file kept: %v", err)
	}
	td.call(t, "POST", "/v1/networks/leave", api.NetworkRequest{Network: id[:12]}, nil)
	if _, ok := td.network(t, id); ok {
		t.Fatal("still listed after leave")
	}
	if _, err := os.Stat(filepath.Join(netDir, id+".json")); !os.IsNotExist(err) {
		t.Fatalf("file kept after leave: %v", err)
	}
}

func (j *joined) engineStats() overlay.EngineStats {
	eng := j.engine()
	if eng == nil {
		return overlay.EngineStats{}
	}
	return eng.Stats()
}
