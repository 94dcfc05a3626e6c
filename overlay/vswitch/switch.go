package vswitch

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/overlay/social"
	"github.com/kadlan/kadlan/tap/ether"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// SwitchConfig describes the local node on one network. Zero fields take
// the documented defaults.
type SwitchConfig struct {
	Network netrec.NetworkID
	Self    peer.ID
	// MAC is the local device's address; zero means MemberMAC(Network, Self).
	MAC ether.MAC
	// IPv4 and IPv6 are the local addresses, so that the switch does not
	// answer ARP or NDP for them. A zero IPv6 means MemberIPv6.
	IPv4, IPv6 netip.Addr
	// Social parameterises broadcast and multicast; zero fields take
	// DefaultSocialParams (use Definition.Broadcast.Social()).
	Social social.SocialParams
	// MACAge is how long a learned (bridged) address lives; 0 means 5 min.
	MACAge time.Duration
	// MaxLearned bounds the learned-address table; 0 means 1024.
	MaxLearned int
	// AllowBridging accepts frames whose source address is not the
	// sending member's derived MAC (hosts bridged behind a member), and
	// local frames from addresses other than MAC. Members' derived MACs
	// stay reserved to their owners. Off by default.
	AllowBridging bool
	// Key is the node's libp2p identity key (Ed25519, the key of Self): it
	// signs the broadcasts and multicasts this node originates. Membership
	// cannot know it; the daemon sets it. Without a key the switch still
	// checks, delivers and forwards other members' broadcasts but refuses
	// to originate unsigned ones (counted in DropNoKey).
	Key crypto.PrivKey
	// FirstSequence is the sequence number of this node's first broadcast
	// minus one. Receivers drop a broadcast ID they have seen, so a node
	// that restarts must not count from zero again: the daemon passes a
	// random value. Zero starts at 1 (tests, the simulator).
	FirstSequence uint32
	// BroadcastWindow is how far a broadcast's signed origin time may be
	// from this node's clock (either way) for it to be accepted; 0 means
	// DefaultBroadcastWindow (30 s). Members' clocks must agree this well.
	BroadcastWindow time.Duration
	// Start is when this node started on the network: broadcasts
	// originated before it are refused, since a restarted node no longer
	// knows which it delivered. Zero means the first time passed to a
	// Switch method (NewEngine passes its clock's time at once).
	Start time.Time
	// MaxOrigins bounds the origins whose sequence windows and rate
	// buckets the switch remembers; 0 means DefaultMaxOrigins (4096).
	MaxOrigins int
	// BroadcastRate and BroadcastBurst bound the new broadcasts and
	// multicasts per second that one origin gets delivered and forwarded
	// here (a token bucket per origin); 0 means DefaultBroadcastRate (200)
	// and DefaultBroadcastBurst (400). Unicast is not limited.
	BroadcastRate, BroadcastBurst float64
}

// SwitchMember is an authorized member as the switch needs it.
type SwitchMember struct {
	Peer peer.ID
	MAC  ether.MAC  // zero: MemberMAC(network, Peer)
	IPv4 netip.Addr // invalid when unknown
	IPv6 netip.Addr // zero: MemberIPv6(network, Peer)
}

// OutputKind says where an Output goes.
type OutputKind uint8

// Output kinds.
const (
	// ToLocal: write Msg.Payload (an Ethernet frame) to the local device.
	ToLocal OutputKind = 1
	// ToPeer: push Msg onto the link queue of Peer.
	ToPeer OutputKind = 2
)

// Output is one action for the caller. Its slices alias the frame passed
// in or the switch's scratch buffers: they are valid until the next call to
// a Switch method, so copy (Queue.Push does) before that.
type Output struct {
	Kind OutputKind
	Peer peer.ID
	Msg  Message
}

