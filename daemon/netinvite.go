package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/overlay"
	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Invite defaults and bounds.
const (
	DefaultInviteExpiry = 24 * time.Hour
	MaxInviteExpiry     = 365 * 24 * time.Hour
)

// invite makes an invite token for j: the network, up to four peers a
// newcomer can dial, and, on a private network (owner only), a signed
// capability for uses redemptions until expiry.
func (nm *netManager) invite(j *joined, expiry time.Duration, uses int) (api.Invite, error) {
	if expiry == 0 {
		expiry = DefaultInviteExpiry
	}
	if uses == 0 {
		uses = 1
	}
	if expiry < time.Minute || expiry > MaxInviteExpiry {
		return api.Invite{}, fmt.Errorf("--expires %v: want between 1m and %v", expiry, MaxInviteExpiry)
	}
	if uses < 1 || uses > netrec.MaxUses {
		return api.Invite{}, fmt.Errorf("--uses %d: want 1..%d", uses, netrec.MaxUses)
	}
	now := time.Now()
	j.mu.Lock()
	def, isOwner := j.m.Def, j.m.IsOwner()
	j.mu.Unlock()
	if def == nil {
		return api.Invite{}, errors.New("the network's definition is not known yet; try again once it is (kadlan networks)")
	}
	tok := netrec.Token{Network: def.ID(), Addrs: nm.inviteAddrs()}
	res := api.Invite{Network: def.ID().String(), Private: def.Private}
	if def.Private {
		if !isOwner {
			return api.Invite{}, errors.New("only the network's owner can invite to a private network")
		}
		c, err := netrec.NewCapability(nm.key, def, now, now.Add(expiry), uses)
		if err != nil {
			return api.Invite{}, err
		}
		tok.Capability = c
		res.Expires, res.Uses = c.NotAfter.Format(time.RFC3339), c.Uses
		// Remember it, so that after a restart this node polls its
		// redemptions and certifies the redeemers even before they
		// link to it.
		j.mu.Lock()
		_, err = j.m.AddRedemptions(&netrec.RedemptionSet{Cap: c}, now)
		j.dirty = true
		j.mu.Unlock()
		if err != nil {
			return api.Invite{}, err
		}
	}
	s, err := tok.Encode()
	if err != nil {
		return api.Invite{}, err
	}
	res.Token = s
	for _, a := range tok.Addrs {
		res.Addrs = append(res.Addrs, a.String())
	}
	if res.Addrs == nil {
		res.Addrs = []string{}
	}
	return res, nil
}

// addrRank orders the addresses a newcomer might dial, lowest first: by
// class, public direct (anyone can dial it, from behind any NAT), then
// relayed (works while this node and its relay are up), then private
// (same LAN only), then loopback; within a class IPv4 before IPv6 (which
// many home networks lack), then plain TCP (passes the most firewalls),
// QUIC, then the rest (WebSocket).
func addrRank(a ma.Multiaddr) int {
	class := 2
	switch {
	case func() bool { _, err := a.ValueForProtocol(ma.P_CIRCUIT); return err == nil }():
		class = 1
	case manet.IsPublicAddr(a):
		class = 0
	case manet.IsIPLoopback(a):
		class = 3
	}
	family := 0
	if _, err := a.ValueForProtocol(ma.P_IP6); err == nil {
		family = 1
	}
	transport := 2
	_, tcp := a.ValueForProtocol(ma.P_TCP)
	_, ws := a.ValueForProtocol(ma.P_WS)
	_, quic := a.ValueForProtocol(ma.P_QUIC_V1)
	switch {
	case tcp == nil && ws != nil:
		transport = 0
	case quic == nil:
		transport = 1
	}
	return class*100 + family*10 + transport
}

// inviteAddrs picks up to netrec.MaxTokenAddrs peers for a token, one
// address each: this node, then connected DHT servers (public nodes that
// answer a newcomer's DHT queries), best rank first.
func (nm *netManager) inviteAddrs() []ma.Multiaddr {
	type cand struct {
		a    ma.Multiaddr
		rank int
		self bool
	}
	best := func(id peer.ID, addrs []ma.Multiaddr, self bool) (cand, bool) {
		var c cand
		found := false
		for _, a := range addrs {
			if _, err := a.ValueForProtocol(ma.P_P2P); err == nil {
				a, _ = ma.SplitLast(a) // re-added below
				if a == nil {
					continue
				}
			}
			r := addrRank(a)
			if !found || r < c.rank {
				full := a.Encapsulate(ma.StringCast("/p2p/" + id.String()))
				c, found = cand{a: full, rank: r, self: self}, true
			}
		}
		return c, found
	}
	var cands []cand
	self := nm.node.ID()
	var own []ma.Multiaddr
	for _, s := range nm.node.ShareableAddrs() {
		if a, err := ma.NewMultiaddr(s); err == nil {
			own = append(own, a)
		}
	}
	if c, ok := best(self, own, true); ok {
		cands = append(cands, c)
	}
	h := nm.node.Host
	for _, p := range nm.node.RoutingTablePeers() {
		if p == self || len(h.Network().ConnsToPeer(p)) == 0 {
			continue
		}
		if c, ok := best(p, h.Peerstore().Addrs(p), false); ok {
			cands = append(cands, c)
		}
	}
	// This node first when it is dialable from anywhere; else the public
	// peers first.
	slices.SortStableFunc(cands, func(x, y cand) int {
		if x.rank/100 != y.rank/100 {
			return x.rank - y.rank
		}
		if x.self != y.self {
			if x.self {
				return -1
			}
			return 1
		}
		return x.rank - y.rank
	})
	var out []ma.Multiaddr
	for _, c := range cands {
		if len(out) == netrec.MaxTokenAddrs {
			break
		}
		if len(c.a.Bytes()) <= 300 {
			out = append(out, c.a)
		}
	}
	return out
}

