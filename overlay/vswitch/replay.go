package vswitch

import "time"

// Broadcast freshness: why a captured broadcast is never delivered twice.
//
// The social layer's de-duplication ring only remembers the last DedupSize
// broadcast IDs, so on its own it cannot stop a member from replaying a
// captured broadcast once enough others have gone by. Every broadcast
// therefore carries its origin's time (SocialHeader.Time, Unix ms), covered
// by the origin's signature, and every receiver keeps a ReplayFilter:
//
//   - a copy whose time is more than Window away from the receiver's clock
//     is dropped (stale), as is one originated before the receiver started
//     (a restarted receiver has forgotten what it delivered);
//   - per origin, the filter keeps the highest sequence number seen and a
//     bitmap of the ReplayWindowBits before it (the anti-replay window of
//     IPsec, RFC 4303, and WireGuard): a sequence number already marked, or
//     older than the window, is a replay;
//   - an origin whose sequence number jumps (a restart: the daemon starts
//     each run at a random point) is accepted when its time is later than
//     every time accepted from it before, since a replay can only carry a
//     time already seen; the window then restarts at the new number, and
//     anything older than that broadcast's time is refused from then on.
//
// The table of origins is bounded (MaxOrigins). An origin is evicted only
// once everything accepted from it is older than Window, so that a replay
// of it would be refused as stale anyway; when every entry is still live,
// broadcasts of new origins are refused (counted) rather than letting the
// filter forget.

// ReplayWindowBits is the size of the per-origin sequence window: how far
// out of order an origin's broadcasts may arrive and still be delivered.
const ReplayWindowBits = 512

// ReplayVerdict is the outcome of ReplayFilter.Check.
type ReplayVerdict uint8

// Replay verdicts.
const (
	ReplayFresh ReplayVerdict = iota // new: deliver
	ReplayStale                      // time outside the window, or before the filter started
	ReplaySeen                       // already accepted, or older than the window
	ReplayFull                       // too many live origins to remember another
)

type replayOrigin struct {
	hi    uint32 // highest sequence number accepted (bit 0 of bits)
	bits  [ReplayWindowBits / 64]uint64
	maxT  int64 // latest time accepted
	baseT int64 // time of the broadcast that started the current window
}

// ReplayFilter remembers which broadcasts were accepted from which origin.
// It is pure (callers pass now) and not safe for concurrent use.
type ReplayFilter struct {
	window  int64 // ms
	max     int
	start   int64 // ms; zero until the first call when not given
	origins map[uint64]*replayOrigin
	scanned int64 // last full-table eviction scan, ms
}

// NewReplayFilter returns a filter accepting times within window of now
// (0 means 30 s), tracking at most maxOrigins origins (0 means 4096).
// start is when the filter's owner started; broadcasts originated before it
// are refused. A zero start means the first now passed to Check.
func NewReplayFilter(window time.Duration, maxOrigins int, start time.Time) *ReplayFilter {
	if window <= 0 {
		window = DefaultBroadcastWindow
	}
	if maxOrigins <= 0 {
		maxOrigins = DefaultMaxOrigins
	}
	f := &ReplayFilter{window: window.Milliseconds(), max: maxOrigins, origins: map[uint64]*replayOrigin{}}
	if !start.IsZero() {
		f.start = start.UnixMilli()
	}
	return f
}

// Defaults of the broadcast defences.
const (
	DefaultBroadcastWindow = 30 * time.Second
	DefaultMaxOrigins      = 4096
)

// Len is the number of origins tracked.
func (f *ReplayFilter) Len() int { return len(f.origins) }

// Begin sets the start time to now unless it is set already.
func (f *ReplayFilter) Begin(now time.Time) {
	if f.start == 0 {
		f.start = now.UnixMilli()
	}
}

// Fresh reports whether a broadcast time t (Unix ms) is acceptable at now:
// within the window and not before the filter started (Begin, or the start
// given to NewReplayFilter; the first call to Fresh or Check otherwise).
func (f *ReplayFilter) Fresh(t int64, now time.Time) bool {
	f.Begin(now)
	n := now.UnixMilli()
	return t >= f.start && t >= n-f.window && t <= n+f.window
}

// Check decides on broadcast seq of origin with time t at now and, when it
// is fresh, remembers it.
func (f *ReplayFilter) Check(origin uint64, seq uint32, t int64, now time.Time) ReplayVerdict {
	if !f.Fresh(t, now) {
		return ReplayStale
	}
	o := f.origins[origin]
	if o == nil {
		if len(f.origins) >= f.max && !f.evict(now.UnixMilli()) {
			return ReplayFull
		}
		o = &replayOrigin{}
		o.reset(seq, t)
		f.origins[origin] = o
		return ReplayFresh
	}
	if t < o.baseT {
		return ReplaySeen // before the origin's current run (or its first copy here)
	}
	diff := int32(seq - o.hi)
	switch {
	case diff > 0:
		o.shift(uint32(diff))
		o.hi = seq
		o.bits[0] |= 1
	case diff > -ReplayWindowBits && !o.has(uint32(-diff)):
		o.set(uint32(-diff))
	case t > o.maxT:
		// Marked or older than the window, but later than anything
		// accepted from this origin: not a replay, so a restart that
		// reused or jumped the sequence. Start a new window here.
		o.reset(seq, t)
	default:
		return ReplaySeen
	}
	o.maxT = max(o.maxT, t)
	return ReplayFresh
}

func (o *replayOrigin) reset(seq uint32, t int64) {
	*o = replayOrigin{hi: seq, maxT: t, baseT: t}
	o.bits[0] = 1
}

func (o *replayOrigin) has(i uint32) bool { return o.bits[i/64]&(1<<(i%64)) != 0 }
func (o *replayOrigin) set(i uint32)      { o.bits[i/64] |= 1 << (i % 64) }

// shift moves the window up by n: bit i becomes bit i+n.
func (o *replayOrigin) shift(n uint32) {
	const words = ReplayWindowBits / 64
	if n >= ReplayWindowBits {
		o.bits = [words]uint64{}
		return
	}
	w, b := int(n/64), n%64
	for i := words - 1; i >= 0; i-- {
		var v uint64
		if j := i - w; j >= 0 {
			v = o.bits[j] << b
			if b > 0 && j > 0 {
				v |= o.bits[j-1] >> (64 - b)
			}
		}
		o.bits[i] = v
	}
}

// evict removes every origin whose latest accepted time is outside the
// window (a replay of it is stale anyway) and reports whether it freed
// room. It scans the table at most once per second.
func (f *ReplayFilter) evict(now int64) bool {
	if now-f.scanned < 1000 && f.scanned != 0 {
		return false
	}
	f.scanned = now
	for k, o := range f.origins {
		if o.maxT < now-f.window {
			delete(f.origins, k)
		}
	}
	return len(f.origins) < f.max
}