// Counters count what a Switch did; every dropped frame is in exactly one
// Drop counter.
type Counters struct {
	LocalIn  uint64 `json:"local_in"`  // frames from the local device
	RemoteIn uint64 `json:"remote_in"` // messages from members

	UnicastOut         uint64 `json:"unicast_out"`
	UnicastDelivered   uint64 `json:"unicast_delivered"`
	BroadcastOrigin    uint64 `json:"broadcast_origin"`    // local broadcasts started
	BroadcastSent      uint64 `json:"broadcast_sent"`      // copies sent (origin and forwards)
	BroadcastDelivered uint64 `json:"broadcast_delivered"` // remote broadcasts delivered
	BroadcastDuplicate uint64 `json:"broadcast_duplicate"`
	ARPAnswered        uint64 `json:"arp_answered"`
	NDPAnswered        uint64 `json:"ndp_answered"`
	GroupsHeard        uint64 `json:"groups_heard"`
	GroupsSent         uint64 `json:"groups_sent"`
	ReportsSnooped     uint64 `json:"reports_snooped"` // local IGMP/MLD reports consumed

	DropMalformed   uint64 `json:"drop_malformed"`    // unparsable frame or message
	DropNotMember   uint64 `json:"drop_not_member"`   // sender is not an authorized member
	DropSpoofed     uint64 `json:"drop_spoofed"`      // source MAC or IP of another member
	DropUnknownDest uint64 `json:"drop_unknown_dest"` // unicast to an unknown address
	DropLocalSource uint64 `json:"drop_local_source"` // local frame with a foreign source MAC
	DropNotForUs    uint64 `json:"drop_not_for_us"`   // remote unicast for another address
	DropOwnDAD      uint64 `json:"drop_own_dad"`      // local ARP/NDP probes for own addresses
	DropBadOrigin   uint64 `json:"drop_bad_origin"`   // broadcast not signed by the member its origin names
	DropNoKey       uint64 `json:"drop_no_key"`       // local broadcast while the switch has no signing key
	DropStale       uint64 `json:"drop_stale"`        // broadcast whose origin time is outside the window
	DropReplay      uint64 `json:"drop_replay"`       // broadcast already delivered (replayed), or origin table full
	DropRateLimit   uint64 `json:"drop_rate_limit"`   // broadcast beyond its origin's rate limit
}

// Switch is the Ethernet switch of one network as a pure state machine:
// frames and time go in, Outputs come out; it does no I/O, starts no
// goroutines and reads no clock. It is not safe for concurrent use.
//
// Unicast goes to the member owning the destination MAC (derived MACs are
// known in advance; bridged ones are learned). ARP and NDP for members'
// addresses are answered locally. Broadcast and multicast go through
// implicit social switching (Social). Frames from non-members, and frames
// whose source MAC or IP address belongs to another member, are dropped and
// counted. A broadcast must carry its origin's signature (SwitchConfig.Key
// signs, every receiver checks before delivering or forwarding), so that a
// member cannot pass its frames off as another member's broadcast.
type Switch struct {
	cfg     SwitchConfig
	social  *social.Social[peer.ID]
	members map[peer.ID]*SwitchMember
	byMAC   map[ether.MAC]peer.ID
	byIP    map[netip.Addr]peer.ID // IPv4, IPv6 and EUI-64 link-local
	byHash  map[uint64]peer.ID     // PeerHash, to find a broadcast's origin
	pubs    map[peer.ID]crypto.PubKey
	learned *MACTable
	groups  map[ether.MAC]bool

	out      []Output
	scratch  []byte
	changes  []groupChange
	counters Counters

	lastGroups time.Time

	// verified remembers, per recent broadcast ID, the digest and signature
	// that checked out, so that duplicates cost a SHA-256, not an Ed25519
	// verification. Only good results are kept: a forged first copy must
	// not make the genuine one look bad.
	verified     map[social.BroadcastID]verifiedBroadcast
	verifiedRing []social.BroadcastID
	verifiedNext int

	replay *ReplayFilter  // per-origin freshness (see replay.go)
	limit  *OriginLimiter // per-origin broadcast rate
	// badSig is a bucket per sending member for signatures that failed:
	// a member forwards only copies it verified, so one that sends bad
	// signatures is forging, and once its bucket is empty its copies
	// that would need a verification are dropped without one.
	badSig        *OriginLimiter
	verifications uint64 // Ed25519 verifications done (tests)
	// groupsIn is a bucket per sending member for group announcements,
	// which cost up to ~100 us each to apply.
	groupsIn *OriginLimiter
}

type verifiedBroadcast struct {
	digest [sha256.Size]byte
	sig    [social.SocialSigLen]byte
}

