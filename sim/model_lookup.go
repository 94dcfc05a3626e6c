package sim

import (
	"math"
	"math/rand/v2"
)

func init() {
	models["lookup"] = modelDef{bytesPerNode: 150, run: runLookupModel, plotsFor: lookupPlots,
		summary: []string{"success", "hops_mean", "hops_p95", "rpcs_mean", "latency_ms_p50", "latency_ms_p95"}}
}

// lookupStats aggregates finished lookups.
type lookupStats struct {
	n, found            int
	hops, rpcs, lat, to []float64
	pathFound           []int // AllPaths: lookups whose path i learned the target
}

func (s *lookupStats) add(l *Lookup) {
	s.n++
	if len(s.pathFound) < len(l.PathsFound) {
		s.pathFound = append(s.pathFound, make([]int, len(l.PathsFound)-len(s.pathFound))...)
	}
	for i, f := range l.PathsFound {
		if f {
			s.pathFound[i]++
		}
	}
	s.rpcs = append(s.rpcs, float64(l.RPCs))
	s.to = append(s.to, float64(l.Timeout))
	if l.Found {
		s.found++
		s.hops = append(s.hops, float64(l.Hops))
		s.lat = append(s.lat, float64(l.Latency())/1e6)
	}
}

func (s *lookupStats) metrics(prefix string, m Metrics) {
	m[prefix+"success"] = float64(s.found) / float64(max(1, s.n))
	m[prefix+"hops_mean"] = mean(s.hops)
	m[prefix+"hops_p50"] = quantile(s.hops, 0.5)
	m[prefix+"hops_p95"] = quantile(s.hops, 0.95)
	m[prefix+"rpcs_mean"] = mean(s.rpcs)
	m[prefix+"timeouts_mean"] = mean(s.to)
	m[prefix+"latency_ms_mean"] = mean(s.lat)
	m[prefix+"latency_ms_p50"] = quantile(s.lat, 0.5)
	m[prefix+"latency_ms_p95"] = quantile(s.lat, 0.95)
	m[prefix+"latency_ms_p99"] = quantile(s.lat, 0.99)
}

// pickHonest returns a random alive honest node other than not.
func pickHonest(n *Net, r *rand.Rand, not int32) int32 {
	for {
		v := int32(r.IntN(n.N()))
		if v != not && n.Alive(v) && !n.IsSybil(v) {
			return v
		}
	}
}

// pickOrigin returns one of the first alive honest nodes of a fixed
// sequence of m nodes (drawn by hash), other than not.
func pickOrigin(n *Net, r *rand.Rand, m int, not int32) int32 {
	for {
		v := int32(hash3(n.Seed, 0x0e1, uint64(r.IntN(m))) % uint64(n.N()))
		if v != not && n.Alive(v) && !n.IsSybil(v) {
			return v
		}
	}
}

// runLookups starts c.Lookups peer lookups between random alive honest nodes
// as a Poisson process of rate c.LookupRate and runs the engine until all
// have finished. stopAfter, if set, stops the engine early (churn events
// never run out).
func runLookups(c Config, n *Net, eng *Engine, paths int, seed uint64, progress func(float64)) *lookupStats {
	return runLookupsOpts(c, n, eng, paths, LookupOpts{}, seed, progress)
}

// runLookupsOpts is runLookups with lookup variants. With n.Targets set
// the targets are drawn from them.
func runLookupsOpts(c Config, n *Net, eng *Engine, paths int, opts LookupOpts, seed uint64, progress func(float64)) *lookupStats {
	r := NewRand(seed, 3)
	st := &lookupStats{}
	remaining := c.Lookups
	onDone := func(l *Lookup) {
		st.add(l)
		remaining--
		if progress != nil && remaining%256 == 0 {
			progress(1 - float64(remaining)/float64(max(1, c.Lookups)))
		}
	}
	timeout := int64(c.RPCTimeoutMs * 1e6)
	starter := HandlerFunc(func(now, _ int64) {
		var o, t int32
		if len(n.Targets) > 0 {
			t = n.Targets[r.IntN(len(n.Targets))]
			o = pickHonest(n, r, t)
		} else if c.Origins > 0 {
			t = pickHonest(n, r, -1)
			o = pickOrigin(n, r, c.Origins, t)
		} else {
			o = pickHonest(n, r, -1)
			t = pickHonest(n, r, o)
		}
		n.StartLookupOpts(eng, o, n.Space.Keys[t], t, c.Alpha, paths, timeout, opts, onDone)
	})
	t := eng.Now()
	for range c.Lookups {
		t += int64(r.ExpFloat64() / c.LookupRate * 1e9)
		eng.At(t, starter, 0)
	}
	for remaining > 0 && eng.Step() {
	}
	return st
}

// lookupPlots plots against network size on a log axis; another sweep key
// gets its name in the titles and a linear axis.
func lookupPlots(c Config) []PlotSpec {
	vs, logx := " vs network size", true
	if c.Sweep != nil && c.Sweep.Key != "nodes" {
		vs, logx = " vs "+c.Sweep.Key, false
		if l, ok := keyLabels[c.Sweep.Key]; ok {
			vs = " vs " + l
		}
	}
	return []PlotSpec{
		{Name: "hops", Title: "Lookup hops" + vs, YLabel: "hops to the target",
			Y: []string{"hops_mean", "hops_p95", "hops_ref"}, Legend: []string{"mean", "95th percentile", "reference: log2(N/k) / (1 + log2 k)"}, LogX: logx},
		{Name: "rpcs", Title: "RPCs per lookup" + vs, YLabel: "RPCs per lookup (mean)",
			Y: []string{"rpcs_mean"}, LogX: logx},
		{Name: "latency", Title: "Lookup latency" + vs, YLabel: "latency (ms)",
			Y: []string{"latency_ms_p50", "latency_ms_p95"}, Legend: []string{"median", "95th percentile"}, LogX: logx},
		{Name: "success", Title: "Lookup success" + vs, YLabel: "share of lookups that found the target",
			Y: []string{"success"}, LogX: logx},
	}
}

func runLookupModel(c Config, progress func(float64)) (Metrics, error) {
	n := NewNet(c.Nodes, c.K, c.Seed)
	n.ServiceNs = int64(c.ServiceUs * 1e3)
	n.DialRTTs = c.DialRTTs
	n.SetSybils(c.SybilShare)
	eng := &Engine{}
	st := runLookups(c, n, eng, c.Paths, c.Seed, progress)
	m := Metrics{"nodes": float64(c.Nodes), "log2_nodes": math.Log2(float64(c.Nodes))}
	st.metrics("", m)
	// Reference curve: the best of k random contacts in the right bucket
	// shares about 1+log2(k) more bits with the target, and the last log2(k)
	// bits are covered by the answer's k nodes, so hops ~ log2(N/k)/(1+log2 k).
	m["hops_ref"] = math.Log2(float64(c.Nodes)/float64(c.K)) / (1 + math.Log2(float64(c.K)))
	return m, nil
}
