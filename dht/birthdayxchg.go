package dht

import (
	"context"
	"crypto/tls"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go"
)

// exchange is one side's view of the stream.
type exchange struct {
	s    network.Stream
	msgs chan bdayMsg // read by a goroutine the exchange owns
	wg   sync.WaitGroup
}

func newExchange(s network.Stream, deadline time.Time) *exchange {
	s.SetDeadline(deadline)
	x := &exchange{s: s, msgs: make(chan bdayMsg, 4)}
	x.wg.Add(1)
	go func() {
		defer x.wg.Done()
		defer close(x.msgs)
		for {
			m, err := readMsg(s)
			if err != nil {
				return
			}
			select {
			case x.msgs <- m:
			default: // a peer flooding messages loses them
			}
		}
	}()
	return x
}

func (x *exchange) send(m bdayMsg) error {
	_, err := x.s.Write(m.encode())
	return err
}

// close ends the stream and waits for its reader.
func (x *exchange) close() {
	x.s.Close()
	x.s.Reset()
	x.wg.Wait()
}

// next waits for a message of type t (an end message, or the stream's
// end, comes back as ok false with its reason).
func (x *exchange) next(ctx context.Context, t uint8) (bdayMsg, bdayReason, bool) {
	select {
	case <-ctx.Done():
		return bdayMsg{}, reasonFailed, false
	case m, ok := <-x.msgs:
		if !ok {
			return bdayMsg{}, reasonFailed, false
		}
		if m.Type == msgEnd {
			return m, m.Reason, false
		}
		if m.Type != t {
			return m, reasonFailed, false
		}
		return m, 0, true
	}
}

// verdict is what a pair of classes allows.
func verdict(sym, other natClass) (bdayReason, bool) {
	switch {
	case sym == natSymmetric && other == natEIM:
		return 0, true
	case sym == natSymmetric && other == natSymmetric:
		return reasonBothSymmetric, false
	case sym == natUnknown || other == natUnknown:
		return reasonUnknownNAT, false
	}
	return reasonNoSymmetric, false
}

