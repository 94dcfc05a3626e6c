package dht

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	kaddht "github.com/libp2p/go-libp2p-kad-dht"
	kb "github.com/libp2p/go-libp2p-kbucket"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/core/routing"
	manet "github.com/multiformats/go-multiaddr/net"
)

// A node runs two Kademlia DHTs on one host, as IPFS does (kad-dht's dual
// package), so that kadlan works on networks with no public address at all:
//
//   - the WAN DHT (/kadlan/kad/1.0.0) is the Internet's: a node serves it
//     only when it is publicly reachable;
//   - the LAN DHT (/kadlan/lan/kad/1.0.0) holds peers this node reaches on
//     a private address (lanRoutingTableFilter), and every node serves
//     it: on a home LAN,
//     a campus or a community mesh, the nodes there are each other's DHT.
//
// Records and provider announcements go to both, lookups ask both and take
// the best answer. Unlike kad-dht's dual.DHT, writes go to the LAN even when
// the WAN DHT has peers: members on one LAN then find each other (and
// their LAN addresses) without the Internet, and a LAN cut off from the
// Internet keeps working with what it holds.

// LANExtension is inserted into the DHT protocol for the LAN DHT.
const LANExtension protocol.ID = "/lan"

func (n *Node) dhts() []*kaddht.IpfsDHT {
	if n.LAN == nil {
		return []*kaddht.IpfsDHT{n.DHT}
	}
	return []*kaddht.IpfsDHT{n.DHT, n.LAN}
}

// lanOptions are the LAN DHT's options beyond the WAN's common ones.
func lanOptions(mode kaddht.ModeOpt) []kaddht.Option {
	lanMode := kaddht.ModeServer
	if mode == kaddht.ModeClient {
		lanMode = kaddht.ModeClient // the user said client: on the LAN too
	}
	return []kaddht.Option{
		kaddht.ProtocolExtension(LANExtension),
		kaddht.Mode(lanMode),
		kaddht.QueryFilter(kaddht.PrivateQueryFilter),
		kaddht.RoutingTableFilter(lanRoutingTableFilter),
	}
}

// lanRoutingTableFilter admits a peer to the LAN DHT's routing table when
// a direct connection to it runs on a private address (RFC 1918, CGNAT,
// ULA, loopback). kad-dht's PrivateRoutingTableFilter also admits peers on
// a directly attached public subnet; then public nodes that share a subnet
// with the public side of NAT routers take the NATed nodes behind them
// into their LAN tables, and lookups for those nodes failed in the lab
// (bench-connect: 3 to 7 of 10 EIM pairs "not found").
func lanRoutingTableFilter(d any, p peer.ID) bool {
	h := d.(interface{ Host() host.Host }).Host()
	for _, c := range h.Network().ConnsToPeer(p) {
		a := c.RemoteMultiaddr()
		if !isCircuit(a) && (manet.IsPrivateAddr(a) || manet.IsIPLoopback(a)) {
			return true
		}
	}
	return false
}

// RoutingTablePeers lists the peers in both routing tables, WAN first,
// without repeats.
func (n *Node) RoutingTablePeers() []peer.ID {
	seen := map[peer.ID]bool{}
	var out []peer.ID
	for _, d := range n.dhts() {
		for _, p := range d.RoutingTable().ListPeers() {
			if !seen[p] {
				seen[p] = true
				out = append(out, p)
			}
		}
	}
	return out
}

// inRoutingTable reports whether p is in either routing table.
func (n *Node) inRoutingTable(p peer.ID) bool {
	for _, d := range n.dhts() {
		if d.RoutingTable().Find(p) != "" {
			return true
		}
	}
	return false
}

// LANRoutingTable is the size of the LAN DHT's routing table.
func (n *Node) LANRoutingTable() int {
	if n.LAN == nil {
		return 0
	}
	return n.LAN.RoutingTable().Size()
}

// Bootstrap refreshes both routing tables.
func (n *Node) Bootstrap(ctx context.Context) error {
	return n.both(func(d *kaddht.IpfsDHT) error { return d.Bootstrap(ctx) })
}

