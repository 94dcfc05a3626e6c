package social

import (
	"bytes"
	"cmp"
	"errors"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/kadlan/kadlan/sim/graph"
)

var socialT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func socialHashInt(k int32) uint64 { return SocialMix(uint64(k)) }

// net is a test network: one Social per node of a contact graph, created on
// first use, whose neighbours are the node's graph neighbours touched within
// the last few minutes in a seeded random order. With affinity > 0, contacts
// in the node's own community tend to be the more recent ones (each contact
// gets a random score in [0,1), plus affinity when in the same community),
// modelling that members of a community exchange more unicast traffic.
type socialNet struct {
	g        *graph.Graph
	p        SocialParams
	r        *rand.Rand
	affinity float64
	nodes    map[int32]*Social[int32]
}

func newSocialNet(t testing.TB, g *graph.Graph, p SocialParams, seed uint64) *socialNet {
	t.Helper()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	return &socialNet{g: g, p: p, r: rand.New(rand.NewPCG(seed, 1)), nodes: map[int32]*Social[int32]{}}
}

func (n *socialNet) node(v int32) *Social[int32] {
	if s := n.nodes[v]; s != nil {
		return s
	}
	s, _ := NewSocial(v, socialHashInt, n.p)
	nb := append([]int32(nil), n.g.Neighbours(int(v))...)
	score := map[int32]float64{}
	for _, u := range nb {
		score[u] = n.r.Float64()
		if n.g.Community != nil && n.g.Community[u] == n.g.Community[v] {
			score[u] += n.affinity
		}
	}
	slices.SortFunc(nb, func(a, b int32) int { return cmp.Compare(score[a], score[b]) })
	for i, u := range nb { // touch the highest score last: most recent
		s.Touch(u, socialT0.Add(time.Duration(i-len(nb))*time.Second))
	}
	n.nodes[v] = s
	return s
}

type socialResult struct {
	msgs, dups  int
	delivered   map[int32]int // node -> deliveries
	commReach   float64       // share of the origin's community (others) reached
	nbrReach    float64       // share of the origin's graph neighbours reached
	reach       int           // nodes reached, origin excluded
	maxHops     int
	deliverOnce bool
}

type socialInflight struct {
	from, to int32
	h        SocialHeader
	hops     int
}

// broadcast runs one broadcast from origin to completion, copies delivered in
// FIFO order (all links equally fast).
func (n *socialNet) broadcast(origin int32, group *uint64) socialResult {
	res := socialResult{delivered: map[int32]int{}, deliverOnce: true}
	var sends []SocialSend[int32]
	if group != nil {
		_, sends = n.node(origin).OriginateGroup(*group, socialT0)
	} else {
		_, sends = n.node(origin).Originate(socialT0)
	}
	var q []socialInflight
	for _, s := range sends {
		q = append(q, socialInflight{origin, s.To, s.SocialHeader, 1})
	}
	for len(q) > 0 {
		m := q[0]
		q = q[1:]
		res.msgs++
		res.maxHops = max(res.maxHops, m.hops)
		d := n.node(m.to).Receive(m.from, m.h, socialT0)
		if d.Deliver {
			res.delivered[m.to]++
		}
		if d.Duplicate {
			res.dups++
		}
		for _, s := range d.Sends {
			q = append(q, socialInflight{m.to, s.To, s.SocialHeader, m.hops + 1})
		}
	}
	for v, c := range res.delivered {
		if c != 1 || v == origin {
			res.deliverOnce = false
		}
	}
	res.reach = len(res.delivered)
	nb := n.g.Neighbours(int(origin))
	for _, v := range nb {
		if res.delivered[v] > 0 {
			res.nbrReach += 1 / float64(len(nb))
		}
	}
	if n.g.Community != nil {
		members := n.g.CommunityMembers(n.g.Community[origin])
		got := 0
		for _, v := range members {
			if res.delivered[v] > 0 {
				got++
			}
		}
		if len(members) > 1 {
			res.commReach = float64(got) / float64(len(members)-1)
		}
	}
	return res
}

