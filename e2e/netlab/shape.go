package netlab

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// LinkShape is what a host's link to the lab's Internet does to the frames
// crossing it, the same in each direction. The zero value is a perfect
// link (the switch then adds only its own ~0.1 ms).
//
// A frame from host A to host B crosses A's link, then B's, so its one-way
// delay is A.Delay+B.Delay and the RTT between A and B is
// 2*(A.Delay+B.Delay): two hosts with Delay 20ms each see an 80 ms ping.
type LinkShape struct {
	// Delay is the link's one-way delay.
	Delay time.Duration
	// Jitter adds to each frame's delay a uniformly random amount in
	// [-Jitter, +Jitter] (the sum clamped at zero). Frames never overtake
	// each other on a link: one that would leave before the frame queued
	// before it leaves with it, so jitter skews the delay upwards a little
	// when frames are close together, as on a real FIFO link.
	Jitter time.Duration
	// Loss is the probability, in [0, 1], that the link drops a frame, for
	// each frame and direction independently. 1 drops everything. A frame
	// is what the host's kernel hands over: for bulk TCP that is often a
	// TSO frame of up to 64 KB, which is lost as a whole (a burst of
	// segments), so Loss suits pings, handshakes and datagrams better than
	// loss-rate studies of bulk TCP.
	Loss float64
	// Rate limits the link to this many bits per second in each direction
	// (frame bytes, Ethernet header included); 0 is unlimited. Frames wait
	// behind the ones before them; one that would wait more than
	// MaxQueueDelay is dropped (a drop-tail router buffer).
	Rate int64
}

// MaxQueueDelay is the longest a frame waits behind others on a rate-
// limited link before the link drops it instead.
const MaxQueueDelay = 100 * time.Millisecond

// validate reports a shape that makes no sense.
func (s LinkShape) validate() error {
	switch {
	case s.Delay < 0 || s.Jitter < 0:
		return fmt.Errorf("netlab: link delay %v and jitter %v must not be negative", s.Delay, s.Jitter)
	case s.Loss < 0 || s.Loss > 1:
		return fmt.Errorf("netlab: link loss %v not in [0, 1]", s.Loss)
	case s.Rate < 0:
		return fmt.Errorf("netlab: link rate %d must not be negative", s.Rate)
	}
	return nil
}

// line is one direction of a shaped link: it decides, without goroutines
// or clocks of its own, whether a frame of size bytes handed to it at now
// is lost and when it leaves. It is safe for concurrent use.
type line struct {
	mu    sync.Mutex
	shape LinkShape
	rnd   *rand.Rand
	busy  time.Time // rate: when the link has sent what it holds
	last  time.Time // when the frame admitted last leaves

	lost, overflow uint64 // frames dropped by Loss and by a full queue
}

func newLine(s LinkShape, seed uint64) *line {
	return &line{shape: s, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

func (ln *line) set(s LinkShape) {
	ln.mu.Lock()
	ln.shape = s
	ln.mu.Unlock()
}

// admit returns when a frame of size bytes handed to the line at now
// leaves it, or ok false if the line drops it (loss or a full queue).
// Release times are non-decreasing: the line is a FIFO.
func (ln *line) admit(now time.Time, size int) (at time.Time, ok bool) {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	s := ln.shape
	if s.Loss > 0 && ln.rnd.Float64() < s.Loss {
		ln.lost++
		return time.Time{}, false
	}
	at = now
	if s.Rate > 0 {
		start := ln.busy
		if start.Before(now) {
			start = now
		}
		if start.Sub(now) > MaxQueueDelay {
			ln.overflow++
			return time.Time{}, false
		}
		ln.busy = start.Add(time.Duration(int64(size) * 8 * int64(time.Second) / s.Rate))
		at = ln.busy
	}
	d := s.Delay
	if s.Jitter > 0 {
		d += time.Duration(ln.rnd.Int64N(int64(2*s.Jitter)+1)) - s.Jitter
		if d < 0 {
			d = 0
		}
	}
	at = at.Add(d)
	if at.Before(ln.last) {
		at = ln.last
	}
	ln.last = at
	return at, true
}

// drops returns how many frames the line has dropped to loss and to a
// full queue.
func (ln *line) drops() (lost, overflow uint64) {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	return ln.lost, ln.overflow
}
