package overlay

import (
	"bytes"
	"errors"
	"io"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

func testMessages(t testing.TB) []Message {
	h := SocialHeader{ID: BroadcastID{Origin: 7, Seq: 9}, TTL: 3, Budget: 40, Visited: []uint32{1, 2}}
	sh, err := h.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte{0xab}, 9000)
	return []Message{
		{Kind: MsgFrame, Payload: []byte("0123456789abcdefghij")},
		{Kind: MsgBroadcast, Social: sh, Payload: []byte("broadcast frame.....")},
		{Kind: MsgGroups, Payload: []byte{1, 0, 0}},
		{Kind: MsgFrame, Payload: big},
		{Kind: MsgRecord, Payload: []byte{1, 2, 3}},
		{Kind: MsgFrame, Payload: nil},
	}
}

func equalMsg(a, b Message) bool {
	return a.Kind == b.Kind && bytes.Equal(a.Social, b.Social) && bytes.Equal(a.Payload, b.Payload)
}

func TestMessageStream(t *testing.T) {
	msgs := testMessages(t)
	var stream []byte
	for _, m := range msgs {
		var err error
		if stream, err = AppendMessage(stream, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name string
		r    io.Reader
	}{
		{"whole", bytes.NewReader(stream)},
		{"one byte at a time", iotest.OneByteReader(bytes.NewReader(stream))},
		{"half reads", iotest.HalfReader(bytes.NewReader(stream))},
		{"data with EOF", iotest.DataErrReader(bytes.NewReader(stream))},
	} {
		r := NewReader(tt.r, 0)
		for i, want := range msgs {
			got, err := r.Next()
			if err != nil || !equalMsg(got, want) {
				t.Fatalf("%s: message %d: got %v %d bytes, err %v", tt.name, i, got.Kind, len(got.Payload), err)
			}
		}
		if _, err := r.Next(); err != io.EOF {
			t.Fatalf("%s: end: %v, want io.EOF", tt.name, err)
		}
	}
	// Cut in the middle of a message: unexpected EOF.
	r := NewReader(bytes.NewReader(stream[:len(stream)-2]), 0)
	var err error
	for err == nil {
		_, err = r.Next()
	}
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated stream: %v", err)
	}
}

func TestMessageErrors(t *testing.T) {
	if _, err := AppendMessage(nil, Message{Kind: 9}); err == nil {
		t.Fatal("unknown kind encoded")
	}
	if _, err := AppendMessage(nil, Message{Kind: MsgBroadcast, Payload: []byte{1}}); err == nil {
		t.Fatal("broadcast without social header encoded")
	}
	if _, err := AppendMessage(nil, Message{Kind: MsgFrame, Payload: make([]byte, MaxMessageBody+1)}); err == nil {
		t.Fatal("oversized message encoded")
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"unknown kind", []byte{9, 0, 0, 1, 0}},
		{"kind zero", []byte{0, 0, 0, 0}},
		{"too long", []byte{1, 0xff, 0xff, 0xff}},
		{"bad social header", []byte{2, 0, 0, 3, 9, 9, 9}},
	}
	for _, tt := range tests {
		if _, _, err := DecodeMessage(tt.b); !errors.Is(err, ErrMessage) {
			t.Errorf("%s: %v", tt.name, err)
		}
		r := NewReader(bytes.NewReader(tt.b), 0)
		if _, err := r.Next(); !errors.Is(err, ErrMessage) {
			t.Errorf("%s via Reader: %v", tt.name, err)
		}
	}
}

func TestQueueDropTailAndBatches(t *testing.T) {
	q := NewQueue(100)
	m := Message{Kind: MsgFrame, Payload: make([]byte, 30)} // 34 bytes encoded
	for i := range 4 {
		ok := q.Push(m)
		if ok != (i < 2) {
			t.Fatalf("push %d: %v", i, ok)
		}
	}
	select {
	case <-q.Ready():
	default:
		t.Fatal("not ready with data queued")
	}
	b := q.Take(nil)
	if len(b) != 68 {
		t.Fatalf("batch of %d bytes, want 68", len(b))
	}
	if q.Take(nil) != nil {
		t.Fatal("second Take not empty")
	}
	// The spare buffer becomes the queue buffer: no allocation.
	q.Push(m)
	b2 := q.Take(b) // the buffer installed by the first Take; b becomes the queue's
	q.Push(m)
	b3 := q.Take(b2)
	if &b3[0] != &b[0] || &b2[0] == &b[0] {
		t.Fatal("spare buffers not alternated")
	}
	s, queued := q.Stats()
	if s.Pushed != 4 || s.Dropped != 2 || s.Batches != 3 || queued != 0 {
		t.Fatalf("%+v queued %d", s, queued)
	}
	q.Close()
	if q.Push(m) {
		t.Fatal("push after close")
	}
}

// Producers and one writer run concurrently; every accepted message comes
// out exactly once and in per-producer order.
func TestQueueConcurrent(t *testing.T) {
	q := NewQueue(4096)
	const producers, each = 4, 2000
	var wg sync.WaitGroup
	accepted := make([][]byte, producers)
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				payload := []byte{byte(p), byte(i >> 8), byte(i)}
				if q.Push(Message{Kind: MsgFrame, Payload: payload}) {
					accepted[p] = append(accepted[p], payload...)
				}
			}
		}()
	}
	done := make(chan struct{})
	got := make([][]byte, producers)
	go func() {
		defer close(done)
		var spare []byte
		for {
			b := q.Take(spare)
			if b == nil {
				q.mu.Lock()
				closed := q.closed
				q.mu.Unlock()
				if closed && q.Take(nil) == nil {
					return
				}
				<-q.Ready()
				continue
			}
			for len(b) > 0 {
				m, n, err := DecodeMessage(b)
				if err != nil {
					t.Error(err)
					return
				}
				got[m.Payload[0]] = append(got[m.Payload[0]], m.Payload...)
				b = b[n:]
			}
			spare = b[:0]
		}
	}()
	wg.Wait()
	q.Close()
	q.Push(Message{Kind: MsgFrame, Payload: []byte{0}}) // dropped, but wakes the writer
	select {
	case q.ready <- struct{}{}:
	default:
	}
	<-done
	for p := range producers {
		if !bytes.Equal(got[p], accepted[p]) {
			t.Fatalf("producer %d: %d bytes out, %d accepted", p, len(got[p]), len(accepted[p]))
		}
	}
}

func TestQueuePushWait(t *testing.T) {
	q := NewQueue(100)
	m := Message{Kind: MsgFrame, Payload: make([]byte, 60)}
	if !q.TryPush(m) || q.TryPush(m) {
		t.Fatal("TryPush wrong on empty/full queue")
	}
	if s, _ := q.Stats(); s.Dropped != 0 {
		t.Fatal("TryPush counted a drop")
	}
	// Nobody takes: the wait times out and the message is dropped.
	if q.PushWait(m, 10*time.Millisecond, nil) {
		t.Fatal("PushWait succeeded on a full queue")
	}
	if s, _ := q.Stats(); s.Dropped != 1 {
		t.Fatalf("%+v", s)
	}
	// The writer takes the batch while PushWait waits: it succeeds.
	go func() {
		time.Sleep(10 * time.Millisecond)
		q.Take(nil)
	}()
	if !q.PushWait(m, 5*time.Second, nil) {
		t.Fatal("PushWait failed although the writer made room")
	}
	// done aborts the wait.
	done := make(chan struct{})
	close(done)
	start := time.Now()
	if q.PushWait(m, 5*time.Second, done) || time.Since(start) > time.Second {
		t.Fatal("done did not abort the wait")
	}
}
