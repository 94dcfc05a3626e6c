package bootstrap

import (
	"context"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	ma "github.com/multiformats/go-multiaddr"
)

// MDNSService is the DNS-SD service name kadlan nodes announce on a LAN.
const MDNSService = "_kadlan._udp"

// Routing is the part of the DHT the bootstrapper drives.
type Routing interface {
	Bootstrap(context.Context) error
	// RoutingTablePeers lists the peers in the Kademlia routing table.
	RoutingTablePeers() []peer.ID
}

// Config says where first peers may come from.
type Config struct {
	// Self is this node's address (never a candidate of its own).
	Self peer.ID
	// CachePath is the peer cache file; empty disables the cache.
	CachePath string
	// Peers come from --bootstrap flags.
	Peers []peer.AddrInfo
	// PeersFile is re-read on every attempt, so a user can add a line to it
	// while the daemon waits.
	PeersFile string
	// MDNS enables discovery on the local network (see mdns.go).
	MDNS bool
	// IgnoreInterface names interfaces mDNS leaves alone (the node's own
	// virtual devices). May be nil.
	IgnoreInterface func(name string) bool
	// Logf logs; nil discards.
	Logf func(format string, args ...any)
	// Interval between checks; zero means 2 s.
	Interval time.Duration
}

// State words reported in status.
const (
	StateWaiting = "waiting" // no peer known or reachable yet
	StateJoined  = "joined"  // the routing table has peers
)

// Bootstrapper keeps the node joined: while its routing table is empty it
// dials candidates (cache, flags, peers file, mDNS, in that order), and while
// joined it keeps the peer cache fresh. It is made before the node, whose
// peer source it is (Candidates, Kick: see dht.PeerSource), and Run drives
// the node once it exists.
type Bootstrapper struct {
	cfg   Config
	logf  func(string, ...any)
	cache *Cache

	kick chan struct{}

	// host and routing are the node's, set once by Run.
	host    host.Host
	routing Routing

	mu        sync.Mutex
	state     string
	extra     []peer.AddrInfo // AddPeers (an invite token's peers)
	mdnsFnd   map[peer.ID]peer.AddrInfo
	mdnsTried map[peer.ID]time.Time // last dialLANPeers attempt
}

// New prepares a bootstrapper; Run drives it.
func New(cfg Config) *Bootstrapper {
	b := &Bootstrapper{cfg: cfg, logf: cfg.Logf, state: StateWaiting, mdnsFnd: map[peer.ID]peer.AddrInfo{}, mdnsTried: map[peer.ID]time.Time{}, kick: make(chan struct{}, 1)}
	if b.logf == nil {
		b.logf = func(string, ...any) {}
	}
	if b.cfg.Interval == 0 {
		b.cfg.Interval = 2 * time.Second
	}
	if cfg.CachePath != "" {
		c, err := LoadCache(cfg.CachePath)
		if err != nil {
			b.logf("%v", err)
		}
		b.cache = c
	}
	return b
}

// State is StateWaiting or StateJoined.
func (b *Bootstrapper) State() string {
	b.mu.Lock()
	r := b.routing
	b.mu.Unlock()
	if r != nil && len(r.RoutingTablePeers()) > 0 {
		return StateJoined
	}
	return StateWaiting
}

// Candidates lists first peers in order of preference: cache, flags, peers
// file, mDNS. The DHT calls it when its routing table runs empty.
func (b *Bootstrapper) Candidates() []peer.AddrInfo {
	var out []peer.AddrInfo
	seen := map[peer.ID]int{}
	add := func(ais ...peer.AddrInfo) {
		for _, ai := range ais {
			if ai.ID == b.cfg.Self {
				continue
			}
			if i, ok := seen[ai.ID]; ok {
				out[i].Addrs = append(out[i].Addrs, ai.Addrs...)
				continue
			}
			seen[ai.ID] = len(out)
			out = append(out, ai)
		}
	}
	if b.cache != nil {
		b.mu.Lock()
		add(b.cache.AddrInfos(time.Now())...)
		b.mu.Unlock()
	}
	add(b.cfg.Peers...)
	b.mu.Lock()
	add(b.extra...)
	b.mu.Unlock()
	if b.cfg.PeersFile != "" {
		ais, err := ReadPeersFile(b.cfg.PeersFile)
		if err != nil {
			b.logf("%v", err)
		}
		add(ais...)
	}
	b.mu.Lock()
	for _, ai := range b.mdnsFnd {
		add(ai)
	}
	b.mu.Unlock()
	return out
}

