package vswitch

import (
	"time"

	"github.com/kadlan/kadlan/tap/ether"
	"github.com/libp2p/go-libp2p/core/peer"
)

// MACTable maps learned Ethernet addresses to the member behind them, with
// ageing and a size bound. Entries are kept in least-recently-learned order
// in a slab, so Learn, Lookup and Expire cost O(1) per entry touched and
// allocate nothing once the slab has grown. Times passed in must not
// decrease (use a monotonic clock). Not safe for concurrent use.
type MACTable struct {
	age        time.Duration
	limit      int
	idx        map[ether.MAC]int32
	ents       []macEntry
	free       []int32
	head, tail int32 // most recently learned at head; -1 when empty
}

type macEntry struct {
	mac        ether.MAC
	peer       peer.ID
	seen       time.Time
	prev, next int32
}

// NewMACTable returns a table whose entries expire age after they were last
// learned and which holds at most limit entries (the least recently learned
// is evicted to make room).
func NewMACTable(age time.Duration, limit int) *MACTable {
	limit = max(limit, 1)
	return &MACTable{age: age, limit: limit, idx: make(map[ether.MAC]int32), head: -1, tail: -1}
}

// Len is the number of entries, expired ones not yet removed included.
func (t *MACTable) Len() int { return len(t.idx) }

func (t *MACTable) unlink(i int32) {
	e := &t.ents[i]
	if e.prev >= 0 {
		t.ents[e.prev].next = e.next
	} else {
		t.head = e.next
	}
	if e.next >= 0 {
		t.ents[e.next].prev = e.prev
	} else {
		t.tail = e.prev
	}
}

func (t *MACTable) pushFront(i int32) {
	e := &t.ents[i]
	e.prev, e.next = -1, t.head
	if t.head >= 0 {
		t.ents[t.head].prev = i
	}
	t.head = i
	if t.tail < 0 {
		t.tail = i
	}
}

func (t *MACTable) remove(i int32) {
	t.unlink(i)
	delete(t.idx, t.ents[i].mac)
	t.ents[i].peer = ""
	t.free = append(t.free, i)
}

// Learn records that mac is behind p, as seen at now.
func (t *MACTable) Learn(mac ether.MAC, p peer.ID, now time.Time) {
	if i, ok := t.idx[mac]; ok {
		t.unlink(i)
		t.ents[i].peer, t.ents[i].seen = p, now
		t.pushFront(i)
		return
	}
	if len(t.idx) >= t.limit {
		t.Expire(now)
		if len(t.idx) >= t.limit {
			t.remove(t.tail)
		}
	}
	var i int32
	if n := len(t.free); n > 0 {
		i, t.free = t.free[n-1], t.free[:n-1]
	} else {
		t.ents = append(t.ents, macEntry{})
		i = int32(len(t.ents) - 1)
	}
	t.ents[i] = macEntry{mac: mac, peer: p, seen: now}
	t.pushFront(i)
	t.idx[mac] = i
}

// Lookup returns the member behind mac if it was learned less than the
// age ago. An expired entry is removed.
func (t *MACTable) Lookup(mac ether.MAC, now time.Time) (peer.ID, bool) {
	i, ok := t.idx[mac]
	if !ok {
		return "", false
	}
	if now.Sub(t.ents[i].seen) >= t.age {
		t.remove(i)
		return "", false
	}
	return t.ents[i].peer, true
}

// Expire removes every entry learned age or longer before now and returns
// how many it removed.
func (t *MACTable) Expire(now time.Time) int {
	n := 0
	for t.tail >= 0 && now.Sub(t.ents[t.tail].seen) >= t.age {
		t.remove(t.tail)
		n++
	}
	return n
}

// RemovePeer forgets every address learned behind p (for example when its
// membership ends).
func (t *MACTable) RemovePeer(p peer.ID) {
	for i := t.head; i >= 0; {
		next := t.ents[i].next
		if t.ents[i].peer == p {
			t.remove(i)
		}
		i = next
	}
}
