package sim

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

func init() {
	models["rooted"] = modelDef{bytesPerNode: 300, run: runRootedModel, plotsFor: rootedPlots, summaryFor: rootedSummary,
		summary: []string{"rooted_ttfp_ms_p50", "rooted_ttfp_ms_p99", "rootless_ttfp_ms_p50", "rootless_ttfp_ms_p99",
			"rooted_top1pct_share", "rootless_top1pct_share", "rooted_success_blocked", "rootless_success_blocked"}}
}

func rootedSummary(c Config) []string {
	if len(c.RootShares) == 0 {
		return models["rooted"].summary
	}
	out := []string{"rootless_ttfp_ms_p99"}
	for _, s := range c.RootShares {
		out = append(out, rootShareLabel(s)+"_ttfp_ms_p99")
	}
	return append(out, "rootless_top1pct_share")
}

func rootShareLabel(s float64) string { return fmt.Sprintf("rooted_share_%g", s) }

func rootedPlots(c Config) []PlotSpec {
	key := ""
	if c.Sweep != nil {
		key = c.Sweep.Key
	}
	// The rooted design by name: its roots and their share of all
	// capacity, unless the sweep varies them.
	rooted := "rooted"
	if key != "roots" && key != "root_capacity" && key != "nodes" {
		R := max(1, c.Roots)
		share := c.RootCapacity * float64(R) / (c.RootCapacity*float64(R) + float64(c.Nodes))
		rooted = fmt.Sprintf("%d roots, %.2g%% of capacity", R, 100*share)
	}
	p99 := []string{"rootless_ttfp_ms_p99", "rooted_ttfp_ms_p99"}
	p99Names := []string{"root-less", rooted}
	for _, s := range c.RootShares {
		p99 = append(p99, rootShareLabel(s)+"_ttfp_ms_p99")
		p99Names = append(p99Names, fmt.Sprintf("%d roots, %g%% of capacity", max(1, c.Roots), 100*s))
	}
	p99Title := "p99 connection setup delay"
	if key == "connect_rate" {
		p99Title += " vs load and root capacity share"
	}
	logx := key == "connect_rate"
	return []PlotSpec{
		{Name: "ttfp", Title: "Time to first packet between never-connected nodes", YLabel: "time to first packet (ms)",
			Y:      []string{"rootless_ttfp_ms_p50", "rooted_ttfp_ms_p50", "rootless_ttfp_ms_p99", "rooted_ttfp_ms_p99"},
			Legend: []string{"root-less, median", rooted + ", median", "root-less, p99", rooted + ", p99"}, LogX: logx},
		{Name: "p99", Title: p99Title, YLabel: "p99 time to first packet (ms, log scale)",
			Y: p99, Legend: p99Names, LogX: logx, LogY: true},
		{Name: "load_share", Title: "Concentration of lookup and relay work", YLabel: "share of all work; Gini coefficient",
			Y:      []string{"rooted_top1pct_share", "rootless_top1pct_share", "rooted_gini", "rootless_gini"},
			Legend: []string{rooted + ": share of the busiest 1%", "root-less: share of the busiest 1%", rooted + ": Gini", "root-less: Gini"}, LogX: logx},
		{Name: "blocked", Title: "New connections that still work when the busiest nodes (the roots) are blocked",
			YLabel: "share of connections", Y: []string{"rootless_success_blocked", "rooted_success_blocked"},
			Legend: []string{"root-less (as many busiest nodes blocked)", rooted + " (all roots blocked)"}, LogX: logx},
	}
}

// rootedSim holds one rooted design: roots with FIFO service queues.
type rootedSim struct {
	n     *Net
	roots []int32
	svc   int64
	busy  []int64   // per root
	dead  []bool    // per root: blocked
	load  []float64 // per node
}

// pickRoots places R roots at the nodes nearest the centres of the R most
// populated metros (ZeroTier runs a dozen such roots).
func pickRoots(n *Net, r int) []int32 {
	order := make([]int, len(metros))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return int(metros[b].weight - metros[a].weight) })
	var roots []int32
	for j := 0; j < r; j++ {
		want := order[j%len(order)]
		for v := int32(int(hash3(n.Seed, 0x2007, uint64(j)) % uint64(n.N()))); ; v = (v + 1) % int32(n.N()) {
			if n.Geo.Metro(v) == want && !slices.Contains(roots, v) {
				roots = append(roots, v)
				break
			}
		}
	}
	return roots
}

func (rs *rootedSim) nearest(v int32) int32 {
	best, bd := int32(-1), int64(math.MaxInt64)
	for i, r := range rs.roots {
		if rs.dead[i] {
			continue
		}
		if d := rs.n.Geo.RTT(v, r); d < bd {
			best, bd = r, d
		}
	}
	return best
}

