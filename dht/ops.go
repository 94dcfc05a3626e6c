package dht

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	ma "github.com/multiformats/go-multiaddr"
)

// ErrNotFound is returned when a lookup ends without the peer's addresses.
var ErrNotFound = errors.New("not found in the DHT")

// Status is the node's view of itself.
type Status struct {
	Address         peer.ID
	Key             [32]byte // SHA-256 of the address: the place in XOR space
	Version         string
	ListenAddrs     []ma.Multiaddr
	ObservedAddrs   []ma.Multiaddr // addresses peers saw us at
	Addrs           []string       // advertised, with /p2p/ADDRESS (shareable)
	RelayAddrs      []ma.Multiaddr // circuit addresses reserved on relays
	Reachability    string         // public, private or unknown
	AutoNAT         string         // AutoNAT's own verdict, when kadlan checks it (reach.go)
	DHTMode         string         // server or client
	Relay           string         // the relay service runs now: on or off
	RoutingTable    int            // the WAN DHT's
	LANRoutingTable int            // the LAN DHT's
	Connected       int
	Uptime          time.Duration
}

// Status reports the node's view of itself.
func (n *Node) Status() Status {
	id := n.ID()
	st := Status{
		Address:         id,
		Key:             KademliaKey(id),
		Version:         n.cfg.Version,
		ListenAddrs:     n.Host.Network().ListenAddresses(),
		Reachability:    reachabilityWord(n.Reachability()),
		RoutingTable:    n.DHT.RoutingTable().Size(),
		LANRoutingTable: n.LANRoutingTable(),
		Connected:       len(n.Host.Network().Peers()),
		Uptime:          time.Since(n.started),
	}
	for _, a := range n.Host.Addrs() {
		if isCircuit(a) {
			st.RelayAddrs = append(st.RelayAddrs, a)
		}
	}
	st.Addrs = n.ShareableAddrs()
	st.ObservedAddrs = n.observedAddrs()
	st.DHTMode = n.DHTMode()
	if n.reachEm != nil {
		st.AutoNAT = reachabilityWord(n.autoNATSays())
		if _, ok := n.reach.stranger(); ok {
			st.AutoNAT += ", confirmed by a stranger"
		} else if st.AutoNAT == "public" {
			st.AutoNAT += ", not confirmed: no node this one never contacted has reached it"
		}
	}
	st.Relay = "off"
	if n.cfg.Relay == "on" || n.cfg.Relay != "off" && n.Reachability() == network.ReachabilityPublic {
		st.Relay = "on"
	}
	return st
}

// DHTMode is "server" while the node answers Kademlia queries, else "client".
func (n *Node) DHTMode() string {
	want := ProtocolPrefix + "/kad/1.0.0"
	for _, p := range n.Host.Mux().Protocols() {
		if p == want {
			return "server"
		}
	}
	return "client"
}

// ShareableAddrs are the node's advertised addresses with /p2p/<address>
// appended: what goes into a peers file.
func (n *Node) ShareableAddrs() []string {
	ai := peer.AddrInfo{ID: n.ID(), Addrs: n.Host.Addrs()}
	full, err := peer.AddrInfoToP2pAddrs(&ai)
	if err != nil {
		return nil
	}
	return strs(full)
}

func (n *Node) observedAddrs() []ma.Multiaddr {
	listen := map[string]bool{}
	for _, a := range n.Host.Network().ListenAddresses() {
		listen[a.String()] = true
	}
	var out []ma.Multiaddr
	for _, a := range n.Host.Addrs() {
		if !listen[a.String()] && !isCircuit(a) {
			out = append(out, a)
		}
	}
	return out
}

// ResolvePeer turns a full address or a unique prefix of one (among peers
// this node knows) into a peer ID.
func (n *Node) ResolvePeer(s string) (peer.ID, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", errors.New("empty address")
	}
	if id, err := peer.Decode(s); err == nil {
		return id, nil
	}
	var match []peer.ID
	for _, p := range n.Host.Peerstore().Peers() {
		if strings.HasPrefix(p.String(), s) {
			match = append(match, p)
		}
	}
	switch len(match) {
	case 0:
		return "", fmt.Errorf("%q is not an address, nor the prefix of a known one", s)
	case 1:
		return match[0], nil
	}
	return "", fmt.Errorf("prefix %q is ambiguous: %d known addresses start with it", s, len(match))
}

