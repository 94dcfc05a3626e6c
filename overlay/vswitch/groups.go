package vswitch

import (
	"encoding/binary"
	"time"

	"github.com/kadlan/kadlan/overlay/social"
	"github.com/kadlan/kadlan/tap/ether"
	"github.com/libp2p/go-libp2p/core/peer"
)

// GroupOf is the multicast group ID of an Ethernet group address.
func GroupOf(mac ether.MAC) uint64 {
	var b [8]byte
	copy(b[2:], mac[:])
	return binary.BigEndian.Uint64(b[:])
}

// JoinGroup subscribes the local host to a multicast Ethernet address, so
// that announcements tell neighbours to send that group's traffic here.
func (s *Switch) JoinGroup(mac ether.MAC) {
	s.groups[mac] = true
	s.social.JoinGroup(GroupOf(mac))
}

// LeaveGroup undoes JoinGroup.
func (s *Switch) LeaveGroup(mac ether.MAC) {
	delete(s.groups, mac)
	s.social.LeaveGroup(GroupOf(mac))
}

// Tick does the periodic work at now: it expires learned addresses and,
// every third of the group announcement lifetime, announces the local
// multicast groups to the social neighbours. Call it every few seconds.
func (s *Switch) Tick(now time.Time) []Output {
	s.reset()
	s.replay.Begin(now)
	s.learned.Expire(now)
	every := time.Duration(s.social.Params().GroupAgeSec) * time.Second / 3
	if !s.lastGroups.IsZero() && now.Sub(s.lastGroups) < every {
		return nil
	}
	s.announceGroups(now)
	return s.out
}

// announceGroups sends the group announcement to the social neighbours.
func (s *Switch) announceGroups(now time.Time) {
	s.lastGroups = now
	msg := s.GroupsMessage()
	for _, p := range s.social.Neighbours(now) {
		if _, ok := s.members[p]; ok {
			s.counters.GroupsSent++
			s.emitPeer(p, msg)
		}
	}
}

// Connected is called when a link to member p opens at now: p becomes a
// social neighbour (so that broadcasts reach new members before any
// unicast), and the returned output announces the local groups to it.
func (s *Switch) Connected(p peer.ID, now time.Time) []Output {
	s.reset()
	s.replay.Begin(now)
	if _, ok := s.members[p]; !ok {
		return nil
	}
	s.social.Touch(p, now)
	s.counters.GroupsSent++
	s.emitPeer(p, s.GroupsMessage())
	return s.out
}

// GroupsMessage is the local group announcement, to send when a link to a
// member opens (Tick repeats it to the social neighbours).
func (s *Switch) GroupsMessage() Message {
	b, err := social.EncodeGroupAnnouncement(s.social.Groups())
	if err != nil {
		b, _ = social.EncodeGroupAnnouncement(nil)
	}
	return Message{Kind: MsgGroups, Payload: b}
}
