// Package dht runs kadlan's libp2p host and its Kademlia DHT: transports,
// identity, reachability, lookups, pings and path reporting. Nothing here
// knows about bootstrap lists, networks or TAP devices.
package dht

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	kaddht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	tls "github.com/libp2p/go-libp2p/p2p/security/tls"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ws "github.com/libp2p/go-libp2p/p2p/transport/websocket"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	"github.com/prometheus/client_golang/prometheus"
	quicgo "github.com/quic-go/quic-go"
	"go.uber.org/fx"
)

// DefaultPort is the one port kadlan listens on by default, for TCP,
// WebSocket (sharing the TCP listener) and QUIC (UDP): open it once in a
// firewall.
const DefaultPort = 4242

// ProtocolPrefix makes kad-dht speak /kadlan/kad/1.0.0, so kadlan nodes form
// their own DHT and never join IPFS's.
const ProtocolPrefix protocol.ID = "/kadlan"

// DefaultListenAddrs returns the listen addresses for port on all
// interfaces, IPv4 and IPv6, TCP, WebSocket and QUIC.
func DefaultListenAddrs(port int) []string {
	var out []string
	for _, ip := range []string{"/ip4/0.0.0.0", "/ip6/::"} {
		out = append(out,
			fmt.Sprintf("%s/tcp/%d", ip, port),
			fmt.Sprintf("%s/tcp/%d/ws", ip, port),
			fmt.Sprintf("%s/udp/%d/quic-v1", ip, port))
	}
	return out
}

// Config says what the node is. The zero value of each field is documented.
type Config struct {
	// Key is the node's Ed25519 identity. Required.
	Key crypto.PrivKey
	// ListenAddrs are multiaddrs to listen on. Empty means DefaultListenAddrs(DefaultPort).
	ListenAddrs []string
	// Reachability: "auto" (or empty), "public" or "private". Auto treats a
	// node with a public address on one of its listening interfaces as public
	// and otherwise lets AutoNAT decide.
	Reachability string
	// DHTMode: "auto" (or empty), "server" or "client". Auto is server when
	// the node is publicly reachable and client otherwise.
	DHTMode string
	// AllowLoopback keeps loopback addresses in what the node advertises and
	// accepts from the DHT. Only for tests on 127.0.0.1.
	AllowLoopback bool
	// Peers is where first peers come from (bootstrap.Bootstrapper): asked
	// whenever the routing table runs empty, and kicked when the node's
	// network changed. May be nil.
	Peers PeerSource
	// Logf logs; nil discards.
	Logf func(format string, args ...any)
	// Version is reported in status.
	Version string
	// Relay: "auto" (or empty) runs the circuit-relay-v2 service while the
	// node is publicly reachable, "on" always, "off" never.
	Relay string
	// RelayLimits bound the relay service; zero fields take defaults.
	RelayLimits RelayLimits
	// ConnLimits order the connection manager's marks below the resource
	// manager's limits; zero fields take DefaultConnLimits.
	ConnLimits ConnLimits
	// IsMember reports whether p is a member of a network this node is on;
	// the relay service gives others tighter limits (CircuitsPerStranger).
	// May be nil (nobody is).
	IsMember func(p peer.ID) bool
	// IgnoreInterface names interfaces whose addresses do not count as the
	// node's network (its own virtual interfaces). May be nil.
	IgnoreInterface func(name string) bool
	// DHTOptions are appended to the Kademlia options (record validators).
	DHTOptions []kaddht.Option
	// Metrics receives libp2p's Prometheus collectors and the node's own
	// (metrics.go). Nil disables libp2p's metrics.
	Metrics prometheus.Registerer
	// Bandwidth, if set, counts the bytes of every stream the host reads
	// and writes (libp2p's metrics.BandwidthCounter; benchmarks). Nil: none.
	Bandwidth metrics.Reporter
}

// PeerSource supplies a node's first peers.
type PeerSource interface {
	// Candidates lists peers to dial, best first, when the routing table
	// runs empty.
	Candidates() []peer.AddrInfo
	// Kick says that the node's interface addresses changed (roaming) and
	// its connections were closed: look for peers again now.
	Kick()
}