// TestSocialBudgetBound: a broadcast never costs more than Budget messages,
// and its cost does not grow with N.
func TestSocialBudgetBound(t *testing.T) {
	p := DefaultSocialParams()
	p.Budget = 96
	var means []float64
	for _, n := range []int{1000, 10000, 100000} {
		r := rand.New(rand.NewPCG(uint64(n), 7))
		g := graph.Communities(n, 40, 8, 1, r)
		nt := newSocialNet(t, g, p, 3)
		total := 0
		const runs = 20
		for i := range runs {
			res := nt.broadcast(int32(r.IntN(n)), nil)
			if res.msgs > p.Budget {
				t.Fatalf("N=%d run %d: %d messages, budget %d", n, i, res.msgs, p.Budget)
			}
			if !res.deliverOnce {
				t.Fatalf("N=%d run %d: a node delivered twice or the origin delivered", n, i)
			}
			total += res.msgs
		}
		means = append(means, float64(total)/runs)
		t.Logf("N=%d: %.1f messages per broadcast (budget %d)", n, means[len(means)-1], p.Budget)
	}
	if means[2] > 1.2*means[0] {
		t.Errorf("messages grow with N: %v", means)
	}
}

// TestSocialCommunityReach: members of the sender's community (who talk to
// each other) hear its broadcasts; few outsiders are bothered.
func TestSocialCommunityReach(t *testing.T) {
	for _, tc := range []struct {
		name            string
		g               *graph.Graph
		affinity        float64
		minComm, minNbr float64
	}{
		// Communities of 40 whose members talk more to each other.
		{"communities40", graph.Communities(20000, 40, 8, 1, rand.New(rand.NewPCG(1, 2))), 0.5, 0.97, 0.8},
		// A small world without communities: the origin's contacts hear it.
		{"smallworld", graph.SmallWorld(20000, 6, 0.05, 0, rand.New(rand.NewPCG(3, 4))), 0, 0, 0.97},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := DefaultSocialParams()
			nt := newSocialNet(t, tc.g, p, 5)
			nt.affinity = tc.affinity
			r := rand.New(rand.NewPCG(9, 9))
			var comm, nbr, msgs, dups float64
			const runs = 50
			for range runs {
				res := nt.broadcast(int32(r.IntN(tc.g.N())), nil)
				comm += res.commReach
				nbr += res.nbrReach
				msgs += float64(res.msgs)
				dups += float64(res.dups)
				if res.reach > p.Budget {
					t.Fatalf("reach %d above budget %d", res.reach, p.Budget)
				}
			}
			comm, nbr = comm/runs, nbr/runs
			t.Logf("%s: community reach %.3f, contacts reached %.3f, %.1f msgs, %.1f duplicates per broadcast",
				tc.name, comm, nbr, msgs/runs, dups/runs)
			if comm < tc.minComm || nbr < tc.minNbr {
				t.Errorf("reach: community %.3f (want >= %.2f), contacts %.3f (want >= %.2f)", comm, tc.minComm, nbr, tc.minNbr)
			}
		})
	}
}

// TestSocialTTL: on a path graph with plenty of budget, a broadcast travels
// exactly TTL hops.
func TestSocialTTL(t *testing.T) {
	const n = 50
	var edges []uint64
	for v := 0; v+1 < n; v++ {
		edges = append(edges, uint64(v)<<32|uint64(v+1))
	}
	p := DefaultSocialParams()
	p.TTL = 5
	nt := newSocialNet(t, graph.FromEdges(n, edges), p, 1)
	res := nt.broadcast(0, nil)
	if res.maxHops != 5 || res.reach != 5 || res.msgs != 5 {
		t.Fatalf("hops %d reach %d msgs %d, want 5/5/5", res.maxHops, res.reach, res.msgs)
	}
	for v := int32(1); v <= 5; v++ {
		if res.delivered[v] != 1 {
			t.Errorf("node %d not reached", v)
		}
	}
}

