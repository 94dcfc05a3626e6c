package overlay

import (
	"net/netip"
	"slices"
	"time"

	"github.com/kadlan/kadlan/overlay/bounds"
	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Links on demand: a node links to the members it talks to, not to every
// member. A frame for a member without a link starts a dial (connect) and
// waits, with a few others, until the link is up (hold, flushPending), so
// the first packet to a never-contacted member is delayed by the dial,
// not lost; a link whose member has not been a social neighbour for the
// idle time is closed (closeIdle). What a node holds is then bounded by its
// social neighbours (SocialParams.Neighbours), MinLinks and
// MaxIdleInbound, not by the size of the network.

// pendingMsgs are the messages held for one member.
type pendingMsgs struct {
	since time.Time
	msgs  []vswitch.Message
	bytes int
}

// hold keeps a copy of m (a frame) for p until p's link is up; e.mu is
// held. Other messages (group announcements, records) are not held: they
// are repeated anyway.
func (e *Engine) hold(p peer.ID, m vswitch.Message) {
	if m.Kind != vswitch.MsgFrame && m.Kind != vswitch.MsgFrameGSO {
		return
	}
	pf := e.pending[p]
	if pf == nil {
		if len(e.pending) >= pendingPeers || e.tr == nil {
			e.stats.PendingDropped++
			return
		}
		pf = &pendingMsgs{since: e.cfg.Now()}
		e.pending[p] = pf
	}
	if len(pf.msgs) >= pendingFrames || pf.bytes+len(m.Payload) > pendingBytes {
		e.stats.PendingDropped++
		return
	}
	m.Payload = slices.Clone(m.Payload) // the caller's buffer is reused
	pf.msgs = append(pf.msgs, m)
	pf.bytes += len(m.Payload)
	e.stats.PendingHeld++
}

// flushPending queues the frames held for l's member; e.mu is held.
func (e *Engine) flushPending(l *engineLink) {
	pf := e.pending[l.peer]
	if pf == nil {
		return
	}
	delete(e.pending, l.peer)
	for _, m := range pf.msgs {
		if !l.q.Push(m) {
			e.stats.PendingDropped++
		}
	}
}

// expirePending drops frames held longer than pendingMaxAge (no link came);
// e.mu is held.
func (e *Engine) expirePending(now time.Time) {
	for p, pf := range e.pending {
		if now.Sub(pf.since) > pendingMaxAge {
			e.stats.PendingDropped += uint64(len(pf.msgs))
			delete(e.pending, p)
		}
	}
}

// closeIdle closes links this node dialled whose member is no longer a
// fresh social neighbour and that are older than LinkIdle, keeping
// MinLinks, and such links that others dialled beyond MaxIdleInbound
// (bounds.IdleLinks, which the simulator runs too); e.mu is held.
func (e *Engine) closeIdle(now time.Time) {
	if e.cfg.LinkIdle <= 0 || len(e.links) <= e.cfg.MinLinks {
		return
	}
	fresh := map[peer.ID]bool{}
	for _, p := range e.sw.Neighbours(now) {
		fresh[p] = true
	}
	ls := make([]bounds.Link[peer.ID], 0, len(e.links))
	for p, l := range e.links {
		ls = append(ls, bounds.Link[peer.ID]{Peer: p, Opened: l.opened, Outbound: l.outbound})
	}
	for _, p := range bounds.IdleLinks(ls, func(p peer.ID) bool { return fresh[p] }, now, e.cfg.LinkIdle, e.cfg.MinLinks, e.cfg.MaxIdleInbound) {
		l := e.links[p]
		delete(e.links, p)
		e.retire(l)
		l.close()
		e.stats.IdleClosed++
	}
}

// lookupEvery rate-limits OnUnresolved per address.
const lookupEvery = time.Second

// unresolved takes the switch's unresolved addresses that are due for a
// lookup; e.mu is held.
func (e *Engine) unresolved() []netip.Addr {
	ips := e.sw.TakeUnresolved()
	if e.cfg.OnUnresolved == nil || len(ips) == 0 {
		return nil
	}
	now := e.cfg.Now()
	out := ips[:0]
	for _, ip := range ips {
		if t, ok := e.lookups[ip]; ok && now.Sub(t) < lookupEvery {
			continue
		}
		e.lookups[ip] = now
		out = append(out, ip)
	}
	return out
}

// keepSeeds makes links social neighbours again while the node has fewer
// fresh ones than MinLinks (bounds.StaleSeeds, which the simulator runs
// too); e.mu is held. Touching a link is the switch's Connected: it also
// announces the local groups to that member. Found by the simulator's lan
// model: a quiet member's broadcasts reached nobody once its seeds were
// older than the neighbour age.
func (e *Engine) keepSeeds(now time.Time) {
	fresh := e.sw.Neighbours(now)
	if len(fresh) >= e.cfg.MinLinks {
		return
	}
	isFresh := make(map[peer.ID]bool, len(fresh))
	for _, p := range fresh {
		isFresh[p] = true
	}
	ls := make([]bounds.Link[peer.ID], 0, len(e.links))
	for p, l := range e.links {
		ls = append(ls, bounds.Link[peer.ID]{Peer: p, Opened: l.opened, Outbound: l.outbound})
	}
	for _, p := range bounds.StaleSeeds(ls, func(p peer.ID) bool { return isFresh[p] }, len(fresh), e.cfg.MinLinks) {
		e.dispatch(e.sw.Connected(p, now))
	}
}