// NewSwitch returns a switch with no members.
func NewSwitch(cfg SwitchConfig) (*Switch, error) {
	if cfg.Self == "" {
		return nil, errors.New("overlay: switch: Self is required")
	}
	if cfg.MAC.IsZero() {
		cfg.MAC = netrec.MemberMAC(cfg.Network, cfg.Self)
	}
	if cfg.MAC.IsMulticast() {
		return nil, fmt.Errorf("overlay: switch: MAC %v is multicast", cfg.MAC)
	}
	if !cfg.IPv6.IsValid() {
		cfg.IPv6 = netrec.MemberIPv6(cfg.Network, cfg.Self)
	}
	if cfg.MACAge == 0 {
		cfg.MACAge = 5 * time.Minute
	}
	if cfg.MaxLearned == 0 {
		cfg.MaxLearned = 1024
	}
	if cfg.Key != nil {
		if id, err := peer.IDFromPrivateKey(cfg.Key); err != nil || id != cfg.Self {
			return nil, fmt.Errorf("overlay: switch: Key is not the key of %s", cfg.Self)
		}
	}
	soc, err := social.NewSocial(cfg.Self, netrec.PeerHash, cfg.Social)
	if err != nil {
		return nil, err
	}
	soc.SetSequence(cfg.FirstSequence)
	if cfg.BroadcastWindow <= 0 {
		cfg.BroadcastWindow = DefaultBroadcastWindow
	}
	if cfg.MaxOrigins <= 0 {
		cfg.MaxOrigins = DefaultMaxOrigins
	}
	if cfg.BroadcastRate <= 0 {
		cfg.BroadcastRate = DefaultBroadcastRate
	}
	if cfg.BroadcastBurst <= 0 {
		cfg.BroadcastBurst = DefaultBroadcastBurst
	}
	s := &Switch{
		cfg: cfg, social: soc,
		members:  map[peer.ID]*SwitchMember{},
		byMAC:    map[ether.MAC]peer.ID{},
		byIP:     map[netip.Addr]peer.ID{},
		byHash:   map[uint64]peer.ID{},
		pubs:     map[peer.ID]crypto.PubKey{},
		verified: map[social.BroadcastID]verifiedBroadcast{},
		learned:  NewMACTable(cfg.MACAge, cfg.MaxLearned),
		groups:   map[ether.MAC]bool{},
		scratch:  make([]byte, 0, 4096),
		replay:   NewReplayFilter(cfg.BroadcastWindow, cfg.MaxOrigins, cfg.Start),
		limit:    NewOriginLimiter(cfg.BroadcastRate, cfg.BroadcastBurst, cfg.MaxOrigins),
		badSig:   NewOriginLimiter(BadSignatureRate, BadSignatureBurst, cfg.MaxOrigins),
		groupsIn: NewOriginLimiter(GroupAnnouncementRate, GroupAnnouncementBurst, cfg.MaxOrigins),
	}
	// Groups every IPv4/IPv6 host listens to.
	for _, g := range []ether.MAC{
		{0x33, 0x33, 0, 0, 0, 1},       // IPv6 all-nodes
		{0x33, 0x33, 0, 0, 0, 0xfb},    // mDNS IPv6
		{0x01, 0x00, 0x5e, 0, 0, 0xfb}, // mDNS IPv4
		{0x01, 0x00, 0x5e, 0, 0, 1},    // IPv4 all-hosts
		ether.IPv6Multicast(ether.SolicitedNode(cfg.IPv6)),
		ether.IPv6Multicast(ether.SolicitedNode(ether.LinkLocal(cfg.MAC))),
	} {
		s.JoinGroup(g)
	}
	return s, nil
}

// SetSelfIPv4 changes the local IPv4 address (after a conflict moved a
// derived address, or a new certificate assigned one).
func (s *Switch) SetSelfIPv4(ip netip.Addr) { s.cfg.IPv4 = ip }

// Config returns the configuration with defaults filled in.
func (s *Switch) Config() SwitchConfig { return s.cfg }

// Counters returns a copy of the counters.
func (s *Switch) Counters() Counters { return s.counters }

// Social exposes the broadcast state (for status output and tests).
func (s *Switch) Social() *social.Social[peer.ID] { return s.social }

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

