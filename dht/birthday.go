package dht

import (
	"context"
	"crypto/rand"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
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
// after bdayFirstRetry, doubling); both sides say what they are, so a symmetric pair ends
// at once, and `kadlan peers` says so.
//
// Bounds: bdayInitiators exchanges at once as the symmetric side (several
// peers often contact a node within seconds, and one at a time each
// waited for the exchanges before it, up to bdayDeadline each),
// bdayResponders as the EIM side (a busy answer makes the other retry in
// 2 s); each lasts at most bdayDeadline; S opens at most bdaySockets
// sockets per exchange, closes all but
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
	bdayInitiators    = 3
	bdayFirstRetry    = 5 * time.Second // after a failed exchange; doubles to punchMaxBackoff
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
	// sentTo is told of addresses probed (reach.go); may be nil.
	sentTo func(netip.Addr)
	gate   *punchGate // opened for the dial of the punched port; may be nil
	h      host.Host
	cm     *quicreuse.ConnManager
	logf   func(string, ...any)
	now    func() time.Time

	mu         sync.Mutex
	obs        map[obsKey]mapObs
	peers      map[peer.ID]*bdayPeer
	initiating int // exchanges running as the symmetric side
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
		b.initiating--
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
		for _, rp := range b.due() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				started := b.now()
				r, peerNAT := b.initiate(ctx, rp)
				b.finish(rp, r, peerNAT, true)
				if ctx.Err() == nil {
					b.logf("dht: birthday punch with %s (%s): %v after %v", rp, peerNAT, r, b.now().Sub(started).Round(time.Millisecond))
				}
			}()
		}
	})
	b.reap(true)
}

// due picks the relayed peers whose next exchange is due, as many as
// free initiator slots allow, and forgets peers that are gone or direct.
func (b *birthday) due() []peer.ID {
	var relayed []peer.ID
	for _, rp := range b.h.Network().Peers() {
		if r, _ := relayedOnly(b.h.Network().ConnsToPeer(rp)); r {
			relayed = append(relayed, rp)
		}
	}
	return b.dueAmong(relayed)
}

// dueAmong is due for the given relayed peers; it marks the picked ones
// running.
func (b *birthday) dueAmong(relayed []peer.ID) []peer.ID {
	b.mu.Lock()
	defer b.mu.Unlock()
	live := map[peer.ID]bool{}
	var picks []peer.ID
	now := b.now()
	for _, rp := range relayed {
		live[rp] = true
		bp := b.peerLocked(rp)
		if b.initiating >= bdayInitiators || bp == nil || bp.running || now.Before(bp.next) {
			continue
		}
		bp.running = true
		b.initiating++
		picks = append(picks, rp)
	}
	for rp, bp := range b.peers {
		if !live[rp] && !bp.running {
			delete(b.peers, rp)
		}
	}
	return picks
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
