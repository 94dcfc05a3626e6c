package dht

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/quic-go/quic-go"
)

// Birthday punching (issue 12): a symmetric NAT (a new external port per
// destination) defeats DCUtR, whose peers dial the ports others observed.
// If the other side's NAT maps endpoint-independently (EIM: one external
// port per socket), the birthday paradox still finds a path:
//
//   - the symmetric side S opens bdaySockets UDP sockets and sends a probe
//     from each to the EIM side E's stable external QUIC address, which
//     opens bdaySockets mappings on S's NAT, all towards that address;
//   - E sends probes from its QUIC socket to random ports of S's NAT
//     address; a probe that hits one of the mappings reaches S;
//   - S lends the winning socket to libp2p's QUIC (quicreuse's
//     LendTransport, then a listener on it), tells E the port the probe
//     was sent to, and E dials QUIC there from its QUIC socket: the one
//     4-tuple both NATs let through.
//
// With k sockets on a NAT choosing ports from N (Linux: 1024-65535, N =
// 64512), each probe to a fresh port hits with probability k/N; n probes
// all miss with probability about (1-k/N)^n. k = 256: p = 0.40% per probe,
// a hit after 251 probes on average, 64% within 256 probes, 98.3% within
// 1024 and 99.97% within bdayMaxProbes = 2048 (2 s at bdayProbeRate).
//
// S learns that its NAT is symmetric from its peers: identify reports the
// address each peer saw a connection come from, and connections from one
// local port that others saw on different ports mean a mapping per
// destination. E knows it is EIM when several observers agree. S starts
// the exchange (within a second of a relayed connection to a peer, then
// with a backoff); both sides say what they are, so a symmetric pair ends
// at once, and `kadlan peers` says so.
//
// Bounds: one exchange at a time as the symmetric side, bdayResponders
// as the EIM side (a busy answer makes the other retry in 2 s); each lasts at
// most bdayDeadline; S opens at most bdaySockets sockets, closes all but
// the winner when a probe hits or the deadline passes, and the winner when
// its connection has gone; E sends at most bdayMaxProbes probes at
// bdayProbeRate, only to the public IPv4 address S gave over the relayed
// stream, and answers at most bdayRespPerMinute exchanges a minute.

// BirthdayProtocol is the stream protocol of the exchange.
const BirthdayProtocol protocol.ID = "/kadlan/punch/birthday/1.0.0"

const (
	bdaySockets       = 256
	bdayMaxProbes     = 2048
	bdayProbeRate     = 1000 // probes per second
	bdayMinPort       = 1024 // NAT port range probed: bdayMinPort..65535
	bdayDeadline      = 10 * time.Second
	bdayDialTimeout   = 4 * time.Second
	bdayFirstRetry    = 30 * time.Second
	bdayRespPerMinute = 20
	bdayResponders    = 2 // exchanges answered at once (each sends at bdayProbeRate)
	bdayBusyRetry     = 2 * time.Second
	bdayTick          = 500 * time.Millisecond
	bdayObservations  = 64 // observed mappings kept
)

// birthdayDisabled, set at link time (-X .../dht.birthdayDisabled=1),
// turns birthday punching off: the e2e tests' check that without it a
// symmetric-EIM pair stays relayed.
var birthdayDisabled string

// natClass is what a node knows of its NAT's mapping.
type natClass uint8

const (
	natUnknown natClass = iota
	natEIM
	natSymmetric
)

func (c natClass) String() string {
	switch c {
	case natEIM:
		return "endpoint-independent"
	case natSymmetric:
		return "symmetric"
	}
	return "unknown"
}

// mapObs is one peer's observation of this node's connection.
type mapObs struct {
	udp       bool
	localPort int
	ext       netip.AddrPort // as the peer saw it
	seen      time.Time
}

type obsKey struct {
	p   peer.ID
	udp bool
}

