package daemon

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/dht"
	"github.com/kadlan/kadlan/overlay"
	"github.com/kadlan/kadlan/tap"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/transport"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	msmux "github.com/multiformats/go-multistream"
)

// Timing of the per-network loop. Fast while joining, slow once settled.
const (
	netTickFast     = time.Second
	netTickSlow     = 10 * time.Second
	republishEvery  = 10 * time.Minute
	revocationEvery = 15 * time.Second
	discoverEvery   = 20 * time.Second
	dhtOpTimeout    = 10 * time.Second
	helloTimeout    = 10 * time.Second
)

// Status words the daemon adds to overlay's: connecting means authorized,
// with members known, but no member link up yet.
const statusConnecting = "connecting"

// statusError: the network's interface could not be created (see error).
const statusDeviceError = "error"

// DeviceFactory creates the virtual Ethernet device of a network. The
// default makes a Linux TAP; tests may pass in-memory devices.
type DeviceFactory func(name string, mtu int, m *overlay.Membership) (tap.Device, error)

// netManager runs the joined networks of a daemon: records in the DHT,
// member discovery, member links and one Engine (switch + device) each.
type netManager struct {
	node      *dht.Node
	key       crypto.PrivKey
	stateDir  string
	logf      func(string, ...any)
	newDevice DeviceFactory
	tcpTried  sync.Map // peer.ID -> time.Time of the last failed upgradeTCP

	mu   sync.Mutex
	nets map[overlay.NetworkID]*joined
	ctx  context.Context
}

// joined is one network this node is on.
type joined struct {
	mgr    *netManager
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex // guards everything below
	m       *overlay.Membership
	ann     *overlay.Announcement
	annIPv4 netip.Addr
	dev     tap.Device
	eng     *overlay.Engine
	devIPv4 netip.Prefix
	dialing map[peer.ID]bool
	dirty   bool
	// devErr says why the device could not be created (no CAP_NET_ADMIN,
	// say); pubFailed that the last announcement did not reach the DHT.
	devErr        string
	lastEngineTry time.Time
	pubFailed     bool

	lastDef, lastRev, lastCert, lastPub, lastDiscover time.Time
}