// SetMember adds or updates an authorized member.
func (s *Switch) SetMember(m SwitchMember) {
	if m.Peer == s.cfg.Self {
		return
	}
	if m.MAC.IsZero() {
		m.MAC = netrec.MemberMAC(s.cfg.Network, m.Peer)
	}
	if !m.IPv6.IsValid() {
		m.IPv6 = netrec.MemberIPv6(s.cfg.Network, m.Peer)
	}
	s.RemoveMember(m.Peer)
	mm := m
	s.members[m.Peer] = &mm
	s.byMAC[m.MAC] = m.Peer
	if m.IPv4.IsValid() {
		s.byIP[m.IPv4] = m.Peer
	}
	s.byIP[m.IPv6] = m.Peer
	s.byIP[ether.LinkLocal(m.MAC)] = m.Peer
	s.byHash[netrec.PeerHash(m.Peer)] = m.Peer
	if pub, err := m.Peer.ExtractPublicKey(); err == nil {
		s.pubs[m.Peer] = pub // otherwise its broadcasts never verify
	}
}

// RemoveMember drops a member (left, revoked or expired): its frames are
// refused from now on and nothing is sent to it.
func (s *Switch) RemoveMember(p peer.ID) {
	m, ok := s.members[p]
	if !ok {
		return
	}
	delete(s.members, p)
	if s.byMAC[m.MAC] == p {
		delete(s.byMAC, m.MAC)
	}
	for _, a := range []netip.Addr{m.IPv4, m.IPv6, ether.LinkLocal(m.MAC)} {
		if a.IsValid() && s.byIP[a] == p {
			delete(s.byIP, a)
		}
	}
	if s.byHash[netrec.PeerHash(p)] == p {
		delete(s.byHash, netrec.PeerHash(p))
	}
	delete(s.pubs, p)
	s.learned.RemovePeer(p)
	s.social.Forget(p)
}

// Member returns the member entry of p.
func (s *Switch) Member(p peer.ID) (SwitchMember, bool) {
	m, ok := s.members[p]
	if !ok {
		return SwitchMember{}, false
	}
	return *m, true
}

// IsMember reports whether p is an authorized member (see SetMember).
func (s *Switch) IsMember(p peer.ID) bool {
	_, ok := s.members[p]
	return ok
}

// Self is this node's address.
func (s *Switch) Self() peer.ID { return s.cfg.Self }

// BeginBroadcasts tells the replay filter that broadcasts originated before
// now may have been delivered by an earlier run of this node: they are
// refused (see ReplayFilter.Begin).
func (s *Switch) BeginBroadcasts(now time.Time) { s.replay.Begin(now) }

// NumMembers is the number of authorized members (self excluded).
func (s *Switch) NumMembers() int { return len(s.members) }

func (s *Switch) reset() {
	s.out = s.out[:0]
	s.scratch = s.scratch[:0]
}

func (s *Switch) emitLocal(frame []byte) {
	s.out = append(s.out, Output{Kind: ToLocal, Msg: Message{Kind: MsgFrame, Payload: frame}})
}

func (s *Switch) emitPeer(p peer.ID, m Message) {
	s.out = append(s.out, Output{Kind: ToPeer, Peer: p, Msg: m})
}

// synth appends a synthesized frame to scratch and returns it.
func (s *Switch) synth(build func([]byte) []byte) []byte {
	n := len(s.scratch)
	s.scratch = build(s.scratch)
	return s.scratch[n:len(s.scratch):len(s.scratch)]
}

// HandleLocal processes a frame read from the local device at now.
func (s *Switch) HandleLocal(now time.Time, frame []byte) []Output {
	s.reset()
	s.replay.Begin(now)
	s.counters.LocalIn++
	h, err := ether.ParseHeader(frame)
	if err != nil {
		s.counters.DropMalformed++
		return nil
	}
	if h.Src != s.cfg.MAC && (!s.cfg.AllowBridging || h.Src.IsMulticast() || s.isMemberMAC(h.Src)) {
		s.counters.DropLocalSource++
		return nil
	}
	if h.Dst.IsMulticast() {
		if s.snoop(now, h, frame) || s.answerLocally(h, frame) {
			return s.out
		}
		s.originate(now, h, frame)
		return s.out
	}
	p, ok := s.byMAC[h.Dst]
	if !ok && s.cfg.AllowBridging {
		p, ok = s.learned.Lookup(h.Dst, now)
	}
	if !ok {
		s.counters.DropUnknownDest++
		return nil
	}
	s.counters.UnicastOut++
	s.social.Touch(p, now)
	s.emitPeer(p, Message{Kind: MsgFrame, Payload: frame})
	return s.out
}

func (s *Switch) isMemberMAC(m ether.MAC) bool {
	_, ok := s.byMAC[m]
	return ok
}