// initiate runs the symmetric side of an exchange with rp.
func (b *birthday) initiate(ctx context.Context, rp peer.ID) (bdayReason, natClass) {
	deadline := b.now().Add(bdayDeadline)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	myClass, myExt := b.class()
	if myClass != natSymmetric || !publicV4(myExt.Addr()) {
		return reasonUnknownNAT, natUnknown
	}
	s, err := b.h.NewStream(network.WithAllowLimitedConn(ctx, "kadlan-birthday"), rp, BirthdayProtocol)
	if err != nil {
		return reasonFailed, natUnknown
	}
	x := newExchange(s, deadline)
	defer x.close()
	nonce := newNonce()
	if x.send(bdayMsg{Type: msgHello, Nonce: nonce, Class: myClass, Addr: netip.AddrPortFrom(myExt.Addr(), 0)}) != nil {
		return reasonFailed, natUnknown
	}
	hello, r, ok := x.next(ctx, msgHello)
	if !ok {
		return r, natUnknown
	}
	if r, ok := verdict(myClass, hello.Class); !ok {
		x.send(bdayMsg{Type: msgEnd, Reason: r})
		return r, hello.Class
	}
	eAddr := hello.Addr
	if !publicV4(eAddr.Addr()) || eAddr.Port() == 0 {
		x.send(bdayMsg{Type: msgEnd, Reason: reasonNoAddr})
		return reasonNoAddr, hello.Class
	}
	socks, err := openProbeSockets(bdaySockets)
	if err != nil {
		x.send(bdayMsg{Type: msgEnd, Reason: reasonFailed})
		return reasonFailed, hello.Class
	}
	// Open the mappings: one probe from each socket to E's QUIC address.
	dst := net.UDPAddrFromAddrPort(eAddr)
	probe := makeProbe(nonce, 0)
	for i, c := range socks {
		c.WriteToUDP(probe, dst)
		if i%32 == 31 {
			time.Sleep(time.Millisecond) // pace the burst
		}
	}
	type hit struct {
		idx  int
		port uint16
	}
	hits := make(chan hit, 1)
	var rwg sync.WaitGroup
	for i, c := range socks {
		c.SetReadDeadline(deadline)
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			buf := make([]byte, 64)
			for {
				n, from, err := c.ReadFromUDPAddrPort(buf)
				if err != nil {
					return
				}
				from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
				if port, ok := parseProbe(buf[:n], nonce); ok && from == eAddr {
					select {
					case hits <- hit{i, port}:
					default:
					}
					return
				}
			}
		}()
	}
	stopReaders := func() {
		for _, c := range socks {
			c.SetReadDeadline(time.Now())
		}
		rwg.Wait()
	}
	if x.send(bdayMsg{Type: msgReady}) != nil {
		stopReaders()
		closeAll(socks, -1)
		return reasonFailed, hello.Class
	}
	var won hit
	select {
	case won = <-hits:
	case m, ok := <-x.msgs:
		stopReaders()
		closeAll(socks, -1)
		if ok && m.Type == msgEnd {
			return m.Reason, hello.Class
		}
		return reasonFailed, hello.Class
	case <-ctx.Done():
		stopReaders()
		closeAll(socks, -1)
		return reasonNoHit, hello.Class
	}
	stopReaders()
	closeAll(socks, won.idx)
	winner := socks[won.idx]
	winner.SetReadDeadline(time.Time{})
	laddr, err := b.lend(winner)
	if err != nil {
		b.logf("dht: birthday punch with %s: lending the socket: %v", rp, err)
		x.send(bdayMsg{Type: msgEnd, Reason: reasonFailed})
		return reasonFailed, hello.Class
	}
	defer b.unlisten(laddr)
	if x.send(bdayMsg{Type: msgHit, Port: won.port}) != nil {
		return reasonFailed, hello.Class
	}
	// Wait for E's connection to arrive on the winning socket, or E's word.
	lport := winner.LocalAddr().(*net.UDPAddr).Port
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		if b.directOn(rp, lport) {
			return reasonDirect, hello.Class
		}
		select {
		case <-ctx.Done():
			return reasonDialFailed, hello.Class
		case m, ok := <-x.msgs:
			if b.directOn(rp, lport) {
				return reasonDirect, hello.Class
			}
			if ok && m.Type == msgEnd && m.Reason != reasonDirect {
				return m.Reason, hello.Class
			}
			if !ok {
				x.msgs = nil // the stream ended; wait for the connection until the deadline
			}
		case <-tick.C:
		}
	}
}

// directOn reports whether a direct QUIC connection to rp uses local UDP
// port lport.
func (b *birthday) directOn(rp peer.ID, lport int) bool {
	for _, c := range b.h.Network().ConnsToPeer(rp) {
		if isCircuit(c.RemoteMultiaddr()) {
			continue
		}
		if udp, ap, ok := ipPort(c.LocalMultiaddr()); ok && udp && int(ap.Port()) == lport {
			return true
		}
	}
	return false
}

func openProbeSockets(k int) ([]*net.UDPConn, error) {
	var out []*net.UDPConn
	for range k {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
		if err != nil {
			break
		}
		out = append(out, c)
	}
	if len(out) < k/4 {
		closeAll(out, -1)
		return nil, fmt.Errorf("birthday: only %d of %d UDP sockets", len(out), k)
	}
	return out, nil
}

// closeAll closes every socket but the one at keep.
func closeAll(socks []*net.UDPConn, keep int) {
	for i, c := range socks {
		if i != keep {
			c.Close()
		}
	}
}

// lentQUIC makes a quic.Transport a quicreuse.QUICTransport.
type lentQUIC struct{ *quic.Transport }

