package overlay

import (
	"slices"
	"time"

	"github.com/kadlan/kadlan/overlay/bounds"
	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/kadlan/kadlan/tap/ether"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Links on demand: a node links to the members it talks to, not to every
// member. A frame for a member without a link starts a dial (connect) and
// waits, with a few others, until the link is up (hold, flushPending), so
// the first packet to a never-contacted member is delayed by the dial,
// not lost. A frame for a MAC no known member holds waits the same way
// (holdMAC) while the daemon looks the member up (OnUnresolved) and adds
// it (resolveHeld). A link whose member has not been a social neighbour
// for the idle time is closed (closeIdle). What a node holds is then
// bounded by its social neighbours (SocialParams.Neighbours), MinLinks
// and MaxIdleInbound, not by the size of the network.

// pendingMsgs are the messages held for one member or MAC.
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
	holdIn(e, e.pending, p, m, e.tr != nil)
}

// holdMAC keeps a copy of m, a frame for mac that no known member holds,
// while OnUnresolved looks the member up (resolveHeld); e.mu is held.
func (e *Engine) holdMAC(mac ether.MAC, m vswitch.Message) {
	holdIn(e, e.heldMAC, mac, m, e.tr != nil && e.cfg.OnUnresolved != nil)
}

// holdIn keeps a copy of m under k in pending, within the bounds (members
// and MACs with frames held count together); e.mu is held.
func holdIn[K comparable](e *Engine, pending map[K]*pendingMsgs, k K, m vswitch.Message, canHold bool) {
	pf := pending[k]
	if pf == nil {
		if len(e.pending)+len(e.heldMAC) >= pendingPeers || !canHold {
			e.stats.PendingDropped++
			return
		}
		pf = &pendingMsgs{since: e.cfg.Now()}
		pending[k] = pf
	}
	if !pf.fits(m) {
		e.stats.PendingDropped++
		return
	}
	m.Payload = slices.Clone(m.Payload) // the caller's buffer is reused
	pf.add(m)
	e.stats.PendingHeld++
}

func (pf *pendingMsgs) fits(m vswitch.Message) bool {
	return len(pf.msgs) < pendingFrames && pf.bytes+len(m.Payload) <= pendingBytes
}

func (pf *pendingMsgs) add(m vswitch.Message) {
	pf.msgs = append(pf.msgs, m)
	pf.bytes += len(m.Payload)
}

// resolveHeld moves the frames held for MACs whose member is now known to
// that member: onto its link, or held for it while it is dialled; e.mu is
// held.
func (e *Engine) resolveHeld() {
	if len(e.heldMAC) == 0 {
		return
	}
	now := e.cfg.Now()
	for mac, held := range e.heldMAC {
		p, ok := e.sw.Resolve(now, mac, len(held.msgs))
		if !ok {
			continue
		}
		delete(e.heldMAC, mac)
		pf := e.pending[p]
		if pf == nil {
			e.pending[p], pf = held, held
		} else {
			for _, m := range held.msgs {
				if !pf.fits(m) {
					e.stats.PendingDropped++
					continue
				}
				pf.add(m)
			}
		}
		if l, ok := e.links[p]; ok {
			e.flushPending(l)
		} else {
			e.connect(p)
		}
	}
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

// expirePending drops frames held longer than pendingMaxAge (no link came,
// no member was found); e.mu is held.
func (e *Engine) expirePending(now time.Time) {
	e.stats.PendingDropped += expireIn(e.pending, now) + expireIn(e.heldMAC, now)
}

func expireIn[K comparable](pending map[K]*pendingMsgs, now time.Time) (dropped uint64) {
	for k, pf := range pending {
		if now.Sub(pf.since) > pendingMaxAge {
			dropped += uint64(len(pf.msgs))
			delete(pending, k)
		}
	}
	return dropped
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
	ls := e.boundsLinks()
	for _, p := range bounds.IdleLinks(ls, func(p peer.ID) bool { return fresh[p] }, now, e.cfg.LinkIdle, e.cfg.MinLinks, e.cfg.MaxIdleInbound) {
		l := e.links[p]
		delete(e.links, p)
		e.retire(l)
		l.close()
		e.stats.IdleClosed++
	}
}

// lookupEvery rate-limits OnUnresolved per destination.
const lookupEvery = time.Second

// unresolved takes the switch's unresolved destinations that are due for
// a lookup; e.mu is held.
func (e *Engine) unresolved() []vswitch.Unresolved {
	us := e.sw.TakeUnresolved()
	if e.cfg.OnUnresolved == nil || len(us) == 0 {
		return nil
	}
	now := e.cfg.Now()
	out := us[:0]
	for _, u := range us {
		if t, ok := e.lookups[u]; ok && now.Sub(t) < lookupEvery {
			continue
		}
		e.lookups[u] = now
		out = append(out, u)
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
	ls := e.boundsLinks()
	for _, p := range bounds.StaleSeeds(ls, func(p peer.ID) bool { return isFresh[p] }, len(fresh), e.cfg.MinLinks) {
		e.dispatch(e.sw.Connected(p, now))
	}
}

// tick runs the engine's periodic work (the switch's tick, expiry of
// held frames and lookups, idle closing, seeds) every TickEvery.
func (e *Engine) tick() {
	defer e.wg.Done()
	t := time.NewTicker(e.cfg.TickEvery)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
			e.mu.Lock()
			now := e.cfg.Now()
			e.dispatch(e.sw.Tick(now))
			e.expirePending(now)
			for u, t := range e.lookups {
				if now.Sub(t) > lookupEvery {
					delete(e.lookups, u)
				}
			}
			e.closeIdle(now)
			e.keepSeeds(now)
			e.mu.Unlock()
		}
	}
}

// boundsLinks lists the links as the bounds package's rules take them;
// e.mu is held.
func (e *Engine) boundsLinks() []bounds.Link[peer.ID] {
	ls := make([]bounds.Link[peer.ID], 0, len(e.links))
	for p, l := range e.links {
		ls = append(ls, bounds.Link[peer.ID]{Peer: p, Opened: l.opened, Outbound: l.outbound})
	}
	return ls
}