// Node is a running libp2p host with kadlan's DHT.
type Node struct {
	Host    host.Host
	DHT     *kaddht.IpfsDHT // the WAN DHT
	LAN     *kaddht.IpfsDHT // the LAN DHT (see lan.go)
	cfg     Config
	started time.Time
	logf    func(string, ...any)
	metrics *nodeMetrics // nil: metrics off

	mu           sync.Mutex
	reachability network.Reachability
	relay        io.Closer
	relayAddrs   []ma.Multiaddr

	acl     *relayACL
	connMgr *connmgr.BasicConnMgr              // trimmed directly by tests
	punch   *puncher                           // DCUtR, punched again while relayed
	vouch   *vouch                             // peers holding reservations on this relay (vouch.go)
	gates   *relayGates                        // circuits waiting for their relay during Connect (relaydial.go)
	relayed relayedLinks                       // member links on relayed connections (linkmove.go)
	redial  atomic.Pointer[func(peer.ID) bool] // SetRedial's (linkmove.go)
	reach   *reachGuard                        // who this node sent to; a stranger's connection
	// reachEm emits reachability overrides (reach.go); nil when not needed.
	reachEm      event.Emitter
	reachChanged chan struct{} // kicked on every reachability event
	bday         *birthday     // birthday punching through a symmetric NAT

	ctx    context.Context // ends with Close
	cancel context.CancelFunc
	// tcpTried: peer.ID -> time.Time of the last failed upgradeTCP.
	tcpTried sync.Map
	wg       sync.WaitGroup
	once     sync.Once
}

