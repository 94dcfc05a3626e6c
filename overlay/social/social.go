package social

// Implicit social switching: how broadcast and multicast frames spread over a
// network without ever costing O(N) messages.
//
// Every node keeps a short, recency-ordered list of its social neighbours: the
// members it recently exchanged unicast frames with (Touch). A broadcast gets
// an ID (a 64-bit hash of the origin's key plus a 32-bit sequence number). The
// origin sends it to up to Fanout neighbours; each receiver delivers it locally
// once (a bounded ring of recent IDs) and forwards it to its own neighbours not
// known to have it, while the hop limit (TTL) and the budget last.
//
// # Budget
//
// The header carries a budget b: the number of messages the copy's receiver
// and everything downstream of it may still send. A node holding budget b
// sends m <= b copies and splits the remaining b-m among them, so by induction
// the whole broadcast never sends more than Budget messages, whatever N is and
// however the graph looks (TestSocialBudgetBound checks this on every run).
// A duplicate is not wasted: its receiver delivers nothing but spends the
// budget it carries on neighbours it has not yet sent that ID to ("budget
// rescue"). This is what makes dense communities, where branches collide
// often, still reach nearly every member.
//
// # Visited set: a short list of salted 32-bit hashes, not a bloom filter
//
// ZeroTier 0.5 (2013) carried a 1024-byte bloom filter of visited nodes. For
// a budget-bounded traversal that is the wrong tool: a copy only ever knows
// the nodes on its own branch (its ancestors and the siblings they chose), a
// few dozen at most, and what matters most to a receiver is who its sender
// just sent to, because in a community graph those siblings are very likely
// its own neighbours too. So the header carries the last Visited entries
// (default 16, 64 bytes) of a FIFO: each forwarder appends itself and then
// the targets it chose, and the oldest entries fall off. A list of k 32-bit
// hashes has a false-positive rate of k/2^32 per check (a bloom filter of the
// same 64 bytes holding 16 entries would have ~0.1% and, unlike the list,
// cannot forget old entries and saturates). The hashes are salted with the
// broadcast ID, so an unlucky collision (a member wrongly believed to have the
// frame) never repeats for the next broadcast the way a fixed-hash bloom
// filter's false positive would. Besides the header, each node remembers for
// each recent ID who it received it from and who it sent it to.
//
// # Origin signature
//
// A forwarder legitimately relays other members' broadcasts, so checking the
// sender hop by hop cannot tell whether the origin really sent a frame. The
// header therefore carries the origin's Ed25519 signature (its libp2p
// identity key) over BroadcastDigest: the network ID, the broadcast ID, the
// origin's time, the group and the frame, but not TTL, budget or visited
// list, which forwarders change. Switch signs what it originates and checks
// every copy against the key of the member the origin hash names before
// delivering or forwarding it (ZeroTier 2013 signed its multicasts for the
// same reason). Social itself only carries the signature along; the
// simulator leaves it zero.
//
// The de-duplication ring forgets old IDs, so it cannot stop replays on
// its own: Switch also checks the signed origin time and a per-origin
// sequence window (ReplayFilter, replay.go) and a per-origin rate limit
// (OriginLimiter) before a first copy is delivered or forwarded.
//
// # Multicast
//
// A node joins groups (JoinGroup) and announces its groups to its neighbours
// (EncodeGroupAnnouncement/HearGroups); announcements expire after GroupAgeSec, as
// ZeroTier's "likes" did after 120 s. A copy for a group goes first to fresh
// subscribers this node heard about, then to social neighbours. Delivery on
// the receiving side follows Ethernet: every copy is offered to the host,
// which filters multicast by address as a NIC does.
//
// Social is pure logic: no I/O, no goroutines, no clock (callers pass now).
// It is not safe for concurrent use. It is generic over the node key so that
// the daemon uses libp2p peer IDs and the simulator small integers.

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// SocialParams are the knobs of implicit social switching. The zero value of
// a field means "use the default" (see DefaultSocialParams).
type SocialParams struct {
	// Neighbours is how many social neighbours a node remembers (default 32).
	Neighbours int `json:"neighbours"`
	// NeighbourAgeSec: a neighbour not touched for this long is no longer
	// used for forwarding (default 600 s).
	NeighbourAgeSec int `json:"neighbour_age_s"`
	// Fanout is how many neighbours the origin sends to (default 12, about
	// ln(n)+5 for the few hundred members a LAN-like network has).
	Fanout int `json:"fanout"`
	// ForwardFanout is how many neighbours a forwarder sends to at most
	// (default 4); the budget limits it further.
	ForwardFanout int `json:"forward_fanout"`
	// TTL is the maximum number of hops from the origin (default 8, max 255).
	TTL int `json:"ttl"`
	// Budget is the total number of messages one broadcast may cost
	// (default 128, max 65535).
	Budget int `json:"budget"`
	// Visited is how many hashed node IDs the header carries (default 16,
	// max 64; 4 bytes each).
	Visited int `json:"visited"`
	// DedupSize is how many recent broadcast IDs a node remembers (default 1024).
	DedupSize int `json:"dedup_size"`
	// GroupAgeSec: a heard group subscription expires after this (default 120 s).
	GroupAgeSec int `json:"group_age_s"`
	// GroupMembers is how many subscribers per group a node remembers (default 64).
	GroupMembers int `json:"group_members"`
	// Groups is how many distinct groups a node tracks (default 256).
	Groups int `json:"groups"`
}