// FindResult is what Find learnt.
type FindResult struct {
	Address peer.ID
	Addrs   []ma.Multiaddr
	Elapsed time.Duration
}

// Find looks a node's addresses up in the DHT. It always walks the DHT,
// even when the node is already connected (kad-dht's FindPeer would answer
// from the local peerstore then), so elapsed_ms is the cost of a real
// iterative lookup: it ends as soon as a queried peer returns the target
// with addresses (or the target answers itself), without waiting for the
// slowest, possibly dead, peers of the walk.
func (n *Node) Find(ctx context.Context, id peer.ID) (FindResult, error) {
	start := time.Now()
	res := FindResult{Address: id}
	addrs, err := n.lookup(ctx, id)
	if err == nil && len(addrs) == 0 {
		var ai peer.AddrInfo
		ai, err = n.findPeer(ctx, id)
		addrs = ai.Addrs
	}
	res.Elapsed = time.Since(start)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "routing: not found") {
			return res, fmt.Errorf("%s: %w", id, ErrNotFound)
		}
		return res, fmt.Errorf("finding %s: %w", id, err)
	}
	res.Addrs = addrs
	if len(res.Addrs) == 0 {
		return res, fmt.Errorf("%s: %w", id, ErrNotFound)
	}
	return res, nil
}

// lookup walks the DHT towards id's key and returns the addresses of id as
// soon as some peer reports them. It returns no addresses and no error when
// the walk ended without seeing id.
func (n *Node) lookup(ctx context.Context, id peer.ID) ([]ma.Multiaddr, error) {
	return n.lookupStream(ctx, id, nil)
}

// lookupStream is lookup that also hands every batch of newly learnt
// addresses to onFound (if non-nil) as it arrives, so a caller can start
// dialling before the grace period ends.
func (n *Node) lookupStream(ctx context.Context, id peer.ID, onFound func([]ma.Multiaddr)) ([]ma.Multiaddr, error) {
	start := time.Now()
	found, err := n.walk(ctx, id, onFound)
	n.observeLookup(start, len(found) > 0, err)
	return found, err
}

// walk is lookupStream without the metrics.
func (n *Node) walk(ctx context.Context, id peer.ID, onFound func([]ma.Multiaddr)) ([]ma.Multiaddr, error) {
	qctx, cancel := context.WithCancel(ctx)
	defer cancel()
	qctx, events := routing.RegisterForQueryEvents(qctx)
	done, walks, release := n.closestPeers(qctx, string(id))
	defer release()
	var walkErr error // the first walk's error; nil once any walk succeeded
	walkOK := false
	// Peers may hold addresses of different ages (the target roamed):
	// after the first answer naming the target, keep collecting for a
	// short grace period and return the union, so the dial can race them.
	var found []ma.Multiaddr
	seen := map[string]bool{}
	collect := func(as []ma.Multiaddr) {
		var fresh []ma.Multiaddr
		for _, a := range as {
			if k := string(a.Bytes()); !seen[k] {
				seen[k] = true
				fresh = append(fresh, a)
			}
		}
		found = append(found, fresh...)
		if onFound != nil && len(fresh) > 0 {
			onFound(fresh)
		}
	}
	var grace <-chan time.Time
	for {
		select {
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if ev.Type != routing.PeerResponse {
				continue
			}
			if ev.ID == id {
				// The target answered: its own peerstore entry is fresh.
				collect(n.Host.Peerstore().Addrs(id))
				return found, nil
			}
			for _, r := range ev.Responses {
				if r.ID == id && len(r.Addrs) > 0 {
					collect(r.Addrs)
					if grace == nil {
						grace = time.After(lookupGrace)
					}
				}
			}
		case <-grace:
			return found, nil
		case r := <-done:
			walks--
			if r.err == nil {
				walkOK = true
			} else if walkErr == nil {
				walkErr = r.err
			}
			for _, p := range r.peers {
				if p == id {
					collect(n.Host.Peerstore().Addrs(id))
				}
			}
			if len(found) > 0 {
				return found, nil
			}
			if walks == 0 && walkOK {
				// Query events may trail the walks' results: give them
				// the grace period before saying "not seen".
				if grace == nil {
					grace = time.After(lookupGrace)
				}
				done = nil
				continue
			}
			if walks == 0 {
				return nil, walkErr
			}
		}
	}
}

