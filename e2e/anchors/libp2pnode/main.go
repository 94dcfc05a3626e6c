// Command libp2pnode is bench-connect's go-libp2p anchor (issue 12): a
// stock go-libp2p host, at the go-libp2p version of kadlan's go.mod, with
// its defaults plus what a stock deployment (kubo's defaults) turns on:
// kad-dht on the standard /ipfs/kad/1.0.0 protocol, AutoRelay fed with
// relay candidates from the peers the host is connected to (the DHT's
// routing table brings them), the circuit v2 relay service and the AutoNAT
// service (both act only once the node is public), and DCUtR hole
// punching. No NAT port mapping (no UPnP, no NAT-PMP), no mDNS. It
// bootstraps only from the nodes given with --bootstrap, and refuses to
// start if one of kad-dht's public default bootstrap peers is among them.
//
// The benchmark drives it over HTTP on a Unix socket (--api; a file, so
// the driver sends nothing on any network):
//
//	GET  /status            {id, addrs, reachability, relay_addrs, routing_table}
//	POST /find {id, timeout_ms}   a DHT lookup: {addrs, elapsed_ms}
//	POST /ping {id, timeout_ms}   first contact: FindPeer, Connect, one echo
//	                        round trip: {first_reply_ms, find_ms, connect_ms, path}
//	GET  /path?id=ID        {path: "direct" | "relayed" | "none"}
//
// Every node serves /kadlan-anchor/echo/1.0.0, which echoes what it reads.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/routing"
	ma "github.com/multiformats/go-multiaddr"
)

const echoProto = protocol.ID("/kadlan-anchor/echo/1.0.0")

func main() {
	var (
		api       = flag.String("api", "", "Unix socket for the benchmark's HTTP API (required)")
		bootstrap = flag.String("bootstrap", "", "comma-separated multiaddrs (with /p2p/) of in-lab bootstrap nodes; required unless --infra")
		infra     = flag.Bool("infra", false, "infrastructure node on a public address: DHT server, reachability forced public (so its relay and AutoNAT services run)")
		dhtMode   = flag.String("dht-mode", "auto", "kad-dht mode for a non-infra node: auto (stock), client or server")
		listen    = flag.String("listen", "", "comma-separated listen multiaddrs; empty: go-libp2p's defaults")
	)
	flag.Parse()
	log.SetFlags(log.Lmicroseconds)
	if *api == "" {
		log.Fatal("--api is required")
	}
	boots, err := parseBootstrap(*bootstrap)
	if err != nil {
		log.Fatal(err)
	}
	if len(boots) == 0 && !*infra {
		log.Fatal("--bootstrap is required: the anchor never falls back to public bootstrap lists")
	}
	opts := []libp2p.Option{
		libp2p.EnableHolePunching(),
		libp2p.EnableRelayService(),
		libp2p.EnableNATService(),
	}
	if *listen != "" {
		opts = append(opts, libp2p.ListenAddrStrings(strings.Split(*listen, ",")...))
	}
	mode := dht.ModeAuto
	switch {
	case *infra:
		opts = append(opts, libp2p.ForceReachabilityPublic())
		mode = dht.ModeServer
	case *dhtMode == "client":
		mode = dht.ModeClient
	case *dhtMode == "server":
		mode = dht.ModeServer
	case *dhtMode != "auto":
		log.Fatalf("--dht-mode %q: want auto, client or server", *dhtMode)
	}
	// AutoRelay's candidates: the peers this host is connected to (the
	// DHT's routing table and the bootstrap nodes), as kubo feeds it. The
	// source is set before the host exists, so it reads the host through a
	// variable.
	var hp struct {
		sync.Mutex
		h host.Host
	}
	source := func(ctx context.Context, num int) <-chan peer.AddrInfo {
		out := make(chan peer.AddrInfo, num)
		defer close(out)
		hp.Lock()
		h := hp.h
		hp.Unlock()
		if h == nil {
			return out
		}
		for _, p := range h.Network().Peers() {
			if num == 0 {
				break
			}
			out <- peer.AddrInfo{ID: p, Addrs: h.Peerstore().Addrs(p)}
			num--
		}
		return out
	}
	if !*infra {
		opts = append(opts, libp2p.EnableAutoRelayWithPeerSource(source))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		log.Fatal(err)
	}
	hp.Lock()
	hp.h = h
	hp.Unlock()
	d, err := dht.New(h, dht.Mode(mode), dht.BootstrapPeers(boots...))
	if err != nil {
		log.Fatal(err)
	}
	h.SetStreamHandler(echoProto, func(s network.Stream) {
		defer s.Close()
		buf := make([]byte, 256)
		n, err := s.Read(buf)
		if err != nil && n == 0 {
			s.Reset()
			return
		}
		s.Write(buf[:n])
	})
	n := &node{h: h, d: d, reach: network.ReachabilityUnknown}
	if *infra {
		n.reach = network.ReachabilityPublic
	}
	go n.watchReachability()
	for _, b := range boots {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := h.Connect(ctx, b); err != nil {
			log.Printf("bootstrap %s: %v", b.ID, err)
		}
		cancel()
	}
	if err := d.Bootstrap(context.Background()); err != nil {
		log.Fatal(err)
	}
	os.Remove(*api)
	ln, err := net.Listen("unix", *api)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("id %s listening on %v", h.ID(), h.Addrs())
	go http.Serve(ln, n.mux())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	ln.Close()
	d.Close()
	h.Close()
}

