package sim

import (
	"cmp"
	"slices"
	"time"

	"github.com/kadlan/kadlan/overlay/bounds"
	"github.com/kadlan/kadlan/overlay/social"
)

// tick is one engine tick and network-loop step of active member m:
// idle closing (bounds.IdleLinks), forgetting known members beyond
// max_known (as vswitch's TrimKnown: least recently heard first, never
// linked members or social neighbours), a discovery round when due, seeds
// while below bounds.MinLinks, and a sample of what m holds.
func (w *lanWorld) tick(m *lanMember, now int64) {
	t := simEpoch.Add(time.Duration(now))
	nb := m.soc.Neighbours(t)
	fresh := func(p int32) bool { return slices.Contains(nb, p) }
	peers := make([]int32, 0, len(m.links))
	for p := range m.links {
		peers = append(peers, p)
	}
	slices.Sort(peers)
	ls := make([]bounds.Link[int32], len(peers))
	for i, p := range peers {
		l := m.links[p]
		ls[i] = bounds.Link[int32]{Peer: p, Opened: simEpoch.Add(time.Duration(l.opened)), Outbound: l.outbound}
	}
	for _, p := range bounds.IdleLinks(ls, fresh, t, time.Duration(w.idle), bounds.MinLinks, bounds.MaxIdleInbound) {
		w.closeLink(m, p)
	}
	for _, p := range peers {
		// The lazy end of a link it dialled closes it once idle: no
		// exchange over it within the neighbour age (its own list, not
		// m's, which may be full), older than the idle time.
		if l := m.links[p]; l != nil && l.lazyEnd && now-l.lastUse >= int64(w.sp.NeighbourAgeSec)*1e9 && now-l.opened >= w.idle && w.idle > 0 {
			w.closeLink(m, p)
		}
	}
	w.trimKnown(m, fresh)
	w.discover(m, now)
	w.seed(m, now)
	// Seeds made neighbours again while fewer than MinLinks are fresh, as
	// the engine's keepSeeds does.
	cur := make([]bounds.Link[int32], 0, len(m.links))
	for p, l := range m.links {
		cur = append(cur, bounds.Link[int32]{Peer: p, Opened: simEpoch.Add(time.Duration(l.opened)), Outbound: l.outbound})
	}
	slices.SortFunc(cur, func(a, b bounds.Link[int32]) int { return cmp.Compare(a.Peer, b.Peer) })
	nb = m.soc.Neighbours(t) // after this tick's closes and seeds
	for _, p := range bounds.StaleSeeds(cur, fresh, len(nb), bounds.MinLinks) {
		w.touch(m, p, now)
	}
	if now >= w.warm && m.ticks%max(1, int(w.c.SampleS/bounds.TickEvery.Seconds())) == 0 {
		if m.hot {
			w.hotLinks = append(w.hotLinks, float64(len(m.links)))
			w.hotKnown = append(w.hotKnown, float64(len(m.known)))
		} else {
			w.links = append(w.links, float64(len(m.links)))
			w.known = append(w.known, float64(len(m.known)))
			w.nbrs = append(w.nbrs, float64(len(nb)))
		}
	}
	m.ticks++
	if w.onTick != nil {
		w.onTick(m, now)
	}
}

// trimKnown forgets the members heard of least recently beyond maxKnown,
// never a linked member or a fresh social neighbour.
func (w *lanWorld) trimKnown(m *lanMember, fresh func(int32) bool) {
	if len(m.known) <= w.maxKnown {
		return
	}
	var cand []int32
	for p := range m.known {
		if _, linked := m.links[p]; !linked && !m.dialing[p] && !fresh(p) {
			cand = append(cand, p)
		}
	}
	slices.SortFunc(cand, func(a, b int32) int { return cmp.Or(cmp.Compare(m.known[a], m.known[b]), cmp.Compare(a, b)) })
	for _, p := range cand[:min(len(cand), len(m.known)-w.maxKnown)] {
		delete(m.known, p)
	}
}

// discover runs a discovery round when one is due (daemon/netdiscover.go):
// one provider walk taking bounds.DiscoverProviders providers (assumed a
// uniform sample of the members), then fetches of the records of those
// not known and not fetched within bounds.RepublishEvery, at most
// bounds.DiscoverFetches. Each fetch is a DHT walk, counted; its member
// becomes known at once (a fetch's own latency is left out).
func (w *lanWorld) discover(m *lanMember, now int64) {
	lonely := len(m.links) == 0
	every := m.discEvery
	if len(m.known) >= min(w.maxKnown, bounds.DiscoverSample) {
		every = int64(bounds.RepublishEvery) // holds its sample
	}
	if lonely {
		every = int64(2 * time.Second)
	}
	if now-m.lastDisc < every {
		return
	}
	m.lastDisc = now
	measured := now >= w.warm
	if measured {
		m.walks++
	}
	found, started := 0, 0
	for _, p := range w.providers(m.id) {
		if started >= bounds.DiscoverFetches {
			break
		}
		if _, ok := m.known[p]; ok {
			continue
		}
		if at, ok := m.tried[p]; ok && now-at < int64(bounds.RepublishEvery) {
			continue
		}
		m.tried[p] = now
		started++
		if measured {
			m.fetches++
		}
		m.known[p] = now
		found++
	}
	if started == bounds.DiscoverFetches {
		found = max(found, 1) // more may wait: keep the period
	}
	if found > 0 || lonely {
		m.discEvery = int64(bounds.DiscoverEvery)
	} else {
		m.discEvery = min(2*m.discEvery, int64(bounds.RepublishEvery))
	}
	if len(m.tried) > 4096 { // the daemon's discoverTried
		for p, at := range m.tried {
			if now-at >= int64(bounds.RepublishEvery) {
				delete(m.tried, p)
			}
		}
	}
}

