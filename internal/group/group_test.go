package group

import (
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCloseWaitsAndRefuses(t *testing.T) {
	var g Group
	release := make(chan struct{})
	var done atomic.Int32
	for range 10 {
		if !g.Go(func() { <-release; done.Add(1) }) {
			t.Fatal("refused before Close")
		}
	}
	if !g.Enter() {
		t.Fatal("Enter refused before Close")
	}
	closed := make(chan struct{})
	go func() { g.Close(); close(closed) }()
	close(release)
	g.Leave()
	<-closed
	if n := done.Load(); n != 10 {
		t.Fatalf("Close returned with %d of 10 goroutines done", n)
	}
	if g.Go(func() { t.Error("ran after Close") }) || g.Enter() {
		t.Fatal("accepted work after Close")
	}
	g.Close() // idempotent
}