func (t lentQUIC) Listen(tc *tls.Config, qc *quic.Config) (quicreuse.QUICListener, error) {
	l, err := t.Transport.Listen(tc, qc)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// lend hands the winning socket to libp2p's QUIC and listens on it, so
// that E's dial lands in this node's swarm. It returns the listen address.
func (b *birthday) lend(c *net.UDPConn) (ma.Multiaddr, error) {
	port := c.LocalAddr().(*net.UDPAddr).Port
	tr := &quic.Transport{Conn: c}
	done, err := b.cm.LendTransport("udp4", lentQUIC{tr}, c)
	if err != nil {
		c.Close()
		return nil, err
	}
	b.mu.Lock()
	b.hidden[port] = true
	b.lent = append(b.lent, &lentSocket{conn: c, tr: tr, port: port, done: done})
	b.mu.Unlock()
	laddr, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", port))
	if err != nil {
		return nil, err
	}
	if err := b.h.Network().Listen(laddr); err != nil {
		return nil, err
	}
	return laddr, nil
}

// unlisten closes the listener on a lent socket; the connection accepted
// on it lives on (reap closes the socket after it).
func (b *birthday) unlisten(laddr ma.Multiaddr) {
	if lc, ok := b.h.Network().(interface{ ListenClose(...ma.Multiaddr) }); ok {
		lc.ListenClose(laddr)
	}
}

// respondAllowed admits bdayResponders exchanges at a time,
// bdayRespPerMinute a minute.
func (b *birthday) respondAllowed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	kept := b.respStarts[:0]
	for _, t := range b.respStarts {
		if now.Sub(t) < time.Minute {
			kept = append(kept, t)
		}
	}
	b.respStarts = kept
	if b.responding >= bdayResponders || len(b.respStarts) >= bdayRespPerMinute {
		return false
	}
	b.responding++
	b.respStarts = append(b.respStarts, now)
	return true
}

// handle is the EIM side of an exchange (BirthdayProtocol's handler).
func (b *birthday) handle(ctx context.Context, s network.Stream) {
	rp := s.Conn().RemotePeer()
	if !isCircuit(s.Conn().RemoteMultiaddr()) {
		// Only peers reached through a relay need this.
		s.Reset()
		return
	}
	deadline := b.now().Add(bdayDeadline)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	x := newExchange(s, deadline)
	defer x.close()
	if !b.enabled() || !b.respondAllowed() {
		x.send(bdayMsg{Type: msgEnd, Reason: reasonBusy})
		return // counted by the initiator, not here
	}
	hello, r, ok := x.next(ctx, msgHello)
	if !ok {
		b.finish(rp, r, natUnknown, false)
		return
	}
	myClass, myExt := b.class()
	if x.send(bdayMsg{Type: msgHello, Nonce: hello.Nonce, Class: myClass, Addr: myExt}) != nil {
		b.finish(rp, reasonFailed, hello.Class, false)
		return
	}
	if r, ok := verdict(hello.Class, myClass); !ok {
		b.finish(rp, r, hello.Class, false)
		return
	}
	sIP := hello.Addr.Addr()
	if !publicV4(sIP) || !publicV4(myExt.Addr()) || myExt.Port() == 0 {
		x.send(bdayMsg{Type: msgEnd, Reason: reasonNoAddr})
		b.finish(rp, reasonNoAddr, hello.Class, false)
		return
	}
	if _, r, ok := x.next(ctx, msgReady); !ok {
		b.finish(rp, r, hello.Class, false)
		return
	}
	started := b.now()
	r = b.probeAndDial(ctx, x, rp, hello.Nonce, sIP, int(myExt.Port()))
	b.logf("dht: birthday punch with %s (answering): %v after %v", rp, r, b.now().Sub(started).Round(time.Millisecond))
	x.send(bdayMsg{Type: msgEnd, Reason: r})
	b.finish(rp, r, hello.Class, false)
}

