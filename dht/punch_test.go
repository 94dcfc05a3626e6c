package dht

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
)

// fakeClock is a clock tests move; the service's goroutine reads it too.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) now() time.Time      { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) add(d time.Duration) { c.ns.Add(int64(d)) }

func testPuncher(t *testing.T) (*puncher, *fakeClock) {
	t.Helper()
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	p, err := newPuncher(h, time.Second, nil, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.svc.Close(); h.Close() })
	c := &fakeClock{}
	c.ns.Store(time.Unix(1_000_000, 0).UnixNano())
	p.mu.Lock()
	p.now = c.now
	p.mu.Unlock()
	return p, c
}

// A failed round schedules the next one a backoff after it ends; the
// state counts rounds and failures.
func TestPunchStateAfterRounds(t *testing.T) {
	p, now := testPuncher(t)
	rp := peer.ID("remote")
	if _, ok := p.State(rp); ok {
		t.Fatal("state for a peer never punched")
	}
	p.Trace(&holepunch.Event{Remote: rp, Type: holepunch.EndHolePunchEvtT, Evt: &holepunch.EndHolePunchEvt{Error: "failed to dial"}})
	st, ok := p.State(rp)
	if !ok || st.Attempts != 1 || st.Failures != 1 || st.LastError != "failed to dial" {
		t.Fatalf("after one failed round: %+v %v", st, ok)
	}
	// Not the initiator (no inbound relayed connection seen): no plan shown.
	if st.NextIn != 0 {
		t.Fatalf("next round shown for a peer that starts the rounds itself: %v", st.NextIn)
	}
	p.mu.Lock()
	p.peers[rp].initiator = true
	p.mu.Unlock()
	now.add(15 * time.Second) // libp2p's third round ends later
	p.Trace(&holepunch.Event{Remote: rp, Type: holepunch.EndHolePunchEvtT, Evt: &holepunch.EndHolePunchEvt{Error: "again"}})
	p.Trace(&holepunch.Event{Remote: rp, Type: holepunch.StartHolePunchEvtT, Evt: &holepunch.StartHolePunchEvt{}})
	st, _ = p.State(rp)
	if st.Attempts != 2 || st.Failures != 2 || st.NextIn != punchFirstRetry {
		t.Fatalf("after the second round: %+v; want 2 rounds and the next %v after the last", st, punchFirstRetry)
	}
	p.Trace(&holepunch.Event{Remote: rp, Type: holepunch.EndHolePunchEvtT, Evt: &holepunch.EndHolePunchEvt{Success: true}})
	if st, _ = p.State(rp); st.Attempts != 3 || st.Failures != 2 {
		t.Fatalf("a successful round: %+v", st)
	}
}

// The state is bounded: rounds with more than punchPeers peers are not kept.
func TestPunchStateBounded(t *testing.T) {
	p, _ := testPuncher(t)
	for i := 0; i < punchPeers+10; i++ {
		p.Trace(&holepunch.Event{Remote: peer.ID(fmt.Sprint(i)), Type: holepunch.EndHolePunchEvtT, Evt: &holepunch.EndHolePunchEvt{}})
	}
	if len(p.peers) != punchPeers {
		t.Fatalf("%d peers kept, want %d", len(p.peers), punchPeers)
	}
	// Peers that are not connected are forgotten at the next pass.
	if due := p.due(); len(due) != 0 || len(p.peers) != 0 {
		t.Fatalf("due %v, %d kept; want none for peers that are not connected", due, len(p.peers))
	}
}

// Observed addresses: public ones only, at most punchObserved, the oldest
// dropped, and none older than punchObservedTTL offered.
func TestPunchObservedAddrs(t *testing.T) {
	p, now := testPuncher(t)
	p.observe(ma.StringCast("/ip4/192.168.1.2/tcp/4242"))
	p.observe(nil)
	if got := p.addrs(); len(got) != 0 {
		t.Fatalf("private or loopback addresses offered: %v", got)
	}
	for i := 0; i < punchObserved+5; i++ {
		now.add(time.Second)
		p.observe(ma.StringCast(fmt.Sprintf("/ip4/192.0.0.%d/udp/4242/quic-v1", 130+i)))
	}
	got := p.addrs()
	if len(got) != punchObserved {
		t.Fatalf("%d addresses offered, want %d", len(got), punchObserved)
	}
	for _, a := range got {
		if a.String() == "/ip4/192.0.0.130/udp/4242/quic-v1" {
			t.Fatalf("the oldest address was kept: %v", got)
		}
	}
	now.add(punchObservedTTL + time.Second)
	if got := p.addrs(); len(got) != 0 {
		t.Fatalf("stale addresses offered: %v", got)
	}
}