// parseBootstrap parses the --bootstrap list and refuses kad-dht's public
// default bootstrap peers.
func parseBootstrap(s string) ([]peer.AddrInfo, error) {
	public := map[peer.ID]bool{}
	for _, a := range dht.DefaultBootstrapPeers {
		if ai, err := peer.AddrInfoFromP2pAddr(a); err == nil {
			public[ai.ID] = true
		}
	}
	var out []peer.AddrInfo
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		ai, err := peer.AddrInfoFromString(f)
		if err != nil {
			return nil, fmt.Errorf("--bootstrap %q: %w", f, err)
		}
		if public[ai.ID] {
			return nil, fmt.Errorf("--bootstrap %q is one of kad-dht's public bootstrap peers: in-lab nodes only", f)
		}
		out = append(out, *ai)
	}
	return out, nil
}

type node struct {
	h     host.Host
	d     *dht.IpfsDHT
	mu    sync.Mutex
	reach network.Reachability
}

func (n *node) watchReachability() {
	sub, err := n.h.EventBus().Subscribe(new(event.EvtLocalReachabilityChanged))
	if err != nil {
		return
	}
	for e := range sub.Out() {
		n.mu.Lock()
		n.reach = e.(event.EvtLocalReachabilityChanged).Reachability
		n.mu.Unlock()
	}
}

func (n *node) mux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		var addrs, relays []string
		for _, a := range n.h.Addrs() {
			addrs = append(addrs, a.String())
			if isCircuit(a) {
				relays = append(relays, a.String())
			}
		}
		n.mu.Lock()
		reach := strings.ToLower(n.reach.String())
		n.mu.Unlock()
		reply(w, map[string]any{"id": n.h.ID().String(), "addrs": addrs, "reachability": reach,
			"relay_addrs": relays, "routing_table": n.d.RoutingTable().Size()}, nil)
	})
	m.HandleFunc("POST /find", func(w http.ResponseWriter, r *http.Request) {
		id, ctx, cancel, err := request(r)
		if err != nil {
			reply(w, nil, err)
			return
		}
		defer cancel()
		start := time.Now()
		ai, err := n.d.FindPeer(ctx, id)
		reply(w, map[string]any{"addrs": ai.Addrs, "elapsed_ms": ms(time.Since(start))}, err)
	})
	m.HandleFunc("POST /ping", func(w http.ResponseWriter, r *http.Request) {
		id, ctx, cancel, err := request(r)
		if err != nil {
			reply(w, nil, err)
			return
		}
		defer cancel()
		res, err := n.ping(ctx, id)
		reply(w, res, err)
	})
	m.HandleFunc("GET /path", func(w http.ResponseWriter, r *http.Request) {
		id, err := peer.Decode(r.URL.Query().Get("id"))
		if err != nil {
			reply(w, nil, err)
			return
		}
		reply(w, map[string]any{"path": n.path(id)}, nil)
	})
	return m
}

