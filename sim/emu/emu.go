// Package emu is the emulation mode of kadlan's simulator: it runs the real
// go-libp2p-kad-dht on go-libp2p's in-memory mocknet (no sockets, no root)
// and measures peer lookups the way package sim's model does, so that the
// model can be checked against the real code (TestEmulationMatchesModel).
//
// Routing tables are filled as the model assumes a well-maintained node's
// would be: every node offers every other node to its kbucket table in a
// seeded random order (a bucket keeps the first k that fit). Hops are the
// depth of the referral chain: peers from the origin's own table are at
// depth 1, peers named in a depth-d answer at depth d+1, and a lookup's hop
// count is the depth of the answer that first named the target, as in
// sim.Lookup. The measurements come from kad-dht's own query events.
package emu

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"

	"github.com/kadlan/kadlan/sim"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/routing"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// Config of one emulation.
type Config struct {
	Nodes   int    // network size (a few hundred: each node is a real DHT)
	K       int    // bucket size
	Alpha   int    // kad-dht concurrency
	Lookups int    // FindPeer lookups between random pairs
	Seed    uint64 // table fill order and pair choice
}

// Tolerances of the model against the real kad-dht (TestEmulationMatchesModel
// and `kadlan sim emulate`): mean hops within 10% of the emulation's,
// success of both at least 95%, RPCs per lookup within a factor of 2
// (kad-dht stops as soon as
// it is connected to the target, while the model counts every RPC of the
// alpha in flight). Measured: N=700, alpha=3: hops 1.02 vs 1.02, RPCs 3.30
// vs 3.12; N=2000: hops 1.15 vs 1.15, RPCs 3.61 vs 3.53; N=2000, alpha=10:
// hops 1.11 vs 1.18, RPCs 8.0 (9.55 in a later run) vs 11.7. At k = 20
// hops are near 1 at these sizes (more than 1.5 would need ~2e4 real DHT
// nodes), so the check where hops exceed 1.5 runs with k = 2: N=1000,
// alpha=10: hops 2.40-2.54 vs 2.49-2.56 (seeds 1-3; the emulation varies
// run to run by ~0.1, as kad-dht's concurrent queries race on mocknet);
// N=300, alpha=1: 2.07 vs 2.07. Smaller or fewer is not safe: N=500,
// alpha=10, 150 lookups is 11.6% off for one seed of three (1.99 vs 2.22). At k = 4 the model is within 10% in 10 of 12 runs (N=300, 1000;
// alpha 1, 3, 10; 2 seeds) and 10.3% and 11.8% off in the other two.
const (
	HopsTolerance = 0.10 // relative
	RPCFactor     = 2.0
)

// HopsWithin reports whether the model's mean hops are within
// HopsTolerance of the emulation's.
func HopsWithin(emulated, model float64) bool {
	return math.Abs(model-emulated) <= HopsTolerance*emulated
}

// Result of an emulation.
type Result struct {
	Nodes, Lookups, Found int
	HopsMean, RPCsMean    float64
}

// Success is the share of lookups that found the target.
func (r Result) Success() float64 { return float64(r.Found) / float64(max(1, r.Lookups)) }

// Compare runs the emulation and the model (package sim, 1000 lookups) with
// the same N, k and alpha and returns both.
func Compare(ctx context.Context, c Config) (Result, sim.Metrics, error) {
	e, err := Run(ctx, c)
	if err != nil {
		return e, nil, err
	}
	mc := sim.Defaults()
	mc.Nodes, mc.K, mc.Alpha, mc.Lookups, mc.Seed = c.Nodes, c.K, c.Alpha, 1000, c.Seed
	res, err := sim.Run(mc, sim.Options{Jobs: 1})
	if err != nil {
		return e, nil, fmt.Errorf("emu: model: %w", err)
	}
	return e, res.Points[0].Metrics, nil
}

