package vswitch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/kadlan/kadlan/overlay/social"
)

// ProtocolID is the libp2p protocol of member links: one long-lived stream
// per member and network, which starts with a Hello from the opener and then
// carries Messages in both directions.
const ProtocolID = "/kadlan/eth/1.0.0"

// MsgKind says what a link message carries.
type MsgKind uint8

// Message kinds.
const (
	// MsgFrame is a unicast Ethernet frame for the receiver's device.
	MsgFrame MsgKind = 1
	// MsgBroadcast is a broadcast or multicast frame preceded by its
	// SocialHeader (Message.Social).
	MsgBroadcast MsgKind = 2
	// MsgGroups is the sender's multicast group announcement
	// (EncodeGroupAnnouncement).
	MsgGroups MsgKind = 3
	// MsgRecord pushes a signed record (Definition, Certificate,
	// Revocation or Announcement; its first two bytes say which).
	MsgRecord MsgKind = 4
	// MsgFrameGSO is a unicast frame preceded by its 10-byte virtio-net
	// header (ether.VnetHdr): a TCP super-frame of up to 64 KiB carried
	// whole, which the receiver hands whole to an offload-capable device
	// or segments in software (Engine does both).
	MsgFrameGSO MsgKind = 5
)

func (k MsgKind) valid() bool { return k >= MsgFrame && k <= MsgFrameGSO }

// String names the kind.
func (k MsgKind) String() string {
	switch k {
	case MsgFrame:
		return "frame"
	case MsgBroadcast:
		return "broadcast"
	case MsgGroups:
		return "groups"
	case MsgRecord:
		return "record"
	case MsgFrameGSO:
		return "frame-gso"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Message is one unit on a link.
type Message struct {
	Kind    MsgKind
	Social  []byte // encoded SocialHeader, MsgBroadcast only
	Payload []byte // the frame, announcement or record
}

// Link message wire format: a 4-byte big-endian word whose top byte is the
// kind and whose low 24 bits are the body length, then the body. The body of
// MsgBroadcast is the social header (self-delimiting, version 3: it carries
// the origin's time and signature) followed by the frame; other bodies are
// the payload itself. The body of MsgFrameGSO must pass the checks of
// checkGSO (see GSOMinSize) or the receiver drops it.
const (
	MsgHeaderLen = 4
	// MaxMessageBody bounds a message body: room for a 64 KiB offload
	// segment, its virtio-net header and a social header.
	MaxMessageBody = 1 << 17
)

// ErrMessage is wrapped by every link decoding error.
var ErrMessage = errors.New("overlay: bad link message")

// EncodedLen is the number of bytes AppendMessage adds for m.
func (m Message) EncodedLen() int {
	return MsgHeaderLen + len(m.Social) + len(m.Payload)
}

// AppendMessage appends the wire form of m to b. Many messages appended to
// one buffer make one batched write.
func AppendMessage(b []byte, m Message) ([]byte, error) {
	body := len(m.Social) + len(m.Payload)
	if !m.Kind.valid() || body > MaxMessageBody || (m.Kind == MsgBroadcast) != (len(m.Social) > 0) {
		return b, fmt.Errorf("%w: cannot encode %v with %d+%d bytes", ErrMessage, m.Kind, len(m.Social), len(m.Payload))
	}
	b = binary.BigEndian.AppendUint32(b, uint32(m.Kind)<<24|uint32(body))
	b = append(b, m.Social...)
	return append(b, m.Payload...), nil
}

// DecodeMessage parses one message at the start of b and returns it with
// the number of bytes it took. It returns io.ErrUnexpectedEOF when b holds
// only part of a message. The returned slices alias b.
func DecodeMessage(b []byte) (Message, int, error) {
	if len(b) < MsgHeaderLen {
		return Message{}, 0, io.ErrUnexpectedEOF
	}
	w := binary.BigEndian.Uint32(b)
	kind, body := MsgKind(w>>24), int(w&0xffffff)
	if !kind.valid() {
		return Message{}, 0, fmt.Errorf("%w: unknown kind %d", ErrMessage, kind)
	}
	if body > MaxMessageBody {
		return Message{}, 0, fmt.Errorf("%w: body of %d bytes exceeds %d", ErrMessage, body, MaxMessageBody)
	}
	if len(b) < MsgHeaderLen+body {
		return Message{}, 0, io.ErrUnexpectedEOF
	}
	p := b[MsgHeaderLen : MsgHeaderLen+body]
	m := Message{Kind: kind, Payload: p}
	if kind == MsgBroadcast {
		_, n, err := social.DecodeSocialHeader(p)
		if err != nil {
			return Message{}, 0, fmt.Errorf("%w: %w", ErrMessage, err)
		}
		m.Social, m.Payload = p[:n:n], p[n:]
	}
	return m, MsgHeaderLen + body, nil
}

// Reader decodes messages from a stream with one buffer and no allocation
// per message: it reads as much as is available and hands out messages that
// alias its buffer.
type Reader struct {
	r          io.Reader
	buf        []byte
	start, end int
	err        error
}

// NewReader returns a Reader on r. bufSize (at least MaxMessageBody+4,
// which 0 selects) bounds one read; a larger buffer means fewer reads.
func NewReader(r io.Reader, bufSize int) *Reader {
	bufSize = max(bufSize, MaxMessageBody+MsgHeaderLen)
	return &Reader{r: r, buf: make([]byte, bufSize)}
}

// Next returns the next message. Its slices are valid until the following
// call to Next. At a clean end of stream between messages it returns io.EOF;
// in the middle of one, io.ErrUnexpectedEOF. A malformed message is an error
// wrapping ErrMessage, after which the stream must be closed (the framing is
// lost).
func (r *Reader) Next() (Message, error) {
	for {
		m, n, err := DecodeMessage(r.buf[r.start:r.end])
		if err == nil {
			r.start += n
			return m, nil
		}
		if err != io.ErrUnexpectedEOF {
			r.err = err
			return Message{}, err
		}
		if r.err != nil {
			if r.err == io.EOF && r.start != r.end {
				return Message{}, io.ErrUnexpectedEOF
			}
			return Message{}, r.err
		}
		if r.start > 0 { // move the partial message to the front
			r.end = copy(r.buf, r.buf[r.start:r.end])
			r.start = 0
		}
		n, err = r.r.Read(r.buf[r.end:])
		r.end += n
		if err != nil {
			r.err = err
		}
	}
}
