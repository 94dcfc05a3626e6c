package dnszone

import (
	"net/netip"
	"sync"
	"time"
)

// Limiter is a token bucket per source address, for at most max sources
// at once. It is safe for concurrent use.
type Limiter struct {
	rate, burst float64
	max         int
	now         func() time.Time

	mu  sync.Mutex
	src map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewLimiter allows each source rate queries a second with bursts of
// burst, tracking at most max sources (when full, sources whose bucket
// has refilled are forgotten; if none has, a new source is refused).
func NewLimiter(rate, burst float64, max int, now func() time.Time) *Limiter {
	return &Limiter{rate: rate, burst: burst, max: max, now: now, src: map[netip.Addr]*bucket{}}
}

// Allow reports whether one more query from src may be answered now.
func (l *Limiter) Allow(src netip.Addr) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.src[src]
	if !ok {
		if len(l.src) >= l.max {
			for a, ob := range l.src {
				if ob.level(now, l.rate, l.burst) >= l.burst {
					delete(l.src, a)
				}
			}
			if len(l.src) >= l.max {
				return false
			}
		}
		b = &bucket{tokens: l.burst, at: now}
		l.src[src] = b
	}
	b.tokens, b.at = b.level(now, l.rate, l.burst), now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

func (b *bucket) level(now time.Time, rate, burst float64) float64 {
	t := b.tokens
	if d := now.Sub(b.at); d > 0 {
		t += d.Seconds() * rate
	}
	return min(t, burst)
}