// lookupGrace is how long a lookup keeps collecting addresses after a first
// peer named the target.
const lookupGrace = 100 * time.Millisecond

// Connect makes sure there is a connection to id. It dials the addresses
// it knows and, at the same time, looks id up in the DHT and dials what the
// lookup returns: known addresses may be stale (the peer roamed, its relay
// changed), and waiting for them to time out first would cost seconds.
func (n *Node) Connect(ctx context.Context, id peer.ID) error {
	if id == n.ID() {
		return errors.New("that is this node's own address")
	}
	if n.Host.Network().Connectedness(id) == network.Connected {
		return nil
	}
	// An explicit request deserves a real attempt, not a "dial backoff"
	// left by an earlier failure.
	n.clearBackoff(id)
	ctx = network.WithAllowLimitedConn(ctx, "kadlan")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Every dial attempt reports here; the swarm merges concurrent dials to
	// one peer into one dial worker that takes up each attempt's addresses.
	errs := make(chan error)
	var mu sync.Mutex
	attempts := 0
	report := func(err error) {
		select {
		case errs <- err:
		case <-ctx.Done():
		}
	}
	attempt := func(f func() error) {
		mu.Lock()
		attempts++
		mu.Unlock()
		go func() { report(f()) }()
	}
	// Circuits through relays this node is not connected to wait for
	// their relay, which is dialled on the side (relaydial.go).
	gate, release := n.gates.open(n, id)
	defer release()
	dial := func(addrs []ma.Multiaddr) {
		known := addrs
		if known == nil {
			known = n.Host.Peerstore().Addrs(id)
		}
		attempt(func() error { return n.Host.Connect(ctx, peer.AddrInfo{ID: id, Addrs: addrs}) })
		relays, probe := gate.split(known)
		for _, r := range probe {
			go n.probeRelay(ctx, r) // ends with ctx, i.e. with Connect
		}
		for _, r := range relays {
			attempt(func() error {
				rctx, cancel := context.WithTimeout(ctx, relayDialTimeout)
				defer cancel()
				circ, err := gate.connect(rctx, r)
				if err != nil {
					return fmt.Errorf("relay %s: %w", r.ID, err)
				}
				return n.Host.Connect(ctx, peer.AddrInfo{ID: id, Addrs: circ})
			})
		}
	}
	if len(n.Host.Peerstore().Addrs(id)) > 0 {
		dial(nil)
	}
	lookupDone := make(chan error, 1)
	go func() {
		_, err := n.lookupStream(ctx, id, dial)
		if err == nil {
			mu.Lock()
			none := attempts == 0
			mu.Unlock()
			if none {
				// Not seen in the walk: kad-dht's FindPeer also asks the
				// peers it meets whether they are connected to the target.
				var ai peer.AddrInfo
				if ai, err = n.findPeer(ctx, id); err == nil && len(ai.Addrs) > 0 {
					dial(ai.Addrs)
				} else if err == nil {
					err = ErrNotFound
				}
			}
		}
		lookupDone <- err
	}()
	var first error
	pending := true // the lookup may still start attempts
	for {
		mu.Lock()
		outstanding := attempts
		mu.Unlock()
		if !pending && outstanding == 0 {
			break
		}
		select {
		case err := <-errs:
			mu.Lock()
			attempts--
			mu.Unlock()
			if err == nil {
				return nil
			}
			if first == nil {
				first = err
			}
		case err := <-lookupDone:
			pending = false
			lookupDone = nil
			if err != nil && first == nil {
				first = fmt.Errorf("finding %s: %w", id, err)
			}
		case <-ctx.Done():
			return fmt.Errorf("connecting to %s: %w", id, ctx.Err())
		}
	}
	if first == nil {
		first = ErrNotFound
	}
	return fmt.Errorf("connecting to %s: %w", id, first)
}