// rootedReq is one first packet travelling a -> ra -> rb -> b through the
// roots' FIFO queues, one event per arrival so queues serve in arrival order.
type rootedReq struct {
	rs      *rootedSim
	eng     *Engine
	a, b    int32
	ra, rb  int32
	start   int64
	onFirst func(ttfp int64)
}

func (q *rootedReq) Fire(now, stage int64) {
	g := q.rs.n.Geo
	serve := func(r int32) int64 {
		i := slices.Index(q.rs.roots, r)
		st := max(now, q.rs.busy[i])
		q.rs.busy[i] = st + q.rs.svc
		q.rs.load[r]++
		return q.rs.busy[i]
	}
	switch stage {
	case 0: // at a's root
		done := serve(q.ra)
		if q.rb != q.ra {
			q.eng.At(done+g.RTT(q.ra, q.rb)/2, q, 1)
		} else {
			q.eng.At(done+g.RTT(q.rb, q.b)/2, q, 2)
		}
	case 1: // at b's root
		q.eng.At(serve(q.rb)+g.RTT(q.rb, q.b)/2, q, 2)
	case 2: // at b
		q.onFirst(now - q.start)
	}
}

// connect sends the first packet a -> its nearest root -> b's nearest root
// -> b, then the same NAT traversal as the node, relaying through b's root
// when it fails. ok=false when the roots are blocked.
func (rs *rootedSim) connect(eng *Engine, c Config, nat []uint8, a, b int32, onFirst func(int64)) bool {
	ra, rb := rs.nearest(a), rs.nearest(b)
	if ra < 0 {
		return false
	}
	q := &rootedReq{rs: rs, eng: eng, a: a, b: b, ra: ra, rb: rb, start: eng.Now(), onFirst: onFirst}
	eng.At(eng.Now()+rs.n.Geo.RTT(a, ra)/2, q, 0)
	if nat[a] != natPublic && nat[b] != natPublic && !punch(rs.n, punchParamsOf(c), nat, a, b, rb).direct {
		rs.load[rb]++ // stays relayed through b's root
	}
	return true
}

