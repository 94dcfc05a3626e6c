package sim

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/kadlan/kadlan/overlay/social"
	"github.com/kadlan/kadlan/sim/graph"
)

// Broadcast methods compared by the broadcast model.
var bcastMethods = []string{"social", "flood", "gossip", "replicate"}

func init() {
	var reach, comm, msgs, rmr, lat []string
	for _, m := range bcastMethods {
		reach = append(reach, m+"_reach")
		comm = append(comm, m+"_comm_reach")
		msgs = append(msgs, m+"_msgs")
		rmr = append(rmr, m+"_rmr")
		lat = append(lat, m+"_comm_latency_ms_p95")
	}
	names := []string{"social switching", "flooding", "gossip, fanout ln(n)+5", "sender replication"}
	models["broadcast"] = modelDef{bytesPerNode: 2500, run: runBroadcastModel,
		plots: []PlotSpec{
			{Name: "comm_reach", Title: "Reach within the sender's community", YLabel: "share of community members reached", Y: comm, Legend: names, LogX: true},
			{Name: "reach", Title: "Reach over the whole network", YLabel: "share of all nodes reached (log scale)", Y: reach, Legend: names, LogX: true, LogY: true},
			{Name: "messages", Title: "Messages per broadcast", YLabel: "messages (log scale)", Y: msgs, Legend: names, LogX: true, LogY: true},
			{Name: "rmr", Title: "Relative message redundancy (Plumtree)", YLabel: "RMR = m/(n-1) - 1", Y: rmr, Legend: names, LogX: true},
			{Name: "latency", Title: "Latency to community members (p95)", YLabel: "p95 latency to community members (ms)", Y: lat, Legend: names, LogX: true},
		},
		summary: []string{"social_comm_reach", "social_msgs", "social_rmr", "flood_comm_reach", "flood_msgs", "gossip_reach", "gossip_msgs", "replicate_comm_reach"}}
}

// bmsg is a message in flight: 12 bytes. The social header (~130 bytes
// with its signature) is kept aside, only for social switching, whose
// broadcasts send at most its budget; slots are reused once delivered, so
// memory follows the messages in flight, not all messages of a broadcast
// (flooding and gossip send ~2e7 per broadcast at 10^6 nodes: kept, they
// took 12 GiB).
type bmsg struct {
	from, to int32
	ttl      int32
}

// bcast runs broadcasts of one method on a contact graph with geographic
// link latencies; it is the Handler of message arrivals.
type bcast struct {
	c      Config
	g      *graph.Graph
	comms  [][]int32
	geo    *Geo
	eng    *Engine
	r      *rand.Rand
	method string
	social []*social.Social[int32]
	// nodeOf, when set, gives each node's social state instead of social
	// and the contact graph (the lan model's members).
	nodeOf func(int32) *social.Social[int32]
	fanout int

	got     []int64 // first delivery time, -1: none
	touched []int32
	pend    []bmsg
	hdr     []social.SocialHeader // per pend slot, social only
	free    []int32               // pend slots free for reuse
	msgs    int
	origin  int32
}

var simEpoch = time.Unix(0, 0).UTC()

func (b *bcast) node(v int32) *social.Social[int32] {
	if b.nodeOf != nil {
		return b.nodeOf(v)
	}
	if s := b.social[v]; s != nil {
		return s
	}
	s, _ := social.NewSocial(v, func(k int32) uint64 { return social.SocialMix(uint64(k)) }, b.c.Social)
	// Contacts touched within the last minutes, community members tending
	// to be the more recent (affinity), as in overlay's tests.
	r := NewRand(b.c.Seed, 0x50c1a1^uint64(v))
	nb := slices.Clone(b.g.Neighbours(int(v)))
	score := make([]float64, len(nb))
	for i, u := range nb {
		score[i] = r.Float64()
		if b.g.Community[u] == b.g.Community[v] {
			score[i] += b.c.Affinity
		}
	}
	idx := make([]int, len(nb))
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, func(x, y int) int { return cmp.Compare(score[x], score[y]) })
	for i, j := range idx {
		s.Touch(nb[j], simEpoch.Add(time.Duration(i-len(nb))*time.Second))
	}
	b.social[v] = s
	return s
}

func (b *bcast) send(from, to int32, h social.SocialHeader, ttl int) {
	b.msgs++
	var slot int32
	if n := len(b.free); n > 0 {
		slot = b.free[n-1]
		b.free = b.free[:n-1]
		b.pend[slot] = bmsg{from, to, int32(ttl)}
	} else {
		slot = int32(len(b.pend))
		b.pend = append(b.pend, bmsg{from, to, int32(ttl)})
		if b.method == "social" {
			b.hdr = append(b.hdr, social.SocialHeader{})
		}
	}
	if b.method == "social" {
		b.hdr[slot] = h
	}
	b.eng.After(b.geo.RTT(from, to)/2+int64(b.c.ServiceUs*1e3), b, int64(slot))
}

func (b *bcast) deliver(v int32, now int64) bool {
	if b.got[v] >= 0 || v == b.origin {
		return false
	}
	b.got[v] = now
	b.touched = append(b.touched, v)
	return true
}

func (b *bcast) randomOther(v int32) int32 {
	u := int32(b.r.IntN(b.g.N() - 1))
	if u >= v {
		u++
	}
	return u
}

