// Package ratelog lets a log line through once per reason and period and
// counts what it held back, so that bad input from the network cannot
// flood a node's log.
package ratelog

import (
	"sync"
	"time"
)

// Limiter lets through one log line per reason every period and counts
// what it suppressed, so that a peer sending bad input cannot flood the
// log. It is safe for concurrent use.
type Limiter struct {
	mu     sync.Mutex
	period time.Duration
	now    func() time.Time
	logf   func(format string, args ...any)
	last   map[string]logState
}

type logState struct {
	at         time.Time
	suppressed uint64
}

// maxLogReasons bounds the reasons a Limiter remembers.
const maxLogReasons = 256

// New returns a Limiter writing to logf, one line per reason every period
// by the clock now.
func New(logf func(string, ...any), now func() time.Time, period time.Duration) *Limiter {
	return &Limiter{period: period, now: now, logf: logf, last: map[string]logState{}}
}

// Log logs format with args unless a line for reason was logged less than
// a period ago; the next line logged for reason says how many were
// suppressed. It reports whether it logged.
func (l *Limiter) Log(reason, format string, args ...any) bool {
	now := l.now()
	l.mu.Lock()
	st, ok := l.last[reason]
	if ok && now.Sub(st.at) < l.period {
		st.suppressed++
		l.last[reason] = st
		l.mu.Unlock()
		return false
	}
	if !ok && len(l.last) >= maxLogReasons {
		for k, v := range l.last {
			if now.Sub(v.at) >= l.period {
				delete(l.last, k)
			}
		}
		if len(l.last) >= maxLogReasons {
			l.mu.Unlock()
			return false
		}
	}
	l.last[reason] = logState{at: now}
	l.mu.Unlock()
	if st.suppressed > 0 {
		format += " (%d more like it suppressed)"
		args = append(args, st.suppressed)
	}
	l.logf(format, args...)
	return true
}