// runRootedModel connects random pairs arriving as a Poisson process of
// rate connect_rate, once through R fixed roots (ZeroTier style) and once
// root-less (kad-dht peer lookup, then NAT traversal with relays on the
// target's public DHT neighbours), every node and root serving requests from
// a FIFO queue (service_us; roots root_capacity times faster, or holding the
// shares root_capacity_shares of all capacity). Then the R busiest nodes of
// each design (for the rooted one: its roots) are blocked and new
// connections are tried again.
func runRootedModel(c Config, progress func(float64)) (Metrics, error) {
	R := max(1, c.Roots)
	svc := int64(c.ServiceUs * 1e3)
	m := Metrics{"roots": float64(R), "connect_rate": c.ConnectRate}
	caps := []float64{c.RootCapacity}
	labels := []string{"rooted"}
	for _, s := range c.RootShares {
		if s <= 0 || s >= 1 {
			return nil, fmt.Errorf("root capacity share %g not in (0,1)", s)
		}
		caps = append(caps, s*float64(c.Nodes)/(float64(R)*(1-s)))
		labels = append(labels, rootShareLabel(s))
	}
	m["root_capacity_share"] = caps[0] * float64(R) / (caps[0]*float64(R) + float64(c.Nodes))

	n := NewNet(c.Nodes, c.K, c.Seed)
	n.EnableQueue(svc)
	n.DialRTTs = c.DialRTTs
	n.up, n.down = make([]int64, c.Nodes), make([]int64, c.Nodes)
	for i := range n.up {
		n.up[i], n.down[i] = math.MinInt64+1, math.MinInt64 // up since forever, in every table
	}
	n.RefreshNs = 1 << 62
	nat := natOf(n, c)
	roots := pickRoots(n, R)
	for _, r := range roots {
		nat[r] = natPublic
	}
	if c.DHTServers != "all" {
		// as the node: only public nodes are DHT servers (and relays)
		srv := make([]bool, c.Nodes)
		for i, t := range nat {
			srv[i] = t == natPublic
		}
		n.SetServers(srv, c.Relays)
	}
	designs := make([]*rootedSim, len(caps))
	for i, cp := range caps {
		designs[i] = &rootedSim{n: n, roots: roots, svc: max(1, int64(float64(svc)/cp)), busy: make([]int64, R), dead: make([]bool, R),
			load: make([]float64, c.Nodes)}
	}
	relayLoad := make([]float64, c.Nodes)
	ttfp := make([][]float64, len(caps))
	var rootless []float64
	var lok, ltot int

	phase := func(pairs int, seedStream uint64, record bool) (rootedOK []int, rlOK int) {
		eng := &Engine{}
		r := NewRand(c.Seed, seedStream)
		rootedOK = make([]int, len(designs))
		timeout := int64(c.RPCTimeoutMs * 1e6)
		left := pairs // lookups and first packets still running
		started := 0
		starter := HandlerFunc(func(now, _ int64) {
			a := pickHonest(n, r, -1)
			b := pickHonest(n, r, a)
			for i, d := range designs {
				left++
				ok := d.connect(eng, c, nat, a, b, func(t int64) {
					left--
					if record {
						ttfp[i] = append(ttfp[i], float64(t)/1e6)
					}
				})
				if ok {
					rootedOK[i]++
				} else {
					left--
				}
			}
			n.StartLookup(eng, a, n.Space.Keys[b], b, c.Alpha, c.Paths, timeout, func(l *Lookup) {
				left--
				if started++; record && started%512 == 0 {
					progress(float64(started) / float64(pairs))
				}
				if !l.Found {
					return
				}
				cn := connect(n, c, nat, a, b)
				if !cn.ok {
					return
				}
				rlOK++
				t := l.Latency() + cn.firstNs
				if cn.relay >= 0 {
					relayLoad[cn.relay]++
					if cn.relayed {
						relayLoad[cn.relay]++
					}
				}
				if record {
					rootless = append(rootless, float64(t)/1e6)
				}
			})
		})
		t := int64(0)
		for range pairs {
			t += int64(r.ExpFloat64() / c.ConnectRate * 1e9)
			eng.At(t, starter, 0)
		}
		for left > 0 && eng.Step() {
		}
		return rootedOK, rlOK
	}
	rootedOK, rlOK := phase(c.Pairs, 21, true)
	lok, ltot = rlOK, c.Pairs
	work := make([]float64, c.Nodes)
	for i := range work {
		work[i] = float64(n.Load[i]) + relayLoad[i]
	}
	for i, lbl := range labels {
		m[lbl+"_ttfp_ms_p50"] = quantile(ttfp[i], 0.5)
		m[lbl+"_ttfp_ms_p99"] = quantile(ttfp[i], 0.99)
		m[lbl+"_success"] = float64(rootedOK[i]) / float64(c.Pairs)
	}
	m["rooted_top1pct_share"] = topShare(designs[0].load, 0.01)
	m["rooted_gini"] = gini(designs[0].load)
	m["rootless_ttfp_ms_p50"] = quantile(rootless, 0.5)
	m["rootless_ttfp_ms_p99"] = quantile(rootless, 0.99)
	m["rootless_success"] = float64(lok) / float64(ltot)
	m["rootless_top1pct_share"] = topShare(work, 0.01)
	var pubWork, allWork float64
	for i, w := range work {
		allWork += w
		if nat[i] == natPublic {
			pubWork += w
		}
	}
	m["rootless_work_public_share"] = pubWork / allWork // 1 when only public nodes are DHT servers
	m["rootless_gini"] = gini(work)
	m["p99_ratio_rootless_vs_rooted"] = m["rootless_ttfp_ms_p99"] / m["rooted_ttfp_ms_p99"]

	// Block the m busiest nodes of each design (for the rooted one: its
	// roots first) and try new connections again, for m = R and each of
	// block_counts, cumulatively.
	byLoad := func(load []float64) []int32 {
		order := make([]int32, c.Nodes)
		for i := range order {
			order[i] = int32(i)
		}
		slices.SortStableFunc(order, func(a, b int32) int { return cmp.Compare(load[b], load[a]) })
		return order
	}
	// The roots are known (published): a censor blocks them first, busiest
	// first, even one that carried no load.
	rootLoad := slices.Clone(designs[0].load)
	for _, r := range roots {
		rootLoad[r] += 1e18
	}
	busiest, rootBusiest := byLoad(work), byLoad(rootLoad)
	counts := append([]int{R}, c.BlockCounts...)
	slices.Sort(counts)
	counts = slices.Compact(counts)
	blockedPairs := max(100, c.Pairs/5)
	for _, cnt := range counts {
		cnt = min(cnt, c.Nodes/2)
		for _, v := range busiest[:cnt] {
			n.down[v] = math.MaxInt64
		}
		for _, v := range rootBusiest[:cnt] {
			if i := slices.Index(roots, v); i >= 0 {
				for _, d := range designs {
					d.dead[i] = true
				}
			}
		}
		rootedOK, rlOK = phase(blockedPairs, 22, false)
		sfx := ""
		if cnt != R {
			sfx = fmt.Sprintf("_%d", cnt)
		}
		m["rooted_success_blocked"+sfx] = float64(rootedOK[0]) / float64(blockedPairs)
		m["rootless_success_blocked"+sfx] = float64(rlOK) / float64(blockedPairs)
	}
	return m, nil
}
