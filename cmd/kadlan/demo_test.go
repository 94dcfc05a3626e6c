package main

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"
)

// TestDemoWaitStopsOnCancel: the demo's waits end as soon as the demo is
// interrupted, with the interruption as their error.
func TestDemoWaitStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("stop")
	calls := 0
	go func() { time.Sleep(100 * time.Millisecond); cancel(stop) }()
	start := time.Now()
	err := wait(ctx, time.Minute, 10*time.Millisecond, func() error { calls++; return errors.New("not yet") })
	if !errors.Is(err, stop) {
		t.Fatalf("wait returned %v, want the cancel cause", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("wait took %v after cancel", d)
	}
	if calls < 2 {
		t.Fatalf("f called %d times", calls)
	}
	if err := wait(context.Background(), time.Minute, time.Millisecond, func() error { return nil }); err != nil {
		t.Fatal(err)
	}
}

// TestDemoNodesFlag: the demo needs two public nodes besides the bootstrap
// node, and says so before it creates anything.
func TestDemoNodesFlag(t *testing.T) {
	if err := demo(io.Discard, "/nonexistent", 1, 0); err == nil {
		t.Fatal("demo ran with --nodes 1")
	}
}
