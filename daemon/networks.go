package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/dht"
	"github.com/kadlan/kadlan/internal/group"
	"github.com/kadlan/kadlan/internal/ratelog"
	"github.com/kadlan/kadlan/overlay"
	"github.com/kadlan/kadlan/overlay/bounds"
	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/kadlan/kadlan/tap"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Timing of the per-network loop. Fast while joining, slow once settled.
const (
	netTickFast     = time.Second
	netTickSlow     = 10 * time.Second
	republishEvery  = bounds.RepublishEvery
	revocationEvery = 15 * time.Second
	discoverEvery   = 20 * time.Second
	// With at least one member link up (records arrive along links).
	linkedRevocationEvery = bounds.LinkedRevocationEvery
	linkedDiscoverEvery   = bounds.DiscoverEvery
	dhtOpTimeout          = 10 * time.Second
	helloTimeout          = 10 * time.Second
)

// Status words the daemon adds to overlay's: connecting means authorized,
// with members known, but no member link up yet.
const statusConnecting = "connecting"

// statusError: the network's interface could not be created (see error).
const statusDeviceError = "error"

// DeviceFactory creates the virtual Ethernet device of a network. The
// default makes a Linux TAP; tests may pass in-memory devices.
type DeviceFactory func(name string, mtu int, m *vswitch.Membership) (tap.Device, error)

// netManager runs the joined networks of a daemon: records in the DHT,
// member discovery, member links and one Engine (switch + device) each.
//
// Goroutines: each joined network owns its loop, its record worker, its
// dials, DHT publications and link upgrades (joined.g), which leave and
// close cancel and wait for; the manager's group owns the stream handlers
// that libp2p calls on its own goroutines, so that close also waits for
// them. No goroutine outlives close.
type netManager struct {
	node      *dht.Node
	key       crypto.PrivKey
	stateDir  string
	logf      func(string, ...any)
	newDevice DeviceFactory
	g         group.Group
	linked    *memberIndex
	linkIdle  time.Duration // Config.LinkIdle; set by newNetManager's configure
	maxKnown  int           // Config.MaxKnownMembers (0: vswitch.DefaultMaxKnown); set likewise
	// name is this node's self-chosen member name ("" for none); dns
	// turns the per-network responders on, under dnsSuffix; resolved, if
	// not nil, registers a responder with systemd-resolved. Set by
	// newNetManager's configure.
	name      string
	dns       bool
	dnsSuffix string
	resolved  func(ctx context.Context, iface string, addr netip.Addr, zone string)

	// walks counts the DHT operations networks started, by kind (what
	// the scale benchmark attributes background bytes to).
	walks dhtWalks

	mu   sync.Mutex
	nets map[netrec.NetworkID]*joined
	// broken are saved networks that could not be loaded (a corrupt
	// file), shown by `kadlan networks` as status error with why.
	broken map[string]string
	ctx    context.Context
}

// joined is one network this node is on.
type joined struct {
	mgr    *netManager
	ctx    context.Context // ends when the network is left or the daemon stops
	cancel context.CancelFunc
	g      group.Group // owns every goroutine of this network

	logs       *ratelog.Limiter // lines caused by what members send
	publishing atomic.Bool      // a DHT publication runs (one at a time)
	resolving  atomic.Int32     // address and MAC lookups running (resolve)
	pubPending bool             // the announcement changed since the last publication started (run loop only)
	dns        dnsState         // the DNS responder (run loop only)
	// nameMiss wakes the run loop when the responder was asked for a name
	// it does not know (see lookupName); lastNameMiss: run loop only.
	nameMiss     chan struct{}
	lastNameMiss time.Time
	// names is the latest name table (see refreshNames), read without
	// j.mu by the responder.
	names atomic.Pointer[vswitch.Names]

	mu      sync.Mutex // guards everything below
	m       *vswitch.Membership
	ann     *netrec.Announcement
	annIPv4 netip.Addr
	dev     tap.Device
	eng     *overlay.Engine
	devIPv4 netip.Prefix
	// dnsServer is the address the DNS responder answers on (invalid:
	// none runs).
	dnsServer netip.Addr
	// protected are the members whose connections the connection manager
	// must not trim (a link was up with them).
	protected map[peer.ID]bool
	// linking are members whose link is coming up (a lookup found them,
	// or their hello was just accepted), kept from TrimKnown for
	// linkingKeep (see keepLinking).
	linking map[peer.ID]time.Time
	dirty   bool
	// devErr says why the device could not be created (no CAP_NET_ADMIN,
	// say); pubFailed that the last announcement did not reach the DHT.
	devErr        string
	lastEngineTry time.Time
	pubFailed     bool

	lastDef, lastRev, lastCert, lastPub, lastDiscover, lastRedemptions time.Time

	disc discoverState // member discovery's caches and period (its own lock)
}

