package daemon

import (
	"io"
	"sync"
	"time"

	"github.com/kadlan/kadlan/overlay"
	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// hello is what this node writes first on every link it opens (called
// by the engine when it dials).
func (j *joined) hello() ([]byte, error) {
	j.mu.Lock()
	h, err := j.m.Hello(j.ann)
	j.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return netrec.AppendHello(nil, h)
}

// onLink is called by the engine once a link is up: its connections are
// protected from trimming, and the path is logged.
func (j *joined) onLink(p peer.ID, rw io.ReadWriteCloser, outbound bool) {
	j.protect(p)
	dir, over := "from", ""
	if outbound {
		dir = "to"
	}
	if s, ok := rw.(network.Stream); ok {
		over = " over " + s.Conn().RemoteMultiaddr().String()
	}
	j.logs.Log("link "+string(p), "networks: %s: link %s %s%s", j.m.ID.Short(), dir, p, over)
}

// engine returns the network's engine (nil while there is none).
func (j *joined) engine() *overlay.Engine {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.eng
}

// handleStream accepts a member link: it reads the Hello, checks that the
// sender is authorized on that network, and hands the stream to the engine.
// Anything else is reset: a peer cannot make this node accept frames for a
// network it has not joined or the peer is not authorized on.
func (nm *netManager) handleStream(s network.Stream) {
	if !nm.g.Enter() {
		s.Reset() // shutting down
		return
	}
	defer nm.g.Leave()
	p := s.Conn().RemotePeer()
	s.SetReadDeadline(time.Now().Add(helloTimeout))
	h, err := netrec.ReadHello(s)
	s.SetReadDeadline(time.Time{})
	if err != nil {
		s.Reset()
		return
	}
	nm.mu.Lock()
	j := nm.nets[h.Network]
	nm.mu.Unlock()
	if j == nil {
		s.Reset()
		return
	}
	j.mu.Lock()
	now := time.Now()
	err = j.m.AcceptHello(p, h, now)
	eng := j.eng
	invited := false
	if err == nil {
		j.dirty = true
		j.keepLinking(p, now)
		invited = j.m.MemberStatus(p, now) == vswitch.StatusInvited
	}
	j.mu.Unlock()
	if invited {
		j.logs.Log("invited "+string(p), "networks: %s: %s admitted by invite (until the owner certifies it)", h.Network.Short(), p)
	}
	if err != nil || eng == nil {
		if err != nil {
			j.logs.Log("refused", "networks: %s: link from %s refused: %v", h.Network.Short(), p, err)
		}
		s.Reset()
		return
	}
	j.syncSwitch()
	if err := eng.AddLink(p, s, false); err != nil {
		s.Reset()
	}
}

// linkTag names the network in the connection manager's protections.
func (j *joined) linkTag() string { return "kadlan-link-" + j.m.ID.Short() }

// protect keeps the connection manager from trimming the connections of
// member p's link (idle strangers go first; see dht.ConnLimits).
func (j *joined) protect(p peer.ID) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.protected[p] {
		j.protected[p] = true
		j.mgr.node.ProtectLink(p, j.linkTag())
		j.mgr.linked.add(p)
	}
}

// unprotect drops the protection of p's connections; j.mu is held.
func (j *joined) unprotect(p peer.ID) {
	if j.protected[p] {
		delete(j.protected, p)
		j.mgr.node.UnprotectLink(p, j.linkTag())
		j.mgr.linked.remove(p)
	}
}

// memberIndex counts, per peer, the networks on which this node has had a
// member link with it: the relay service gives these peers a member's
// limits (dht.Config.IsMember). It exists before the node does.
type memberIndex struct {
	mu sync.Mutex
	n  map[peer.ID]int
}

func newMemberIndex() *memberIndex { return &memberIndex{n: map[peer.ID]int{}} }

func (x *memberIndex) add(p peer.ID) {
	x.mu.Lock()
	x.n[p]++
	x.mu.Unlock()
}

func (x *memberIndex) remove(p peer.ID) {
	x.mu.Lock()
	if x.n[p]--; x.n[p] <= 0 {
		delete(x.n, p)
	}
	x.mu.Unlock()
}

// has reports whether p is a linked member of some network of this node.
func (x *memberIndex) has(p peer.ID) bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.n[p] > 0
}