func newNetManager(ctx context.Context, node *dht.Node, key crypto.PrivKey, stateDir string, newDevice DeviceFactory, logf func(string, ...any)) *netManager {
	if newDevice == nil {
		newDevice = linuxDevice
	}
	nm := &netManager{node: node, key: key, stateDir: stateDir, logf: logf, newDevice: newDevice,
		nets: map[overlay.NetworkID]*joined{}, ctx: ctx}
	node.Host.SetStreamHandler(protocol.ID(overlay.ProtocolID), nm.handleStream)
	ms, err := overlay.LoadMemberships(stateDir)
	if err != nil {
		logf("networks: %v", err)
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

// linuxDevice creates the network's TAP with TCP segmentation and checksum
// offload (IFF_VNET_HDR): the kernel hands over and takes TCP super-frames
// of up to 64 KiB, which cross member links whole. A kernel that refuses
// the offload gets a plain TAP; links work either way, since every node
// segments received super-frames in software when its device cannot.
func linuxDevice(name string, mtu int, m *overlay.Membership) (tap.Device, error) {
	d, err := tap.Create(tap.Config{Name: name, MTU: mtu, MAC: m.MAC(), VnetHdr: true, Offload: tap.OffloadTSO})
	if err == nil {
		return d, nil
	}
	plain, perr := tap.Create(tap.Config{Name: name, MTU: mtu, MAC: m.MAC()})
	if perr != nil {
		return nil, perr
	}
	return plain, nil
}

// vnetHdr reports whether dev's frames carry a virtio-net header.
func vnetHdr(dev tap.Device) bool {
	v, ok := dev.(interface{ VnetHdrLen() int })
	return ok && v.VnetHdrLen() > 0
}

// close stops every network (devices disappear; state stays on disk).
func (nm *netManager) close() {
	nm.node.Host.RemoveStreamHandler(protocol.ID(overlay.ProtocolID))
	nm.mu.Lock()
	nets := nm.nets
	nm.nets = map[overlay.NetworkID]*joined{}
	nm.mu.Unlock()
	for _, j := range nets {
		j.stop()
	}
}

func (nm *netManager) start(m *overlay.Membership) *joined {
	ctx, cancel := context.WithCancel(nm.ctx)
	j := &joined{mgr: nm, cancel: cancel, done: make(chan struct{}), m: m, dialing: map[peer.ID]bool{}, dirty: true}
	if m.Interface == "" {
		m.Interface = InterfacePrefix + m.ID.String()[:8]
	}
	nm.mu.Lock()
	nm.nets[m.ID] = j
	nm.mu.Unlock()
	go j.run(ctx)
	return j
}

func (j *joined) stop() {
	j.cancel()
	<-j.done
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.eng != nil {
		j.eng.Close() // closes the device too
		j.eng, j.dev = nil, nil
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
	def, err := overlay.NewDefinition(nm.key, req.Name, req.Private, pool, 0, overlay.BroadcastParams{}, time.Now())
	if err != nil {
		return api.NetworkCreated{}, err
	}
	m := overlay.NewMembership(def.ID(), nm.node.ID(), time.Now())
	if _, err := m.SetDefinition(def); err != nil {
		return api.NetworkCreated{}, err
	}
	if err := m.Save(nm.stateDir); err != nil {
		return api.NetworkCreated{}, err
	}
	j := nm.start(m)
	j.publish(ctx, overlay.DefinitionKey(def.ID()), def)
	return api.NetworkCreated{Network: def.ID().String(), Name: def.Name, Private: def.Private, IPv4: def.IPv4Pool.String()}, nil
}

// join starts taking part in a network known by its ID.
func (nm *netManager) join(id overlay.NetworkID) error {
	nm.mu.Lock()
	_, ok := nm.nets[id]
	nm.mu.Unlock()
	if ok {
		return nil
	}
	m := overlay.NewMembership(id, nm.node.ID(), time.Now())
	if err := m.Save(nm.stateDir); err != nil {
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

// authorize issues and publishes a certificate (owner only).
func (nm *netManager) authorize(ctx context.Context, j *joined, member peer.ID, ipv4 netip.Addr, expires time.Time) error {
	j.mu.Lock()
	if !j.m.IsOwner() || j.m.Def == nil {
		j.mu.Unlock()
		return errors.New("only the network's owner can authorize members")
	}
	cert, err := overlay.IssueCertificate(nm.key, j.m.Def, member, ipv4, time.Now(), expires)
	if err == nil {
		_, err = j.m.AddCertificate(cert)
	}
	if err == nil && j.m.Revocation != nil {
		// A member revoked earlier and authorized again: readmit it.
		if _, revoked := j.m.Revocation.Lookup(member); revoked {
			var rev *overlay.Revocation
			if rev, err = overlay.NextRevocation(nm.key, j.m.Def, j.m.Revocation, nil, []peer.ID{member}); err == nil {
				_, err = j.m.SetRevocation(rev)
			}
		}
	}
	j.dirty = true
	j.mu.Unlock()
	if err != nil {
		return err
	}
	j.pushRecord(cert)
	return j.publish(ctx, overlay.CertificateKey(j.m.ID, member), cert)
}

// revoke publishes a new revocation that withdraws member (owner only).
func (nm *netManager) revoke(ctx context.Context, j *joined, member peer.ID) error {
	j.mu.Lock()
	if !j.m.IsOwner() || j.m.Def == nil {
		j.mu.Unlock()
		return errors.New("only the network's owner can revoke members")
	}
	rev, err := overlay.NextRevocation(nm.key, j.m.Def, j.m.Revocation,
		[]overlay.RevokedEntry{{Member: member, Before: time.Now().Add(time.Second)}}, nil)
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
	return j.publish(ctx, overlay.RevocationKey(j.m.ID), rev)
}

type marshaler interface{ Marshal() ([]byte, error) }

// publish puts a record into the DHT.
func (j *joined) publish(ctx context.Context, key string, r marshaler) error {
	b, err := r.Marshal()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, dhtOpTimeout)
	defer cancel()
	if err := j.mgr.node.DHT.PutValue(ctx, key, b); err != nil {
		return fmt.Errorf("publishing %s: %w", key, err)
	}
	return nil
}

// fetch gets a record from the DHT and hands it to the membership.
func (j *joined) fetch(ctx context.Context, key string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, dhtOpTimeout)
	defer cancel()
	b, err := j.mgr.node.DHT.GetValue(ctx, key)
	if err != nil {
		return false, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	changed, err := j.m.AddRecord(b)
	if changed {
		j.dirty = true
	}
	return changed, err
}

// pushRecord sends a record to every member link (revocations and
// certificates travel along links as well as through the DHT).
func (j *joined) pushRecord(r marshaler) {
	b, err := r.Marshal()
	if err != nil {
		return
	}
	j.mu.Lock()
	eng := j.eng
	j.mu.Unlock()
	if eng != nil {
		eng.SendAll(overlay.Message{Kind: overlay.MsgRecord, Payload: b})
	}
}

// onRecord takes a record a member pushed; a new one is passed on.
func (j *joined) onRecord(from peer.ID, b []byte) {
	j.mu.Lock()
	changed, err := j.m.AddRecord(b)
	if changed {
		j.dirty = true
	}
	eng := j.eng
	j.mu.Unlock()
	if err != nil {
		j.mgr.logf("networks: %s: record from %s: %v", j.m.ID.Short(), from, err)
		return
	}
	if changed {
		j.syncSwitch()
		if eng != nil {
			eng.SendAll(overlay.Message{Kind: overlay.MsgRecord, Payload: b})
		}
	}
}

// run is the network's loop: records, device, discovery, links.
func (j *joined) run(ctx context.Context) {
	defer close(j.done)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			j.save()
			return
		case <-t.C:
		}
		settled := j.step(ctx)
		if settled {
			t.Reset(netTickSlow)
		} else {
			t.Reset(netTickFast)
		}
	}
}

// step does one round of work and reports whether the network is settled
// (authorized and linked to every authorized member it knows).
func (j *joined) step(ctx context.Context) bool {
	now := time.Now()
	id := j.m.ID
	j.mu.Lock()
	hasDef, hasCert, private, isOwner := j.m.Def != nil, j.m.Cert != nil, j.m.Def != nil && j.m.Def.Private, j.m.IsOwner()
	j.mu.Unlock()

	if !hasDef || now.Sub(j.lastDef) > republishEvery {
		if _, err := j.fetch(ctx, overlay.DefinitionKey(id)); err == nil || hasDef {
			j.lastDef = now
		}
	}
	// Waiting for a certificate: ask often at first (the owner may be
	// authorizing right now), then every 15 s.
	certEvery := 3 * time.Second
	if now.Sub(j.m.Joined) > time.Minute {
		certEvery = revocationEvery
	}
	if private && !hasCert && !isOwner && now.Sub(j.lastCert) > certEvery {
		j.lastCert = now
		j.fetch(ctx, overlay.CertificateKey(id, j.mgr.node.ID()))
	}
	if now.Sub(j.lastRev) > revocationEvery {
		j.lastRev = now
		j.fetch(ctx, overlay.RevocationKey(id))
	}
	j.mu.Lock()
	if j.m.Def != nil && j.eng == nil && now.Sub(j.lastEngineTry) > 30*time.Second {
		j.lastEngineTry = now
		if err := j.startEngine(); err != nil {
			j.devErr = err.Error()
			j.mgr.logf("networks: %s: %v (retrying every 30 s)", id.Short(), err)
		} else {
			j.devErr = ""
		}
	}
	ann, annChanged := j.announcement(now)
	def, cert := j.m.Def, j.m.Cert
	status := j.m.Status(now)
	j.mu.Unlock()

	// Announce ourselves (and re-publish the records members carry, so no
	// controller has to stay online) when something changed, and every
	// republishEvery.
	j.mu.Lock()
	retry := j.pubFailed && now.Sub(j.lastPub) > netTickSlow
	j.mu.Unlock()
	if ann != nil && (annChanged || retry || now.Sub(j.lastPub) > republishEvery) {
		j.lastPub = now
		go func() {
			pctx, cancel := context.WithTimeout(ctx, dhtOpTimeout)
			defer cancel()
			err := j.publish(pctx, overlay.AnnouncementKey(id, j.mgr.node.ID()), ann)
			if def != nil {
				j.publish(pctx, overlay.DefinitionKey(id), def)
			}
			if cert != nil {
				j.publish(pctx, overlay.CertificateKey(id, j.mgr.node.ID()), cert)
			}
			if perr := j.mgr.node.DHT.Provide(pctx, overlay.MembersCID(id), true); perr != nil {
				j.mgr.logf("networks: %s: announcing membership (will retry): %v", id.Short(), perr)
				err = perr
			}
			// Until it worked (no peer yet, say), try again soon rather
			// than at the next republish.
			j.mu.Lock()
			j.pubFailed = err != nil
			j.mu.Unlock()
		}()
	}
	// Look for members every discoverEvery, and every 2 s while authorized
	// but without any link (just joined, or every link lost).
	lonely := status == overlay.StatusOK && j.linkCount() == 0
	if def != nil && now.Sub(j.lastDiscover) > discoverEvery || lonely && now.Sub(j.lastDiscover) > 2*time.Second {
		j.lastDiscover = now
		j.discover(ctx)
	}
	j.syncSwitch()
	unlinked := j.wantLinks()
	for _, p := range unlinked {
		go j.dial(ctx, p)
	}
	j.save()
	return status == overlay.StatusOK && len(unlinked) == 0
}

// announcement returns this node's signed announcement, renewed when its
// IPv4 address changes. j.mu is held.
func (j *joined) announcement(now time.Time) (*overlay.Announcement, bool) {
	if j.m.Def == nil {
		return nil, false
	}
	ip := j.m.IPv4(now).Addr()
	if j.ann != nil && ip == j.annIPv4 && now.Sub(j.ann.Time) < republishEvery {
		return j.ann, false
	}
	a, err := overlay.NewAnnouncement(j.mgr.key, j.m.ID, ip, now)
	if err != nil {
		return j.ann, false
	}
	j.ann, j.annIPv4 = a, ip
	return a, true
}

// discover finds members as providers of the network's key and fetches
// their records.
func (j *joined) discover(ctx context.Context) {
	dctx, cancel := context.WithTimeout(ctx, dhtOpTimeout)
	defer cancel()
	id := j.m.ID
	var wg sync.WaitGroup
	for ai := range j.mgr.node.DHT.FindProvidersAsync(dctx, overlay.MembersCID(id), 64) {
		if ai.ID == j.mgr.node.ID() {
			continue
		}
		j.mgr.node.Host.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
		j.mu.Lock()
		mem, known := j.m.Member(ai.ID)
		j.mu.Unlock()
		if known && mem.Announcement != nil && (mem.Certificate != nil || !j.isPrivate()) {
			continue
		}
		wg.Add(1)
		go func(p peer.ID) {
			defer wg.Done()
			j.fetch(dctx, overlay.AnnouncementKey(id, p))
			if j.isPrivate() {
				j.fetch(dctx, overlay.CertificateKey(id, p))
			}
		}(ai.ID)
	}
	wg.Wait()
}

func (j *joined) isPrivate() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.m.Def != nil && j.m.Def.Private
}

// startEngine creates the device and the switch. j.mu is held.
func (j *joined) startEngine() error {
	now := time.Now()
	cfg := j.m.SwitchConfig(now)
	cfg.Key = j.mgr.key // signs the broadcasts this node originates
	// A restarted node must not reuse broadcast IDs that members still
	// remember as seen: start its sequence at a random point.
	var seq [4]byte
	rand.Read(seq[:])
	cfg.FirstSequence = binary.BigEndian.Uint32(seq[:])
	sw, err := overlay.NewSwitch(cfg)
	if err != nil {
		return err
	}
	dev, err := j.mgr.newDevice(j.m.Interface, j.m.Def.MTU, j.m)
	if err != nil {
		return fmt.Errorf("creating interface %s: %w", j.m.Interface, err)
	}
	if a, ok := dev.(tap.Addresser); ok {
		if err := a.AddAddr(netip.PrefixFrom(j.m.IPv6(), 64)); err != nil {
			j.mgr.logf("networks: %s: IPv6 address: %v", j.m.ID.Short(), err)
		}
		if err := a.SetUp(true); err != nil {
			dev.Close()
			return fmt.Errorf("bringing %s up: %w", j.m.Interface, err)
		}
	}
	j.dev = dev
	j.eng = overlay.NewEngine(sw, dev, overlay.EngineConfig{
		Logf:    j.mgr.logf,
		VnetHdr: vnetHdr(dev),
		// Drop-tail at a 512 KiB link queue instead of holding the device
		// reader (MaxWait): under a bulk transfer the kernel then keeps
		// little queued in the TAP ahead of other traffic. Measured
		// (make bench-dataplane): ping under an iperf3 stream 2.5 ms
		// instead of 5.7 ms, same throughput.
		QueueBytes: 512 << 10,
		MaxWait:    -1,
		NeedLink: func(p peer.ID) {
			go j.dial(j.mgr.ctx, p)
		},
		OnRecord: func(from peer.ID, b []byte) {
			go j.onRecord(from, b)
		},
	})
	j.mgr.logf("networks: %s: interface %s up, MAC %s, IPv6 %s, offload %v", j.m.ID.Short(), dev.Name(), j.m.MAC(), j.m.IPv6(), vnetHdr(dev))
	return nil
}

// syncSwitch applies the membership to the switch and the device: members
// added and removed (their links closed), the own IPv4 address updated.
func (j *joined) syncSwitch() {
	now := time.Now()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.eng == nil {
		return
	}
	var removed []peer.ID
	j.eng.Update(func(sw *overlay.Switch) { removed = j.m.Sync(sw, now) })
	for _, p := range removed {
		j.eng.RemoveLink(p)
		j.mgr.logf("networks: %s: %s is no longer authorized: link closed", j.m.ID.Short(), p)
	}
	ip := j.m.IPv4(now)
	if ip != j.devIPv4 {
		if a, ok := j.dev.(tap.Addresser); ok {
			if j.devIPv4.IsValid() {
				a.RemoveAddr(j.devIPv4)
			}
			if ip.IsValid() && j.m.Status(now) == overlay.StatusOK {
				if err := a.AddAddr(ip); err != nil {
					j.mgr.logf("networks: %s: IPv4 %s: %v", j.m.ID.Short(), ip, err)
				}
			} else {
				ip = netip.Prefix{}
			}
		}
		j.devIPv4 = ip
		j.dirty = true
	}
}

func (j *joined) linkCount() int {
	j.mu.Lock()
	eng := j.eng
	j.mu.Unlock()
	if eng == nil {
		return 0
	}
	links, _ := eng.Links()
	return len(links)
}

// wantLinks lists the authorized members without a link.
func (j *joined) wantLinks() []peer.ID {
	now := time.Now()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.eng == nil || j.m.Status(now) != overlay.StatusOK {
		return nil
	}
	links, _ := j.eng.Links()
	have := map[peer.ID]bool{}
	for _, l := range links {
		have[l.Peer] = true
	}
	var out []peer.ID
	for _, mi := range j.m.Members(now) {
		if mi.Status == overlay.StatusOK && !have[mi.Address] {
			out = append(out, mi.Address)
		}
	}
	return out
}

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
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := j.mgr.node.Connect(dctx, p); err != nil {
		return
	}
	s, err := j.linkStream(dctx, p)
	if err != nil {
		return
	}
	b, err := overlay.AppendHello(nil, hello)
	if err == nil {
		s.SetWriteDeadline(time.Now().Add(helloTimeout))
		_, err = s.Write(b)
		s.SetWriteDeadline(time.Time{})
	}
	if err != nil {
		s.Reset()
		return
	}
	if err := eng.AddLink(p, s, true); err != nil {
		s.Reset()
		return
	}
	j.mgr.logf("networks: %s: link to %s over %s", j.m.ID.Short(), p, s.Conn().RemoteMultiaddr())
	if c := s.Conn(); isQUIC(c.RemoteMultiaddr()) && !c.Stat().Limited {
		go j.mgr.upgradeTCP(p, c)
	}
}