// TestSocialDedup: the same copy twice is delivered once; a duplicate that
// carries budget is forwarded only to neighbours not yet sent the ID.
func TestSocialDedup(t *testing.T) {
	s, err := NewSocial[int32](0, socialHashInt, SocialParams{ForwardFanout: 2})
	if err != nil {
		t.Fatal(err)
	}
	for v := int32(1); v <= 5; v++ {
		s.Touch(v, socialT0.Add(time.Duration(v)*time.Second)) // 5 most recent
	}
	h := SocialHeader{ID: BroadcastID{Origin: 99, Seq: 1}, TTL: 3, Budget: 4}
	d := s.Receive(1, h, socialT0.Add(time.Minute))
	if !d.Deliver || d.Duplicate || len(d.Sends) != 2 || d.Sends[0].To != 5 || d.Sends[1].To != 4 {
		t.Fatalf("first copy: %+v", d)
	}
	if d.Sends[0].SocialHeader.Budget+d.Sends[1].SocialHeader.Budget != 2 || d.Sends[0].SocialHeader.TTL != 2 {
		t.Fatalf("budget split/ttl wrong: %+v", d.Sends)
	}
	d = s.Receive(2, h, socialT0.Add(time.Minute))
	if d.Deliver || !d.Duplicate || len(d.Sends) != 1 || d.Sends[0].To != 3 {
		t.Fatalf("duplicate: %+v (want only node 3: 1,2 sent it, 4,5 have it)", d)
	}
	h.Budget = 0
	d = s.Receive(3, h, socialT0.Add(time.Minute))
	if d.Deliver || len(d.Sends) != 0 {
		t.Fatalf("no-budget duplicate: %+v", d)
	}
	// The dedup ring is bounded: after DedupSize newer IDs, the ID is new again.
	small, _ := NewSocial[int32](0, socialHashInt, SocialParams{DedupSize: 4})
	small.Receive(1, SocialHeader{ID: BroadcastID{1, 1}}, socialT0)
	for i := uint32(2); i <= 5; i++ {
		small.Receive(1, SocialHeader{ID: BroadcastID{1, i}}, socialT0)
	}
	if !small.Receive(1, SocialHeader{ID: BroadcastID{1, 1}}, socialT0).Deliver || len(small.seen) != 4 {
		t.Fatalf("ring not bounded at 4: %d entries", len(small.seen))
	}
}

func TestSocialTouchOrderAndAgeing(t *testing.T) {
	s, _ := NewSocial[int32](0, socialHashInt, SocialParams{Neighbours: 3, NeighbourAgeSec: 60})
	s.Touch(1, socialT0)
	s.Touch(2, socialT0.Add(10*time.Second))
	s.Touch(0, socialT0) // self is ignored
	s.Touch(3, socialT0.Add(20*time.Second))
	s.Touch(1, socialT0.Add(30*time.Second))
	if got := s.Neighbours(socialT0.Add(30 * time.Second)); !reflect.DeepEqual(got, []int32{1, 3, 2}) {
		t.Fatalf("order %v", got)
	}
	s.Touch(4, socialT0.Add(40*time.Second)) // evicts 2, the least recent
	if got := s.Neighbours(socialT0.Add(40 * time.Second)); !reflect.DeepEqual(got, []int32{4, 1, 3}) {
		t.Fatalf("after eviction %v", got)
	}
	if got := s.Neighbours(socialT0.Add(85 * time.Second)); !reflect.DeepEqual(got, []int32{4, 1}) {
		t.Fatalf("after ageing %v (3 touched at 20 s is older than 60 s)", got)
	}
	s.Forget(1)
	if got := s.Neighbours(socialT0.Add(85 * time.Second)); !reflect.DeepEqual(got, []int32{4}) {
		t.Fatalf("after forget %v", got)
	}
}