// Run builds the network, runs the lookups one after another and closes
// everything before returning.
func Run(ctx context.Context, c Config) (Result, error) {
	if c.Nodes < 2 || c.K < 1 || c.Alpha < 1 || c.Lookups < 1 {
		return Result{}, errors.New("emu: need nodes >= 2 and positive k, alpha, lookups")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	mn := mocknet.New()
	defer mn.Close()
	hosts := make([]host.Host, c.Nodes)
	for i := range hosts {
		h, err := mn.GenPeer()
		if err != nil {
			return Result{}, fmt.Errorf("emu: %w", err)
		}
		hosts[i] = h
	}
	if err := mn.LinkAll(); err != nil {
		return Result{}, fmt.Errorf("emu: %w", err)
	}
	for _, h := range hosts {
		for _, o := range hosts {
			if o != h {
				h.Peerstore().AddAddrs(o.ID(), o.Addrs(), peerstore.PermanentAddrTTL)
			}
		}
	}
	dhts := make([]*dht.IpfsDHT, c.Nodes)
	for i, h := range hosts {
		d, err := dht.New(h, dht.Mode(dht.ModeServer), dht.ProtocolPrefix("/kadlan-emu"),
			dht.BucketSize(c.K), dht.Concurrency(c.Alpha), dht.DisableAutoRefresh())
		if err != nil {
			return Result{}, fmt.Errorf("emu: %w", err)
		}
		dhts[i] = d
	}
	defer func() {
		for _, d := range dhts {
			d.Close()
		}
	}()
	r := rand.New(rand.NewPCG(c.Seed, 0xe70))
	for i, d := range dhts {
		order := r.Perm(c.Nodes)
		for _, j := range order {
			if j != i {
				_, _ = d.RoutingTable().TryAddPeer(hosts[j].ID(), true, false)
			}
		}
		// kad-dht answers FIND_NODE(target) with the target itself whenever
		// it knows the target's addresses, so a node must know only the
		// addresses of its table's peers (as after a fresh start); all
		// others it learns from answers, as a real node does.
		inTable := map[peer.ID]bool{}
		for _, p := range d.RoutingTable().ListPeers() {
			inTable[p] = true
		}
		ps := hosts[i].Peerstore()
		for _, o := range hosts {
			if o.ID() != hosts[i].ID() && !inTable[o.ID()] {
				ps.ClearAddrs(o.ID())
			}
		}
	}
	res := Result{Nodes: c.Nodes, Lookups: c.Lookups}
	var hops, rpcs float64
	for range c.Lookups {
		a := r.IntN(c.Nodes)
		b := r.IntN(c.Nodes - 1)
		if b >= a {
			b++
		}
		target := hosts[b].ID()
		_ = hosts[a].Network().ClosePeer(target)
		h, n, found, err := lookup(ctx, dhts[a], target)
		if err != nil && ctx.Err() != nil {
			return res, fmt.Errorf("emu: %w", ctx.Err())
		}
		rpcs += float64(n)
		if found {
			res.Found++
			hops += float64(h)
		}
	}
	res.RPCsMean = rpcs / float64(c.Lookups)
	if res.Found > 0 {
		res.HopsMean = hops / float64(res.Found)
	}
	return res, nil
}

// lookup runs FindPeer and rebuilds the referral depths from the query
// events: returns hops, RPCs sent and whether the target was found.
func lookup(ctx context.Context, d *dht.IpfsDHT, target peer.ID) (int, int, bool, error) {
	qctx, cancel := context.WithCancel(ctx)
	qctx, events := routing.RegisterForQueryEvents(qctx)
	var (
		wg    sync.WaitGroup
		rpcs  int
		hops  = -1
		depth = map[peer.ID]int{}
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev := range events {
			switch ev.Type {
			case routing.SendingQuery:
				rpcs++
				if _, ok := depth[ev.ID]; !ok {
					depth[ev.ID] = 1
				}
			case routing.PeerResponse:
				dd := depth[ev.ID]
				for _, ai := range ev.Responses {
					if ai.ID == target && hops < 0 {
						hops = dd
					}
					if _, ok := depth[ai.ID]; !ok {
						depth[ai.ID] = dd + 1
					}
				}
			}
		}
	}()
	pi, err := d.FindPeer(qctx, target)
	cancel()
	wg.Wait()
	found := err == nil && pi.ID == target && hops >= 0
	return hops, rpcs, found, err
}
