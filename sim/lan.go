package sim

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/kadlan/kadlan/overlay/bounds"
	"github.com/kadlan/kadlan/overlay/social"
	"github.com/kadlan/kadlan/overlay/vswitch"
)

// The lan model: one public network of M members on the simulated DHT,
// with links on demand as the node has them (overlay/bounds: MinLinks,
// MaxIdleInbound, IdleLinks, the discovery bounds; vswitch.DefaultMaxKnown;
// overlay/social for the neighbours and broadcasts).
//
// Traffic: member x talks to partners[x] (Partners members, drawn once,
// uniformly or Zipf-skewed over a popularity rank); each (member, partner)
// pair exchanges a unicast frame at the times of a Poisson process of rate
// ContactsPerMin/Partners, derived from a hash of (seed, pair, k), so that
// anyone's contacts at any time can be computed without simulating them.
//
// Active members (a random sample of Active, all when Active >= M; with a
// skew also the 4 most popular) are simulated event by event: their
// contacts (both ways), links, known members, discovery rounds, seeds,
// idle closing every bounds.TickEvery. The others are lazy: their contacts
// with active members are simulated from the active side; a lazy member
// that dialled an active one closes that link once it is idle (assumed:
// above its MinLinks), a lazy member dialled by an active one keeps it
// (assumed: under its MaxIdleInbound); a seed link an active member dials
// to a lazy one is mirrored as a seed link from a random lazy member to a
// random active one that lasts as long (under uniform provider order the
// rates match exactly); a lazy member's social neighbours, needed when a
// broadcast reaches it, are rebuilt from its pairs' contact times (its own
// seeds left out).

// lanLink is one end of a link held by an active member.
type lanLink struct {
	opened   int64
	outbound bool
	lazyEnd  bool  // a lazy member dialled it (it closes it when idle)
	lastUse  int64 // lazyEnd: the last exchange over it
	mirrored bool  // the mirror of another member's seed link to a lazy member
	// mirrorTo, mirrorPeer: a seed link to a lazy member whose mirror is
	// held by active member mirrorTo (-1: none) as a link to mirrorPeer.
	mirrorTo, mirrorPeer int32
}

// lanMember is an active member's state.
type lanMember struct {
	id        int32
	hot       bool // one of the most popular (skewed traffic): reported apart
	links     map[int32]*lanLink
	dialing   map[int32]bool
	known     map[int32]int64 // member -> last heard (ns)
	tried     map[int32]int64 // provider -> when its records were fetched
	soc       *social.Social[int32]
	discEvery int64
	lastDisc  int64
	ticks     int
	// In the measured window.
	lookups, fetches, walks, seeds int
}

// lanWorld is one run of the lan model.
type lanWorld struct {
	c        Config
	M, P     int
	net      *Net
	eng      *Engine
	r        *rand.Rand
	partners []int32 // partners[x*P+i]
	revOff   []int32 // pairs naming member v as partner: rev[revOff[v]:revOff[v+1]]
	rev      []int32
	act      []int32 // member -> index in mem, -1: lazy
	mem      []*lanMember
	pairs    []int32      // pairs with an active end, scheduled
	lambda   float64      // contacts per ns per pair
	newRate  float64      // contacts to new members per ns per member
	inRate   []float64    // per active member: new contacts from lazy members per ns
	draw     func() int32 // a member by popularity
	idle     int64
	sp       social.SocialParams
	maxKnown int
	warm     int64
	end      int64

	// Observations (measured window; hot members apart).
	links, known, nbrs       []float64
	hotLinks, hotKnown       []float64
	firstLat                 []float64
	firstContacts, firstLook int
	lookupFailed             int
	lookupRPCs               []float64
	reach, partnerReach      []float64
	msgs                     []float64
	bc                       *bcast
	lazySoc                  map[int32]*social.Social[int32]

	// onTick, when set, is called after every tick of an active member
	// (tests check the bounds there).
	onTick func(m *lanMember, now int64)
}

// Event kinds (the top byte of an event's argument).
const (
	lanPairEv int64 = iota + 1
	lanTickEv
	lanBcastEv
	lanNewOutEv // an active member's contact to a new member
	lanNewInEv  // a lazy member's contact to an active one, new to it
)

const lanKindShift = 56

var lanHash = func(k int32) uint64 { return social.SocialMix(uint64(k)) }

