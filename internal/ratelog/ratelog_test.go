package ratelog

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestOneLinePerReasonAndPeriod(t *testing.T) {
	var lines []string
	now := time.Unix(1000, 0)
	l := New(func(f string, a ...any) { lines = append(lines, fmt.Sprintf(f, a...)) }, func() time.Time { return now }, 10*time.Second)
	for i := range 100 {
		l.Log("bad record", "bad record %d", i)
		l.Log("bad frame", "bad frame %d", i)
	}
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), lines)
	}
	now = now.Add(10 * time.Second)
	if !l.Log("bad record", "bad record again") || !strings.Contains(lines[2], "99 more like it suppressed") {
		t.Fatalf("after the period: %q", lines)
	}
	// The reasons remembered are bounded.
	for i := range 10 * maxLogReasons {
		l.Log(fmt.Sprint("reason", i), "x")
	}
	if len(l.last) > maxLogReasons {
		t.Fatalf("%d reasons remembered", len(l.last))
	}
}
