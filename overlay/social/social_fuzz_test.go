package social

import (
	"bytes"
	"testing"
)

// FuzzDecodeSocialHeader: garbage never panics, and whatever decodes re-encodes to
// the same bytes (the format is canonical).
func FuzzDecodeSocialHeader(f *testing.F) {
	plain, _ := SocialHeader{ID: BroadcastID{1, 2}, TTL: 7, Budget: 128}.AppendBinary(nil)
	f.Add(plain) // broadcast, no visited list
	group, _ := SocialHeader{ID: BroadcastID{3, 4}, HasGroup: true, Group: 0x01005e0000fb, TTL: 1,
		Budget: 9, Visited: []uint32{5, 6}}.AppendBinary(nil)
	f.Add(group)                  // mDNS multicast with two visited hashes
	f.Add(append(group, 1, 2, 3)) // frame bytes follow the header
	f.Add(group[:len(group)-1])   // truncated visited list
	signed := SocialHeader{ID: BroadcastID{5, 6}, TTL: 2, Budget: 3, Time: 1795000000000}
	for i := range signed.Sig {
		signed.Sig[i] = byte(i)
	}
	sb, _ := signed.AppendBinary(nil)
	f.Add(sb)                          // a non-zero signature
	v1 := append([]byte{1}, sb[1:]...) // version 1 (unsigned) is refused
	f.Add(v1)
	v2 := append([]byte{2}, sb[1:]...) // version 2 (no origin time) is refused
	f.Add(v2)
	f.Add([]byte{2, 0x80, 0, 0})                              // unknown flag, too short
	f.Add(bytes.Repeat([]byte{1}, 300))                       // version 1
	f.Add(append([]byte{2}, bytes.Repeat([]byte{1}, 300)...)) // visited count 1, group flag
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := DecodeSocialHeader(b)
		if err != nil {
			return
		}
		if n > len(b) || n < SocialHeaderMinLen || n > SocialHeaderMaxLen {
			t.Fatalf("length %d of %d", n, len(b))
		}
		enc, err := h.AppendBinary(nil)
		if err != nil || !bytes.Equal(enc, b[:n]) {
			t.Fatalf("re-encode %x != %x (%v)", enc, b[:n], err)
		}
	})
}

func FuzzDecodeGroupAnnouncement(f *testing.F) {
	b, _ := EncodeGroupAnnouncement([]uint64{1, 0x01005e0000fb})
	f.Add(b)
	f.Add([]byte{1, 0, 0})
	f.Add([]byte{1, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		gs, err := DecodeGroupAnnouncement(b)
		if err != nil {
			return
		}
		enc, err := EncodeGroupAnnouncement(gs)
		if err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("re-encode %x != %x", enc, b)
		}
	})
}