// tcpUpgradeEvery is how long upgradeTCP leaves a peer alone after a
// failed attempt.
const tcpUpgradeEvery = 5 * time.Minute

// upgradeTCP moves the connection to p from QUIC to TCP when p listens on
// TCP at the IP address the QUIC connection reached (a public node), so
// that the member link runs over the faster transport (see linkStream).
// libp2p's dialer never opens a second direct connection to a peer, and
// ranks QUIC first, so: a probe dial over TCP outside the swarm proves
// that TCP gets through; then the QUIC connections are closed and the
// peer is dialled with its QUIC addresses hidden. The link drops with the
// QUIC connection and is reopened over TCP at once (Engine.NeedLink); if
// anything fails the node simply stays on QUIC. Connections that carry
// relaying (carriesRelay) are left alone.
func (nm *netManager) upgradeTCP(p peer.ID, qc network.Conn) {
	if t, ok := nm.tcpTried.Load(p); ok && time.Since(t.(time.Time)) < tcpUpgradeEvery {
		return // failed lately
	}
	h := nm.node.Host
	ip, err := manet.ToIP(qc.RemoteMultiaddr())
	if err != nil || carriesRelay(h, p) {
		return
	}
	var tcps, quics []ma.Multiaddr
	for _, a := range h.Peerstore().Addrs(p) {
		if isQUIC(a) {
			quics = append(quics, a)
		} else if aip, err := manet.ToIP(a); err == nil && aip.Equal(ip) && isPlainTCP(a) {
			tcps = append(tcps, a)
		}
	}
	sw, ok := h.Network().(interface {
		TransportForDialing(ma.Multiaddr) transport.Transport
	})
	if len(tcps) == 0 || !ok {
		return
	}
	tpt := sw.TransportForDialing(tcps[0])
	if tpt == nil {
		return
	}
	ctx, cancel := context.WithTimeout(nm.ctx, 3*time.Second)
	defer cancel()
	probe, err := tpt.Dial(ctx, tcps[0], p)
	if err != nil {
		nm.tcpTried.Store(p, time.Now())
		return
	}
	probe.Close()
	if tcpConn(h.Network().ConnsToPeer(p)) != nil {
		return // p dialled us over TCP meanwhile
	}
	ps := h.Peerstore()
	ps.SetAddrs(p, quics, 0)
	for _, c := range h.Network().ConnsToPeer(p) {
		if isQUIC(c.RemoteMultiaddr()) && !c.Stat().Limited {
			c.Close()
		}
	}
	_, err = h.Network().DialPeer(network.WithForceDirectDial(ctx, "kadlan-link-tcp"), p)
	ps.AddAddrs(p, quics, peerstore.RecentlyConnectedAddrTTL)
	if err != nil {
		nm.tcpTried.Store(p, time.Now())
		nm.logf("networks: moving %s from QUIC to TCP: %v", p, err)
		return
	}
	nm.logf("networks: %s moved from QUIC to TCP for member links", p)
}

