package sim

import "math/rand/v2"

// Handler receives an event. arg is whatever the scheduler passed.
type Handler interface {
	Fire(now int64, arg int64)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(now, arg int64)

// Fire calls f.
func (f HandlerFunc) Fire(now, arg int64) { f(now, arg) }

type event struct {
	t   int64
	seq uint64
	h   Handler
	arg int64
}

func (a *event) before(b *event) bool {
	return a.t < b.t || a.t == b.t && a.seq < b.seq
}

// Engine is a discrete-event scheduler with a virtual clock in nanoseconds.
// Events at equal times fire in scheduling order, so runs are deterministic.
type Engine struct {
	now   int64
	seq   uint64
	q     []event
	fired uint64
}

// Now is the virtual time in nanoseconds.
func (e *Engine) Now() int64 { return e.now }

// Fired counts events run so far.
func (e *Engine) Fired() uint64 { return e.fired }

// Pending is the number of scheduled events.
func (e *Engine) Pending() int { return len(e.q) }

// At schedules h at time t (not before now).
func (e *Engine) At(t int64, h Handler, arg int64) {
	t = max(t, e.now)
	e.seq++
	e.q = append(e.q, event{t, e.seq, h, arg})
	// sift up (4-ary heap: shallower and more cache-friendly than binary)
	i := len(e.q) - 1
	for i > 0 {
		p := (i - 1) / 4
		if !e.q[i].before(&e.q[p]) {
			break
		}
		e.q[i], e.q[p] = e.q[p], e.q[i]
		i = p
	}
}

// After schedules h d nanoseconds from now.
func (e *Engine) After(d int64, h Handler, arg int64) { e.At(e.now+d, h, arg) }

// Step runs the earliest event; false when none is left.
func (e *Engine) Step() bool {
	if len(e.q) == 0 {
		return false
	}
	ev := e.q[0]
	last := len(e.q) - 1
	e.q[0] = e.q[last]
	e.q[last] = event{}
	e.q = e.q[:last]
	// sift down
	i, n := 0, len(e.q)
	for {
		m := i
		for c := 4*i + 1; c <= 4*i+4 && c < n; c++ {
			if e.q[c].before(&e.q[m]) {
				m = c
			}
		}
		if m == i {
			break
		}
		e.q[i], e.q[m] = e.q[m], e.q[i]
		i = m
	}
	e.now = ev.t
	e.fired++
	ev.h.Fire(ev.t, ev.arg)
	return true
}

// Run runs events until none is left or the next is after until (until < 0:
// no limit).
func (e *Engine) Run(until int64) {
	for len(e.q) > 0 && (until < 0 || e.q[0].t <= until) {
		e.Step()
	}
	if until > e.now {
		e.now = until
	}
}

// NewRand returns a PCG generator for seed and stream: the only source of
// randomness in a run.
func NewRand(seed, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed, stream^0x6b61646c616e73))
}

// mix is splitmix64's finaliser, for hashing small tuples.
func mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

func hash3(a, b, c uint64) uint64 { return mix(mix(mix(a)^b) ^ c) }
