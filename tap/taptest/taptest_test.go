package taptest

import (
	"errors"
	"net"
	"sync"
	"testing"

	"github.com/kadlan/kadlan/tap/ether"
)

func frame(n int, fill byte) []byte {
	f := make([]byte, n)
	for i := range f {
		f[i] = fill
	}
	return f
}

func TestPairCarriesFramesInOrder(t *testing.T) {
	a, b := NewPair(ether.MAC{2, 0, 0, 0, 0, 1}, ether.MAC{2, 0, 0, 0, 0, 2}, 0, 4)
	defer a.Close()
	for i := range 3 {
		if _, err := a.Write(frame(60+i, byte(i))); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 2000)
	for i := range 3 {
		n, err := b.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		if n != 60+i || buf[0] != byte(i) {
			t.Fatalf("frame %d: got len %d first byte %d", i, n, buf[0])
		}
	}
	if a.MTU() != DefaultMTU || b.MAC() != (ether.MAC{2, 0, 0, 0, 0, 2}) {
		t.Fatal("wrong MTU or MAC")
	}
}

func TestWriteRejectsBadSizes(t *testing.T) {
	a, _ := NewPair(ether.MAC{}, ether.MAC{}, 100, 1)
	if _, err := a.Write(frame(13, 0)); err == nil {
		t.Fatal("short frame accepted")
	}
	if _, err := a.Write(frame(100+14+5, 0)); err == nil {
		t.Fatal("oversized frame accepted")
	}
}

func TestTryWriteDropsWhenFull(t *testing.T) {
	a, b := NewPair(ether.MAC{}, ether.MAC{}, 0, 1)
	if ok, err := a.TryWrite(frame(60, 1)); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if ok, err := a.TryWrite(frame(60, 2)); ok || err != nil {
		t.Fatal("second write should be dropped", ok, err)
	}
	buf := make([]byte, 100)
	if n, _ := b.Read(buf); n != 60 || buf[0] != 1 {
		t.Fatal("wrong frame")
	}
}

func TestReadTruncationReportsFullLength(t *testing.T) {
	a, b := NewPair(ether.MAC{}, ether.MAC{}, 0, 1)
	a.Write(frame(100, 7))
	buf := make([]byte, 20)
	n, err := b.Read(buf)
	if err != nil || n != 100 {
		t.Fatal(n, err)
	}
}

func TestCloseUnblocksBothEnds(t *testing.T) {
	a, b := NewPair(ether.MAC{}, ether.MAC{}, 0, 1)
	a.Write(frame(60, 0)) // fills b's queue
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Add(2)
	go func() { defer wg.Done(); _, err := a.Read(make([]byte, 100)); errs <- err }()
	go func() { defer wg.Done(); _, err := a.Write(frame(60, 0)); errs <- err }()
	a.Close()
	b.Close() // second close of the shared pair must not panic
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("got %v, want net.ErrClosed", err)
		}
	}
	if _, err := b.Write(frame(60, 0)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write after close: %v", err)
	}
}