// AddPeers adds candidates at runtime (the peers of an invite token), after
// the flags' in order of preference, records them in the peer cache (so a
// restart needs nothing more), and asks for a connection round at once.
func (b *Bootstrapper) AddPeers(ais []peer.AddrInfo) {
	now := time.Now()
	b.mu.Lock()
	for _, ai := range ais {
		if ai.ID == b.cfg.Self || len(ai.Addrs) == 0 {
			continue
		}
		b.extra = append(b.extra, ai)
		if b.cache != nil {
			b.cache.Observe(ai.ID, ai.Addrs, now)
		}
	}
	if b.cache != nil {
		if err := b.cache.Save(now); err != nil {
			b.logf("%v", err)
		}
	}
	b.mu.Unlock()
	b.Kick()
}

// Kick asks for an immediate reconnection round, even while joined: the
// node's network changed and its connections are gone.
func (b *Bootstrapper) Kick() {
	select {
	case b.kick <- struct{}{}:
	default:
	}
}

// HandlePeerFound is called by mDNS.
func (b *Bootstrapper) HandlePeerFound(ai peer.AddrInfo) {
	if ai.ID == b.cfg.Self {
		return
	}
	b.mu.Lock()
	_, known := b.mdnsFnd[ai.ID]
	if !known && len(b.mdnsFnd) >= mdnsMaxPeers {
		for p := range b.mdnsFnd { // bounded: forget one at random
			delete(b.mdnsFnd, p)
			break
		}
	}
	b.mdnsFnd[ai.ID] = ai
	b.mu.Unlock()
	if !known {
		b.logf("bootstrap: found %s on the local network", ai.ID)
	}
	b.host.Peerstore().AddAddrs(ai.ID, ai.Addrs, peerstore.TempAddrTTL)
}

// Run keeps the node joined until ctx ends, then saves the cache.
func (b *Bootstrapper) Run(ctx context.Context, h host.Host, r Routing) {
	b.mu.Lock()
	b.host, b.routing = h, r
	b.mu.Unlock()
	var mdnsSvc *mdnsService
	restartMDNS := func() {
		if !b.cfg.MDNS {
			return
		}
		mdnsSvc.Close()
		var err error
		if mdnsSvc, err = startMDNS(h, b.cfg.IgnoreInterface, b.HandlePeerFound); err != nil {
			b.logf("bootstrap: %v", err)
		}
	}
	restartMDNS()
	defer func() { mdnsSvc.Close() }()
	var lastHint time.Time
	lastSave := time.Now()
	tick := time.NewTicker(b.cfg.Interval)
	defer tick.Stop()
	kicked := false
	for {
		joined := len(b.routing.RoutingTablePeers()) > 0 && !kicked
		if !joined {
			joined = b.attempt(ctx, &lastHint, kicked)
		}
		kicked = false
		b.setState(joined)
		if joined {
			b.dialLANPeers(ctx)
		}
		if joined && time.Since(lastSave) > 15*time.Second {
			b.refreshCache()
			lastSave = time.Now()
		}
		select {
		case <-ctx.Done():
			b.refreshCache()
			return
		case <-tick.C:
		case <-b.kick:
			kicked = true
			restartMDNS() // announce the new addresses
		}
	}
}