// DefaultSocialParams returns the defaults: enough for a few hundred
// members in communities of tens to hear each other's broadcasts, at a cost
// of at most 128 messages each.
func DefaultSocialParams() SocialParams {
	return SocialParams{Neighbours: 32, NeighbourAgeSec: 600, Fanout: 12, ForwardFanout: 4,
		TTL: 8, Budget: 128, Visited: 16, DedupSize: 1024, GroupAgeSec: 120,
		GroupMembers: 64, Groups: 256}
}

// SocialMaxVisited is the largest visited list a header may carry.
const SocialMaxVisited = 64

// WithDefaults returns p with every zero field set to its default.
func (p SocialParams) WithDefaults() SocialParams {
	d := DefaultSocialParams()
	for _, f := range []struct{ v, d *int }{{&p.Neighbours, &d.Neighbours},
		{&p.NeighbourAgeSec, &d.NeighbourAgeSec}, {&p.Fanout, &d.Fanout},
		{&p.ForwardFanout, &d.ForwardFanout}, {&p.TTL, &d.TTL}, {&p.Budget, &d.Budget},
		{&p.Visited, &d.Visited}, {&p.DedupSize, &d.DedupSize},
		{&p.GroupAgeSec, &d.GroupAgeSec}, {&p.GroupMembers, &d.GroupMembers},
		{&p.Groups, &d.Groups}} {
		if *f.v == 0 {
			*f.v = *f.d
		}
	}
	return p
}

// Validate reports the first out-of-range field (after defaults are applied).
func (p SocialParams) Validate() error {
	p = p.WithDefaults()
	switch {
	case p.Neighbours < 1, p.NeighbourAgeSec < 1, p.Fanout < 1, p.ForwardFanout < 1,
		p.DedupSize < 1, p.GroupAgeSec < 1, p.GroupMembers < 1, p.Groups < 1, p.Visited < 1:
		return errors.New("overlay: social params: fields must be positive")
	case p.TTL < 1 || p.TTL > 255:
		return fmt.Errorf("overlay: social params: ttl %d not in 1..255", p.TTL)
	case p.Budget < 1 || p.Budget > 65535:
		return fmt.Errorf("overlay: social params: budget %d not in 1..65535", p.Budget)
	case p.Visited > SocialMaxVisited:
		return fmt.Errorf("overlay: social params: visited %d above %d", p.Visited, SocialMaxVisited)
	}
	return nil
}

// BroadcastID names one broadcast: a hash of the origin's key and the
// origin's sequence number.
type BroadcastID struct {
	Origin uint64
	Seq    uint32
}

// Send is one copy to transmit.
type SocialSend[K comparable] struct {
	To           K
	SocialHeader SocialHeader
}

// Decision is what to do with a received copy.
type SocialDecision[K comparable] struct {
	Deliver   bool // first copy: hand the frame to the local host
	Duplicate bool
	Sends     []SocialSend[K]
}

type socialContact[K comparable] struct {
	key K
	t   time.Time // last touch (neighbours) or expiry (subscribers)
}