// classify judges the NAT from observations of connections from the
// listen ports (quicPort, tcpPort): two observers seeing one local port
// on different external ports mean symmetric; two or more agreeing mean
// EIM. UDP decides when it can, TCP otherwise. ext is the external UDP
// address of the QUIC port when EIM (from TCP: its address, with the QUIC
// port, which an EIM NAT that keeps ports preserves).
func classify(obs []mapObs, quicPort, tcpPort int) (natClass, netip.AddrPort) {
	judge := func(udp bool, port int) (natClass, netip.AddrPort, int) {
		var first netip.AddrPort
		n := 0
		for _, o := range obs {
			if o.udp != udp || o.localPort != port || port == 0 {
				continue
			}
			if n == 0 {
				first = o.ext
			} else if o.ext != first {
				return natSymmetric, first, n + 1
			}
			n++
		}
		if n >= 2 {
			return natEIM, first, n
		}
		return natUnknown, first, n
	}
	uc, uext, un := judge(true, quicPort)
	if uc != natUnknown {
		return uc, uext
	}
	tc, text, _ := judge(false, tcpPort)
	switch tc {
	case natSymmetric:
		return natSymmetric, netip.AddrPortFrom(text.Addr(), 0)
	case natEIM:
		if un == 1 && uext.Addr() == text.Addr() {
			return natEIM, uext
		}
		return natEIM, netip.AddrPortFrom(text.Addr(), uint16(quicPort))
	}
	return natUnknown, netip.AddrPort{}
}

// bdayPeer is the birthday state with one relayed peer.
type bdayPeer struct {
	runs    int
	last    string // outcome of the last exchange
	peerNAT natClass
	next    time.Time
	backoff time.Duration
	running bool
}

// lentSocket is a winning socket lent to libp2p's QUIC; it is closed once
// quicreuse gave it back (done) and no connection uses its port.
type lentSocket struct {
	conn *net.UDPConn
	tr   *quic.Transport
	port int
	done <-chan struct{}
}

// birthday runs birthday punches for a node.
type birthday struct {
	h    host.Host
	cm   *quicreuse.ConnManager
	logf func(string, ...any)
	now  func() time.Time

	mu         sync.Mutex
	obs        map[obsKey]mapObs
	peers      map[peer.ID]*bdayPeer
	initiating bool
	responding int
	respStarts []time.Time
	lent       []*lentSocket
	hidden     map[int]bool // local UDP ports of lent sockets
}

func newBirthday(h host.Host, cm *quicreuse.ConnManager, logf func(string, ...any)) *birthday {
	b := &birthday{h: h, cm: cm, logf: logf, now: time.Now, obs: map[obsKey]mapObs{}, peers: map[peer.ID]*bdayPeer{}, hidden: map[int]bool{}}
	return b
}

func (b *birthday) enabled() bool { return birthdayDisabled == "" && b.cm != nil }

// observe records what a peer saw of a direct connection c.
func (b *birthday) observe(c network.Conn, observed ma.Multiaddr) {
	if c == nil || observed == nil || isCircuit(c.RemoteMultiaddr()) || !manet.IsPublicAddr(observed) {
		return
	}
	lu, lp, ok := ipPort(c.LocalMultiaddr())
	if !ok {
		return
	}
	ou, op, ok := ipPort(observed)
	if !ok || ou != lu || !op.Addr().Is4() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	b.obs[obsKey{c.RemotePeer(), lu}] = mapObs{udp: lu, localPort: int(lp.Port()), ext: op, seen: now}
	for k, o := range b.obs {
		if now.Sub(o.seen) > punchObservedTTL {
			delete(b.obs, k)
		}
	}
	for len(b.obs) > bdayObservations {
		var oldK obsKey
		var old time.Time
		for k, o := range b.obs {
			if old.IsZero() || o.seen.Before(old) {
				oldK, old = k, o.seen
			}
		}
		delete(b.obs, oldK)
	}
}