// dialLANPeers connects to peers mDNS found on the LAN that the node is
// not connected to, even while it is joined through the Internet: their
// LAN DHT entries and LAN paths come from these connections. Each peer is
// tried at most once a minute, eight at a time.
func (b *Bootstrapper) dialLANPeers(ctx context.Context) {
	now := time.Now()
	var todo []peer.AddrInfo
	b.mu.Lock()
	for id, ai := range b.mdnsFnd {
		if len(todo) >= 8 || b.host.Network().Connectedness(id) == network.Connected || now.Sub(b.mdnsTried[id]) < time.Minute {
			continue
		}
		b.mdnsTried[id] = now
		todo = append(todo, ai)
	}
	for id := range b.mdnsTried {
		if _, ok := b.mdnsFnd[id]; !ok {
			delete(b.mdnsTried, id)
		}
	}
	b.mu.Unlock()
	if len(todo) == 0 {
		return
	}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, ai := range todo {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b.host.Connect(dctx, ai)
		}()
	}
	wg.Wait()
}

func (b *Bootstrapper) setState(joined bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	was := b.state
	if joined {
		b.state = StateJoined
	} else {
		b.state = StateWaiting
	}
	if was != b.state {
		b.logf("bootstrap: %s", b.state)
	}
}

// attempt dials every candidate in parallel and bootstraps the DHT if any
// answered. It reports whether the node is now joined.
func (b *Bootstrapper) attempt(ctx context.Context, lastHint *time.Time, withRT bool) bool {
	cands := b.Candidates()
	if withRT {
		// After a network change: the routing table's peers first.
		var rt []peer.AddrInfo
		for _, p := range b.routing.RoutingTablePeers() {
			rt = append(rt, peer.AddrInfo{ID: p})
		}
		cands = append(rt, cands...)
	}
	if len(cands) == 0 {
		if time.Since(*lastHint) > time.Minute {
			b.logf("bootstrap: no peer known yet. Give one with --bootstrap /ip4/ADDR/tcp/4242/p2p/ADDRESS, " +
				"a shared --peers-file, or --mdns on a LAN; kadlan keeps running and joins as soon as one answers")
			*lastHint = time.Now()
		}
		return false
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for _, ai := range cands {
		wg.Add(1)
		go func(ai peer.AddrInfo) {
			defer wg.Done()
			if err := b.host.Connect(dctx, ai); err != nil {
				return
			}
			mu.Lock()
			ok++
			mu.Unlock()
		}(ai)
	}
	wg.Wait()
	if ok == 0 {
		if time.Since(*lastHint) > time.Minute {
			b.logf("bootstrap: none of %d known peers answered; retrying", len(cands))
			*lastHint = time.Now()
		}
		return false
	}
	b.logf("bootstrap: connected to %d of %d candidate peers", ok, len(cands))
	if err := b.routing.Bootstrap(ctx); err != nil {
		b.logf("bootstrap: DHT refresh: %v", err)
	}
	// The routing table fills as identify completes; wait briefly for it.
	for i := 0; i < 20 && len(b.routing.RoutingTablePeers()) == 0; i++ {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
	joined := len(b.routing.RoutingTablePeers()) > 0
	if joined {
		b.refreshCache()
	}
	return joined
}

// refreshCache records connected routing-table peers (peers that work) with
// their advertised addresses, then saves the cache.
func (b *Bootstrapper) refreshCache() {
	if b.cache == nil {
		return
	}
	now := time.Now()
	h := b.host
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.routing.RoutingTablePeers() {
		if h.Network().Connectedness(p) != network.Connected {
			continue
		}
		var addrs []ma.Multiaddr
		for _, a := range h.Peerstore().Addrs(p) {
			if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
				continue // relay addresses go stale; the DHT finds fresh ones
			}
			addrs = append(addrs, a)
		}
		b.cache.Observe(p, addrs, now)
	}
	if err := b.cache.Save(now); err != nil {
		b.logf("%v", err)
	}
}