func (b *bcast) Fire(now, arg int64) {
	m := b.pend[arg]
	var h social.SocialHeader
	if b.method == "social" {
		h, b.hdr[arg] = b.hdr[arg], social.SocialHeader{}
	}
	b.free = append(b.free, int32(arg))
	switch b.method {
	case "social":
		d := b.node(m.to).Receive(m.from, h, simEpoch.Add(time.Duration(now)))
		if d.Deliver {
			b.deliver(m.to, now)
		}
		for _, s := range d.Sends {
			b.send(m.to, s.To, s.SocialHeader, 0)
		}
	case "flood":
		if b.deliver(m.to, now) && m.ttl > 0 {
			for _, u := range b.g.Neighbours(int(m.to)) {
				if u != m.from {
					b.send(m.to, u, social.SocialHeader{}, int(m.ttl)-1)
				}
			}
		}
	case "gossip":
		if b.deliver(m.to, now) {
			for range b.fanout {
				b.send(m.to, b.randomOther(m.to), social.SocialHeader{}, 0)
			}
		}
	case "replicate":
		b.deliver(m.to, now)
	}
}

// run does one broadcast from origin and returns (reached, community
// members reached, community size-1, community latencies in ms).
func (b *bcast) run(origin int32) (int, int, int, []float64) {
	now := b.eng.Now()
	b.spread(origin)
	cm := b.g.Community[origin]
	commN, commGot := 0, 0
	var lat []float64
	for _, v := range b.comms[cm] {
		if v == origin {
			continue
		}
		commN++
		if b.got[v] >= 0 {
			commGot++
			lat = append(lat, float64(b.got[v]-now)/1e6)
		}
	}
	return len(b.touched), commGot, commN, lat
}

// spread does one broadcast from origin at the engine's time, until no
// message is in flight: b.touched lists the nodes reached, b.got their
// times, b.msgs the messages sent.
func (b *bcast) spread(origin int32) {
	for _, v := range b.touched {
		b.got[v] = -1
	}
	b.touched, b.pend, b.hdr, b.free, b.msgs, b.origin = b.touched[:0], b.pend[:0], b.hdr[:0], b.free[:0], 0, origin
	now := b.eng.Now()
	switch b.method {
	case "social":
		_, sends := b.node(origin).Originate(simEpoch.Add(time.Duration(now)))
		for _, s := range sends {
			b.send(origin, s.To, s.SocialHeader, 0)
		}
	case "flood":
		for _, u := range b.g.Neighbours(int(origin)) {
			b.send(origin, u, social.SocialHeader{}, b.c.Social.WithDefaults().TTL-1)
		}
	case "gossip":
		for range b.fanout {
			b.send(origin, b.randomOther(origin), social.SocialHeader{}, 0)
		}
	case "replicate":
		// ZeroTier since 2014: the origin sends to up to multicastLimit
		// random members (here: of its community first, as group members).
		members := slices.Clone(b.comms[b.g.Community[origin]])
		b.r.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
		sent := 0
		for _, u := range members {
			if u != origin && sent < b.c.ReplicationLimit {
				b.send(origin, u, social.SocialHeader{}, 0)
				sent++
			}
		}
	}
	b.eng.Run(-1)
}

// runBroadcastModel compares implicit social switching (overlay's own code)
// with flooding over the contact graph (TTL), random push gossip to
// ln(n)+5 random nodes (Kermarrec et al. 2003) and ZeroTier-style
// sender-side replication to replication_limit community members. Methods
// whose cost grows with N run fewer broadcasts on large networks
// (broadcasts * 1000 / N, at least 3).
func runBroadcastModel(c Config, progress func(float64)) (Metrics, error) {
	r := NewRand(c.Seed, 11)
	g := graph.Communities(c.Nodes, c.Community, c.InDegree, c.OutDegree, r)
	geo := NewGeo(c.Nodes, NewRand(c.Seed, 1))
	comms := g.CommunityLists()
	m := Metrics{"nodes": float64(c.Nodes), "mean_degree": float64(len(g.Adj)) / float64(c.Nodes)}
	fan := c.GossipFanout
	if fan <= 0 {
		fan = int(math.Ceil(math.Log(float64(c.Nodes)))) + 5
	}
	m["gossip_fanout"] = float64(fan)
	for mi, method := range bcastMethods {
		b := &bcast{c: c, g: g, comms: comms, geo: geo, eng: &Engine{}, r: NewRand(c.Seed, 13+uint64(mi)), method: method,
			fanout: fan, got: make([]int64, c.Nodes)}
		for i := range b.got {
			b.got[i] = -1
		}
		if method == "social" {
			b.social = make([]*social.Social[int32], c.Nodes)
		}
		runs := c.Broadcasts
		if method == "flood" || method == "gossip" {
			runs = min(runs, max(3, c.Broadcasts*1000/c.Nodes))
		}
		or := NewRand(c.Seed, 17) // same origins for every method
		var reach, comm, msgs, rmr, lat []float64
		full := 0 // broadcasts that reached every member of the community
		for i := range runs {
			origin := int32(or.IntN(c.Nodes))
			got, cg, cn, l := b.run(origin)
			reach = append(reach, float64(got)/float64(c.Nodes-1))
			comm = append(comm, float64(cg)/float64(max(1, cn)))
			if cg == cn {
				full++
			}
			msgs = append(msgs, float64(b.msgs))
			if got > 0 {
				rmr = append(rmr, float64(b.msgs)/float64(got)-1)
			}
			lat = append(lat, l...)
			progress((float64(mi) + float64(i+1)/float64(runs)) / float64(len(bcastMethods)))
		}
		m[method+"_reach"] = mean(reach)
		m[method+"_comm_reach"] = mean(comm)
		m[method+"_comm_reach_p5"] = quantile(comm, 0.05)
		m[method+"_comm_full_share"] = float64(full) / float64(max(1, runs))
		m[method+"_msgs"] = mean(msgs)
		m[method+"_msgs_max"] = quantile(msgs, 1)
		m[method+"_rmr"] = mean(rmr)
		m[method+"_comm_latency_ms_p95"] = quantile(lat, 0.95)
		m[method+"_broadcasts"] = float64(runs)
	}
	return m, nil
}