// newLanWorld builds the members, their partners and the schedule.
func newLanWorld(c Config) *lanWorld {
	w := &lanWorld{c: c, M: c.Nodes, P: c.Partners, r: NewRand(c.Seed, 0x1a4), eng: &Engine{}}
	w.net = NewNet(c.Nodes, c.K, c.Seed)
	w.net.ServiceNs = int64(c.ServiceUs * 1e3)
	w.net.DialRTTs = c.DialRTTs
	w.lambda = c.ContactsPerMin / float64(max(1, c.Partners)) / 60e9
	w.idle = int64(c.LinkIdleS * 1e9)
	w.sp = c.Social.WithDefaults()
	w.sp.NeighbourAgeSec = max(1, int(c.LinkIdleS)) // as the daemon sets it: one notion of recent
	w.maxKnown = cmp.Or(c.MaxKnown, vswitch.DefaultMaxKnown)
	w.warm, w.end = int64(c.WarmupS*1e9), int64(c.DurationS*1e9)
	rank := w.r.Perm(w.M) // rank -> member
	w.buildPartners(rank)
	w.pickActive(rank)
	w.newRate = c.NewContactsPerMin / 60e9
	if w.newRate > 0 && len(w.mem) < w.M {
		w.inRate = w.newInRates(rank)
	}
	for s, m := range w.mem {
		for i := range w.P {
			w.schedulePair(int32(int(m.id)*w.P + i))
		}
		for _, p := range w.rev[w.revOff[m.id]:w.revOff[m.id+1]] {
			if w.act[int(p)/w.P] < 0 {
				w.schedulePair(p)
			}
		}
		w.eng.At(w.r.Int64N(int64(bounds.TickEvery)), w, lanTickEv<<lanKindShift|int64(s))
		w.scheduleNew(lanNewOutEv, s, 0)
		w.scheduleNew(lanNewInEv, s, 0)
	}
	for i := range c.Broadcasts {
		t := w.warm + int64((float64(i)+0.5)*float64(w.end-w.warm)/float64(c.Broadcasts))
		w.eng.At(t, w, lanBcastEv<<lanKindShift)
	}
	w.bc = &bcast{c: c, geo: w.net.Geo, r: NewRand(c.Seed, 0x1a5), method: "social", got: make([]int64, w.M),
		nodeOf: w.socOf}
	for i := range w.bc.got {
		w.bc.got[i] = -1
	}
	return w
}

// buildPartners draws every member's partners (distinct where the
// network allows) and the reverse index.
func (w *lanWorld) buildPartners(rank []int) {
	w.partners = make([]int32, w.M*w.P)
	var z *rand.Zipf
	if w.c.ContactSkew > 0 {
		z = rand.NewZipf(w.r, w.c.ContactSkew, 1, uint64(w.M-1))
	}
	w.draw = func() int32 {
		if z != nil {
			return int32(rank[z.Uint64()])
		}
		return int32(w.r.IntN(w.M))
	}
	draw := w.draw
	count := make([]int32, w.M+1)
	for x := range w.M {
		set := w.partners[x*w.P : (x+1)*w.P]
		for i := range set {
			y := draw()
			for try := 0; try < 16 && (int(y) == x || slices.Contains(set[:i], y)); try++ {
				y = draw()
			}
			if int(y) == x {
				y = int32((x + 1 + i) % w.M)
			}
			set[i] = y
			count[y+1]++
		}
	}
	for v := range w.M {
		count[v+1] += count[v]
	}
	w.revOff = count
	w.rev = make([]int32, w.M*w.P)
	fill := slices.Clone(count[:w.M])
	for p, y := range w.partners {
		w.rev[fill[y]] = int32(p)
		fill[y]++
	}
}

// pickActive chooses the members simulated event by event.
func (w *lanWorld) pickActive(rank []int) {
	w.act = make([]int32, w.M)
	for i := range w.act {
		w.act[i] = -1
	}
	n := w.M
	if w.c.Active > 0 && w.c.Active < w.M {
		n = w.c.Active
	}
	add := func(v int32, hot bool) {
		if w.act[v] >= 0 {
			return
		}
		w.act[v] = int32(len(w.mem))
		s, _ := social.NewSocial(v, lanHash, w.sp)
		w.mem = append(w.mem, &lanMember{id: v, hot: hot, links: map[int32]*lanLink{}, dialing: map[int32]bool{},
			known: map[int32]int64{}, tried: map[int32]int64{}, soc: s, discEvery: int64(bounds.DiscoverEvery), lastDisc: math.MinInt64 / 2})
	}
	if w.c.ContactSkew > 0 && n < w.M {
		for _, v := range rank[:min(4, w.M)] {
			add(int32(v), true)
		}
	}
	for _, v := range NewRand(w.c.Seed, 0x1a6).Perm(w.M)[:n] {
		add(int32(v), false)
	}
}