// New starts the host and the DHT. Close stops both.
func New(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Key == nil {
		return nil, errors.New("dht: Config.Key is required")
	}
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	listen := cfg.ListenAddrs
	if len(listen) == 0 {
		listen = DefaultListenAddrs(DefaultPort)
	}
	listenMA := make([]ma.Multiaddr, 0, len(listen))
	for _, s := range listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("dht: bad listen address %q: %w", s, err)
		}
		listenMA = append(listenMA, a)
	}

	guard := newReachGuard()
	gates := newRelayGates()
	pgate := newPunchGate()
	pstore, err := newGatedPeerstore(pgate)
	if err != nil {
		return nil, fmt.Errorf("dht: peerstore: %w", err)
	}
	reach, err := decideReachability(cfg.Reachability, listenMA)
	if err != nil {
		return nil, err
	}
	mode, err := dhtMode(cfg.DHTMode, reach)
	if err != nil {
		return nil, err
	}
	cl := cfg.ConnLimits.withDefaults()
	if err := cl.check(); err != nil {
		return nil, err
	}
	rm, err := newResourceManager(cl)
	if err != nil {
		return nil, err
	}
	cm, err := connmgr.NewConnManager(cl.LowWater, cl.HighWater, connmgr.WithGracePeriod(cl.GracePeriod))
	if err != nil {
		return nil, fmt.Errorf("dht: connection manager: %w", err)
	}
	filter := addrFilter(cfg.AllowLoopback, cfg.IgnoreInterface)
	nodeRef := &atomic.Pointer[Node]{} // set once the node exists
	opts := []libp2p.Option{
		libp2p.Identity(cfg.Key),
		libp2p.ListenAddrs(listenMA...),
		libp2p.ShareTCPListener(),
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Transport(ws.New),
		libp2p.Transport(quic.NewTransport),
		// TLS 1.3 first: with AES-GCM in hardware it carried 5.1 Gbit/s
		// TAP to TAP where Noise's ChaCha20-Poly1305 carried 3.1 (and a
		// third less CPU per GB). Noise stays for peers that prefer it.
		libp2p.Security(tls.ID, tls.New),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.ResourceManager(rm),
		libp2p.ConnectionGater(newInboundGater(guard, gates)),
		libp2p.Peerstore(pstore),
		libp2p.ConnectionManager(cm),
		libp2p.UserAgent("kadlan/" + cfg.Version),
		libp2p.AddrsFactory(addrsFactory(filter, nodeRef)),
		libp2p.EnableNATService(),
	}
	opts = append(opts, metricsOptions(cfg.Metrics)...)
	var quicCM *quicreuse.ConnManager // libp2p's, kept for birthday punching
	opts = append(opts, libp2p.QUICReuse(func(key quicgo.StatelessResetKey, tokens quicgo.TokenGeneratorKey, rcmgr network.ResourceManager, lc fx.Lifecycle) (*quicreuse.ConnManager, error) {
		cm, err := newQUICConnManager(key, tokens, rcmgr, cfg.Metrics)
		if err != nil {
			return nil, err
		}
		lc.Append(fx.StopHook(cm.Close))
		quicCM = cm
		return cm, nil
	}))
	if cfg.Bandwidth != nil {
		opts = append(opts, libp2p.BandwidthReporter(cfg.Bandwidth))
	}
	acl := &relayACL{nodeRef: nodeRef}
	natOpts, err := natOptions(cfg, nodeRef, acl)
	if err != nil {
		return nil, err
	}
	opts = append(opts, natOpts...)
	switch reach {
	case network.ReachabilityPublic:
		opts = append(opts, libp2p.ForceReachabilityPublic())
	case network.ReachabilityPrivate:
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("dht: starting libp2p host: %w", err)
	}
	// Before anyone identifies us: relays admit kadlan nodes only.
	h.SetStreamHandler(NodeProtocol, handleNodeProtocol)
	bday := newBirthday(h, quicCM, logf)
	bday.gate = pgate
	dopts := []kaddht.Option{
		kaddht.ProtocolPrefix(ProtocolPrefix),
		kaddht.Mode(mode),
		kaddht.AddressFilter(filter),
	}
	if cfg.Peers != nil {
		dopts = append(dopts, kaddht.BootstrapPeersFunc(cfg.Peers.Candidates))
	}
	dopts = append(dopts, cfg.DHTOptions...)
	d, err := kaddht.New(h, dopts...)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("dht: starting Kademlia: %w", err)
	}
	lan, err := kaddht.New(h, append(dopts, lanOptions(mode)...)...)
	if err != nil {
		d.Close()
		h.Close()
		return nil, fmt.Errorf("dht: starting the LAN's Kademlia: %w", err)
	}
	punch, err := newPuncher(h, punchDialTimeout, cfg.Metrics, logf)
	if err != nil {
		lan.Close()
		d.Close()
		h.Close()
		return nil, fmt.Errorf("dht: hole punching: %w", err)
	}
	punch.gate = pgate
	cctx, cancel := context.WithCancel(context.Background())
	n := &Node{Host: h, DHT: d, LAN: lan, cfg: cfg, started: time.Now(), logf: logf, ctx: cctx, cancel: cancel, reachability: reach, acl: acl, connMgr: cm, punch: punch, vouch: newVouch(), gates: gates, bday: bday, reach: guard, reachChanged: make(chan struct{}, 1)}
	if err := n.registerMetrics(cfg.Metrics); err != nil {
		n.Close()
		return nil, fmt.Errorf("dht: metrics: %w", err)
	}
	nodeRef.Store(n)
	if err := n.watchRelayDeaths(cctx); err != nil {
		n.Close()
		return nil, err
	}
	if err := n.watchRelayAddrs(cctx); err != nil {
		n.Close()
		return nil, err
	}
	if err := n.watchReachability(cctx); err != nil {
		n.Close()
		return nil, err
	}
	if reach == network.ReachabilityUnknown {
		// libp2p's AutoRelay starts looking for relays only on a
		// reachability event, and AutoNAT emits its first one after a 15 s
		// boot delay plus dial-backs. Say "unknown" now (it is the truth)
		// so that a node behind NAT reserves relay slots within a second;
		// AutoNAT's verdict follows, filtered by the reach guard, which
		// emits on the same emitter (reach.go).
		em, err := h.EventBus().Emitter(new(event.EvtLocalReachabilityChanged), eventbus.Stateful)
		if err != nil {
			n.Close()
			return nil, fmt.Errorf("dht: reachability events: %w", err)
		}
		n.reachEm = em
		em.Emit(event.EvtLocalReachabilityChanged{Reachability: network.ReachabilityUnknown})
	}
	if cfg.Relay == "on" {
		if err := n.startRelay(); err != nil {
			n.Close()
			return nil, err
		}
	}
	if err := n.watchRelayedLinks(cctx); err != nil {
		n.Close()
		return nil, err
	}
	if err := n.watchObserved(cctx); err != nil {
		n.Close()
		return nil, err
	}
	n.watchReconnects(cctx)
	h.Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) { guard.connected(c) }})
	bday.sentTo = guard.sentTo
	if n.reachEm != nil {
		// Behind NAT (no public interface address, nothing forced): AutoNAT's
		// "public" needs a stranger's connection to confirm it (reach.go).
		n.wg.Add(1)
		go func() { defer n.wg.Done(); n.guardReachability(cctx, n.reachEm, n.reachChanged) }()
	}
	h.SetStreamHandler(BirthdayProtocol, func(s network.Stream) { bday.handle(cctx, s) })
	n.wg.Add(5)
	go func() { defer n.wg.Done(); n.runVouch(cctx) }()
	go func() { defer n.wg.Done(); bday.run(cctx, &n.wg) }()
	go func() { defer n.wg.Done(); n.punch.run(cctx, &n.wg, punchTick) }()
	go func() { defer n.wg.Done(); n.watchInterfaces(cctx, time.Second) }()
	go func() { defer n.wg.Done(); n.keepRelaysAlive(cctx) }()
	return n, nil
}

