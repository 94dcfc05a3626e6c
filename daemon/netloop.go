package daemon

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"time"

	"github.com/kadlan/kadlan/overlay"
	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/kadlan/kadlan/tap"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	lprouting "github.com/libp2p/go-libp2p/core/routing"
)

// run is the network's loop: records, device, discovery, links.
func (j *joined) run() {
	ctx := j.ctx
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			j.stopDNS()
			j.save()
			return
		case <-t.C:
		case <-j.nameMiss:
			// A name in the zone nobody here holds: look for members now
			// (the name's owner may be one this node has not found yet).
			if time.Since(j.lastNameMiss) < nameMissEvery {
				continue
			}
			j.lastNameMiss, j.lastDiscover = time.Now(), time.Time{}
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
		if _, err := j.fetchPoll(ctx, netrec.DefinitionKey(id)); err == nil || hasDef {
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
		j.fetch(ctx, netrec.CertificateKey(id, j.mgr.node.ID()))
	}
	// A linked member hears of new revocations along its links (the owner
	// and every member push them on), so it polls the DHT only as a
	// fallback; likewise it looks for new members less often. This keeps
	// an idle network quiet (make bench-dataplane prints the idle bytes).
	revEvery, discEvery := revocationEvery, discoverEvery
	if j.linkCount() > 0 {
		revEvery, discEvery = linkedRevocationEvery, linkedDiscoverEvery
	}
	pollRev := now.Sub(j.lastRev) > revEvery
	if pollRev {
		j.lastRev = now
		_, err := j.fetchPoll(ctx, netrec.RevocationKey(id))
		if isOwner && errors.Is(err, lprouting.ErrNotFound) {
			j.ownerRevocation()
		}
	}
	j.inviteStep(ctx, now, pollRev)
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
	def, cert, rev := j.m.Def, j.m.Cert, j.m.Revocation
	status := j.m.Status(now)
	j.mu.Unlock()

	// Announce ourselves (and re-publish the records members carry, so no
	// controller has to stay online) when something changed, and every
	// republishEvery.
	j.mu.Lock()
	retry := j.pubFailed && now.Sub(j.lastPub) > netTickSlow
	j.mu.Unlock()
	if annChanged {
		j.pubPending = true // published once no publication is in flight
	}
	if ann != nil && (j.pubPending || retry || now.Sub(j.lastPub) > republishEvery) && j.publishing.CompareAndSwap(false, true) {
		j.lastPub, j.pubPending = now, false
		j.spawn(func(ctx context.Context) {
			defer j.publishing.Store(false)
			pctx, cancel := context.WithTimeout(ctx, dhtOpTimeout)
			defer cancel()
			rerr := j.publishRedemptions(pctx)
			err := j.publish(pctx, netrec.AnnouncementKey(id, j.mgr.node.ID()), ann)
			// Filed under its addresses and its MAC too: links on
			// demand find a member by the IP a host asks for, or the
			// MAC it sends a frame to (resolve).
			// A failure here is retried soon like the announcement's.
			if ann.IPv4.IsValid() {
				err = errors.Join(err, j.publish(pctx, netrec.AddressKey(id, ann.IPv4), ann))
			}
			err = errors.Join(err, j.publish(pctx, netrec.AddressKey(id, netrec.MemberIPv6(id, j.mgr.node.ID())), ann))
			err = errors.Join(err, j.publish(pctx, netrec.MACKey(id, netrec.MemberMAC(id, j.mgr.node.ID())), ann))
			if err == nil {
				err = rerr
			}
			if def != nil {
				j.publish(pctx, netrec.DefinitionKey(id), def)
			}
			if cert != nil {
				j.publish(pctx, netrec.CertificateKey(id, j.mgr.node.ID()), cert)
			}
			// The owner's revocation list, by everyone who holds it, so
			// that it outlives the owner's absence and polls find it.
			if rev != nil {
				j.publish(pctx, netrec.RevocationKey(id), rev)
			}
			j.mgr.walks.publications.Add(1)
			if perr := j.mgr.node.Provide(pctx, netrec.MembersCID(id)); perr != nil {
				j.mgr.logf("networks: %s: announcing membership (will retry): %v", id.Short(), perr)
				err = perr
			}
			// Until it worked (no peer yet, say), try again soon rather
			// than at the next republish.
			j.mu.Lock()
			j.pubFailed = err != nil
			j.mu.Unlock()
		})
	}
	// Look for members every discoverEvery, and every 2 s while authorized
	// but without any link (just joined, or every link lost).
	// Linked, the period grows while rounds find nobody new (see
	// discoverState), and a node that holds its bound of members stops.
	lonely := status == vswitch.StatusOK && j.linkCount() == 0
	if !lonely && j.linkCount() > 0 {
		discEvery = j.disc.period()
		if j.holdsSample() {
			discEvery = republishEvery
		}
	}
	if def != nil && now.Sub(j.lastDiscover) > discEvery || lonely && now.Sub(j.lastDiscover) > 2*time.Second {
		j.lastDiscover = now
		j.disc.roundDone(j.discover(ctx), lonely)
	}
	j.syncSwitch()
	j.dnsStep(now)
	unlinked := j.wantLinks()
	dial := unlinked
	settled := len(unlinked) == 0
	if j.mgr.linkIdle > 0 {
		// Links on demand: a few seed links (so broadcasts reach someone
		// on a quiet network); the engine dials the rest when frames need
		// them.
		dial, settled = seedLinks(unlinked, j.linkCount(), overlay.DefaultMinLinks)
	}
	if eng := j.engine(); eng != nil {
		for _, p := range dial {
			eng.Connect(p) // the engine dials, at most once per member every 2 s
		}
	}
	j.save()
	return status == vswitch.StatusOK && settled
}