// configure, if not nil, sets the manager's options before any saved
// network starts.
func newNetManager(ctx context.Context, node *dht.Node, key crypto.PrivKey, stateDir string, newDevice DeviceFactory, linked *memberIndex, logf func(string, ...any), configure func(*netManager)) *netManager {
	nm := &netManager{node: node, key: key, stateDir: stateDir, logf: logf, newDevice: newDevice, linked: linked,
		nets: map[netrec.NetworkID]*joined{}, broken: map[string]string{}, ctx: ctx}
	if configure != nil {
		configure(nm)
	}
	node.Host.SetStreamHandler(protocol.ID(vswitch.ProtocolID), nm.handleStream)
	node.SetRedial(nm.redial)
	ms, errs := overlay.LoadMemberships(stateDir)
	for _, e := range errs {
		nm.broken[e.Network] = e.Err.Error()
		logf("networks: %s: %v (shown as error in kadlan networks; leave it to remove the file)", e.Network, e.Err)
	}
	for _, m := range ms {
		if m.Self != node.ID() {
			logf("networks: %s belongs to another identity; skipped", m.ID)
			continue
		}
		nm.start(m)
		logf("networks: rejoined %s", m.ID)
	}
	return nm
}

// redial dials p again on every network whose link to p this node
// dialled (the node moves such links off a relay this way: see
// dht.Node.SetRedial) and reports whether any dial started.
func (nm *netManager) redial(p peer.ID) bool {
	nm.mu.Lock()
	js := make([]*joined, 0, len(nm.nets))
	for _, j := range nm.nets {
		js = append(js, j)
	}
	nm.mu.Unlock()
	started := false
	for _, j := range js {
		if eng := j.engine(); eng != nil && eng.Redial(p) {
			started = true
		}
	}
	return started
}

// Device kinds for Config.Device.
const (
	DeviceAuto = "auto" // a TAP, or TUN with Ethernet emulation where no TAP can be made
	DeviceTAP  = "tap"  // a TAP only
	DeviceTUN  = "tun"  // TUN with Ethernet emulation (tap.TUN) only
)

// SystemDevices returns the DeviceFactory for kind (see DeviceAuto).
//
// A TAP comes with TCP segmentation and checksum offload (IFF_VNET_HDR):
// the kernel hands over and takes TCP super-frames of up to 64 KiB, which
// cross member links whole. A kernel that refuses the offload gets a plain
// TAP; links work either way, since every node segments received
// super-frames in software when its device cannot. Where no TAP can be made
// at all (systems without one, or a sandbox that allows only IFF_TUN), auto
// falls back to a TUN whose Ethernet side kadlan emulates (ARP, NDP and
// headers; tap.TUN): slower, without offload, but on the same network.
func SystemDevices(kind string) (DeviceFactory, error) {
	tapDev := func(name string, mtu int, m *vswitch.Membership) (tap.Device, error) {
		d, err := tap.Create(tap.Config{Name: name, MTU: mtu, MAC: m.MAC(), VnetHdr: true, Offload: tap.OffloadTSO})
		if err == nil {
			return d, nil
		}
		return tap.Create(tap.Config{Name: name, MTU: mtu, MAC: m.MAC()})
	}
	tunDev := func(name string, mtu int, m *vswitch.Membership) (tap.Device, error) {
		return tap.CreateTUN(name, mtu, tap.TUNConfig{MAC: m.MAC()})
	}
	switch kind {
	case DeviceTAP:
		return tapDev, nil
	case DeviceTUN:
		return tunDev, nil
	case DeviceAuto, "":
		return func(name string, mtu int, m *vswitch.Membership) (tap.Device, error) {
			d, err := tapDev(name, mtu, m)
			if err == nil {
				return d, nil
			}
			t, terr := tunDev(name, mtu, m)
			if terr != nil {
				return nil, fmt.Errorf("no TAP (%v) and no TUN (%v)", err, terr)
			}
			return t, nil
		}, nil
	}
	return nil, fmt.Errorf("--device %q: want auto, tap or tun", kind)
}