// providers is one provider walk's answer for member self: up to
// bounds.DiscoverProviders other members, in random order.
func (w *lanWorld) providers(self int32) []int32 {
	if w.M-1 <= bounds.DiscoverProviders {
		out := make([]int32, 0, w.M-1)
		for v := range int32(w.M) {
			if v != self {
				out = append(out, v)
			}
		}
		w.r.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		return out
	}
	out := make([]int32, 0, bounds.DiscoverProviders)
	for len(out) < bounds.DiscoverProviders {
		if v := int32(w.r.IntN(w.M)); v != self && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// seed dials random known members without a link while m has fewer than
// bounds.MinLinks links (daemon/netloop.go seedLinks).
func (w *lanWorld) seed(m *lanMember, now int64) {
	need := bounds.MinLinks - len(m.links) - len(m.dialing)
	if need <= 0 {
		return
	}
	var unlinked []int32
	for p := range m.known {
		if _, ok := m.links[p]; !ok && !m.dialing[p] {
			unlinked = append(unlinked, p)
		}
	}
	slices.Sort(unlinked)
	w.r.Shuffle(len(unlinked), func(i, j int) { unlinked[i], unlinked[j] = unlinked[j], unlinked[i] })
	for _, y := range unlinked[:min(need, len(unlinked))] {
		m.dialing[y] = true
		if now >= w.warm {
			m.seeds++
		}
		w.eng.After(w.setup(m.id, y), HandlerFunc(func(_, _ int64) { w.open(m, y, now, true) }), 0)
	}
}

// socOf is member v's social state now: an active member's own, a lazy
// member's rebuilt from its pairs' contacts within the neighbour age
// (cached for one broadcast).
func (w *lanWorld) socOf(v int32) *social.Social[int32] {
	if s := w.act[v]; s >= 0 {
		return w.mem[s].soc
	}
	if s := w.lazySoc[v]; s != nil {
		return s
	}
	now := w.bc.eng.Now()
	cut := now - int64(w.sp.NeighbourAgeSec)*1e9
	type touch struct {
		peer int32
		t    int64
	}
	var ts []touch
	for i := range w.P {
		p := int32(int(v)*w.P + i)
		if t := w.lastContact(p, now); t > cut {
			ts = append(ts, touch{w.partners[p], t})
		}
	}
	for _, p := range w.rev[w.revOff[v]:w.revOff[v+1]] {
		if t := w.lastContact(p, now); t > cut {
			ts = append(ts, touch{int32(int(p) / w.P), t})
		}
	}
	slices.SortFunc(ts, func(a, b touch) int { return cmp.Or(cmp.Compare(a.t, b.t), cmp.Compare(a.peer, b.peer)) })
	s, _ := social.NewSocial(v, lanHash, w.sp)
	for _, c := range ts {
		s.Touch(c.peer, simEpoch.Add(time.Duration(c.t)))
	}
	w.lazySoc[v] = s
	return s
}

// broadcast spreads one broadcast from a random active member (not a hot
// one) by social switching (the broadcast model's code on the members'
// social states) and records its reach and messages.
func (w *lanWorld) broadcast(now int64) {
	var o *lanMember
	for o == nil || o.hot && len(w.mem) > 4 {
		o = w.mem[w.r.IntN(len(w.mem))]
	}
	w.lazySoc = map[int32]*social.Social[int32]{}
	w.bc.eng = &Engine{now: now}
	w.bc.spread(o.id)
	w.lazySoc = nil
	w.reach = append(w.reach, float64(len(w.bc.touched)))
	w.msgs = append(w.msgs, float64(w.bc.msgs))
	got := 0
	ps := w.partners[int(o.id)*w.P : (int(o.id)+1)*w.P]
	for i, p := range ps {
		if !slices.Contains(ps[:i], p) && w.bc.got[p] >= 0 {
			got++
		}
	}
	w.partnerReach = append(w.partnerReach, float64(got)/float64(max(1, distinct(ps))))
}

func distinct(x []int32) int {
	n := 0
	for i, v := range x {
		if !slices.Contains(x[:i], v) {
			n++
		}
	}
	return n
}
