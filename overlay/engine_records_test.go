package overlay

import (
	"encoding/binary"
	"io"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/kadlan/kadlan/tap/taptest"
	"github.com/libp2p/go-libp2p/core/peer"
)

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Issue 10, item 2: a member pushing records faster than they are handled
// fills a bounded queue, not goroutines; records are handled by one
// goroutine in order, duplicates are skipped, and Close waits for it.
func TestEngineRecordQueueBounded(t *testing.T) {
	w := newTestWorld(t, 2, false)
	a, b := w.nodes[0], w.nodes[1]
	_, devB := taptest.NewPair(b.mac, b.mac, 0, 16)
	release := make(chan struct{})
	type rec struct {
		from peer.ID
		n    uint32
	}
	got := make(chan rec, 1000)
	var lines atomic.Int64
	logf := func(string, ...any) { lines.Add(1) }
	eb := New(devB, nil, b.sw, EngineConfig{TickEvery: time.Hour, Logf: logf, OnRecord: func(from peer.ID, r []byte) {
		<-release
		got <- rec{from, binary.BigEndian.Uint32(r)}
	}})
	attacker, cb := tcpPair(t)
	defer attacker.Close()
	if err := eb.AddLink(a.peer, cb, false); err != nil {
		t.Fatal(err)
	}
	before := runtime.NumGoroutine()
	const flood = 3000
	var stream []byte
	for i := range flood {
		stream, _ = vswitch.AppendMessage(stream, vswitch.Message{Kind: vswitch.MsgRecord, Payload: binary.BigEndian.AppendUint32(nil, uint32(i))})
	}
	if _, err := attacker.Write(stream); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the flood to be read", func() bool {
		s := eb.Stats()
		return s.RecordsQueued+s.RecordsDropped == flood
	})
	s := eb.Stats()
	// One record is in OnRecord, DefaultRecordQueue wait; the rest are dropped.
	if s.RecordsQueued > DefaultRecordQueue+1 || s.RecordsDropped < flood-DefaultRecordQueue-1 {
		t.Fatalf("%+v", s)
	}
	if n := runtime.NumGoroutine(); n > before+2 {
		t.Fatalf("%d goroutines during the flood, %d before", n, before)
	}
	if n := lines.Load(); n > 1 {
		t.Fatalf("%d log lines for %d dropped records", n, s.RecordsDropped)
	}
	close(release)
	last := -1
	for range s.RecordsQueued {
		r := <-got
		if r.from != a.peer || int(r.n) <= last {
			t.Fatalf("record %d from %s after %d: out of order", r.n, r.from, last)
		}
		last = int(r.n)
	}
	// The same record again and again is handled once.
	stream = stream[:0]
	for range 100 {
		stream, _ = vswitch.AppendMessage(stream, vswitch.Message{Kind: vswitch.MsgRecord, Payload: []byte{0xff, 0xff, 0xff, 0xff, 1}})
	}
	attacker.Write(stream)
	waitFor(t, "the duplicates", func() bool { return eb.Stats().RecordsDuplicate == 99 })
	if r := <-got; r.n != 0xffffffff {
		t.Fatal(r)
	}
	eb.Close()
	select {
	case r := <-got:
		t.Fatalf("record %d handled after the duplicates", r.n)
	default:
	}
}

// Close waits for a record being handled and ends the record goroutine.
func TestEngineCloseWaitsForRecords(t *testing.T) {
	w := newTestWorld(t, 2, false)
	a, b := w.nodes[0], w.nodes[1]
	_, devB := taptest.NewPair(b.mac, b.mac, 0, 16)
	in, done := make(chan struct{}), make(chan struct{})
	eb := New(devB, nil, b.sw, EngineConfig{TickEvery: time.Hour, OnRecord: func(peer.ID, []byte) {
		close(in)
		time.Sleep(50 * time.Millisecond)
		close(done)
	}})
	attacker, cb := tcpPair(t)
	defer attacker.Close()
	eb.AddLink(a.peer, cb, false)
	m, _ := vswitch.AppendMessage(nil, vswitch.Message{Kind: vswitch.MsgRecord, Payload: []byte{1}})
	attacker.Write(m)
	<-in
	eb.Close()
	select {
	case <-done:
	default:
		t.Fatal("Close returned while OnRecord was running")
	}
}

func TestRecordSetBounded(t *testing.T) {
	var r recordSet
	for i := range uint64(10 * recordDedupSize) {
		if !r.add(i, t0) {
			t.Fatal(i)
		}
	}
	if len(r.at) != recordDedupSize || len(r.ring) != recordDedupSize {
		t.Fatalf("%d/%d entries", len(r.at), len(r.ring))
	}
	last := uint64(10*recordDedupSize - 1)
	if r.add(last, t0.Add(time.Second)) || !r.add(last, t0.Add(RecordDedupWindow)) {
		t.Fatal("window")
	}
}

// slowRWC is a link whose writes take a millisecond each.
type slowRWC struct {
	frames atomic.Int64
	closed chan struct{}
}

func (s *slowRWC) Read([]byte) (int, error) { <-s.closed; return 0, io.EOF }
func (s *slowRWC) Write(p []byte) (int, error) {
	time.Sleep(time.Millisecond)
	b := p
	for len(b) >= vswitch.MsgHeaderLen {
		m, n, err := vswitch.DecodeMessage(b)
		if err != nil {
			break
		}
		if m.Kind == vswitch.MsgFrame {
			s.frames.Add(1)
		}
		b = b[n:]
	}
	return len(p), nil
}
func (s *slowRWC) Close() error {
	select {
	case <-s.closed:
	default:
		close(s.closed)
	}
	return nil
}

// With MaxWait, the device reader waits for room in a full link queue
// instead of dropping (the local kernel then paces its senders).
func TestEngineMaxWaitPushesBack(t *testing.T) {
	w := newTestWorld(t, 2, false)
	a, b := w.nodes[0], w.nodes[1]
	hostA, devA := taptest.NewPair(a.mac, a.mac, 0, 16)
	ea := New(devA, nil, a.sw, EngineConfig{TickEvery: time.Hour, QueueBytes: 3000, MaxWait: time.Second})
	defer ea.Close()
	rw := &slowRWC{closed: make(chan struct{})}
	if err := ea.AddLink(b.peer, rw, true); err != nil {
		t.Fatal(err)
	}
	f := ipv4Frame(b.mac, a.mac, a.ipv4, b.ipv4, string(make([]byte, 1400)))
	const n = 50
	for range n {
		hostA.Write(f)
	}
	waitFor(t, "the frames", func() bool { return rw.frames.Load() == n })
	links, _ := ea.Links()
	if len(links) != 1 || links[0].Queue.Dropped != 0 {
		t.Fatalf("%+v", links)
	}
}
