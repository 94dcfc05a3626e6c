package vswitch

import (
	"time"
)

// Defaults of the per-origin broadcast rate limit.
const (
	// DefaultBroadcastRate is how many new broadcasts per second one
	// origin may have delivered and forwarded by each receiver. ARP, NDP,
	// mDNS and DHCP on a LAN host stay far below; a multicast stream above
	// it needs a larger SwitchConfig.BroadcastRate.
	DefaultBroadcastRate = 200
	// DefaultBroadcastBurst is how many an origin may send at once.
	DefaultBroadcastBurst = 400
)

// OriginLimiter is a token bucket per key (a broadcast origin) in a bounded
// table. It is pure (callers pass now) and not safe for concurrent use.
type OriginLimiter struct {
	rate, burst float64
	max         int
	buckets     map[uint64]*bucket
	scanned     time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewOriginLimiter allows rate events per second per key with bursts of
// burst, for at most maxKeys keys at once (0 means DefaultMaxOrigins).
func NewOriginLimiter(rate, burst float64, maxKeys int) *OriginLimiter {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxOrigins
	}
	return &OriginLimiter{rate: rate, burst: max(burst, 1), max: maxKeys, buckets: map[uint64]*bucket{}}
}

// Len is the number of keys tracked.
func (l *OriginLimiter) Len() int { return len(l.buckets) }

func (l *OriginLimiter) level(b *bucket, now time.Time) float64 {
	if d := now.Sub(b.at).Seconds(); d > 0 {
		return min(l.burst, b.tokens+d*l.rate)
	}
	return b.tokens
}

// Peek reports whether key has a token at now, without taking it. An
// unknown key has a full bucket.
func (l *OriginLimiter) Peek(key uint64, now time.Time) bool {
	b := l.buckets[key]
	return b == nil || l.level(b, now) >= 1
}

// Take takes a token of key at now and reports whether there was one. When
// the table is full, buckets that have refilled (equivalent to no entry)
// are dropped; if none has, a new key is refused.
func (l *OriginLimiter) Take(key uint64, now time.Time) bool {
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.max && !l.evict(now) {
			return false
		}
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	t := l.level(b, now)
	b.at = now
	if t < 1 {
		b.tokens = t
		return false
	}
	b.tokens = t - 1
	return true
}

func (l *OriginLimiter) evict(now time.Time) bool {
	if !l.scanned.IsZero() && now.Sub(l.scanned) < time.Second {
		return false
	}
	l.scanned = now
	for k, b := range l.buckets {
		if l.level(b, now) >= l.burst {
			delete(l.buckets, k)
		}
	}
	return len(l.buckets) < l.max
}