// snoop consumes the local host's IGMP/MLD reports: it joins or leaves the
// groups and, when its group set changed, announces it to the social
// neighbours at once. It reports whether frame was such a report.
func (s *Switch) snoop(now time.Time, h ether.Header, frame []byte) bool {
	var ok bool
	s.changes, ok = parseReport(s.changes[:0], h, frame)
	if !ok {
		return false
	}
	s.counters.ReportsSnooped++
	changed := false
	for _, c := range s.changes {
		if c.join != s.groups[c.mac] {
			changed = true
			if c.join {
				s.JoinGroup(c.mac)
			} else {
				s.LeaveGroup(c.mac)
			}
		}
	}
	if changed {
		s.announceGroups(now)
	}
	return true
}

// answerLocally answers an ARP request or neighbour solicitation for a
// member's address (or swallows a probe for our own) and reports whether it
// did.
func (s *Switch) answerLocally(h ether.Header, frame []byte) bool {
	switch h.Type {
	case ether.TypeARP:
		a, err := ether.ParseARP(frame[ether.HeaderLen:])
		if err != nil || a.Op != ether.ARPRequest {
			return false
		}
		if a.TargetIP == s.cfg.IPv4 && a.SenderIP != a.TargetIP {
			s.counters.DropOwnDAD++ // a probe for our own address: nobody else has it
			return true
		}
		m := s.memberByIP(a.TargetIP)
		if m == nil || a.SenderIP == a.TargetIP {
			return false
		}
		reply := ether.ARP{Op: ether.ARPReply, SenderMAC: m.MAC, SenderIP: a.TargetIP, TargetMAC: a.SenderMAC, TargetIP: a.SenderIP}
		s.emitLocal(s.synth(func(b []byte) []byte { return ether.AppendARPFrame(b, h.Src, m.MAC, reply) }))
		s.counters.ARPAnswered++
		return true
	case ether.TypeIPv6:
		n, err := ether.ParseNDP(frame[ether.HeaderLen:])
		if err != nil || n.Type != ether.ICMPv6NeighborSol {
			return false
		}
		if n.Target == s.cfg.IPv6 || n.Target == ether.LinkLocal(s.cfg.MAC) {
			s.counters.DropOwnDAD++
			return true
		}
		m := s.memberByIP(n.Target)
		if m == nil {
			return false
		}
		na := ether.NDP{Type: ether.ICMPv6NeighborAdv, Src: n.Target, Dst: n.Src, Target: n.Target, Flags: 0x60, LLAddr: m.MAC}
		if n.Src.IsUnspecified() { // someone else's DAD: tell everyone
			na.Dst, na.Flags = netip.MustParseAddr("ff02::1"), 0x20
		}
		s.emitLocal(s.synth(func(b []byte) []byte { return ether.AppendNDPFrame(b, h.Src, m.MAC, na) }))
		s.counters.NDPAnswered++
		return true
	}
	return false
}

func (s *Switch) memberByIP(ip netip.Addr) *SwitchMember {
	if !ip.IsValid() {
		return nil
	}
	if p, ok := s.byIP[ip]; ok {
		return s.members[p]
	}
	return nil
}

func (s *Switch) originate(now time.Time, h ether.Header, frame []byte) {
	if s.cfg.Key == nil {
		s.counters.DropNoKey++
		return
	}
	var sends []social.SocialSend[peer.ID]
	if h.Dst.IsBroadcast() {
		_, sends = s.social.Originate(now)
	} else {
		_, sends = s.social.OriginateGroup(GroupOf(h.Dst), now)
	}
	s.counters.BroadcastOrigin++
	if len(sends) == 0 {
		return
	}
	// Every copy carries the same ID, time, group and frame: one signature.
	sh := sends[0].SocialHeader
	s.replay.Check(sh.ID.Origin, sh.ID.Seq, sh.Time, now) // its replays come back as seen
	digest := BroadcastDigest(s.cfg.Network, sh, frame)
	sig, err := s.cfg.Key.Sign(digest[:])
	if err != nil || len(sig) != social.SocialSigLen {
		s.counters.DropNoKey++ // not an Ed25519 key
		return
	}
	for i := range sends {
		copy(sends[i].SocialHeader.Sig[:], sig)
	}
	s.rememberVerified(sh.ID, verifiedBroadcast{digest, sends[0].SocialHeader.Sig})
	s.sendCopies(sends, frame)
}

