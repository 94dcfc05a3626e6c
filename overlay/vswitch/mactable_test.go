package vswitch

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/kadlan/kadlan/tap/ether"
	"github.com/libp2p/go-libp2p/core/peer"
)

// slowMACTable is the reference: a plain map scanned in full.
type slowMACTable struct {
	age   time.Duration
	limit int
	order int
	m     map[ether.MAC]slowEntry
}

type slowEntry struct {
	p     peer.ID
	seen  time.Time
	order int
}

func (s *slowMACTable) expire(now time.Time) int {
	n := 0
	for k, e := range s.m {
		if now.Sub(e.seen) >= s.age {
			delete(s.m, k)
			n++
		}
	}
	return n
}

func (s *slowMACTable) learn(mac ether.MAC, p peer.ID, now time.Time) {
	s.order++
	if _, ok := s.m[mac]; !ok && len(s.m) >= s.limit {
		s.expire(now)
		if len(s.m) >= s.limit {
			var oldest ether.MAC
			min := -1
			for k, e := range s.m {
				if min < 0 || e.order < min {
					oldest, min = k, e.order
				}
			}
			delete(s.m, oldest)
		}
	}
	s.m[mac] = slowEntry{p, now, s.order}
}

func (s *slowMACTable) lookup(mac ether.MAC, now time.Time) (peer.ID, bool) {
	e, ok := s.m[mac]
	if !ok {
		return "", false
	}
	if now.Sub(e.seen) >= s.age {
		delete(s.m, mac)
		return "", false
	}
	return e.p, true
}

func TestMACTableAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 7))
	peers := []peer.ID{"a", "b", "c", "d"}
	for _, limit := range []int{1, 3, 16, 64} {
		fast := NewMACTable(10*time.Second, limit)
		slow := &slowMACTable{age: 10 * time.Second, limit: limit, m: map[ether.MAC]slowEntry{}}
		now := time.Unix(1000, 0)
		for step := range 20000 {
			mac := ether.MAC{2, 0, 0, 0, 0, byte(r.IntN(40))}
			switch op := r.IntN(10); {
			case op < 4:
				p := peers[r.IntN(len(peers))]
				fast.Learn(mac, p, now)
				slow.learn(mac, p, now)
			case op < 8:
				p1, ok1 := fast.Lookup(mac, now)
				p2, ok2 := slow.lookup(mac, now)
				if p1 != p2 || ok1 != ok2 {
					t.Fatalf("limit %d step %d: Lookup(%v) = %q %v, reference %q %v", limit, step, mac, p1, ok1, p2, ok2)
				}
			case op < 9:
				if a, b := fast.Expire(now), slow.expire(now); a != b {
					t.Fatalf("limit %d step %d: Expire removed %d, reference %d", limit, step, a, b)
				}
			default:
				p := peers[r.IntN(len(peers))]
				fast.RemovePeer(p)
				for k, e := range slow.m {
					if e.p == p {
						delete(slow.m, k)
					}
				}
			}
			if fast.Len() != len(slow.m) {
				t.Fatalf("limit %d step %d: Len %d, reference %d", limit, step, fast.Len(), len(slow.m))
			}
			now = now.Add(time.Duration(r.IntN(800)) * time.Millisecond)
		}
	}
}

func TestMACTableAgeing(t *testing.T) {
	tb := NewMACTable(time.Minute, 10)
	now := time.Unix(0, 0)
	m := ether.MAC{2, 1}
	tb.Learn(m, "x", now)
	if p, ok := tb.Lookup(m, now.Add(59*time.Second)); !ok || p != "x" {
		t.Fatal("entry gone early")
	}
	tb.Learn(m, "y", now.Add(30*time.Second)) // refresh and move
	if p, ok := tb.Lookup(m, now.Add(89*time.Second)); !ok || p != "y" {
		t.Fatal("refresh did not extend or move the entry")
	}
	if _, ok := tb.Lookup(m, now.Add(90*time.Second)); ok {
		t.Fatal("entry outlived its age")
	}
}
