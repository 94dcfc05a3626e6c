package overlay

import (
	"slices"
	"time"

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
// MinLinks, and such links that others dialled beyond MaxIdleInbound;
// e.mu is held.
func (e *Engine) closeIdle(now time.Time) {
	if e.cfg.LinkIdle <= 0 || len(e.links) <= e.cfg.MinLinks {
		return
	}
	fresh := map[peer.ID]bool{}
	for _, p := range e.sw.Neighbours(now) {
		fresh[p] = true
	}
	var idle, idleIn []peer.ID
	for p, l := range e.links {
		if fresh[p] || now.Sub(l.opened) < e.cfg.LinkIdle {
			continue
		}
		if l.outbound {
			idle = append(idle, p)
		} else {
			idleIn = append(idleIn, p)
		}
	}
	// Oldest links go first; the ones kept are the newest.
	oldest := func(a, b peer.ID) int { return e.links[a].opened.Compare(e.links[b].opened) }
	slices.SortFunc(idle, oldest)
	slices.SortFunc(idleIn, oldest)
	// A link the other end dialled may be one of its MinLinks: closing it
	// would only make that node dial again, so such links close only
	// beyond MaxIdleInbound (and the dialler picks another seed).
	if extra := len(idleIn) - e.cfg.MaxIdleInbound; extra > 0 {
		idle = append(idle, idleIn[:extra]...)
	}
	for _, p := range idle {
		if len(e.links) <= e.cfg.MinLinks {
			return
		}
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