type socialSeen[K comparable] struct {
	id   BroadcastID
	have []K // senders we got it from and targets we sent it to
}

// Social is one node's implicit social switching state on one network.
type Social[K comparable] struct {
	self     K
	selfHash uint64
	hash     func(K) uint64
	p        SocialParams
	seq      uint32
	nbrs     []socialContact[K] // most recent first
	joined   map[uint64]bool
	subs     map[uint64][]socialContact[K] // group -> subscribers, latest expiry first
	ring     []socialSeen[K]
	ringNext int
	seen     map[BroadcastID]int // index into ring
}

// NewSocial returns the state of node self. hash maps a key to 64 bits and
// must be the same function on every node (the daemon uses the first 8 bytes
// of SHA-256 of the peer ID); p is validated.
// ForgetSeen clears the de-duplication ring, as if every broadcast ID seen
// so far had aged out of it (tests of what stands behind it: the switch's
// replay filter).
func (s *Social[K]) ForgetSeen() {
	s.ring, s.seen, s.ringNext = nil, map[BroadcastID]int{}, 0
}

func NewSocial[K comparable](self K, hash func(K) uint64, p SocialParams) (*Social[K], error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &Social[K]{self: self, selfHash: hash(self), hash: hash, p: p.WithDefaults()}, nil
}

// SetSequence makes the next broadcast this node originates use seq+1.
func (s *Social[K]) SetSequence(seq uint32) { s.seq = seq }

// Params returns the parameters in use, defaults filled in.
func (s *Social[K]) Params() SocialParams { return s.p }

// Touch records a unicast frame exchanged with peer at now, moving it to the
// front of the social neighbour list (the least recent falls off when full).
func (s *Social[K]) Touch(peer K, now time.Time) {
	if peer == s.self {
		return
	}
	i := slices.IndexFunc(s.nbrs, func(c socialContact[K]) bool { return c.key == peer })
	switch {
	case i >= 0:
		copy(s.nbrs[1:i+1], s.nbrs[:i])
	case len(s.nbrs) < s.p.Neighbours:
		s.nbrs = append(s.nbrs, socialContact[K]{})
		copy(s.nbrs[1:], s.nbrs)
	default:
		copy(s.nbrs[1:], s.nbrs[:len(s.nbrs)-1])
	}
	s.nbrs[0] = socialContact[K]{peer, now}
}

// Forget removes peer from the neighbour list and every group (for example
// when its membership is revoked).
func (s *Social[K]) Forget(peer K) {
	s.nbrs = slices.DeleteFunc(s.nbrs, func(c socialContact[K]) bool { return c.key == peer })
	for g, l := range s.subs {
		s.setSubs(g, slices.DeleteFunc(l, func(c socialContact[K]) bool { return c.key == peer }))
	}
}

// Neighbours returns the fresh social neighbours at now, most recent first.
func (s *Social[K]) Neighbours(now time.Time) []K {
	cut := now.Add(-time.Duration(s.p.NeighbourAgeSec) * time.Second)
	var out []K
	for _, c := range s.nbrs {
		if c.t.After(cut) {
			out = append(out, c.key)
		}
	}
	return out
}

// JoinGroup subscribes this node to group g; LeaveGroup undoes it.
func (s *Social[K]) JoinGroup(g uint64) {
	if s.joined == nil {
		s.joined = map[uint64]bool{}
	}
	s.joined[g] = true
}

// LeaveGroup unsubscribes this node from group g.
func (s *Social[K]) LeaveGroup(g uint64) { delete(s.joined, g) }

// Groups returns this node's groups in ascending order: the content of its
// announcements (EncodeGroupAnnouncement) to its neighbours.
func (s *Social[K]) Groups() []uint64 {
	out := make([]uint64, 0, len(s.joined))
	for g := range s.joined {
		out = append(out, g)
	}
	slices.Sort(out)
	return out
}

