// Package daemon is kadlan's composition root: it opens the state dir,
// loads the identity, starts the libp2p node and its bootstrapper, and
// serves the control API on a Unix socket until its context ends.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kadlan/kadlan/bootstrap"
	"github.com/kadlan/kadlan/daemon/web"
	"github.com/kadlan/kadlan/dht"
	"github.com/kadlan/kadlan/internal/atomicfile"
	"github.com/kadlan/kadlan/internal/group"
	"github.com/kadlan/kadlan/overlay/netrec"
	kaddht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/prometheus/client_golang/prometheus"
)

// InterfacePrefix starts the name of every network interface kadlan
// creates.
const InterfacePrefix = "kl"

// File names inside the state dir.
const (
	KeyFile    = "identity.key"
	CacheFile  = "peers.json"
	SocketFile = "kadlan.sock"
)

// Config is what `kadlan daemon` was told.
type Config struct {
	StateDir      string
	APIPath       string // empty: StateDir/kadlan.sock
	Listen        []string
	Bootstrap     []string // multiaddrs with /p2p/
	PeersFile     string
	MDNS          bool
	Reachability  string
	DHTMode       string
	AllowLoopback bool
	Relay         string
	RelayLimits   dht.RelayLimits
	Version       string
	Logf          func(format string, args ...any)
	// LinkIdle > 0 makes member links come and go with traffic: a node
	// links to a few members (overlay.DefaultMinLinks) and to those it
	// sends to, and closes a link to a member it exchanged no unicast
	// frame with for LinkIdle (the social neighbour age, too). 0 links to
	// every authorized member and keeps the links.
	LinkIdle time.Duration
	// MaxKnownMembers bounds the members of a public network this node
	// holds (vswitch.Membership.TrimKnown): those heard of least recently
	// are forgotten, never those with a link nor social neighbours. 0
	// means vswitch.DefaultMaxKnown.
	MaxKnownMembers int
	// Device is the kind of network interface (DeviceAuto if empty); see
	// SystemDevices.
	Device string
	// NewDevice creates network interfaces; nil means SystemDevices(Device).
	NewDevice DeviceFactory
	// Name is this node's self-chosen member name on every network (see
	// netrec.ValidName; "" for none: then members know it by its address
	// name only). A certificate's name wins over it.
	Name string
	// DNS serves each network's member names (NAME.NETWORK.DNSSuffix) on
	// the network's interface addresses, port 53; DNSSuffix "" is
	// DefaultDNSSuffix. With systemd-resolved in the daemon's network
	// namespace the responder is registered for its zone (resolvectl).
	DNS       bool
	DNSSuffix string
	// Metrics is the HOST:PORT where Prometheus metrics are served at
	// /metrics (the node's, its networks', libp2p's); empty: off. The host
	// must be given (see checkMetricsAddr).
	Metrics string
	// Web is the HOST:PORT where the page for owners and members is served
	// (package web); empty: off. HOST must be an IP address or localhost,
	// a loopback one unless WebInsecureRemote (see web.CheckAddr).
	Web               string
	WebInsecureRemote bool
	// Bandwidth, if set, counts the node's stream bytes (dht.Config.
	// Bandwidth; benchmarks). Nil: none.
	Bandwidth metrics.Reporter
}

// Daemon is a running node with its control API.
type Daemon struct {
	cfg  Config
	Node *dht.Node
	Boot *bootstrap.Bootstrapper
	nets *netManager
	mux  *http.ServeMux
	logf func(string, ...any)
	prom *httpServer // nil: --metrics is off
	web  *httpServer // nil: --web is off
	// webToken is the page's bearer token (web.TokenFile in the state dir).
	webToken string
}

// WebAddr is the address the page listens on ("" if off).
func (d *Daemon) WebAddr() string {
	if d.web == nil {
		return ""
	}
	return d.web.addr()
}

// MetricsAddr is the address the metrics endpoint listens on ("" if off).
func (d *Daemon) MetricsAddr() string {
	if d.prom == nil {
		return ""
	}
	return d.prom.addr()
}

// Paths returns the identity key path of a state dir.
func KeyPath(stateDir string) string { return filepath.Join(stateDir, KeyFile) }

