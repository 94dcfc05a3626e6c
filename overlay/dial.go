package overlay

import (
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// slowDial is how long a link's dial takes before the engine logs it.
const slowDial = 2 * time.Second

// Connect dials member p unless a link to p is up or being dialled, or a
// dial started less than needLinkEvery ago.
func (e *Engine) Connect(p peer.ID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.links[p]; !ok {
		e.connect(p)
	}
}

// Redial dials p again although a link to p is up, when this node dialled
// that link: the new link replaces it (AddLink), taking over what waits
// in its queue while the old one drains what the other end sent on it.
// The node moves a link off a relay this way once a direct path exists.
// It reports whether a dial started.
func (e *Engine) Redial(p peer.ID) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	l, ok := e.links[p]
	if !ok || !l.outbound || e.tr == nil || e.closed || e.dialing[p] {
		return false
	}
	e.asked[p] = e.cfg.Now()
	e.dialing[p] = true
	e.wg.Add(1)
	go e.dial(p)
	return true
}

// connect starts a dial of p (see Connect); e.mu is held.
func (e *Engine) connect(p peer.ID) {
	if e.tr == nil || e.closed || e.dialing[p] || !e.sw.IsMember(p) {
		return
	}
	now := e.cfg.Now()
	if t, ok := e.asked[p]; ok && now.Sub(t) < needLinkEvery {
		return
	}
	e.asked[p] = now
	e.dialing[p] = true
	e.wg.Add(1)
	go e.dial(p)
}

// dial opens a link to p through the Transport and adds it.
func (e *Engine) dial(p peer.ID) {
	defer e.wg.Done()
	defer func() {
		e.mu.Lock()
		delete(e.dialing, p)
		e.mu.Unlock()
	}()
	hello, err := e.cfg.Hello()
	if err != nil {
		e.logs.Log("hello", "overlay: no hello for %s: %v", p, err)
		return
	}
	start := time.Now()
	rw, err := e.tr.DialLink(e.ctx, p, hello)
	if err != nil {
		if e.ctx.Err() == nil {
			e.logs.Log("dial "+string(p), "overlay: link to %s: %v (after %v)", p, err, time.Since(start).Round(time.Millisecond))
		}
		return
	}
	if d := time.Since(start); d > slowDial {
		// Frames held for the link wait this long (and expire after
		// pendingMaxAge): worth knowing when a first contact is slow.
		e.logs.Log("slow dial "+string(p), "overlay: link to %s took %v", p, d.Round(time.Millisecond))
	}
	if err := e.AddLink(p, rw, true); err != nil {
		rw.Close()
	}
}