// TestSocialGroups: group traffic goes to fresh subscribers first, and
// subscriptions expire or are withdrawn by the next announcement.
func TestSocialGroups(t *testing.T) {
	const g = 0x01005e0000fb // mDNS multicast MAC
	s, _ := NewSocial[int32](0, socialHashInt, SocialParams{Fanout: 2, GroupAgeSec: 120})
	for v := int32(1); v <= 4; v++ {
		s.Touch(v, socialT0)
	}
	s.HearGroups(7, []uint64{g}, socialT0)
	s.HearGroups(8, []uint64{g, 5}, socialT0.Add(time.Second))
	_, sends := s.OriginateGroup(g, socialT0.Add(2*time.Second))
	if len(sends) != 2 || sends[0].To != 8 || sends[1].To != 7 || !sends[0].SocialHeader.HasGroup {
		t.Fatalf("multicast went to %+v, want subscribers 8, 7", sends)
	}
	_, sends = s.Originate(socialT0.Add(2 * time.Second))
	if sends[0].To != 4 || sends[1].To != 3 {
		t.Fatalf("broadcast went to %+v, want neighbours 4, 3", sends)
	}
	s.HearGroups(8, []uint64{5}, socialT0.Add(3*time.Second)) // 8 left g
	if got := s.Subscribers(g, socialT0.Add(3*time.Second)); !reflect.DeepEqual(got, []int32{7}) {
		t.Fatalf("subscribers %v", got)
	}
	if got := s.Subscribers(g, socialT0.Add(121*time.Second)); len(got) != 0 {
		t.Fatalf("expired subscription still there: %v", got)
	}
	s.JoinGroup(9)
	s.JoinGroup(3)
	s.LeaveGroup(9)
	s.JoinGroup(1)
	if got := s.Groups(); !reflect.DeepEqual(got, []uint64{1, 3}) {
		t.Fatalf("groups %v", got)
	}
}

// TestSocialMulticastReachesSubscribers: on a community graph where members
// of the origin's community subscribe and announce, a multicast reaches them.
func TestSocialMulticastReachesSubscribers(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	g := graph.Communities(5000, 40, 8, 1, r)
	nt := newSocialNet(t, g, DefaultSocialParams(), 13)
	const grp = 42
	origin := int32(123)
	var subs []int32
	for _, v := range g.CommunityMembers(g.Community[origin]) {
		if v%3 == 0 && v != origin {
			subs = append(subs, v)
			nt.node(v).JoinGroup(grp)
		}
	}
	// Announce to graph neighbours.
	for _, v := range subs {
		for _, u := range g.Neighbours(int(v)) {
			nt.node(u).HearGroups(v, nt.node(v).Groups(), socialT0)
		}
	}
	gg := uint64(grp)
	res := nt.broadcast(origin, &gg)
	got := 0
	for _, v := range subs {
		if res.delivered[v] > 0 {
			got++
		}
	}
	if float64(got) < 0.95*float64(len(subs)) {
		t.Fatalf("multicast reached %d of %d subscribers", got, len(subs))
	}
}

