package overlay

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/kadlan/kadlan/tap/ether"
	"github.com/libp2p/go-libp2p/core/peer"
)

type engineLink struct {
	peer     peer.ID
	outbound bool      // opened by this node
	opened   time.Time // when it was added
	rw       io.ReadWriteCloser
	q        *Queue
	done     chan struct{}
	once     sync.Once
	rwOnce   sync.Once
	// draining: replaced by another link, it sends nothing more but
	// delivers what the member sent on it before (see drain); guarded by
	// the engine's lock.
	draining bool
	// Messages and bytes read, counted under the engine's lock while the
	// link is current.
	rxMsgs, rxBytes uint64
}

// stop ends sending on l: its writer returns, its queue takes nothing.
func (l *engineLink) stop() {
	l.once.Do(func() {
		close(l.done)
		l.q.Close()
	})
}

func (l *engineLink) close() {
	l.stop()
	l.rwOnce.Do(func() { l.rw.Close() })
}

// drainFor bounds how long a replaced link is read after it stopped
// sending.
const drainFor = 5 * time.Second

// drain retires l, replaced by a successor: when both ends dial at once,
// each writes its first frames on the stream it has until the winning
// one arrives, so the loser is closed for writing (the other end reads
// its end) and read until the other end closes it too, or drainFor. A
// stream that cannot half-close is closed. e.mu is held.
func (e *Engine) drain(l *engineLink) {
	cw, ok := l.rw.(interface{ CloseWrite() error })
	dl, ok2 := l.rw.(interface{ SetReadDeadline(time.Time) error })
	if !ok || !ok2 || e.closed {
		l.close()
		return
	}
	l.stop()
	if cw.CloseWrite() != nil || dl.SetReadDeadline(time.Now().Add(drainFor)) != nil {
		l.close()
		return
	}
	l.draining = true
	e.draining[l] = true
}

// closeDraining closes the links still draining (Close); e.mu is held.
func (e *Engine) closeDraining() {
	for l := range e.draining {
		delete(e.draining, l)
		l.close()
	}
}

// retire adds the counts of l, just removed from e.links, to e.gone; e.mu
// is held.
func (e *Engine) retire(l *engineLink) {
	s, _ := l.q.Stats()
	e.gone.add(l.rxMsgs, l.rxBytes, s)
}

func (e *Engine) dropLink(l *engineLink, err error) {
	e.mu.Lock()
	delete(e.draining, l)
	if e.links[l.peer] == l {
		delete(e.links, l.peer)
		e.retire(l)
		if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
			e.logs.Log("link "+string(l.peer), "overlay: link to %s: %v", l.peer, err)
		}
	}
	e.mu.Unlock()
	l.close()
}

// readLink reads a member's messages. Under the engine's lock it only
// decides (the switch's checks and outputs to other links); it writes to
// the device, and segments super-frames, after releasing it, so that a
// member's traffic cannot hold up everyone else's.
func (e *Engine) readLink(l *engineLink) {
	defer e.wg.Done()
	r := vswitch.NewReader(l.rw, 0)
	var local [][]byte // frames to write to the device, aliasing r's buffer
	var seg []byte     // segmentation scratch
	mtu := e.dev.MTU()
	for {
		m, err := r.Next()
		if err != nil {
			e.dropLink(l, err)
			return
		}
		size := uint64(m.EncodedLen())
		if m.Kind == vswitch.MsgRecord {
			e.mu.Lock()
			current := e.links[l.peer] == l
			if current {
				l.rxMsgs++
				l.rxBytes += size
			}
			live := current || l.draining
			e.mu.Unlock()
			if !live {
				return
			}
			e.queueRecord(l.peer, m.Payload)
			continue
		}
		var whole []byte // MsgFrameGSO: header and frame
		var vh ether.VnetHdr
		if m.Kind == vswitch.MsgFrameGSO {
			// Checked in constant time before anything else is done.
			h, err := ether.ParseVnetHdr(m.Payload)
			if err == nil && h.IsGSO() {
				err = checkGSO(m.Payload[ether.VnetHdrLen:], &h, mtu)
			}
			if err != nil {
				e.counters.gsoRejected.Add(1)
				e.logs.Log("gso "+gsoReason(err), "overlay: super-frame from %s dropped: %v", l.peer, err)
				continue
			}
			whole, vh = m.Payload, h
			m = vswitch.Message{Kind: vswitch.MsgFrame, Payload: m.Payload[ether.VnetHdrLen:]}
		}
		// A broadcast's signature is checked outside the lock: an
		// Ed25519 verification costs ~50-100 us, which would otherwise
		// hold up every other member's traffic.
		var chk vswitch.BroadcastCheck
		good := false
		if m.Kind == vswitch.MsgBroadcast {
			e.mu.Lock()
			var need bool
			chk, need = e.sw.PendingVerify(e.cfg.Now(), l.peer, m)
			e.mu.Unlock()
			good = need && chk.Verify()
		}
		local = local[:0]
		e.mu.Lock()
		if current := e.links[l.peer] == l; current {
			l.rxMsgs++
			l.rxBytes += size
		} else if !l.draining {
			e.mu.Unlock()
			return
		}
		if good {
			e.sw.AddVerified(chk)
		} else if chk.Needed() {
			e.sw.FailedVerify(l.peer, e.cfg.Now())
			e.mu.Unlock()
			continue
		}
		if whole != nil {
			e.stats.GSOReceived++
		}
		for _, o := range e.sw.HandleRemote(e.cfg.Now(), l.peer, m) {
			if o.Kind == vswitch.ToLocal && o.Input {
				local = append(local, o.Msg.Payload)
				continue
			}
			e.dispatchOne(o, nil)
		}
		e.mu.Unlock()
		for _, f := range local {
			if whole != nil {
				seg = e.writeGSO(whole, vh, f, seg)
			} else {
				e.writeDev(f)
			}
		}
	}
}

func (e *Engine) writeLink(l *engineLink) {
	defer e.wg.Done()
	var spare []byte
	for {
		select {
		case <-l.done:
			return
		case <-l.q.Ready():
		}
		b := l.q.Take(spare)
		if b == nil {
			continue
		}
		if _, err := l.rw.Write(b); err != nil {
			e.dropLink(l, err)
			return
		}
		spare = b
	}
}