// vnetHdr reports whether dev's frames carry a virtio-net header.
func vnetHdr(dev tap.Device) bool {
	v, ok := dev.(tap.Offloader)
	return ok && v.VnetHdrLen() > 0
}

// close stops every network (devices disappear; state stays on disk) and
// waits for every goroutine of the manager.
func (nm *netManager) close() {
	nm.node.Host.RemoveStreamHandler(protocol.ID(vswitch.ProtocolID))
	nm.mu.Lock()
	nets := nm.nets
	nm.nets = map[netrec.NetworkID]*joined{}
	nm.mu.Unlock()
	for _, j := range nets {
		j.stop()
	}
	nm.g.Close() // stream handlers still running
}

func (nm *netManager) start(m *vswitch.Membership) *joined {
	ctx, cancel := context.WithCancel(nm.ctx)
	j := &joined{mgr: nm, ctx: ctx, cancel: cancel, logs: ratelog.New(nm.logf, time.Now, 10*time.Second),
		m: m, protected: map[peer.ID]bool{}, dirty: true, nameMiss: make(chan struct{}, 1)}
	if m.Interface == "" {
		m.Interface = InterfacePrefix + m.ID.String()[:8]
	}
	nm.mu.Lock()
	nm.nets[m.ID] = j
	delete(nm.broken, m.ID.String())
	nm.mu.Unlock()
	j.g.Go(j.run)
	return j
}

// spawn runs f on a goroutine owned by the network; nothing once the
// network is stopping.
func (j *joined) spawn(f func(ctx context.Context)) { j.g.Go(func() { f(j.ctx) }) }

// stop cancels the network's goroutines, waits for all of them, then
// closes its engine and device.
func (j *joined) stop() {
	j.cancel()
	j.g.Close()
	j.save()
	// Close waits for the engine's record worker, which may be waiting
	// for j.mu in onRecord: close outside the lock.
	j.mu.Lock()
	eng := j.eng
	j.eng, j.dev = nil, nil
	for p := range j.protected {
		j.unprotect(p)
	}
	j.mu.Unlock()
	if eng != nil {
		eng.Close() // closes the device too
	}
}

// resolve finds a joined network by ID or unique prefix.
func (nm *netManager) resolve(s string) (*joined, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "" {
		return nil, errors.New("no network given")
	}
	nm.mu.Lock()
	defer nm.mu.Unlock()
	var match []*joined
	for id, j := range nm.nets {
		if strings.HasPrefix(id.String(), s) {
			match = append(match, j)
		}
	}
	switch len(match) {
	case 0:
		return nil, fmt.Errorf("not on a network %q (see kadlan networks)", s)
	case 1:
		return match[0], nil
	}
	return nil, fmt.Errorf("network prefix %q is ambiguous", s)
}

// create makes a network owned by this node's key and joins it.
func (nm *netManager) create(ctx context.Context, req api.NetworkCreateRequest) (api.NetworkCreated, error) {
	var pool netip.Prefix
	if req.IPv4 != "" {
		p, err := netip.ParsePrefix(req.IPv4)
		if err != nil {
			return api.NetworkCreated{}, fmt.Errorf("--ipv4 %q: want a CIDR such as 10.77.0.0/16", req.IPv4)
		}
		pool = p
	}
	def, err := netrec.NewDefinition(nm.key, req.Name, req.Private, pool, 0, netrec.BroadcastParams{}, time.Now())
	if err != nil {
		return api.NetworkCreated{}, err
	}
	m := vswitch.NewMembership(def.ID(), nm.node.ID(), time.Now())
	if _, err := m.SetDefinition(def); err != nil {
		return api.NetworkCreated{}, err
	}
	// An empty revocation list from the start: members poll it, and a
	// poll of a key no one holds walks to the key's closest peers and
	// asks each (issue 13); with a record held by many (every member
	// republishes it) the walk ends at the first few.
	rev, err := netrec.NextRevocation(nm.key, def, nil, nil, nil)
	if err != nil {
		return api.NetworkCreated{}, err
	}
	if _, err := m.SetRevocation(rev); err != nil {
		return api.NetworkCreated{}, err
	}
	if err := overlay.SaveMembership(nm.stateDir, m); err != nil {
		return api.NetworkCreated{}, err
	}
	j := nm.start(m)
	j.publish(ctx, netrec.DefinitionKey(def.ID()), def)
	j.publish(ctx, netrec.RevocationKey(def.ID()), rev)
	return api.NetworkCreated{Network: def.ID().String(), Name: def.Name, Private: def.Private, IPv4: def.IPv4Pool.String()}, nil
}