// HearGroups records that from announced the full list of its groups at now:
// it is a subscriber of each until now+GroupAgeSec, and of no other group.
func (s *Social[K]) HearGroups(from K, groups []uint64, now time.Time) {
	exp := now.Add(time.Duration(s.p.GroupAgeSec) * time.Second)
	announced := make(map[uint64]bool, len(groups))
	for _, g := range groups {
		announced[g] = true
	}
	for g, l := range s.subs {
		if !announced[g] {
			s.setSubs(g, slices.DeleteFunc(l, func(c socialContact[K]) bool { return c.key == from }))
		}
	}
	for _, g := range groups {
		l, ok := s.subs[g]
		if !ok && len(s.subs) >= s.p.Groups {
			s.expire(now)
			if len(s.subs) >= s.p.Groups {
				continue // table full of live groups: ignore new ones
			}
		}
		l = slices.DeleteFunc(l, func(c socialContact[K]) bool { return c.key == from })
		if len(l) >= s.p.GroupMembers {
			l = l[:s.p.GroupMembers-1]
		}
		l = slices.Insert(l, 0, socialContact[K]{from, exp})
		if s.subs == nil {
			s.subs = map[uint64][]socialContact[K]{}
		}
		s.subs[g] = l
	}
}

func (s *Social[K]) setSubs(g uint64, l []socialContact[K]) {
	if len(l) == 0 {
		delete(s.subs, g)
	} else {
		s.subs[g] = l
	}
}

func (s *Social[K]) expire(now time.Time) {
	for g, l := range s.subs {
		s.setSubs(g, slices.DeleteFunc(l, func(c socialContact[K]) bool { return !c.t.After(now) }))
	}
}

// Subscribers returns the members heard subscribing to g whose announcement
// has not expired at now, most recently announced first.
func (s *Social[K]) Subscribers(g uint64, now time.Time) []K {
	var out []K
	for _, c := range s.subs[g] {
		if c.t.After(now) {
			out = append(out, c.key)
		}
	}
	return out
}

// Originate starts a broadcast and returns the copies to send. The frame is
// not delivered locally.
func (s *Social[K]) Originate(now time.Time) (BroadcastID, []SocialSend[K]) {
	return s.originate(SocialHeader{}, now)
}

// OriginateGroup starts a multicast to group g: known subscribers first.
func (s *Social[K]) OriginateGroup(g uint64, now time.Time) (BroadcastID, []SocialSend[K]) {
	return s.originate(SocialHeader{HasGroup: true, Group: g}, now)
}

func (s *Social[K]) originate(h SocialHeader, now time.Time) (BroadcastID, []SocialSend[K]) {
	s.seq++
	h.ID, h.TTL, h.Budget = BroadcastID{s.selfHash, s.seq}, uint8(s.p.TTL-1), uint16(s.p.Budget)
	h.Time = now.UnixMilli()
	e := s.remember(h.ID)
	return h.ID, s.forward(e, h, s.p.Fanout, now)
}

// Receive handles a copy from neighbour from at now.
func (s *Social[K]) Receive(from K, h SocialHeader, now time.Time) SocialDecision[K] {
	var d SocialDecision[K]
	e := s.lookup(h.ID)
	if e == nil {
		e = s.remember(h.ID)
		d.Deliver = true
	} else {
		d.Duplicate = true
	}
	s.addHave(e, from)
	// A sender cannot make this node spend more than its own limits: a
	// forged header with a huge budget or TTL is clamped here, so one
	// member cannot turn a broadcast into a flood.
	h.TTL = min(h.TTL, uint8(s.p.TTL-1))
	h.Budget = min(h.Budget, uint16(s.p.Budget))
	if h.TTL == 0 || h.Budget == 0 {
		return d
	}
	h.TTL--
	d.Sends = s.forward(e, h, s.p.ForwardFanout, now)
	return d
}