// ipPort returns whether a is UDP (QUIC) or TCP, and its IPv4 address
// and port.
func ipPort(a ma.Multiaddr) (udp bool, ap netip.AddrPort, ok bool) {
	if a == nil {
		return false, ap, false
	}
	ips, err := a.ValueForProtocol(ma.P_IP4)
	if err != nil {
		return false, ap, false
	}
	ip, err := netip.ParseAddr(ips)
	if err != nil {
		return false, ap, false
	}
	ports, err := a.ValueForProtocol(ma.P_UDP)
	udp = err == nil
	if !udp {
		if ports, err = a.ValueForProtocol(ma.P_TCP); err != nil {
			return false, ap, false
		}
	}
	port, err := strconv.ParseUint(ports, 10, 16)
	if err != nil {
		return false, ap, false
	}
	return udp, netip.AddrPortFrom(ip, uint16(port)), true
}

// listenPorts are the node's IPv4 QUIC and TCP listen ports (lent sockets
// excluded).
func (b *birthday) listenPorts() (quicPort, tcpPort int) {
	for _, a := range b.h.Network().ListenAddresses() {
		udp, ap, ok := ipPort(a)
		if !ok || isCircuit(a) {
			continue
		}
		if udp && isQUIC(a) && quicPort == 0 && !b.isHidden(int(ap.Port())) {
			quicPort = int(ap.Port())
		}
		if !udp && isPlainTCP(a) && tcpPort == 0 {
			tcpPort = int(ap.Port())
		}
	}
	return quicPort, tcpPort
}

// class is this node's NAT mapping, and its external address.
func (b *birthday) class() (natClass, netip.AddrPort) {
	qp, tp := b.listenPorts()
	b.mu.Lock()
	obs := make([]mapObs, 0, len(b.obs))
	now := b.now()
	for _, o := range b.obs {
		if now.Sub(o.seen) <= punchObservedTTL {
			obs = append(obs, o)
		}
	}
	b.mu.Unlock()
	return classify(obs, qp, tp)
}

func (b *birthday) isHidden(port int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hidden[port]
}

// hide drops lent sockets' listen addresses from what the node advertises.
func (b *birthday) hide(in []ma.Multiaddr) []ma.Multiaddr {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.hidden) == 0 {
		return in
	}
	out := in[:0:0]
	for _, a := range in {
		if udp, ap, ok := ipPort(a); ok && udp && b.hidden[int(ap.Port())] {
			continue
		}
		out = append(out, a)
	}
	return out
}

// State is the birthday part of a peer's punch state.
func (b *birthday) state(rp peer.ID, st *PunchState) bool {
	c, _ := b.class()
	b.mu.Lock()
	defer b.mu.Unlock()
	st.NAT = c.String()
	bp := b.peers[rp]
	if bp == nil {
		return false
	}
	st.PeerNAT = bp.peerNAT.String()
	st.BirthdayRuns = bp.runs
	st.Birthday = bp.last
	if bp.running {
		st.Birthday = "running"
	}
	return true
}

func (b *birthday) peerLocked(rp peer.ID) *bdayPeer {
	if bp := b.peers[rp]; bp != nil {
		return bp
	}
	if len(b.peers) >= punchPeers {
		return nil
	}
	bp := &bdayPeer{next: b.now(), backoff: bdayFirstRetry}
	b.peers[rp] = bp
	return bp
}

// finish records the outcome of an exchange with rp and plans the next.
func (b *birthday) finish(rp peer.ID, r bdayReason, peerNAT natClass, initiator bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if initiator {
		b.initiating = false
	} else {
		b.responding--
	}
	bp := b.peerLocked(rp)
	if bp == nil {
		return
	}
	bp.runs++
	bp.last = r.String()
	bp.peerNAT = peerNAT
	if initiator {
		bp.running = false
		switch r {
		case reasonBothSymmetric, reasonNoSymmetric:
			bp.backoff = punchMaxBackoff
		case reasonBusy:
			// The other side answers others first: soon again, and
			// without growing the backoff.
			bp.next = b.now().Add(bdayBusyRetry)
			return
		}
		bp.next = b.now().Add(bp.backoff)
		bp.backoff = min(2*bp.backoff, punchMaxBackoff)
	}
}