// PutValue stores a record in both DHTs; it fails only when both fail.
func (n *Node) PutValue(ctx context.Context, key string, val []byte) error {
	return n.both(func(d *kaddht.IpfsDHT) error { return d.PutValue(ctx, key, val) })
}

// Provide announces this node as a provider of c in both DHTs; it fails
// only when both fail.
func (n *Node) Provide(ctx context.Context, c cid.Cid) error {
	return n.both(func(d *kaddht.IpfsDHT) error { return d.Provide(ctx, c, true) })
}

// both runs f on each DHT at once and succeeds when one does. A DHT with an
// empty routing table fails at once with kbucket's lookup failure, which
// the other's error outranks.
func (n *Node) both(f func(*kaddht.IpfsDHT) error) error {
	ds := n.dhts()
	errs := make([]error, len(ds))
	var wg sync.WaitGroup
	for i, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(d)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err == nil {
			return nil
		}
	}
	return dhtErr(errs)
}

// dhtErr combines the errors of DHTs that all failed: kbucket's lookup
// failure (an empty routing table) only when no DHT has a real error.
func dhtErr(errs []error) error {
	var real []error
	for _, err := range errs {
		if err != nil && !errors.Is(err, kb.ErrLookupFailure) {
			real = append(real, err)
		}
	}
	if len(real) == 0 {
		return errs[0]
	}
	return errors.Join(real...)
}

// GetValue asks both DHTs at once and returns the best record either found
// (the record validator's choice), so a newer record on the LAN wins over
// an older one on the WAN and the other way round.
func (n *Node) GetValue(ctx context.Context, key string) ([]byte, error) {
	return n.getValue(ctx, key)
}

// GetFirstValue is GetValue that stops each DHT's walk at the first valid
// record (kad-dht's Quorum(1)) instead of asking all its closest peers:
// for lookups on a frame's path (links on demand), where a second's wait
// costs more than an older record.
func (n *Node) GetFirstValue(ctx context.Context, key string) ([]byte, error) {
	return n.getValue(ctx, key, kaddht.Quorum(1))
}

// GetValueQuorum is GetValue that ends the walk once quorum peers
// returned a valid record, and returns the best of those, and that asks
// the LAN DHT only when the WAN DHT fails (no record, no peers): for
// polls of a record that every member republishes (a network's revocation
// list and definition), where a full walk to the key's closest peers in
// both DHTs was most of an idle node's bytes (issue 13) and a few
// holders' best is current.
func (n *Node) GetValueQuorum(ctx context.Context, key string, quorum int) ([]byte, error) {
	v, err := n.DHT.GetValue(ctx, key, kaddht.Quorum(quorum))
	if err == nil || n.LAN == nil || ctx.Err() != nil {
		return v, err
	}
	lv, lerr := n.LAN.GetValue(ctx, key, kaddht.Quorum(quorum))
	if lerr != nil {
		return nil, dhtErr([]error{err, lerr})
	}
	return lv, nil
}

func (n *Node) getValue(ctx context.Context, key string, opts ...routing.Option) ([]byte, error) {
	ds := n.dhts()
	vals := make([][]byte, len(ds))
	errs := make([]error, len(ds))
	var wg sync.WaitGroup
	for i, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vals[i], errs[i] = d.GetValue(ctx, key, opts...)
		}()
	}
	wg.Wait()
	var found [][]byte
	for i := range ds {
		if errs[i] == nil && vals[i] != nil {
			found = append(found, vals[i])
		}
	}
	switch len(found) {
	case 0:
		return nil, dhtErr(errs)
	case 1:
		return found[0], nil
	}
	best, err := n.DHT.Validator.Select(key, found)
	if err != nil {
		return found[0], nil
	}
	return found[best], nil
}

