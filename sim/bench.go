package sim

import (
	"fmt"
	"time"
)

// BenchResult is what `kadlan sim bench` reports.
type BenchResult struct {
	Nodes, Lookups     int
	Build, Run         time.Duration
	LookupsPerSec      float64
	HopsMean, RPCsMean float64
	Success            float64
}

// Bench builds an n-node network (k=20, alpha=3) and times lookups peer
// lookups on it. It measures wall time, so it belongs in benchmarks, not in
// results.json.
func Bench(n, lookups int, seed uint64) (BenchResult, error) {
	if n < 2 || lookups < 1 {
		return BenchResult{}, fmt.Errorf("sim: bench: need nodes >= 2 and lookups >= 1")
	}
	c := Defaults()
	c.Nodes, c.Lookups, c.Seed, c.LookupRate = n, lookups, seed, 1000
	t0 := time.Now()
	net := NewNet(n, c.K, seed)
	net.ServiceNs = int64(c.ServiceUs * 1e3)
	build := time.Since(t0)
	t1 := time.Now()
	st := runLookups(c, net, &Engine{}, 1, seed, nil)
	run := time.Since(t1)
	m := Metrics{}
	st.metrics("", m)
	return BenchResult{Nodes: n, Lookups: lookups, Build: build, Run: run,
		LookupsPerSec: float64(lookups) / run.Seconds(), HopsMean: m["hops_mean"], RPCsMean: m["rpcs_mean"],
		Success: m["success"]}, nil
}