// Close stops the DHT and the host. It is idempotent.
func (n *Node) Close() error {
	var err error
	n.once.Do(func() {
		n.cancel()
		n.punch.svc.Close() // ends the punches n.wg waits for
		n.wg.Wait()
		if n.relay != nil {
			n.relay.Close()
		}
		if n.reachEm != nil {
			n.reachEm.Close()
		}
		err = errors.Join(n.DHT.Close(), n.LAN.Close(), n.Host.Close())
	})
	return err
}

// ID is the node's address.
func (n *Node) ID() peer.ID { return n.Host.ID() }

// Reachability is what the node currently believes about itself.
func (n *Node) Reachability() network.Reachability {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.reachability
}

func (n *Node) watchReachability(ctx context.Context) error {
	return n.onEvent(ctx, new(event.EvtLocalReachabilityChanged), func(e any) {
		r := e.(event.EvtLocalReachabilityChanged).Reachability
		n.mu.Lock()
		n.reachability = r
		n.mu.Unlock()
		n.logf("dht: reachability is now %s", reachabilityWord(r))
		select {
		case n.reachChanged <- struct{}{}:
		default:
		}
	})
}

// onEvent calls f, on one goroutine of its own, for every event of the type
// evtType points to, until ctx ends.
func (n *Node) onEvent(ctx context.Context, evtType any, f func(any)) error {
	sub, err := n.Host.EventBus().Subscribe(evtType)
	if err != nil {
		return fmt.Errorf("dht: subscribing to %T: %w", evtType, err)
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer sub.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				f(e)
			}
		}
	}()
	return nil
}

// decideReachability turns the configured word into a starting belief.
func decideReachability(word string, listen []ma.Multiaddr) (network.Reachability, error) {
	switch word {
	case "public":
		return network.ReachabilityPublic, nil
	case "private":
		return network.ReachabilityPrivate, nil
	case "", "auto":
		if hasPublicInterfaceAddr(listen) {
			return network.ReachabilityPublic, nil
		}
		return network.ReachabilityUnknown, nil
	}
	return 0, fmt.Errorf("dht: reachability %q: want auto, public or private", word)
}

func dhtMode(word string, reach network.Reachability) (kaddht.ModeOpt, error) {
	switch word {
	case "server":
		return kaddht.ModeServer, nil
	case "client":
		return kaddht.ModeClient, nil
	case "", "auto":
		if reach == network.ReachabilityPublic {
			return kaddht.ModeServer, nil
		}
		// Client until AutoNAT says public: a node behind NAT must not
		// enter others' routing tables as an unreachable server.
		return kaddht.ModeAuto, nil
	}
	return 0, fmt.Errorf("dht: DHT mode %q: want auto, server or client", word)
}

// hasPublicInterfaceAddr reports whether one of the addresses the node
// listens on is a public IP: either a listen address given explicitly, or
// an address of an interface when listening on 0.0.0.0 / ::.
func hasPublicInterfaceAddr(listen []ma.Multiaddr) bool {
	var ifaceAddrs []ma.Multiaddr
	for _, l := range listen {
		ip, err := manet.ToIP(l)
		if err != nil {
			continue
		}
		if !ip.IsUnspecified() {
			if manet.IsPublicAddr(l) {
				return true
			}
			continue
		}
		if ifaceAddrs == nil {
			ifaceAddrs, _ = manet.InterfaceMultiaddrs()
		}
		for _, a := range ifaceAddrs {
			aip, err := manet.ToIP(a)
			if err != nil || (aip.To4() == nil) != (ip.To4() == nil) {
				continue
			}
			if manet.IsPublicAddr(a) {
				return true
			}
		}
	}
	return false
}

// addrFilter drops addresses nobody else can use: unspecified, link-local
// and (unless allowed) loopback.
func addrFilter(allowLoopback bool, ignore func(name string) bool) func([]ma.Multiaddr) []ma.Multiaddr {
	return func(in []ma.Multiaddr) []ma.Multiaddr {
		out := make([]ma.Multiaddr, 0, len(in))
		own := ignoredIPs(ignore)
		for _, a := range in {
			if manet.IsIP6LinkLocal(a) {
				continue
			}
			if ip, err := manet.ToIP(a); err == nil {
				if ip.IsUnspecified() || ip.IsLinkLocalUnicast() {
					continue
				}
				if ip.IsLoopback() && !allowLoopback {
					continue
				}
				// An address of the node's own virtual LANs: a peer that
				// dialled it would reach this node through the network it
				// is the link of (and make it look the address up).
				// Loopback is allowLoopback's.
				if own[ip.String()] && !ip.IsLoopback() {
					continue
				}
			}
			out = append(out, a)
		}
		return out
	}
}

func reachabilityWord(r network.Reachability) string {
	switch r {
	case network.ReachabilityPublic:
		return "public"
	case network.ReachabilityPrivate:
		return "private"
	}
	return "unknown"
}