// ping is a first contact as a stock application makes it: look the peer
// up in the DHT, connect (through a relay if that is all it advertises;
// DCUtR then runs by itself), and round-trip one message.
func (n *node) ping(ctx context.Context, id peer.ID) (map[string]any, error) {
	start := time.Now()
	// The lookup's events say, when it fails, which servers named the
	// peer and what dialling it gave.
	ectx, endEvents := context.WithCancel(ctx)
	qctx, events := routing.RegisterForQueryEvents(ectx)
	var trace []string
	traced := make(chan struct{})
	go func() {
		defer close(traced)
		for e := range events {
			switch {
			case e.Type == routing.PeerResponse:
				for _, r := range e.Responses {
					if r.ID == id {
						trace = append(trace, fmt.Sprintf("%s named it with %v", shortID(e.ID), r.Addrs))
					}
				}
			case e.Type == routing.QueryError && e.ID == id:
				trace = append(trace, "querying it: "+e.Extra)
			}
		}
	}()
	ai, err := n.d.FindPeer(qctx, id)
	endEvents()
	<-traced
	if err != nil {
		return nil, fmt.Errorf("find: %w (%s; connectedness %s)", err, strings.Join(trace, "; "), n.h.Network().Connectedness(id))
	}
	found := time.Since(start)
	if err := n.h.Connect(ctx, ai); err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	connected := time.Since(start)
	s, err := n.h.NewStream(network.WithAllowLimitedConn(ctx, "echo"), id, echoProto)
	if err != nil {
		return nil, fmt.Errorf("stream: %w", err)
	}
	defer s.Close()
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	msg := make([]byte, 32)
	rand.Read(msg)
	if _, err := s.Write(msg); err != nil {
		return nil, fmt.Errorf("write: %w", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(s, got); err != nil {
		return nil, fmt.Errorf("read: %w", err)
	}
	if string(got) != string(msg) {
		return nil, errors.New("echo differs")
	}
	path := "direct"
	if s.Conn().Stat().Limited || isCircuit(s.Conn().RemoteMultiaddr()) {
		path = "relayed"
	}
	return map[string]any{"first_reply_ms": ms(time.Since(start)), "find_ms": ms(found),
		"connect_ms": ms(connected), "path": path, "remote": s.Conn().RemoteMultiaddr().String()}, nil
}

// path is "direct" when some connection to id is neither limited nor
// through a relay.
func (n *node) path(id peer.ID) string {
	conns := n.h.Network().ConnsToPeer(id)
	if len(conns) == 0 {
		return "none"
	}
	for _, c := range conns {
		if !c.Stat().Limited && !isCircuit(c.RemoteMultiaddr()) {
			return "direct"
		}
	}
	return "relayed"
}

func shortID(p peer.ID) string {
	s := p.String()
	return s[max(0, len(s)-6):]
}

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

func request(r *http.Request) (peer.ID, context.Context, context.CancelFunc, error) {
	var req struct {
		ID        string `json:"id"`
		TimeoutMs int    `json:"timeout_ms"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return "", nil, nil, err
	}
	id, err := peer.Decode(req.ID)
	if err != nil {
		return "", nil, nil, err
	}
	if req.TimeoutMs <= 0 {
		req.TimeoutMs = 10000
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Duration(req.TimeoutMs)*time.Millisecond)
	return id, ctx, cancel, nil
}

func reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		w.WriteHeader(http.StatusInternalServerError)
		json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
		return
	}
	json.NewEncoder(w).Encode(v)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