func TestSocialHeaderRoundTrip(t *testing.T) {
	for _, h := range []SocialHeader{
		{ID: BroadcastID{1, 2}, TTL: 3, Budget: 4},
		{ID: BroadcastID{^uint64(0), ^uint32(0)}, HasGroup: true, Group: 0x01005e0000fb, TTL: 255,
			Budget: 65535, Visited: []uint32{1, 2, 0xffffffff}, Time: -1, Sig: [SocialSigLen]byte{0: 1, 63: 0xff}},
	} {
		b, err := h.AppendBinary([]byte{0xee})
		if err != nil {
			t.Fatal(err)
		}
		got, n, err := DecodeSocialHeader(append(b[1:], 0xaa, 0xbb))
		if err != nil || n != len(b)-1 || !reflect.DeepEqual(got, h) {
			t.Fatalf("round trip %+v -> %+v, n=%d err=%v", h, got, n, err)
		}
	}
	good, _ := SocialHeader{ID: BroadcastID{1, 2}, TTL: 3, Budget: 4}.AppendBinary(nil)
	if _, n, err := DecodeSocialHeader(good); err != nil || n != SocialHeaderMinLen {
		t.Fatalf("minimal header: n=%d err=%v", n, err)
	}
	with := func(i int, v byte) []byte { b := bytes.Clone(good); b[i] = v; return b }
	for _, bad := range [][]byte{nil, good[:SocialHeaderMinLen-1], // too short (signature cut)
		with(0, 1), with(0, 2), with(0, 4), // version 1 had no signature, 2 no time; unknown version
		with(1, 2), with(3, SocialMaxVisited+1), // unknown flag; too many visited
		with(1, 1), with(3, 1)} { // group or visited entry announced but missing
		if _, _, err := DecodeSocialHeader(bad); !errors.Is(err, ErrSocialHeader) {
			t.Errorf("DecodeSocialHeader(%x) = %v, want ErrSocialHeader", bad, err)
		}
	}
	if _, err := (SocialHeader{Visited: make([]uint32, SocialMaxVisited+1)}).AppendBinary(nil); err == nil {
		t.Error("oversized visited list encoded")
	}
	gs := []uint64{5, 1 << 63}
	b, _ := EncodeGroupAnnouncement(gs)
	if got, err := DecodeGroupAnnouncement(b); err != nil || !reflect.DeepEqual(got, gs) {
		t.Fatalf("groups round trip: %v %v", got, err)
	}
	if _, err := DecodeGroupAnnouncement(b[:len(b)-1]); !errors.Is(err, ErrSocialHeader) {
		t.Fatal("truncated announcement accepted")
	}
}

func TestSocialParams(t *testing.T) {
	if err := (SocialParams{}).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []SocialParams{{TTL: 256}, {Budget: 70000}, {Visited: 65}, {Fanout: -1}} {
		if p.Validate() == nil {
			t.Errorf("%+v accepted", p)
		}
		if _, err := NewSocial[int32](0, socialHashInt, p); err == nil {
			t.Errorf("NewSocial accepted %+v", p)
		}
	}
	if got := (SocialParams{Budget: 7}).WithDefaults(); got.Budget != 7 || got.Fanout != 12 {
		t.Fatalf("WithDefaults %+v", got)
	}
}

// TestSocialClampsForgedHeader: a copy claiming a budget and TTL far above
// the receiver's parameters costs no more than the receiver's own budget.
func TestSocialClampsForgedHeader(t *testing.T) {
	p := DefaultSocialParams()
	p.Budget, p.TTL = 20, 3
	g := graph.Communities(2000, 40, 8, 1, rand.New(rand.NewPCG(5, 5)))
	nt := newSocialNet(t, g, p, 2)
	forged := SocialHeader{ID: BroadcastID{Origin: 1, Seq: 1}, TTL: 255, Budget: 65535}
	q := []socialInflight{{from: 1, to: 2, h: forged, hops: 1}}
	msgs := 0
	for len(q) > 0 {
		m := q[0]
		q = q[1:]
		d := nt.node(m.to).Receive(m.from, m.h, socialT0)
		for _, s := range d.Sends {
			msgs++
			if s.SocialHeader.TTL > 1 || s.SocialHeader.Budget > 20 {
				t.Fatalf("forwarded %+v beyond the receiver's limits", s.SocialHeader)
			}
			q = append(q, socialInflight{m.to, s.To, s.SocialHeader, m.hops + 1})
		}
	}
	if msgs > p.Budget {
		t.Fatalf("forged header cost %d messages, budget %d", msgs, p.Budget)
	}
}
