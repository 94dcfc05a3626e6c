package social

import (
	"encoding/binary"
	"fmt"
)

// SocialHeader travels in front of every broadcast or multicast copy.
type SocialHeader struct {
	ID       BroadcastID
	HasGroup bool   // a multicast frame for Group
	Group    uint64 // meaningful only when HasGroup
	TTL      uint8  // hops this copy's receiver may still forward over
	Budget   uint16 // messages the receiver and its subtree may still send
	// Visited holds salted 32-bit hashes (VisitHash) of nodes known to have
	// the frame, oldest first. Senders share one slice between sibling
	// copies: treat it as read-only.
	Visited []uint32
	// Time is the origin's clock when it originated the broadcast, in Unix
	// milliseconds (signed with the frame). Receivers drop copies whose
	// time is far from theirs and remember, per origin, which sequence
	// numbers they delivered, so that a captured broadcast is never
	// delivered twice (Switch; see ReplayFilter).
	Time int64
	// Sig is the origin's Ed25519 signature of BroadcastDigest (network,
	// ID, time, group and frame; not TTL, Budget or Visited, which
	// forwarders change). Social carries it along unchanged; Switch signs
	// and checks it.
	Sig [SocialSigLen]byte
}

// AppendBinary appends the wire form of h to b.
func (h SocialHeader) AppendBinary(b []byte) ([]byte, error) {
	if len(h.Visited) > SocialMaxVisited {
		return b, fmt.Errorf("%w: %d visited entries, max %d", ErrSocialHeader, len(h.Visited), SocialMaxVisited)
	}
	var flags byte
	if h.HasGroup {
		flags = 1
	}
	b = append(b, socialVersion, flags, h.TTL, byte(len(h.Visited)))
	b = binary.BigEndian.AppendUint16(b, h.Budget)
	b = binary.BigEndian.AppendUint64(b, h.ID.Origin)
	b = binary.BigEndian.AppendUint32(b, h.ID.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(h.Time))
	b = append(b, h.Sig[:]...)
	if h.HasGroup {
		b = binary.BigEndian.AppendUint64(b, h.Group)
	}
	for _, v := range h.Visited {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b, nil
}

// DecodeSocialHeader parses a header at the start of b and returns it with its
// length; the frame follows it. Errors wrap ErrSocialHeader.
func DecodeSocialHeader(b []byte) (SocialHeader, int, error) {
	var h SocialHeader
	if len(b) < SocialHeaderMinLen {
		return h, 0, fmt.Errorf("%w: %d bytes, need %d", ErrSocialHeader, len(b), SocialHeaderMinLen)
	}
	if b[0] != socialVersion {
		return h, 0, fmt.Errorf("%w: version %d", ErrSocialHeader, b[0])
	}
	if b[1]&^1 != 0 {
		return h, 0, fmt.Errorf("%w: unknown flags %#x", ErrSocialHeader, b[1])
	}
	h.HasGroup, h.TTL = b[1]&1 != 0, b[2]
	n := int(b[3])
	if n > SocialMaxVisited {
		return h, 0, fmt.Errorf("%w: %d visited entries, max %d", ErrSocialHeader, n, SocialMaxVisited)
	}
	h.Budget = binary.BigEndian.Uint16(b[4:])
	h.ID.Origin = binary.BigEndian.Uint64(b[6:])
	h.ID.Seq = binary.BigEndian.Uint32(b[14:])
	h.Time = int64(binary.BigEndian.Uint64(b[18:]))
	copy(h.Sig[:], b[26:SocialHeaderMinLen])
	off, need := SocialHeaderMinLen, SocialHeaderMinLen+4*n
	if h.HasGroup {
		need += 8
	}
	if len(b) < need {
		return SocialHeader{}, 0, fmt.Errorf("%w: %d bytes, need %d", ErrSocialHeader, len(b), need)
	}
	if h.HasGroup {
		h.Group = binary.BigEndian.Uint64(b[off:])
		off += 8
	}
	if n > 0 {
		h.Visited = make([]uint32, n)
		for i := range h.Visited {
			h.Visited[i] = binary.BigEndian.Uint32(b[off+4*i:])
		}
	}
	return h, need, nil
}

// EncodeGroupAnnouncement is the wire form of a group announcement: version 1, a
// uint16 count, then the group IDs as uint64, all big-endian.
func EncodeGroupAnnouncement(groups []uint64) ([]byte, error) {
	if len(groups) > MaxAnnouncedGroups {
		return nil, fmt.Errorf("%w: %d groups, max %d", ErrSocialHeader, len(groups), MaxAnnouncedGroups)
	}
	b := make([]byte, 0, 3+8*len(groups))
	b = append(b, groupAnnounceVersion)
	b = binary.BigEndian.AppendUint16(b, uint16(len(groups)))
	for _, g := range groups {
		b = binary.BigEndian.AppendUint64(b, g)
	}
	return b, nil
}

// DecodeGroupAnnouncement parses a whole group announcement. Errors wrap ErrSocialHeader.
func DecodeGroupAnnouncement(b []byte) ([]uint64, error) {
	if len(b) < 3 || b[0] != groupAnnounceVersion {
		return nil, fmt.Errorf("%w: announcement too short or bad version", ErrSocialHeader)
	}
	n := int(binary.BigEndian.Uint16(b[1:]))
	if n > MaxAnnouncedGroups || len(b) != 3+8*n {
		return nil, fmt.Errorf("%w: announcement of %d bytes for %d groups", ErrSocialHeader, len(b), n)
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = binary.BigEndian.Uint64(b[3+8*i:])
	}
	return out, nil
}
