package overlay

import (
	"sync"
	"time"

	"github.com/kadlan/kadlan/overlay/vswitch"
)

// DefaultQueueBytes bounds a member link's send queue: about 2 ms of
// traffic at 1 Gbit/s, so a bulk transfer does not bloat the latency of
// everything else (Ethernet drops rather than buffers).
const DefaultQueueBytes = 256 << 10

// Queue is a member link's bounded send queue. Producers (the goroutines
// that run the Switch) Push encoded messages into a byte buffer; the link's
// single writer goroutine Takes the whole buffer and writes it with one
// call, so a batch costs one stream write. When the buffer would exceed its
// limit the new message is dropped (drop-tail) and counted. Two buffers
// alternate between producers and writer, so steady-state operation
// allocates nothing.
type Queue struct {
	mu     sync.Mutex
	buf    []byte
	limit  int
	msgs   int
	stats  QueueStats
	ready  chan struct{} // holds a token while buf is not empty
	space  chan struct{} // gets a token when Take frees the buffer
	closed bool
}

// QueueStats counts what a Queue did.
type QueueStats struct {
	Pushed, Dropped uint64 // messages accepted and dropped
	Batches         uint64 // Take calls that returned data
	Bytes           uint64 // bytes accepted
}

// NewQueue returns a queue that holds at most limit bytes (0 selects
// DefaultQueueBytes). A single message larger than limit is always dropped.
func NewQueue(limit int) *Queue {
	if limit <= 0 {
		limit = DefaultQueueBytes
	}
	return &Queue{limit: limit, buf: make([]byte, 0, limit), ready: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

// PushWait is Push that, when the queue is full, waits up to maxWait for
// the writer to take the queued batch before dropping m. It lets a device
// reader push back on local senders (their kernel's queueing discipline
// then paces TCP) instead of dropping at once. done aborts the wait.
func (q *Queue) PushWait(m vswitch.Message, maxWait time.Duration, done <-chan struct{}) bool {
	var timer *time.Timer
	for {
		q.mu.Lock()
		if q.closed || m.EncodedLen() > q.limit {
			q.stats.Dropped++
			q.mu.Unlock()
			return false
		}
		if len(q.buf)+m.EncodedLen() <= q.limit {
			q.mu.Unlock()
			return q.Push(m)
		}
		q.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(maxWait)
			defer timer.Stop()
		}
		select {
		case <-q.space:
		case <-done:
			return q.Push(m)
		case <-timer.C:
			return q.Push(m) // still full: counted as a drop
		}
	}
}

// Push appends m, or drops it when the queue is full or closed; it reports
// whether m was queued. It never blocks on the writer.
func (q *Queue) Push(m vswitch.Message) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed || len(q.buf)+m.EncodedLen() > q.limit {
		q.stats.Dropped++
		return false
	}
	b, err := vswitch.AppendMessage(q.buf, m)
	if err != nil {
		q.stats.Dropped++
		return false
	}
	q.stats.Pushed++
	q.stats.Bytes += uint64(len(b) - len(q.buf))
	q.buf = b
	q.msgs++
	if q.msgs == 1 {
		select {
		case q.ready <- struct{}{}:
		default:
		}
	}
	return true
}

// TryPush is Push without counting a drop: it reports false when m does
// not fit now, leaving the caller to PushWait.
func (q *Queue) TryPush(m vswitch.Message) bool {
	q.mu.Lock()
	fits := !q.closed && len(q.buf)+m.EncodedLen() <= q.limit
	q.mu.Unlock()
	return fits && q.Push(m)
}

// Ready has a value when the queue holds data. The writer waits on it, then
// calls Take.
func (q *Queue) Ready() <-chan struct{} { return q.ready }

// Take returns everything queued, as one buffer of encoded messages, and
// installs spare (truncated; pass the buffer the previous Take returned,
// once written, or nil) as the new queue buffer. It returns nil when the
// queue is empty.
func (q *Queue) Take(spare []byte) []byte {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.msgs == 0 {
		return nil
	}
	b := q.buf
	if cap(spare) < q.limit {
		spare = make([]byte, 0, q.limit)
	}
	q.buf, q.msgs = spare[:0], 0
	q.stats.Batches++
	select { // drain a stale token
	case <-q.ready:
	default:
	}
	select { // wake a waiting PushWait
	case q.space <- struct{}{}:
	default:
	}
	return b
}

// MoveTo hands what q holds and no writer took yet to dst, ahead of
// anything pushed to dst later (a replaced link's queue to its successor);
// what does not fit dst is dropped and counted in q. Call it once q is
// closed, so nothing is pushed to q meanwhile.
func (q *Queue) MoveTo(dst *Queue) {
	q.mu.Lock()
	b, n := q.buf, q.msgs
	q.buf, q.msgs = q.buf[:0], 0
	q.mu.Unlock()
	if n == 0 {
		return
	}
	dst.mu.Lock()
	defer dst.mu.Unlock()
	if dst.closed || len(dst.buf)+len(b) > dst.limit {
		q.mu.Lock()
		q.stats.Dropped += uint64(n)
		q.mu.Unlock()
		return
	}
	dst.buf = append(dst.buf, b...)
	dst.msgs += n
	select {
	case dst.ready <- struct{}{}:
	default:
	}
}

// Close makes later Pushes drop; queued data can still be taken.
func (q *Queue) Close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}

// Stats returns the counters and the bytes queued now.
func (q *Queue) Stats() (s QueueStats, queued int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.stats, len(q.buf)
}
