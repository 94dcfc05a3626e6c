package netrec

import (
	"encoding/binary"
	"fmt"
	"io"
)

// Hello opens a link: the opener names the network and presents its
// certificate (empty on public networks) and its announcement, and, a node
// admitted by an invitation, its redemption.
type Hello struct {
	Network      NetworkID
	Certificate  []byte // encoded Certificate, may be empty
	Announcement []byte // encoded Announcement, may be empty
	// Invite is an encoded RedemptionSet holding the owner's capability and
	// the opener's own redemption; empty unless the opener joined with an
	// invite token and holds no certificate yet.
	Invite []byte
}

var helloMagic = [4]byte{'K', 'L', 'N', 'K'}

// Hello versions: 1 carries two records; 2 adds Invite. A hello without an
// invite is always written as version 1, so nodes that know only version 1
// accept every hello of a member that holds a certificate.
const (
	helloVersion       = 1
	helloVersionInvite = 2
	maxHelloRecord     = 1024
)

func (h *Hello) records() []*[]byte {
	if len(h.Invite) > 0 {
		return []*[]byte{&h.Certificate, &h.Announcement, &h.Invite}
	}
	return []*[]byte{&h.Certificate, &h.Announcement}
}

// AppendHello appends the wire form of h: "KLNK", the version (1, or 2
// with an invite), the network ID, then the records (two, or three with
// an invite) each with a uint16 length.
func AppendHello(b []byte, h Hello) ([]byte, error) {
	v := byte(helloVersion)
	if len(h.Invite) > 0 {
		v = helloVersionInvite
	}
	b = append(b, helloMagic[:]...)
	b = append(b, v)
	b = append(b, h.Network[:]...)
	for _, r := range h.records() {
		if len(*r) > maxHelloRecord {
			return b, fmt.Errorf("%w: hello record too long", ErrMalformed)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(*r)))
		b = append(b, *r...)
	}
	return b, nil
}

// helloRecords is the number of records a hello of version v carries (0:
// an unknown version).
func helloRecords(v byte) int {
	switch v {
	case helloVersion:
		return 2
	case helloVersionInvite:
		return 3
	}
	return 0
}

// DecodeHello parses a whole hello.
func DecodeHello(b []byte) (Hello, error) {
	var h Hello
	d := &decoder{b: b}
	if m := d.take(4, "magic"); m != nil && [4]byte(m) != helloMagic {
		return h, fmt.Errorf("%w: not a kadlan link hello", ErrMalformed)
	}
	v := d.u8("version")
	n := helloRecords(v)
	if d.err == nil && n == 0 {
		return h, fmt.Errorf("%w: hello version %d, want %d or %d", ErrMalformed, v, helloVersion, helloVersionInvite)
	}
	copy(h.Network[:], d.take(32, "network"))
	fields := []*[]byte{&h.Certificate, &h.Announcement, &h.Invite}[:max(n, 2)]
	for _, f := range fields {
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
	if v == helloVersionInvite && len(h.Invite) == 0 {
		return Hello{}, fmt.Errorf("%w: version %d hello without an invite", ErrMalformed, v)
	}
	return h, nil
}

// ReadHello reads a hello from the start of a stream without reading past
// it, so that a Reader can take over.
func ReadHello(r io.Reader) (Hello, error) {
	const fixed = 4 + 1 + 32 + 2
	b := make([]byte, 0, fixed+3*maxHelloRecord+4)
	read := func(n int) error {
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
	records := helloRecords(b[4])
	if records == 0 {
		return Hello{}, fmt.Errorf("%w: hello version %d, want %d or %d", ErrMalformed, b[4], helloVersion, helloVersionInvite)
	}
	for i := range records {
		n := int(binary.BigEndian.Uint16(b[len(b)-2:]))
		if n > maxHelloRecord {
			return Hello{}, fmt.Errorf("%w: hello record of %d bytes", ErrMalformed, n)
		}
		if i < records-1 {
			n += 2 // and the next record's length
		}
		if err := read(n); err != nil {
			return Hello{}, err
		}
	}
	return DecodeHello(b)
}