// contactAt is the k-th contact time of pair p (k >= 1 after prev).
func (w *lanWorld) contactAt(p int32, k int, prev int64) int64 {
	u := float64(hash3(w.c.Seed^0x1a7, uint64(p), uint64(k))>>11) / (1 << 53)
	return prev + int64(-math.Log1p(-u)/w.lambda)
}

// schedulePair schedules pair p's first contact.
func (w *lanWorld) schedulePair(p int32) {
	if w.lambda <= 0 {
		return
	}
	if t := w.contactAt(p, 0, 0); t < w.end {
		w.pairs = append(w.pairs, p)
		w.eng.At(t, w, lanPairEv<<lanKindShift|int64(len(w.pairs)-1)<<24) // low 24 bits: k
	}
}

// newInRates is, per active member, the rate of contacts to it from lazy
// members for whom it is new: new_contacts_per_min of each of them, drawn
// by popularity (uniform: 1/(M-1); Zipf: the rank's probability).
func (w *lanWorld) newInRates(rank []int) []float64 {
	p := make([]float64, len(w.mem))
	lazy := float64(w.M - len(w.mem))
	if w.c.ContactSkew == 0 {
		for i := range p {
			p[i] = w.newRate * lazy / float64(w.M-1)
		}
		return p
	}
	rankOf := make([]int32, w.M)
	for r, v := range rank {
		rankOf[v] = int32(r)
	}
	var h float64
	for r := range w.M {
		h += math.Pow(1+float64(r), -w.c.ContactSkew)
	}
	for i, m := range w.mem {
		p[i] = w.newRate * lazy * math.Pow(1+float64(rankOf[m.id]), -w.c.ContactSkew) / h
	}
	return p
}

// scheduleNew schedules active member s's next new contact of kind
// (lanNewOutEv or lanNewInEv) after now.
func (w *lanWorld) scheduleNew(kind int64, s int, now int64) {
	rate := w.newRate
	if kind == lanNewInEv {
		if w.inRate == nil {
			return
		}
		rate = w.inRate[s]
	}
	if rate <= 0 {
		return
	}
	if t := now + int64(w.r.ExpFloat64()/rate); t < w.end {
		w.eng.At(t, w, kind<<lanKindShift|int64(s))
	}
}

// lastContact is pair p's last contact at or before now (-1: none).
func (w *lanWorld) lastContact(p int32, now int64) int64 {
	last := int64(-1)
	if w.lambda <= 0 {
		return last
	}
	for k, t := 0, w.contactAt(p, 0, 0); t <= now; k, t = k+1, w.contactAt(p, k+1, t) {
		last = t
	}
	return last
}

// Fire runs an event.
func (w *lanWorld) Fire(now, arg int64) {
	kind, v := arg>>lanKindShift, arg&(1<<lanKindShift-1)
	switch kind {
	case lanPairEv:
		i, k := v>>24, int(v&(1<<24-1))
		p := w.pairs[i]
		x, y := int32(int(p)/w.P), w.partners[p]
		if s := w.act[x]; s >= 0 {
			w.contactOut(w.mem[s], y, now)
		} else {
			w.inbound(w.mem[w.act[y]], x, now)
		}
		if t := w.contactAt(p, k+1, now); t < w.end && k+1 < 1<<24 {
			w.eng.At(t, w, lanPairEv<<lanKindShift|i<<24|int64(k+1))
		}
	case lanTickEv:
		w.tick(w.mem[v], now)
		if now+int64(bounds.TickEvery) < w.end {
			w.eng.At(now+int64(bounds.TickEvery), w, arg)
		}
	case lanBcastEv:
		w.broadcast(now)
	case lanNewOutEv:
		m := w.mem[v]
		if y := w.draw(); y != m.id {
			w.contactOut(m, y, now)
		}
		w.scheduleNew(kind, int(v), now)
	case lanNewInEv:
		w.inbound(w.mem[v], w.lazyMember(), now)
		w.scheduleNew(kind, int(v), now)
	}
}

func (w *lanWorld) touch(m *lanMember, peer int32, now int64) {
	m.soc.Touch(peer, simEpoch.Add(time.Duration(now)))
}