// BroadcastDigest is what the origin of a broadcast signs: SHA-256 of a
// domain string, the network ID, h's broadcast ID, time and group, and the
// frame. The fields forwarders change (TTL, Budget, Visited) are left out.
func BroadcastDigest(network netrec.NetworkID, h social.SocialHeader, frame []byte) [sha256.Size]byte {
	var b [len(broadcastDomain) + len(network) + 8 + 4 + 8 + 1 + 8]byte
	n := copy(b[:], broadcastDomain)
	n += copy(b[n:], network[:])
	binary.BigEndian.PutUint64(b[n:], h.ID.Origin)
	binary.BigEndian.PutUint32(b[n+8:], h.ID.Seq)
	binary.BigEndian.PutUint64(b[n+12:], uint64(h.Time))
	if h.HasGroup {
		b[n+20] = 1
		binary.BigEndian.PutUint64(b[n+21:], h.Group)
	}
	d := sha256.New()
	d.Write(b[:])
	d.Write(frame)
	var out [sha256.Size]byte
	d.Sum(out[:0])
	return out
}

const broadcastDomain = "kadlan broadcast v3\x00"

// SignBroadcast sets h.Sig to key's signature of h and frame on network.
func SignBroadcast(key crypto.PrivKey, network netrec.NetworkID, h *social.SocialHeader, frame []byte) error {
	digest := BroadcastDigest(network, *h, frame)
	sig, err := key.Sign(digest[:])
	if err != nil {
		return fmt.Errorf("overlay: signing broadcast: %w", err)
	}
	if len(sig) != social.SocialSigLen {
		return fmt.Errorf("overlay: signing broadcast: %d-byte signature, want an Ed25519 key", len(sig))
	}
	copy(h.Sig[:], sig)
	return nil
}

// VerifyBroadcast reports whether h.Sig is pub's signature of h and frame on network.
func VerifyBroadcast(pub crypto.PubKey, network netrec.NetworkID, h social.SocialHeader, frame []byte) bool {
	digest := BroadcastDigest(network, h, frame)
	ok, err := pub.Verify(digest[:], h.Sig[:])
	return err == nil && ok
}

// BadSignatureRate and BadSignatureBurst bound the broadcast copies with a
// bad signature that one sending member gets verified per second: beyond
// them its copies needing a verification are dropped unverified, so a
// member forging broadcasts cannot make others spend their CPU on Ed25519.
const (
	BadSignatureRate  = 10
	BadSignatureBurst = 20
)

// GroupAnnouncementRate and GroupAnnouncementBurst bound the group
// announcements per second applied from one member (it sends one when a
// link opens, when its host joins or leaves a group, and every 40 s);
// beyond them they are dropped (drop_rate_limit).
const (
	GroupAnnouncementRate  = 2
	GroupAnnouncementBurst = 20
)

// verifyOrigin checks that h.Sig is origin's signature of frame, sent by
// member from at now, consulting and filling the cache of verified
// broadcasts.
func (s *Switch) verifyOrigin(now time.Time, from, origin peer.ID, h social.SocialHeader, frame []byte) bool {
	digest := BroadcastDigest(s.cfg.Network, h, frame)
	v, cached := s.verified[h.ID]
	if cached && v.digest == digest && v.sig == h.Sig {
		return true
	}
	fromHash := netrec.PeerHash(from)
	if !s.badSig.Peek(fromHash, now) {
		return false // a forger: not worth a verification
	}
	// Not cached, or a different frame or signature under a known ID: a
	// tampered copy, or the origin reusing sequence numbers after a restart.
	var pub crypto.PubKey
	if origin == s.cfg.Self {
		if s.cfg.Key == nil {
			return false
		}
		pub = s.cfg.Key.GetPublic()
	} else {
		pub = s.pubs[origin]
	}
	if pub == nil {
		return false
	}
	s.verifications++
	if ok, err := pub.Verify(digest[:], h.Sig[:]); err != nil || !ok {
		s.badSig.Take(fromHash, now)
		return false
	}
	if !cached {
		s.rememberVerified(h.ID, verifiedBroadcast{digest, h.Sig})
	}
	return true
}

// BroadcastCheck is the signature check HandleRemote would do for a
// broadcast copy, prepared (PendingVerify) so that the Engine can run it
// without holding its lock and report a good result (AddVerified) before
// calling HandleRemote, which then finds it in the cache.
type BroadcastCheck struct {
	id  social.BroadcastID
	pub crypto.PubKey
	v   verifiedBroadcast
}