// run starts exchanges with relayed peers while this node is behind a
// symmetric NAT, and closes lent sockets nobody uses any more, until ctx
// ends. wg owns every goroutine it starts.
func (b *birthday) run(ctx context.Context, wg *sync.WaitGroup) {
	every(ctx, bdayTick, func() {
		b.reap(false)
		if !b.enabled() {
			return
		}
		if c, _ := b.class(); c != natSymmetric {
			return
		}
		rp, ok := b.due()
		if !ok {
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, peerNAT := b.initiate(ctx, rp)
			b.finish(rp, r, peerNAT, true)
			if ctx.Err() == nil {
				b.logf("dht: birthday punch with %s: %v", rp, r)
			}
		}()
	})
	b.reap(true)
}

// due picks one relayed peer whose next exchange is due, and forgets
// peers that are gone or direct.
func (b *birthday) due() (peer.ID, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	live := map[peer.ID]bool{}
	var pick peer.ID
	found := false
	now := b.now()
	for _, rp := range b.h.Network().Peers() {
		if relayed, _ := relayedOnly(b.h.Network().ConnsToPeer(rp)); !relayed {
			continue
		}
		live[rp] = true
		bp := b.peerLocked(rp)
		if found || b.initiating || bp == nil || bp.running || now.Before(bp.next) {
			continue
		}
		bp.running = true
		b.initiating = true
		pick, found = rp, true
	}
	for rp, bp := range b.peers {
		if !live[rp] && !bp.running {
			delete(b.peers, rp)
		}
	}
	return pick, found
}

// reap closes lent sockets that quicreuse gave back and no connection
// uses (all of them when all is set: the node is closing).
func (b *birthday) reap(all bool) {
	inUse := map[int]bool{}
	if !all {
		for _, c := range b.h.Network().Conns() {
			if udp, ap, ok := ipPort(c.LocalMultiaddr()); ok && udp {
				inUse[int(ap.Port())] = true
			}
		}
	}
	b.mu.Lock()
	var gone []*lentSocket
	kept := b.lent[:0]
	for _, ls := range b.lent {
		back := false
		select {
		case <-ls.done:
			back = true
		default:
		}
		if all || (back && !inUse[ls.port]) {
			gone = append(gone, ls)
			delete(b.hidden, ls.port)
		} else {
			kept = append(kept, ls)
		}
	}
	b.lent = kept
	b.mu.Unlock()
	for _, ls := range gone {
		ls.tr.Close()
		ls.conn.Close()
	}
}

func newNonce() [16]byte {
	var n [16]byte
	rand.Read(n[:])
	return n
}

// publicV4 reports whether ap's address is a public IPv4 address (the only
// kind probes go to).
func publicV4(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	m, err := manet.FromIP(net.IP(a.AsSlice()))
	return err == nil && manet.IsPublicAddr(m)
}

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
	r = b.probeAndDial(ctx, x, rp, hello.Nonce, sIP, int(myExt.Port()))
	x.send(bdayMsg{Type: msgEnd, Reason: r})
	b.finish(rp, r, hello.Class, false)
}

// probeAndDial sends probes from this node's QUIC socket to random ports
// of sIP until S reports a hit, then dials QUIC there.
func (b *birthday) probeAndDial(ctx context.Context, x *exchange, rp peer.ID, nonce [16]byte, sIP netip.Addr, myQUICPort int) bdayReason {
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
	dctx, cancel := context.WithTimeout(ctx, bdayDialTimeout)
	defer cancel()
	err = b.h.Connect(network.WithForceDirectDial(dctx, "kadlan-birthday"), peer.AddrInfo{ID: rp, Addrs: []ma.Multiaddr{addr}})
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
