package daemon

import (
	"context"
	"time"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// dial opens a member link to p: a stream, our Hello, then the engine.
func (j *joined) dial(ctx context.Context, p peer.ID) {
	j.mu.Lock()
	if j.dialing[p] || j.eng == nil {
		j.mu.Unlock()
		return
	}
	j.dialing[p] = true
	ann := j.ann
	hello, err := j.m.Hello(ann)
	eng := j.eng
	j.mu.Unlock()
	defer func() {
		j.mu.Lock()
		delete(j.dialing, p)
		j.mu.Unlock()
	}()
	if err != nil {
		return
	}
	b, err := netrec.AppendHello(nil, hello)
	if err != nil {
		return
	}
	s, err := j.mgr.node.DialLink(ctx, p, protocol.ID(vswitch.ProtocolID), b)
	if err != nil {
		return
	}
	if err := eng.AddLink(p, s, true); err != nil {
		s.Reset()
		return
	}
	j.protect(p)
	j.mgr.logf("networks: %s: link to %s over %s", j.m.ID.Short(), p, s.Conn().RemoteMultiaddr())
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
	err = j.m.AcceptHello(p, h, time.Now())
	eng := j.eng
	if err == nil {
		j.dirty = true
	}
	j.mu.Unlock()
	if err != nil || eng == nil {
		if err != nil {
			nm.logf("networks: %s: link from %s refused: %v", h.Network.Short(), p, err)
		}
		s.Reset()
		return
	}
	j.syncSwitch()
	if err := eng.AddLink(p, s, false); err != nil {
		s.Reset()
		return
	}
	j.protect(p)
	nm.logf("networks: %s: link from %s over %s", h.Network.Short(), p, s.Conn().RemoteMultiaddr())
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
	}
}

// unprotect drops the protection of p's connections; j.mu is held.
func (j *joined) unprotect(p peer.ID) {
	if j.protected[p] {
		delete(j.protected, p)
		j.mgr.node.UnprotectLink(p, j.linkTag())
	}
}