// Needed reports whether the check has a signature to verify.
func (c *BroadcastCheck) Needed() bool { return c.pub != nil }

// Verify runs the Ed25519 verification; it needs no lock.
func (c *BroadcastCheck) Verify() bool {
	if c.pub == nil {
		return false
	}
	ok, err := c.pub.Verify(c.v.digest[:], c.v.sig[:])
	return err == nil && ok
}

// PendingVerify reports the Ed25519 verification that HandleRemote(now,
// from, m) would do, if any: none for messages that are not broadcasts,
// that the cheap checks (member, header, time, rate) drop first, or whose
// signature is already in the cache.
func (s *Switch) PendingVerify(now time.Time, from peer.ID, m Message) (BroadcastCheck, bool) {
	if m.Kind != MsgBroadcast {
		return BroadcastCheck{}, false
	}
	if _, ok := s.members[from]; !ok {
		return BroadcastCheck{}, false
	}
	sh, _, err := social.DecodeSocialHeader(m.Social)
	if err != nil || !s.replay.Fresh(sh.Time, now) || !s.social.Seen(sh.ID) && !s.limit.Peek(sh.ID.Origin, now) {
		return BroadcastCheck{}, false
	}
	origin, ok := s.byHash[sh.ID.Origin]
	if !ok {
		return BroadcastCheck{}, false
	}
	pub := s.pubs[origin]
	if pub == nil {
		return BroadcastCheck{}, false
	}
	v := verifiedBroadcast{BroadcastDigest(s.cfg.Network, sh, m.Payload), sh.Sig}
	if c, cached := s.verified[sh.ID]; cached && c == v || !s.badSig.Peek(netrec.PeerHash(from), now) {
		return BroadcastCheck{}, false
	}
	return BroadcastCheck{sh.ID, pub, v}, true
}

// FailedVerify records that the check PendingVerify prepared for a copy
// from member from failed: the copy is dropped as HandleRemote would have.
func (s *Switch) FailedVerify(from peer.ID, now time.Time) {
	s.counters.RemoteIn++
	s.counters.DropBadOrigin++
	s.verifications++
	s.badSig.Take(netrec.PeerHash(from), now)
}

// AddVerified caches a check that verify found good.
func (s *Switch) AddVerified(c BroadcastCheck) {
	if _, cached := s.verified[c.id]; !cached {
		s.rememberVerified(c.id, c.v)
	}
}

func (s *Switch) rememberVerified(id social.BroadcastID, v verifiedBroadcast) {
	size := s.social.Params().DedupSize
	if len(s.verifiedRing) < size {
		s.verifiedRing = append(s.verifiedRing, id)
	} else {
		delete(s.verified, s.verifiedRing[s.verifiedNext])
		s.verifiedRing[s.verifiedNext] = id
	}
	s.verifiedNext = (s.verifiedNext + 1) % size
	s.verified[id] = v
}

func (s *Switch) sendCopies(sends []social.SocialSend[peer.ID], frame []byte) {
	for _, snd := range sends {
		if _, ok := s.members[snd.To]; !ok {
			continue
		}
		n := len(s.scratch)
		var err error
		s.scratch, err = snd.SocialHeader.AppendBinary(s.scratch)
		if err != nil {
			continue
		}
		hdr := s.scratch[n:len(s.scratch):len(s.scratch)]
		s.counters.BroadcastSent++
		s.emitPeer(snd.To, Message{Kind: MsgBroadcast, Social: hdr, Payload: frame})
	}
}