// FindProviders streams up to count distinct providers of c found in
// either DHT. The channel closes when both lookups have ended or ctx ends.
func (n *Node) FindProviders(ctx context.Context, c cid.Cid, count int) <-chan peer.AddrInfo {
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan peer.AddrInfo)
	ds := n.dhts()
	ins := make([]<-chan peer.AddrInfo, len(ds))
	for i, d := range ds {
		ins[i] = d.FindProvidersAsync(ctx, c, count)
	}
	stop := context.AfterFunc(n.ctx, cancel) // Close ends the walk
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer stop()
		defer cancel()
		defer close(out)
		merged := make(chan peer.AddrInfo)
		var wg sync.WaitGroup
		for _, in := range ins {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ai := range in {
					select {
					case merged <- ai:
					case <-ctx.Done():
						for range in { // kad-dht closes it once ctx ends
						}
						return
					}
				}
			}()
		}
		go func() { wg.Wait(); close(merged) }()
		seen := map[peer.ID]bool{}
		for ai := range merged {
			if seen[ai.ID] || len(seen) >= count {
				continue
			}
			seen[ai.ID] = true
			select {
			case out <- ai:
			case <-ctx.Done():
			}
			if len(seen) >= count {
				cancel()
			}
		}
	}()
	return out
}

// findPeer asks both DHTs for p's addresses at once and merges them.
func (n *Node) findPeer(ctx context.Context, p peer.ID) (peer.AddrInfo, error) {
	n.awaitRoutable(ctx, joinWait)
	ds := n.dhts()
	ais := make([]peer.AddrInfo, len(ds))
	errs := make([]error, len(ds))
	var wg sync.WaitGroup
	for i, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ais[i], errs[i] = d.FindPeer(ctx, p)
		}()
	}
	wg.Wait()
	out := peer.AddrInfo{ID: p}
	seen := map[string]bool{}
	var firstErr error
	ok := false
	for i := range ds {
		if errs[i] != nil {
			if firstErr == nil || errors.Is(firstErr, kb.ErrLookupFailure) {
				firstErr = errs[i]
			}
			continue
		}
		ok = true
		for _, a := range ais[i].Addrs {
			if k := string(a.Bytes()); !seen[k] {
				seen[k] = true
				out.Addrs = append(out.Addrs, a)
			}
		}
	}
	if !ok {
		return out, firstErr
	}
	return out, nil
}

// closestPeers walks every DHT with peers towards key at once (the WAN's
// if neither has any, to get its error). Query events of both walks reach
// ctx's subscriber. The channel receives one result per walk started (it
// is buffered for all of them: a walk never blocks on an absent reader);
// the count says how many. The caller must call release once it has read
// what it needs, not before: the walks' query events (a NATed target
// appears only in them, never among the closest DHT servers) are
// delivered through ctx, and ending it when a walk returns dropped those
// still in flight (bench-connect: 3 of 10 EIM pairs "not found").
func (n *Node) closestPeers(ctx context.Context, key string) (done <-chan closestResult, walks int, release func()) {
	n.awaitRoutable(ctx, joinWait)
	var ds []*kaddht.IpfsDHT
	for _, d := range n.dhts() {
		if d.RoutingTable().Size() > 0 {
			ds = append(ds, d)
		}
	}
	if len(ds) == 0 {
		ds = []*kaddht.IpfsDHT{n.DHT}
	}
	results := make(chan closestResult, len(ds))
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(n.ctx, cancel) // Close ends the walks
	for _, d := range ds {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			ps, err := d.GetClosestPeers(ctx, key)
			results <- closestResult{ps, err}
		}()
	}
	return results, len(ds), func() { stop(); cancel() }
}

type closestResult struct {
	peers []peer.ID
	err   error
}

// joinWait bounds how long a lookup waits for a node that is still joining
// (both routing tables empty): a `kadlan ping` right after the daemon
// started failed at once with kad-dht's "failed to find any peer in table"
// while the bootstrap peer's answer was one round trip away.
const joinWait = 3 * time.Second

// awaitRoutable returns once a routing table has a peer, ctx ends, or max
// has passed.
func (n *Node) awaitRoutable(ctx context.Context, max time.Duration) {
	routable := func() bool {
		for _, d := range n.dhts() {
			if d.RoutingTable().Size() > 0 {
				return true
			}
		}
		return false
	}
	if routable() {
		return
	}
	t := time.NewTimer(max)
	defer t.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !routable() {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			return
		case <-tick.C:
		}
	}
}