// setup is a link's set-up time after the address is known: LinkRTTs
// round trips, then the first frame's half round trip.
func (w *lanWorld) setup(a, b int32) int64 {
	rtt := float64(w.net.Geo.RTT(a, b))
	return int64(w.c.LinkRTTs*rtt + rtt/2)
}

// contactOut is active member m's frame to y: over its link, or the first
// contact: an address lookup if y is not known, then the link set-up.
func (w *lanWorld) contactOut(m *lanMember, y int32, now int64) {
	if _, ok := m.links[y]; ok {
		w.touch(m, y, now)
		if ys := w.act[y]; ys >= 0 {
			w.touch(w.mem[ys], m.id, now)
		}
		return
	}
	if m.dialing[y] {
		return // held until the link is up
	}
	m.dialing[y] = true
	start := now
	open := HandlerFunc(func(t, _ int64) { w.open(m, y, start, false) })
	if _, ok := m.known[y]; ok {
		w.eng.After(w.setup(m.id, y), open, 0)
		return
	}
	if now >= w.warm {
		m.lookups++
	}
	w.net.StartLookup(w.eng, m.id, w.net.Space.Keys[y], y, w.c.Alpha, 1, int64(w.c.RPCTimeoutMs*1e6), func(l *Lookup) {
		if now >= w.warm {
			w.lookupRPCs = append(w.lookupRPCs, float64(l.RPCs))
		}
		if !l.Found {
			delete(m.dialing, y)
			if now >= w.warm {
				w.lookupFailed++
			}
			return
		}
		m.known[y] = w.eng.Now()
		w.eng.After(w.setup(m.id, y), open, 0)
	})
}

// open brings up m's link to y (dialled at start): both ends touch each
// other (the switch's Connected, then the held frame).
func (w *lanWorld) open(m *lanMember, y int32, start int64, seed bool) {
	now := w.eng.Now()
	delete(m.dialing, y)
	l := m.links[y]
	if l == nil {
		l = &lanLink{opened: now, outbound: true, mirrorTo: -1}
		m.links[y] = l
	}
	w.touch(m, y, now)
	m.known[y] = now
	if ys := w.act[y]; ys >= 0 {
		o := w.mem[ys]
		if _, ok := o.links[m.id]; !ok {
			o.links[m.id] = &lanLink{opened: now, mirrorTo: -1}
		}
		w.touch(o, m.id, now)
		o.known[m.id] = now
	}
	if !seed && start >= w.warm && !m.hot {
		w.firstContacts++
		w.firstLat = append(w.firstLat, float64(now-start)/1e6)
		if now-start > w.setup(m.id, y) {
			w.firstLook++
		}
	}
	if seed && w.act[y] < 0 && len(w.mem) > 1 && len(w.mem) < w.M {
		// The mirror: a lazy member's seed link to an active one.
		v := int32(w.r.IntN(len(w.mem) - 1))
		if v >= w.act[m.id] {
			v++
		}
		z := w.lazyMember()
		o := w.mem[v]
		if _, ok := o.links[z]; !ok {
			o.links[z] = &lanLink{opened: now, mirrored: true, mirrorTo: -1}
			w.touch(o, z, now)
			o.known[z] = now
			l.mirrorTo, l.mirrorPeer = v, z
		}
	}
}

// lazyMember returns a random member that is not active.
func (w *lanWorld) lazyMember() int32 {
	for {
		if z := int32(w.r.IntN(w.M)); w.act[z] < 0 {
			return z
		}
	}
}

// inbound is lazy member x's frame to active member o.
func (w *lanWorld) inbound(o *lanMember, x int32, now int64) {
	l := o.links[x]
	if l == nil {
		l = &lanLink{opened: now, lazyEnd: true, mirrorTo: -1}
		o.links[x] = l
	}
	l.lastUse = now
	w.touch(o, x, now)
	o.known[x] = now
}

// closeLink closes m's link to y at both ends (and its mirror).
func (w *lanWorld) closeLink(m *lanMember, y int32) {
	l := m.links[y]
	delete(m.links, y)
	if ys := w.act[y]; ys >= 0 {
		delete(w.mem[ys].links, m.id)
	}
	if l.mirrorTo >= 0 {
		o := w.mem[l.mirrorTo]
		if ml := o.links[l.mirrorPeer]; ml != nil && ml.mirrored && ml.opened == l.opened {
			delete(o.links, l.mirrorPeer)
		}
	}
}
