package netrec

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"
)

func TestHello(t *testing.T) {
	h := Hello{Network: NetworkID{1, 2, 3}, Certificate: []byte("cert"), Announcement: []byte("announce")}
	b, err := AppendHello(nil, h)
	if err != nil {
		t.Fatal(err)
	}
	m := []byte("the link's first message")
	r := iotest.OneByteReader(bytes.NewReader(append(append([]byte(nil), b...), m...)))
	got, err := ReadHello(r)
	if err != nil || got.Network != h.Network || string(got.Certificate) != "cert" || string(got.Announcement) != "announce" {
		t.Fatalf("%+v %v", got, err)
	}
	// ReadHello must not have consumed what follows.
	if rest, err := io.ReadAll(r); err != nil || !bytes.Equal(rest, m) {
		t.Fatalf("after the hello: %q %v", rest, err)
	}
	empty, _ := AppendHello(nil, Hello{Network: h.Network})
	if got, err := DecodeHello(empty); err != nil || got.Certificate != nil {
		t.Fatal(got, err)
	}
	for _, bad := range [][]byte{b[:10], append(b, 0), append([]byte("XXXX"), b[4:]...)} {
		if _, err := DecodeHello(bad); err == nil {
			t.Errorf("bad hello %x accepted", bad)
		}
		if _, err := ReadHello(bytes.NewReader(bad)); err == nil && len(bad) < len(b) {
			t.Errorf("ReadHello accepted %x", bad)
		}
	}
}

func FuzzHello(f *testing.F) {
	b, _ := AppendHello(nil, Hello{Network: NetworkID{9}, Certificate: []byte("c"), Announcement: []byte("a")})
	f.Add(b)
	f.Add([]byte("KLNK"))
	b, _ = AppendHello(nil, Hello{Network: NetworkID{9}, Announcement: []byte("a"), Invite: []byte("i")})
	f.Add(b) // version 2, with an invite
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := DecodeHello(b)
		h2, err2 := ReadHello(bytes.NewReader(b))
		if err == nil {
			re, err := AppendHello(nil, h)
			if err != nil || !bytes.Equal(re, b) {
				t.Fatal("hello does not round-trip")
			}
			if err2 != nil || h2.Network != h.Network || !bytes.Equal(h2.Certificate, h.Certificate) || !bytes.Equal(h2.Invite, h.Invite) {
				t.Fatalf("ReadHello disagrees: %v", err2)
			}
		}
	})
}
