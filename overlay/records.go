package overlay

import (
	"hash/maphash"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

type engineRecord struct {
	from peer.ID
	b    []byte
}

// recordSet remembers the hashes of recent records, for RecordDedupWindow,
// in a ring of recordDedupSize.
type recordSet struct {
	at   map[uint64]time.Time
	ring []uint64
	next int
}

// add reports whether h was not seen within the window before now, and
// remembers it.
func (r *recordSet) add(h uint64, now time.Time) bool {
	if t, ok := r.at[h]; ok && now.Sub(t) < RecordDedupWindow {
		return false
	}
	if r.at == nil {
		r.at = map[uint64]time.Time{}
	}
	if _, ok := r.at[h]; !ok {
		if len(r.ring) < recordDedupSize {
			r.ring = append(r.ring, h)
		} else {
			delete(r.at, r.ring[r.next])
			r.ring[r.next] = h
			r.next = (r.next + 1) % recordDedupSize
		}
	}
	r.at[h] = now
	return true
}

// handleRecords is the one goroutine that calls OnRecord.
func (e *Engine) handleRecords() {
	defer e.wg.Done()
	for {
		select {
		case <-e.stop:
			return
		case r := <-e.records:
			select {
			case <-e.stop:
				return
			default:
			}
			e.cfg.OnRecord(r.from, r.b)
		}
	}
}

// queueRecord hands a copy of record to the record goroutine unless it is
// a recent duplicate or the queue is full.
func (e *Engine) queueRecord(from peer.ID, record []byte) {
	if e.cfg.OnRecord == nil {
		return
	}
	h := maphash.Bytes(e.recHash, record)
	e.recMu.Lock()
	fresh := e.recSeen.add(h, e.cfg.Now())
	e.recMu.Unlock()
	if !fresh {
		e.counters.recordsDuplicate.Add(1)
		return
	}
	select {
	case e.records <- engineRecord{from, append([]byte(nil), record...)}:
		e.counters.recordsQueued.Add(1)
	default:
		e.counters.recordsDropped.Add(1)
		e.recMu.Lock()
		e.recSeen.at[h] = time.Time{} // not handled: a later copy may be
		e.recMu.Unlock()
		e.logs.Log("record queue", "overlay: record from %s dropped: queue of %d full", from, cap(e.records))
	}
}
