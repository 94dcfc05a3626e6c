package vswitch

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"

	"github.com/kadlan/kadlan/overlay/social"
)

func testMessages(t testing.TB) []Message {
	h := social.SocialHeader{ID: social.BroadcastID{Origin: 7, Seq: 9}, TTL: 3, Budget: 40, Visited: []uint32{1, 2}}
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