// joinToken joins the network of an invite token: its peers become
// bootstrap candidates (and enter the peer cache), and a capability is
// redeemed with this node's key.
func (d *Daemon) joinToken(s string) (netrec.NetworkID, error) {
	tok, err := netrec.ParseToken(s)
	if err != nil {
		return netrec.NetworkID{}, err
	}
	if tok.Capability != nil {
		if err := tok.Capability.Valid(tok.Network, time.Now()); err != nil {
			return netrec.NetworkID{}, err
		}
	}
	if ais := tok.AddrInfos(); len(ais) > 0 {
		d.Boot.AddPeers(ais)
	}
	return tok.Network, d.nets.joinWith(tok.Network, tok.Capability)
}

// useInvite redeems c for this node on j's membership; j.mu is held.
func (j *joined) useInvite(c *netrec.Capability) error {
	now := time.Now()
	if j.m.Cert != nil && j.m.Cert.Valid(j.m.ID, now, j.m.Revocation) == nil {
		return nil // a member already
	}
	r, err := netrec.Redeem(j.mgr.key, c, now)
	if err != nil {
		return err
	}
	if err := j.m.UseInvite(c, r, now); err != nil {
		return err
	}
	j.dirty = true
	j.ann = nil // a new announcement, published with the redemption
	return nil
}

// joinWith joins network id, redeeming c if it is not nil.
func (nm *netManager) joinWith(id netrec.NetworkID, c *netrec.Capability) error {
	if c == nil {
		return nm.join(id)
	}
	nm.mu.Lock()
	j, ok := nm.nets[id]
	_, broken := nm.broken[id.String()]
	nm.mu.Unlock()
	if ok {
		j.mu.Lock()
		defer j.mu.Unlock()
		return j.useInvite(c)
	}
	if broken {
		return fmt.Errorf("the saved state of %s is damaged (see kadlan networks): leave it first to remove the file", id)
	}
	now := time.Now()
	m := vswitch.NewMembership(id, nm.node.ID(), now)
	r, err := netrec.Redeem(nm.key, c, now)
	if err != nil {
		return err
	}
	if err := m.UseInvite(c, r, now); err != nil {
		return err
	}
	if err := overlay.SaveMembership(nm.stateDir, m); err != nil {
		return err
	}
	nm.start(m)
	return nil
}

// inviteStep is the network loop's part for invites at now: a node that
// joined with one publishes its redemption (merged with what the DHT
// holds) and watches whether it keeps its use; every node polls the
// redemptions it knows of when it polls revocations (pollRedemptions);
// the owner certifies the members admitted by invite.
func (j *joined) inviteStep(ctx context.Context, now time.Time, pollRedemptions bool) {
	id := j.m.ID
	j.mu.Lock()
	var own *netrec.Capability
	if j.m.OwnInvite != nil && j.m.Cert == nil {
		own = j.m.OwnInvite.Cap
	}
	ids := j.m.InviteIDs()
	var invited []peer.ID
	if j.m.IsOwner() && j.m.Def != nil {
		invited = j.m.Invited(now)
	}
	j.mu.Unlock()
	every := 3 * time.Second // as for the certificate: often at first
	if now.Sub(j.m.Joined) > time.Minute {
		every = revocationEvery
	}
	if own != nil && now.Sub(j.lastRedemptions) > every {
		j.lastRedemptions = now
		j.fetch(ctx, netrec.RedemptionsKey(id, own.ID))
	}
	if pollRedemptions {
		for _, c := range ids {
			if own == nil || c != own.ID {
				j.fetch(ctx, netrec.RedemptionsKey(id, c))
			}
		}
	}
	for _, p := range invited {
		if err := j.mgr.authorize(ctx, j, p, netip.Addr{}, "", time.Time{}); err != nil {
			j.logs.Log("certify "+string(p), "networks: %s: certifying %s, admitted by invite: %v", id.Short(), p, err)
			continue
		}
		j.mgr.logf("networks: %s: issued a certificate to %s (joined with an invite)", id.Short(), p)
	}
}

// publishRedemptions merges the DHT's redemptions of this node's own
// invite with its own and publishes the result (run with the
// announcement's publication).
func (j *joined) publishRedemptions(ctx context.Context) error {
	j.mu.Lock()
	var cid netrec.CapabilityID
	ok := j.m.OwnInvite != nil && j.m.Cert == nil
	if ok {
		cid = j.m.OwnInvite.Cap.ID
	}
	j.mu.Unlock()
	if !ok {
		return nil
	}
	key := netrec.RedemptionsKey(j.m.ID, cid)
	j.fetch(ctx, key) // not found is fine: the first redemption
	j.mu.Lock()
	s, ok := j.m.Redemptions(cid)
	mine := false
	if ok {
		_, mine = s.Admits(j.mgr.node.ID())
	}
	j.mu.Unlock()
	if !mine {
		return nil // expired, or every use taken by others
	}
	return j.publish(ctx, key, s)
}
