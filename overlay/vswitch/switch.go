package vswitch

import (
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
	// ToUnresolved: Msg is a unicast frame from the local device to MAC,
	// a locally administered address that no known member holds (yet):
	// hold it while the member is looked up (TakeUnresolved), and send
	// it once Resolve names the member, or drop it after a while.
	ToUnresolved OutputKind = 3
)

// Output is one action for the caller. Its slices alias the frame passed
// in or the switch's scratch buffers: they are valid until the next call to
// a Switch method, so copy (Queue.Push does) before that.
type Output struct {
	Kind OutputKind
	Peer peer.ID
	MAC  ether.MAC // ToUnresolved: the destination
	Msg  Message
	// Input: Msg.Payload is the very frame the call was given, unchanged
	// (a unicast frame forwarded, held or delivered, a broadcast
	// delivered). It stays valid as long as the caller's buffer, not only
	// until the next call, and a driver may send or write the frame's
	// offload form (a TCP super-frame) in its place.
	Input bool
}

// Counters count what a Switch did; every dropped frame is in exactly one
// Drop counter.
type Counters struct {
	LocalIn  uint64 `json:"local_in"`  // frames from the local device
	RemoteIn uint64 `json:"remote_in"` // messages from members

	UnicastOut         uint64 `json:"unicast_out"`
	UnicastUnresolved  uint64 `json:"unicast_unresolved"` // local unicast to an unknown member MAC, held by the driver (ToUnresolved)
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
	// unresolved are destinations the local host wanted (ARP, NDP, a
	// unicast frame's MAC) that no known member holds, for the driver to
	// look up (TakeUnresolved).
	unresolved []Unresolved
	// asked holds the local host's ARP requests and neighbour
	// solicitations for addresses no known member held, answered by
	// AnswerAsked once one does (at most maxUnresolved, askedFor).
	asked map[netip.Addr]askedAddr

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

// Neighbours returns the fresh social neighbours at now (members this node
// exchanged unicast frames with within the neighbour age, or whose link
// just opened), most recent first, at most SocialParams.Neighbours.
func (s *Switch) Neighbours(now time.Time) []peer.ID { return s.social.Neighbours(now) }

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

// emitInput delivers the caller's own frame (see Output.Input).
func (s *Switch) emitInput(o Output) {
	o.Input = true
	s.out = append(s.out, o)
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

const broadcastDomain = "kadlan broadcast v3\x00"

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
		s.emitInput(Output{Kind: ToLocal, Msg: Message{Kind: MsgFrame, Payload: m.Payload}})
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
		s.emitInput(Output{Kind: ToLocal, Msg: Message{Kind: MsgFrame, Payload: m.Payload}})
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
