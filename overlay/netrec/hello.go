package netrec

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Hello opens a link: the opener names the network and presents its
// certificate (empty on public networks) and its announcement.
type Hello struct {
	Network      NetworkID
	Certificate  []byte // encoded Certificate, may be empty
	Announcement []byte // encoded Announcement, may be empty
}

var helloMagic = [4]byte{'K', 'L', 'N', 'K'}

const (
	helloVersion   = 1
	maxHelloRecord = 1024
)

// AppendHello appends the wire form of h: "KLNK", version 1, the network
// ID, then the two records each with a uint16 length.
func AppendHello(b []byte, h Hello) ([]byte, error) {
	if len(h.Certificate) > maxHelloRecord || len(h.Announcement) > maxHelloRecord {
		return b, fmt.Errorf("%w: hello record too long", ErrMalformed)
	}
	b = append(b, helloMagic[:]...)
	b = append(b, helloVersion)
	b = append(b, h.Network[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.Certificate)))
	b = append(b, h.Certificate...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(h.Announcement)))
	return append(b, h.Announcement...), nil
}

// DecodeHello parses a whole hello.
func DecodeHello(b []byte) (Hello, error) {
	var h Hello
	d := &decoder{b: b}
	if m := d.take(4, "magic"); m != nil && [4]byte(m) != helloMagic {
		return h, fmt.Errorf("%w: not a kadlan link hello", ErrMalformed)
	}
	if v := d.u8("version"); d.err == nil && v != helloVersion {
		return h, fmt.Errorf("%w: hello version %d, want %d", ErrMalformed, v, helloVersion)
	}
	copy(h.Network[:], d.take(32, "network"))
	for _, f := range []*[]byte{&h.Certificate, &h.Announcement} {
		n := int(d.u16("record length"))
		if n > maxHelloRecord {
			d.fail("hello record of %d bytes", n)
		}
		if v := d.take(n, "record"); n > 0 && v != nil {
			*f = v
		}
	}
	if err := d.end(); err != nil {
		return Hello{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return h, nil
}

// ReadHello reads a hello from the start of a stream without reading past
// it, so that a Reader can take over.
func ReadHello(r io.Reader) (Hello, error) {
	const fixed = 4 + 1 + 32 + 2
	b := make([]byte, 0, fixed+2*maxHelloRecord+2)
	read := func(n int) error {
		if n > maxHelloRecord+fixed {
			return fmt.Errorf("%w: hello record of %d bytes", ErrMalformed, n)
		}
		b = b[:len(b)+n]
		if _, err := io.ReadFull(r, b[len(b)-n:]); err != nil {
			return fmt.Errorf("overlay: read hello: %w", err)
		}
		return nil
	}
	if err := read(fixed); err != nil {
		return Hello{}, err
	}
	if [4]byte(b[:4]) != helloMagic {
		return Hello{}, fmt.Errorf("%w: not a kadlan link hello", ErrMalformed)
	}
	for i := range 2 {
		n := int(binary.BigEndian.Uint16(b[len(b)-2:]))
		if n > maxHelloRecord {
			return Hello{}, fmt.Errorf("%w: hello record of %d bytes", ErrMalformed, n)
		}
		if i == 0 {
			n += 2 // and the second record's length
		}
		if err := read(n); err != nil {
			return Hello{}, err
		}
	}
	return DecodeHello(b)
}