// HandleRemote processes a message that member from sent on its link at now.
func (s *Switch) HandleRemote(now time.Time, from peer.ID, m Message) []Output {
	s.reset()
	s.replay.Begin(now)
	s.counters.RemoteIn++
	sender, ok := s.members[from]
	if !ok {
		s.counters.DropNotMember++
		return nil
	}
	switch m.Kind {
	case MsgGroups:
		if !s.groupsIn.Take(netrec.PeerHash(from), now) {
			s.counters.DropRateLimit++
			return nil
		}
		groups, err := social.DecodeGroupAnnouncement(m.Payload)
		if err != nil {
			s.counters.DropMalformed++
			return nil
		}
		s.counters.GroupsHeard++
		s.social.HearGroups(from, groups, now)
		return nil
	case MsgFrame, MsgBroadcast:
	default: // records are the daemon's business
		return nil
	}
	h, err := ether.ParseHeader(m.Payload)
	if err != nil || (m.Kind == MsgBroadcast) != h.Dst.IsMulticast() {
		s.counters.DropMalformed++
		return nil
	}
	if m.Kind == MsgFrame {
		if !s.sourceOK(h, m.Payload, sender, now) {
			return nil
		}
		if h.Dst != s.cfg.MAC && (!s.cfg.AllowBridging || s.isMemberMAC(h.Dst)) {
			s.counters.DropNotForUs++
			return nil
		}
		s.social.Touch(from, now)
		s.counters.UnicastDelivered++
		s.emitLocal(m.Payload)
		return s.out
	}
	sh, _, err := social.DecodeSocialHeader(m.Social)
	if err != nil {
		s.counters.DropMalformed++
		return nil
	}
	// Cheap checks first, before any signature is verified: the origin's
	// time (signed, so a forged one fails below anyway) must be fresh, and
	// a new broadcast's origin must have a token left. Only genuine new
	// broadcasts take tokens (below), so forged or replayed copies cannot
	// drain another member's bucket.
	if !s.replay.Fresh(sh.Time, now) {
		s.counters.DropStale++
		return nil
	}
	first := !s.social.Seen(sh.ID)
	if first && !s.limit.Peek(sh.ID.Origin, now) {
		s.counters.DropRateLimit++
		return nil
	}
	// A broadcast copy carries the origin's frame, relayed by any member:
	// the origin hash names the member whose signature it must carry, and
	// the frame's source must then be that member's, exactly as for a frame
	// it sent itself. Nothing is learned before the signature checks out.
	var origin peer.ID
	own := sh.ID.Origin == netrec.PeerHash(s.cfg.Self)
	if own {
		origin = s.cfg.Self
	} else if p, ok := s.byHash[sh.ID.Origin]; ok {
		origin = p
	}
	if origin == "" || !s.verifyOrigin(now, from, origin, sh, m.Payload) {
		s.counters.DropBadOrigin++
		return nil
	}
	// Our own broadcast came back: forward with its budget, never deliver.
	if !own && !s.sourceOK(h, m.Payload, s.members[origin], now) {
		return nil
	}
	if first {
		// Not in the de-duplication ring: the replay filter decides
		// whether it was ever accepted, then the origin's bucket.
		switch s.replay.Check(sh.ID.Origin, sh.ID.Seq, sh.Time, now) {
		case ReplayFresh:
		case ReplayStale:
			s.counters.DropStale++
			return nil
		default:
			s.counters.DropReplay++
			return nil
		}
		if !own && !s.limit.Take(sh.ID.Origin, now) {
			s.counters.DropRateLimit++
			return nil
		}
	}
	d := s.social.Receive(from, sh, now)
	if d.Duplicate {
		s.counters.BroadcastDuplicate++
	}
	if d.Deliver && !own {
		s.counters.BroadcastDelivered++
		s.emitLocal(m.Payload)
	}
	s.sendCopies(d.Sends, m.Payload)
	return s.out
}

// sourceOK checks that frame's source MAC and, for ARP, IPv4 and IPv6, its
// source address belong to member m (or to nobody else), learning bridged
// addresses; it counts the drop when not.
func (s *Switch) sourceOK(h ether.Header, frame []byte, m *SwitchMember, now time.Time) bool {
	if h.Src != m.MAC {
		if !s.cfg.AllowBridging || h.Src == s.cfg.MAC || h.Src.IsMulticast() || s.isMemberMAC(h.Src) {
			s.counters.DropSpoofed++
			return false
		}
		s.learned.Learn(h.Src, m.Peer, now)
	}
	var src netip.Addr
	p := frame[ether.HeaderLen:]
	switch h.Type {
	case ether.TypeARP:
		if a, err := ether.ParseARP(p); err == nil {
			src = a.SenderIP
		}
	case ether.TypeIPv4:
		if len(p) >= 20 {
			src = netip.AddrFrom4([4]byte(p[12:16]))
		}
	case ether.TypeIPv6:
		if len(p) >= 40 {
			src = netip.AddrFrom16([16]byte(p[8:24]))
		}
	}
	if src.IsValid() {
		if owner, ok := s.byIP[src]; ok && owner != m.Peer || src == s.cfg.IPv4 || src == s.cfg.IPv6 {
			s.counters.DropSpoofed++
			return false
		}
	}
	return true
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
