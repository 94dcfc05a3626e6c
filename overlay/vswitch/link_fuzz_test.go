package vswitch

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/kadlan/kadlan/overlay/social"
)

func FuzzLinkStream(f *testing.F) {
	var stream []byte
	for _, m := range testMessages(f) {
		stream, _ = AppendMessage(stream, m)
	}
	f.Add(stream)                                     // every kind, including a jumbo frame
	f.Add([]byte{2, 0, 0, social.SocialHeaderMinLen}) // broadcast claiming a minimal social header, none present
	if sh, err := (social.SocialHeader{ID: social.BroadcastID{Origin: 1, Seq: 1}, TTL: 1, Budget: 1}).AppendBinary(nil); err == nil {
		sh[0] = 1 // version 1 (unsigned): refused
		old, _ := AppendMessage(nil, Message{Kind: MsgBroadcast, Social: sh, Payload: []byte("x")})
		f.Add(old)
	}
	f.Add([]byte{1, 0, 0, 0})       // empty frame
	f.Add([]byte{0xff, 0xff, 0xff}) // partial header
	f.Fuzz(func(t *testing.T, b []byte) {
		r := NewReader(bytes.NewReader(b), 0)
		var re []byte
		for {
			m, err := r.Next()
			if err != nil {
				if err == io.EOF {
					// Everything decoded re-encodes to exactly the input.
					if !bytes.Equal(re, b) {
						t.Fatalf("re-encoding differs")
					}
				} else if err != io.ErrUnexpectedEOF && !errors.Is(err, ErrMessage) {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			var err2 error
			re, err2 = AppendMessage(re, m)
			if err2 != nil {
				t.Fatalf("decoded message does not encode: %v", err2)
			}
		}
	})
}