// join starts taking part in a network known by its ID.
func (nm *netManager) join(id netrec.NetworkID) error {
	nm.mu.Lock()
	_, ok := nm.nets[id]
	_, broken := nm.broken[id.String()]
	nm.mu.Unlock()
	if ok {
		return nil
	}
	if broken {
		return fmt.Errorf("the saved state of %s is damaged (see kadlan networks): leave it first to remove the file", id)
	}
	m := vswitch.NewMembership(id, nm.node.ID(), time.Now())
	if err := overlay.SaveMembership(nm.stateDir, m); err != nil {
		return err
	}
	nm.start(m)
	return nil
}

// leave stops a network and forgets it.
func (nm *netManager) leave(j *joined) error {
	nm.mu.Lock()
	delete(nm.nets, j.m.ID)
	nm.mu.Unlock()
	j.stop()
	return overlay.RemoveMembership(nm.stateDir, j.m.ID)
}

// leaveBroken removes the saved file of a network that could not be
// loaded, found by its file's name or a unique prefix of it.
func (nm *netManager) leaveBroken(s string) (string, bool, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	nm.mu.Lock()
	defer nm.mu.Unlock()
	var match []string
	for id := range nm.broken {
		if s != "" && strings.HasPrefix(id, s) {
			match = append(match, id)
		}
	}
	if len(match) != 1 {
		return "", false, nil
	}
	id := match[0]
	if err := overlay.RemoveNetworkFile(nm.stateDir, id); err != nil {
		return id, true, err
	}
	delete(nm.broken, id)
	return id, true, nil
}

// authorize issues and publishes a certificate (owner only).
func (nm *netManager) authorize(ctx context.Context, j *joined, member peer.ID, ipv4 netip.Addr, name string, expires time.Time) error {
	j.mu.Lock()
	if !j.m.IsOwner() || j.m.Def == nil {
		j.mu.Unlock()
		return errors.New("only the network's owner can authorize members")
	}
	cert, err := netrec.IssueNamedCertificate(nm.key, j.m.Def, member, ipv4, name, time.Now(), expires)
	if err == nil {
		_, err = j.m.AddCertificate(cert)
	}
	var readmit *netrec.Revocation
	if err == nil && j.m.Revocation != nil {
		// A member revoked earlier and authorized again: readmit it.
		if _, revoked := j.m.Revocation.Lookup(member); revoked {
			if readmit, err = netrec.NextRevocation(nm.key, j.m.Def, j.m.Revocation, nil, []peer.ID{member}); err == nil {
				_, err = j.m.SetRevocation(readmit)
			}
		}
	}
	j.dirty = true
	j.mu.Unlock()
	if err != nil {
		return err
	}
	j.pushRecord(cert)
	if readmit != nil {
		// Members hold the list that revoked it (on a public network
		// nothing else admits it again): tell them, as revoke does.
		j.pushRecord(readmit)
		j.syncSwitch()
		if err := j.publish(ctx, netrec.RevocationKey(j.m.ID), readmit); err != nil {
			return err
		}
	}
	return j.publish(ctx, netrec.CertificateKey(j.m.ID, member), cert)
}

// revoke publishes a new revocation that withdraws member (owner only).
func (nm *netManager) revoke(ctx context.Context, j *joined, member peer.ID) error {
	j.mu.Lock()
	if !j.m.IsOwner() || j.m.Def == nil {
		j.mu.Unlock()
		return errors.New("only the network's owner can revoke members")
	}
	rev, err := netrec.NextRevocation(nm.key, j.m.Def, j.m.Revocation,
		[]netrec.RevokedEntry{{Member: member, Before: time.Now().Add(time.Second)}}, nil)
	if err == nil {
		_, err = j.m.SetRevocation(rev)
	}
	j.dirty = true
	j.mu.Unlock()
	if err != nil {
		return err
	}
	// Tell every member, the revoked one included, then cut it off.
	j.pushRecord(rev)
	j.syncSwitch()
	return j.publish(ctx, netrec.RevocationKey(j.m.ID), rev)
}