// PingResult is what Ping measured.
type PingResult struct {
	Address peer.ID
	Path    string // direct or relayed: the path of the last reply
	Via     string // the relay's address when relayed
	Paths   []string
	RTTs    []time.Duration
	// Connect is the lookup and connection set-up before the first ping,
	// and ConnectPath the path right after it (before hole punching).
	Connect     time.Duration
	ConnectPath string
	ConnectVia  string
	Sent        int
	Received    int
}

// Ping connects to id (through the DHT if needed) and measures count RTTs
// with libp2p's ping protocol.
func (n *Node) Ping(ctx context.Context, id peer.ID, count int, interval time.Duration) (PingResult, error) {
	if count <= 0 {
		count = 1
	}
	res := PingResult{Address: id}
	start := time.Now()
	if err := n.Connect(ctx, id); err != nil {
		return res, err
	}
	res.Connect = time.Since(start)
	res.ConnectPath, res.ConnectVia = firstPath(n.Host.Network().ConnsToPeer(id))
	var lastErr error
	for i := 0; i < count; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return res, ctx.Err()
			case <-time.After(interval):
			}
		}
		res.Sent++
		rtt, conn, err := n.pingOnce(ctx, id)
		if err != nil {
			lastErr = err
			n.logf("dht: ping %s: %v", id, err)
			continue
		}
		res.Received++
		res.RTTs = append(res.RTTs, rtt)
		res.Path, res.Via = PathOf([]network.Conn{conn})
		res.Paths = append(res.Paths, res.Path)
	}
	if res.Received == 0 {
		return res, fmt.Errorf("no reply from %s: %w", id, lastErr)
	}
	return res, nil
}

func (n *Node) pingOnce(ctx context.Context, id peer.ID) (time.Duration, network.Conn, error) {
	pctx, cancel := context.WithTimeout(network.WithAllowLimitedConn(ctx, "kadlan-ping"), 5*time.Second)
	defer cancel()
	if n.Host.Network().Connectedness(id) != network.Connected {
		if err := n.Connect(pctx, id); err != nil {
			return 0, nil, err
		}
	}
	s, err := n.Host.NewStream(pctx, id, ping.ID)
	if err != nil {
		return 0, nil, err
	}
	conn := s.Conn()
	rtt, err := pingStream(pctx, s)
	if err != nil {
		s.Reset()
		// A ping that fails on an open connection means that connection is
		// dead (the peer roamed, its relay died): close it, and only it, so
		// the next attempt uses or dials another instead of waiting half a
		// minute for keep-alives to notice.
		conn.Close()
		return 0, conn, err
	}
	s.Close()
	return rtt, conn, nil
}

// pingStream runs one round of libp2p's ping protocol (/ipfs/ping/1.0.0:
// 32 random bytes echoed back) on s.
func pingStream(ctx context.Context, s network.Stream) (time.Duration, error) {
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	buf := make([]byte, 2*ping.PingSize)
	if _, err := rand.Read(buf[:ping.PingSize]); err != nil {
		return 0, err
	}
	start := time.Now()
	if _, err := s.Write(buf[:ping.PingSize]); err != nil {
		return 0, fmt.Errorf("ping: %w", err)
	}
	if _, err := io.ReadFull(s, buf[ping.PingSize:]); err != nil {
		return 0, fmt.Errorf("ping: no reply: %w", err)
	}
	rtt := time.Since(start)
	if !bytes.Equal(buf[:ping.PingSize], buf[ping.PingSize:]) {
		return 0, errors.New("ping: reply does not match")
	}
	return rtt, nil
}

func strs(as []ma.Multiaddr) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}