// carriesRelay reports whether closing the connections to p would cut
// relaying: p relays for this node (a reservation lives as long as its
// connection), this node relays for p, or a circuit runs over them.
func carriesRelay(h host.Host, p peer.ID) bool {
	viaP := "/p2p/" + p.String() + "/p2p-circuit"
	for _, a := range h.Addrs() {
		if strings.Contains(a.String(), viaP) {
			return true
		}
	}
	viaSelf := "/p2p/" + h.ID().String() + "/p2p-circuit"
	for _, a := range h.Peerstore().Addrs(p) {
		if strings.Contains(a.String(), viaSelf) {
			return true
		}
	}
	for _, c := range h.Network().ConnsToPeer(p) {
		for _, st := range c.GetStreams() {
			if strings.HasPrefix(string(st.Protocol()), "/libp2p/circuit/") {
				return true
			}
		}
	}
	return false
}

func isQUIC(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_QUIC_V1)
	return err == nil && !isCircuit(a)
}

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// isPlainTCP: TCP, not WebSocket, not relayed.
func isPlainTCP(a ma.Multiaddr) bool {
	if _, err := a.ValueForProtocol(ma.P_TCP); err != nil {
		return false
	}
	_, err := a.ValueForProtocol(ma.P_WS)
	return err != nil && !isCircuit(a)
}