// forward picks up to fanout targets not known to have the frame, splits
// h.Budget among them and records them in e.
func (s *Social[K]) forward(e *socialSeen[K], h SocialHeader, fanout int, now time.Time) []SocialSend[K] {
	salt := socialSalt(h.ID)
	max := min(fanout, int(h.Budget))
	var targets []K
	consider := func(k K) {
		if len(targets) >= max || k == s.self || slices.Contains(e.have, k) ||
			slices.Contains(targets, k) || slices.Contains(h.Visited, VisitHash(s.hash(k), salt)) {
			return
		}
		targets = append(targets, k)
	}
	if h.HasGroup {
		for _, k := range s.Subscribers(h.Group, now) {
			consider(k)
		}
	}
	for _, k := range s.Neighbours(now) {
		consider(k)
	}
	if len(targets) == 0 {
		return nil
	}
	// New visited list: the old one, this node, then the chosen targets;
	// the oldest entries fall off.
	v := make([]uint32, 0, len(h.Visited)+1+len(targets))
	v = append(v, h.Visited...)
	v = append(v, VisitHash(s.selfHash, salt))
	for _, k := range targets {
		v = append(v, VisitHash(s.hash(k), salt))
	}
	if len(v) > s.p.Visited {
		v = v[len(v)-s.p.Visited:]
	}
	m := len(targets)
	rest := int(h.Budget) - m
	out := make([]SocialSend[K], m)
	for i, k := range targets {
		share := rest / m
		if i < rest%m {
			share++
		}
		hh := h
		hh.Budget, hh.Visited = uint16(share), v
		out[i] = SocialSend[K]{To: k, SocialHeader: hh}
		s.addHave(e, k)
	}
	return out
}

// Seen reports whether id is among the recent broadcast IDs this node
// remembers (a copy of it would be a duplicate).
func (s *Social[K]) Seen(id BroadcastID) bool { return s.lookup(id) != nil }

func (s *Social[K]) lookup(id BroadcastID) *socialSeen[K] {
	if i, ok := s.seen[id]; ok {
		return &s.ring[i]
	}
	return nil
}

func (s *Social[K]) remember(id BroadcastID) *socialSeen[K] {
	if s.seen == nil {
		s.seen = map[BroadcastID]int{}
	}
	if len(s.ring) < s.p.DedupSize {
		s.ring = append(s.ring, socialSeen[K]{})
	} else {
		delete(s.seen, s.ring[s.ringNext].id)
	}
	i := s.ringNext
	s.ringNext = (s.ringNext + 1) % s.p.DedupSize
	s.ring[i] = socialSeen[K]{id: id, have: s.ring[i].have[:0]}
	s.seen[id] = i
	return &s.ring[i]
}

func (s *Social[K]) addHave(e *socialSeen[K], k K) {
	if slices.Contains(e.have, k) {
		return
	}
	if len(e.have) >= 2*s.p.Neighbours {
		e.have = e.have[1:]
	}
	e.have = append(e.have, k)
}

// SocialMix is the splitmix64 finaliser: a fast bijective 64-bit mixer. It is
// the hash the simulator uses for integer node keys.
func SocialMix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

func socialSalt(id BroadcastID) uint64 {
	return SocialMix(id.Origin ^ uint64(id.Seq)<<32 ^ 0x6b61646c616e)
}

// VisitHash is a node's entry in a header's visited list: its 64-bit key
// hash mixed with the broadcast's salt, truncated to 32 bits.
func VisitHash(keyHash, salt uint64) uint32 { return uint32(SocialMix(keyHash^salt) >> 32) }

// SocialHeader wire format (big-endian), SocialHeaderMinLen bytes plus options:
//
//	0  version (3; version 2 had no origin time, version 1 no signature)
//	1  flags: bit 0 = group present; other bits must be zero
//	2  ttl
//	3  visited count n (<= SocialMaxVisited)
//	4  budget (uint16)
//	6  origin hash (uint64)
//	14 sequence (uint32)
//	18 origin time (int64, Unix milliseconds)
//	26 origin signature (64 bytes, Ed25519)
//	90 group (uint64), only when flag bit 0 is set
//	.. n visited hashes (uint32 each)
const (
	socialVersion = 3
	// groupAnnounceVersion is the version of group announcements, which
	// did not change with the header.
	groupAnnounceVersion = 1
	// SocialSigLen is the length of the origin signature.
	SocialSigLen = 64
	// SocialHeaderMinLen is the length of a header without group and visited list.
	SocialHeaderMinLen = 26 + SocialSigLen
	// SocialHeaderMaxLen is the longest possible header.
	SocialHeaderMaxLen = SocialHeaderMinLen + 8 + 4*SocialMaxVisited
)

// ErrSocialHeader is wrapped by every header or announcement decoding error.
var ErrSocialHeader = errors.New("overlay: bad social header")

// MaxAnnouncedGroups bounds the groups in one announcement.
const MaxAnnouncedGroups = 1024