// probeAndDial sends probes from this node's QUIC socket to random ports
// of sIP until S reports a hit, then dials QUIC there.
func (b *birthday) probeAndDial(ctx context.Context, x *exchange, rp peer.ID, nonce [16]byte, sIP netip.Addr, myQUICPort int) bdayReason {
	if b.sentTo != nil {
		b.sentTo(sIP)
	}
	tr, err := b.cm.TransportForDial("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(sIP, bdayMinPort)))
	if err != nil {
		return reasonFailed
	}
	defer tr.DecreaseCount()
	if la, ok := tr.LocalAddr().(*net.UDPAddr); !ok || la.Port != myQUICPort {
		// Probes must leave from the port peers observed.
		return reasonNoAddr
	}
	const span = 65536 - bdayMinPort
	order := mrand.Perm(span)[:bdayMaxProbes]
	sent := make(map[uint16]bool, bdayMaxProbes)
	const batch = bdayProbeRate / 100
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	i := 0
	var hitPort uint16
	for hitPort == 0 {
		select {
		case <-ctx.Done():
			return reasonNoHit
		case m, ok := <-x.msgs:
			if !ok {
				return reasonFailed
			}
			switch {
			case m.Type == msgHit && sent[m.Port]:
				hitPort = m.Port
			case m.Type == msgEnd:
				return m.Reason
			default:
				return reasonFailed // a hit on a port never probed, or nonsense
			}
		case <-tick.C:
			for j := 0; j < batch && i < len(order); j++ {
				port := uint16(bdayMinPort + order[i])
				i++
				sent[port] = true
				tr.WriteTo(makeProbe(nonce, port), net.UDPAddrFromAddrPort(netip.AddrPortFrom(sIP, port)))
			}
			// After the last probe, S still has until the deadline to
			// report a hit in flight.
		}
	}
	addr, err := ma.NewMultiaddr(fmt.Sprintf("/ip4/%s/udp/%d/quic-v1", sIP, hitPort))
	if err != nil {
		return reasonFailed
	}
	if b.gate != nil {
		b.gate.openedFor(rp, addr)
	}
	dctx, cancel := context.WithTimeout(ctx, bdayDialTimeout)
	defer cancel()
	dialStart := b.now()
	err = b.h.Connect(network.WithForceDirectDial(dctx, "kadlan-birthday"), peer.AddrInfo{ID: rp, Addrs: []ma.Multiaddr{addr}})
	b.logf("dht: birthday punch with %s: hit %s after %d probes, dial %v: %v", rp, addr, i, b.now().Sub(dialStart).Round(time.Millisecond), err)
	if err != nil {
		return reasonDialFailed
	}
	for _, c := range b.h.Network().ConnsToPeer(rp) {
		if c.RemoteMultiaddr().Equal(addr) {
			return reasonDirect
		}
	}
	if relayed, _ := relayedOnly(b.h.Network().ConnsToPeer(rp)); !relayed {
		return reasonDirect // direct by another way (DCUtR, a dial)
	}
	return reasonDialFailed
}

// newQUICConnManager is libp2p's default QUIC connection manager (as its
// config builds it), built here so that the node holds it: birthday
// punching lends it sockets and writes probes from its listening socket.
func newQUICConnManager(key quic.StatelessResetKey, tokens quic.TokenGeneratorKey, rcmgr network.ResourceManager, reg prometheus.Registerer) (*quicreuse.ConnManager, error) {
	opts := []quicreuse.Option{
		quicreuse.ConnContext(func(ctx context.Context, ci *quic.ClientInfo) (context.Context, error) {
			addr, err := quicreuse.ToQuicMultiaddr(ci.RemoteAddr, quic.Version1)
			if err != nil {
				addr = nil
			}
			scope, err := rcmgr.OpenConnection(network.DirInbound, false, addr)
			if err != nil {
				return ctx, err
			}
			ctx = network.WithConnManagementScope(ctx, scope)
			context.AfterFunc(ctx, scope.Done)
			return ctx, nil
		}),
		quicreuse.VerifySourceAddress(rcmgr.VerifySourceAddress),
	}
	if reg != nil {
		opts = append(opts, quicreuse.EnableMetrics(reg))
	}
	return quicreuse.NewConnManager(key, tokens, opts...)
}