// linkStream opens the member link stream to p. A direct TCP connection
// (Noise + yamux) is preferred: it carried about twice what QUIC did TAP to
// TAP (make bench-dataplane, README "Performance"), since the kernel
// segments and checksums TCP and quic-go does all of it per 1.2 KB packet
// in user space. Otherwise libp2p picks (QUIC, or a relayed connection).
func (j *joined) linkStream(ctx context.Context, p peer.ID) (network.Stream, error) {
	h := j.mgr.node.Host
	if c := tcpConn(h.Network().ConnsToPeer(p)); c != nil {
		s, err := c.NewStream(ctx)
		if err == nil {
			if err = msmux.SelectProtoOrFail(protocol.ID(overlay.ProtocolID), s); err == nil {
				if err = s.SetProtocol(protocol.ID(overlay.ProtocolID)); err == nil {
					return s, nil
				}
			}
			s.Reset()
		}
	}
	return h.NewStream(network.WithAllowLimitedConn(ctx, "kadlan-link"), p, protocol.ID(overlay.ProtocolID))
}

// tcpConn returns a direct plain-TCP connection among cs, or nil.
func tcpConn(cs []network.Conn) network.Conn {
	for _, c := range cs {
		if !c.IsClosed() && !c.Stat().Limited && isPlainTCP(c.RemoteMultiaddr()) {
			return c
		}
	}
	return nil
}