// Run starts everything and blocks until ctx ends, then shuts down in
// reverse order. ready, if non-nil, is called once the API is serving.
func Run(ctx context.Context, cfg Config, ready func(*Daemon)) error {
	logf := cfg.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	if cfg.StateDir == "" {
		return errors.New("no state dir")
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return fmt.Errorf("state dir: %w", err)
	}
	if cfg.APIPath == "" {
		cfg.APIPath = filepath.Join(cfg.StateDir, SocketFile)
	}
	if cfg.DNSSuffix == "" {
		cfg.DNSSuffix = DefaultDNSSuffix
	}
	if err := CheckName(cfg.Name, cfg.DNSSuffix); err != nil {
		return err
	}
	var flagPeers []peer.AddrInfo
	for _, s := range cfg.Bootstrap {
		a, err := bootstrap.ParseAddr(s)
		if err != nil {
			return fmt.Errorf("--bootstrap: %w", err)
		}
		ai, _ := peer.AddrInfoFromP2pAddr(a)
		flagPeers = append(flagPeers, *ai)
	}
	if cfg.PeersFile != "" {
		if _, err := bootstrap.ReadPeersFile(cfg.PeersFile); err != nil {
			return err
		}
	}
	if cfg.Metrics != "" {
		if err := checkMetricsAddr(cfg.Metrics); err != nil {
			return err
		}
	}
	if cfg.Web != "" {
		if err := web.CheckAddr(cfg.Web, cfg.WebInsecureRemote); err != nil {
			return err
		}
	}
	// Temporary files of atomic writes that a crash cut short (this daemon
	// is the state dir's only writer: listenUnix below refuses a second).
	if n := atomicfile.RemoveStale(cfg.StateDir); n > 0 {
		logf("removed %d temporary files left by an earlier crash", n)
	}
	if cfg.NewDevice == nil {
		f, err := SystemDevices(cfg.Device)
		if err != nil {
			return err
		}
		cfg.NewDevice = f
	}
	key, err := dht.LoadOrCreateKey(KeyPath(cfg.StateDir))
	if err != nil {
		return err
	}
	ln, err := listenUnix(cfg.APIPath)
	if err != nil {
		return err
	}
	defer ln.Close()

	d := &Daemon{cfg: cfg, logf: logf, mux: http.NewServeMux()}
	var reg *prometheus.Registry
	var nodeReg prometheus.Registerer // stays a nil interface when off
	if cfg.Metrics != "" {
		if d.prom, err = listenHTTP("--metrics", cfg.Metrics); err != nil {
			return err
		}
		defer d.prom.close(2 * time.Second)
		reg = newRegistry()
		nodeReg = reg
	}
	if cfg.Web != "" {
		if d.webToken, err = web.LoadOrCreateToken(filepath.Join(cfg.StateDir, web.TokenFile)); err != nil {
			return err
		}
		if d.web, err = listenHTTP("--web", cfg.Web); err != nil {
			return err
		}
		defer d.web.close(2 * time.Second)
	}
	self, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return fmt.Errorf("identity: %w", err)
	}
	// The bootstrapper is the node's peer source; once the node exists,
	// Run hands it the node to drive.
	boot := bootstrap.New(bootstrap.Config{
		Self:      self,
		CachePath: filepath.Join(cfg.StateDir, CacheFile),
		Peers:     flagPeers,
		PeersFile: cfg.PeersFile,
		MDNS:      cfg.MDNS,
		// Never announce into kadlan's own virtual LANs.
		IgnoreInterface: isOwnInterface,
		Logf:            logf,
	})
	d.Boot = boot
	// Members this node has links with: the relay gives them a member's
	// limits. Filled by the network manager, asked by the relay.
	linked := newMemberIndex()
	node, err := dht.New(ctx, dht.Config{
		Key:             key,
		ListenAddrs:     cfg.Listen,
		Reachability:    cfg.Reachability,
		DHTMode:         cfg.DHTMode,
		AllowLoopback:   cfg.AllowLoopback,
		Relay:           cfg.Relay,
		RelayLimits:     cfg.RelayLimits,
		Version:         cfg.Version,
		Logf:            logf,
		Peers:           boot,
		IsMember:        linked.has,
		DHTOptions:      []kaddht.Option{kaddht.NamespacedValidator(netrec.Namespace, netrec.RecordValidator{Now: time.Now})},
		Metrics:         nodeReg,
		IgnoreInterface: isOwnInterface,
		Bandwidth:       cfg.Bandwidth,
	})
	if err != nil {
		return err
	}
	defer node.Close()
	d.Node = node
	logf("kadlan %s: address %s", cfg.Version, node.ID())
	for _, a := range node.ShareableAddrs() {
		logf("listening: %s", a)
	}

	bctx, bcancel := context.WithCancel(ctx)
	bdone := make(chan struct{})
	go func() { defer close(bdone); boot.Run(bctx, node.Host, routing{node}) }()
	d.nets = newNetManager(bctx, node, key, cfg.StateDir, cfg.NewDevice, linked, logf, func(nm *netManager) {
		nm.linkIdle, nm.maxKnown = cfg.LinkIdle, cfg.MaxKnownMembers
		nm.name, nm.dns, nm.dnsSuffix = cfg.Name, cfg.DNS, cfg.DNSSuffix
		if cfg.DNS {
			nm.resolved = ResolvedRegistrar(nil, logf)
		}
	})
	if d.prom != nil {
		reg.MustRegister(newNetCollector(d.nets))
		d.prom.serve(&http.Server{Handler: metricsHandler(reg, logf), ReadHeaderTimeout: 10 * time.Second})
		logf("metrics on http://%s%s", d.prom.addr(), MetricsPath)
	}

	d.routes()
	// Requests run on the HTTP server's goroutines; reqs owns them so that
	// none outlives Run, and rctx ends the DHT operations they wait on.
	var reqs group.Group
	rctx, rcancel := context.WithCancel(ctx)
	apiHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !reqs.Enter() {
			http.Error(w, "kadlan daemon is shutting down", http.StatusServiceUnavailable)
			return
		}
		defer reqs.Leave()
		d.mux.ServeHTTP(w, r)
	})
	baseCtx := func(net.Listener) context.Context { return rctx }
	srv := &http.Server{
		Handler:           apiHandler,
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       baseCtx,
	}
	sdone := make(chan error, 1)
	go func() { sdone <- srv.Serve(ln) }()
	logf("control API on %s", cfg.APIPath)
	if d.web != nil {
		// The page's listener serves the very same API (requests owned by
		// reqs, like the socket's), behind its token.
		d.web.serve(&http.Server{
			Handler:           web.New(web.Config{API: apiHandler, Token: d.webToken, Addr: d.web.addr()}),
			ReadHeaderTimeout: web.ReadHeaderTimeout,
			ReadTimeout:       web.ReadTimeout,
			WriteTimeout:      web.WriteTimeout,
			IdleTimeout:       web.IdleTimeout,
			MaxHeaderBytes:    web.MaxHeaderBytes,
			BaseContext:       baseCtx,
			ErrorLog:          log.New(logWriter(logf), "web: ", 0),
		})
		logf("web page on %s (kadlan web prints its address with the token)", web.URL(d.web.addr(), ""))
	}
	if ready != nil {
		ready(d)
	}

	var serr error
	select {
	case <-ctx.Done():
	case serr = <-sdone:
	}
	logf("shutting down")
	if d.prom != nil {
		d.prom.close(2 * time.Second)
	}
	if d.web != nil {
		d.web.close(2 * time.Second)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 2*time.Second)
	srv.Shutdown(sctx)
	scancel()
	rcancel()
	reqs.Close()
	if serr == nil {
		serr = <-sdone
	}
	d.nets.close()
	bcancel()
	<-bdone
	os.Remove(cfg.APIPath)
	if serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return serr
	}
	return nil
}

// Handle registers an extra API route (for subsystems such as overlay).
func (d *Daemon) Handle(pattern string, h http.HandlerFunc) { d.mux.HandleFunc(pattern, h) }

// logWriter sends what a library logs through a *log.Logger to logf,
// one call per line.
type logWriter func(string, ...any)

func (l logWriter) Write(p []byte) (int, error) {
	l("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// isOwnInterface: the node's own TAP/TUN devices are not its network.
func isOwnInterface(name string) bool { return strings.HasPrefix(name, InterfacePrefix) }

type routing struct{ n *dht.Node }

func (r routing) Bootstrap(ctx context.Context) error { return r.n.Bootstrap(ctx) }
func (r routing) RoutingTablePeers() []peer.ID        { return r.n.RoutingTablePeers() }

// listenUnix listens on path with mode 0600, replacing a stale socket left
// by a crashed daemon but never one that a live daemon still serves.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("api socket dir: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("another kadlan daemon is already serving %s", path)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api socket: %w", err)
	}
	return ln, nil
}