// ownerRevocation gives a network the owner created before revocation
// lists were made at creation an empty one, once a poll found none in the
// DHT (a list of a later sequence number would have been found, and one
// made here would lose to it), and publishes it with the next
// announcement.
func (j *joined) ownerRevocation() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.m.Revocation != nil || j.m.Def == nil || !j.m.IsOwner() {
		return
	}
	rev, err := netrec.NextRevocation(j.mgr.key, j.m.Def, nil, nil, nil)
	if err == nil {
		_, err = j.m.SetRevocation(rev)
	}
	if err != nil {
		j.mgr.logf("networks: %s: an empty revocation list: %v", j.m.ID.Short(), err)
		return
	}
	j.dirty, j.pubPending = true, true
}

// seedLinks picks, at random, the members to dial so that a node has want
// links, from those without one; settled says nothing is missing.
func seedLinks(unlinked []peer.ID, links, want int) (dial []peer.ID, settled bool) {
	need := want - links
	if need <= 0 || len(unlinked) == 0 {
		return nil, true
	}
	dial = slices.Clone(unlinked)
	rand.Shuffle(len(dial), func(i, j int) { dial[i], dial[j] = dial[j], dial[i] })
	return dial[:min(need, len(dial))], false
}

// announcement returns this node's signed announcement, renewed when its
// IPv4 address changes. j.mu is held.
func (j *joined) announcement(now time.Time) (*netrec.Announcement, bool) {
	if j.m.Def == nil {
		return nil, false
	}
	ip := j.m.IPv4(now).Addr()
	if j.ann != nil && ip == j.annIPv4 && now.Sub(j.ann.Time) < republishEvery {
		return j.ann, false
	}
	a, err := netrec.NewNamedAnnouncement(j.mgr.key, j.m.ID, ip, j.mgr.name, now)
	if err != nil {
		return j.ann, false
	}
	j.ann, j.annIPv4 = a, ip
	return a, true
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
	if idle := j.mgr.linkIdle; idle > 0 {
		// A social neighbour keeps its link: one notion of "recent".
		cfg.Social.NeighbourAgeSec = max(1, int(idle/time.Second))
	}
	// A restarted node must not reuse broadcast IDs that members still
	// remember as seen: start its sequence at a random point.
	var seq [4]byte
	crand.Read(seq[:])
	cfg.FirstSequence = binary.BigEndian.Uint32(seq[:])
	sw, err := vswitch.NewSwitch(cfg)
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
	links := j.mgr.node.Links(protocol.ID(vswitch.ProtocolID))
	j.eng = overlay.New(dev, links, sw, overlay.EngineConfig{
		Logf:    j.mgr.logf,
		VnetHdr: vnetHdr(dev),
		// Drop-tail at a 512 KiB link queue instead of holding the device
		// reader (MaxWait): under a bulk transfer the kernel then keeps
		// little queued in the TAP ahead of other traffic. Measured
		// (make bench-dataplane): ping under an iperf3 stream 2.5 ms
		// instead of 5.7 ms, same throughput.
		QueueBytes:   512 << 10,
		MaxWait:      -1,
		Hello:        j.hello,
		OnLink:       j.onLink,
		OnRecord:     j.onRecord,
		LinkIdle:     j.mgr.linkIdle,
		OnUnresolved: j.resolve,
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
	links, _ := j.eng.Links()
	linked := map[peer.ID]bool{}
	for _, l := range links {
		linked[l.Peer] = true
	}
	j.eng.Update(func(sw *vswitch.Switch) {
		fresh := map[peer.ID]bool{}
		for _, p := range sw.Neighbours(now) {
			fresh[p] = true
		}
		for p, t := range j.linking {
			if now.Sub(t) > linkingKeep {
				delete(j.linking, p)
			}
		}
		if len(j.m.TrimKnown(j.mgr.maxKnown, func(p peer.ID) bool { return linked[p] || fresh[p] || !j.linking[p].IsZero() })) > 0 {
			j.dirty = true
		}
		removed = j.m.Sync(sw, now)
	})
	j.refreshNames(now)
	for _, p := range removed {
		j.eng.RemoveLink(p)
		j.unprotect(p)
		j.mgr.logf("networks: %s: %s is no longer authorized: link closed", j.m.ID.Short(), p)
	}
	// The device holds the member's IPv4 only while the node is an
	// authorized member: a status that drops from ok (a token found used
	// up, a revocation) takes the address off even when the claim stays.
	ip := j.m.IPv4(now)
	if j.m.Status(now) != vswitch.StatusOK {
		ip = netip.Prefix{}
	}
	if ip != j.devIPv4 {
		if a, ok := j.dev.(tap.Addresser); ok {
			if j.devIPv4.IsValid() {
				a.RemoveAddr(j.devIPv4)
			}
			if ip.IsValid() {
				if err := a.AddAddr(ip); err != nil {
					j.mgr.logf("networks: %s: IPv4 %s: %v", j.m.ID.Short(), ip, err)
				}
			}
		}
		j.devIPv4 = ip
		j.dirty = true
	}
}

func (j *joined) linkCount() int {
	eng := j.engine()
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
	if j.eng == nil || j.m.Status(now) != vswitch.StatusOK {
		return nil
	}
	links, _ := j.eng.Links()
	have := map[peer.ID]bool{}
	for _, l := range links {
		have[l.Peer] = true
	}
	var out []peer.ID
	for _, mi := range j.m.Members(now) {
		if mi.Status.Admitted() && !have[mi.Address] {
			out = append(out, mi.Address)
		}
	}
	return out
}

func (j *joined) save() {
	j.mu.Lock()
	defer j.mu.Unlock()
	if !j.dirty {
		return
	}
	if err := overlay.SaveMembership(j.mgr.stateDir, j.m); err != nil {
		j.mgr.logf("networks: %v", err)
		return
	}
	j.dirty = false
}