// handleStream accepts a member link: it reads the Hello, checks that the
// sender is authorized on that network, and hands the stream to the engine.
// Anything else is reset: a peer cannot make this node accept frames for a
// network it has not joined or the peer is not authorized on.
func (nm *netManager) handleStream(s network.Stream) {
	p := s.Conn().RemotePeer()
	s.SetReadDeadline(time.Now().Add(helloTimeout))
	h, err := overlay.ReadHello(s)
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
	nm.logf("networks: %s: link from %s over %s", h.Network.Short(), p, s.Conn().RemoteMultiaddr())
}

func (j *joined) save() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.dirty {
		return
	}
	if err := j.m.Save(j.mgr.stateDir); err != nil {
		j.mgr.logf("networks: %v", err)
		return
	}
	j.dirty = false
}

// info describes the network for `kadlan networks`.
func (j *joined) info() api.Network {
	now := time.Now()
	j.mu.Lock()
	ni := j.m.Info(now)
	eng := j.eng
	devIPv4 := j.devIPv4
	devErr := j.devErr
	j.mu.Unlock()
	out := api.Network{Error: devErr, Network: ni.Network.String(), Name: ni.Name, Status: string(ni.Status), Private: ni.Private,
		IsOwner: ni.IsOwner, Interface: ni.Interface, MAC: ni.MAC, IPv4: []string{}, IPv6: ni.IPv6, MTU: ni.MTU}
	if devIPv4.IsValid() {
		out.IPv4 = []string{devIPv4.String()}
	}
	if ni.Owner != "" {
		out.Owner = ni.Owner.String()
	}
	if !ni.Expires.IsZero() {
		out.Expires = ni.Expires.UTC().Format(time.RFC3339)
	}
	out.Broadcast, _ = json.Marshal(ni.Broadcast.Social())
	linked := map[peer.ID]bool{}
	if eng != nil {
		links, _ := eng.Links()
		for _, l := range links {
			linked[l.Peer] = true
		}
		out.Links = len(links)
		out.Counters, _ = json.Marshal(eng.Counters())
	}
	for _, mi := range ni.Members {
		m := api.Member{Address: mi.Address.String(), Status: string(mi.Status), MAC: mi.MAC, IPv6: mi.IPv6.String(), Link: linked[mi.Address]}
		if mi.IPv4.IsValid() {
			m.IPv4 = mi.IPv4.String()
		}
		if !mi.Expires.IsZero() {
			m.Expires = mi.Expires.UTC().Format(time.RFC3339)
		}
		if !mi.LastSeen.IsZero() {
			m.LastSeen = mi.LastSeen.UTC().Format(time.RFC3339)
		}
		m.Path, m.Via = dht.PathOf(j.mgr.node.Host.Network().ConnsToPeer(mi.Address))
		out.Members = append(out.Members, m)
	}
	if out.Members == nil {
		out.Members = []api.Member{}
	}
	if ni.Status == overlay.StatusOK && out.Links == 0 && len(out.Members) > 0 {
		out.Status = statusConnecting
	}
	if devErr != "" {
		out.Status = statusDeviceError
	}
	return out
}

func (nm *netManager) list() []api.Network {
	nm.mu.Lock()
	var js []*joined
	for _, j := range nm.nets {
		js = append(js, j)
	}
	nm.mu.Unlock()
	out := []api.Network{}
	for _, j := range js {
		out = append(out, j.info())
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Network < out[b].Network })
	return out
}
