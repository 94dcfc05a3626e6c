package sim

import (
	"fmt"
	"math"
)

func init() {
	models["sybil"] = modelDef{bytesPerNode: 200, run: runSybilModel, plotsFor: sybilPlots,
		summary: []string{"single_success", "single_model", "plain_success", "disjoint_success", "plain_rpcs_mean", "disjoint_rpcs_mean", "identity_cost_cpu_s"}}
}

func sybilPlots(c Config) []PlotSpec {
	ways := []string{fmt.Sprintf("S/Kademlia, d=%d disjoint paths", c.Paths), fmt.Sprintf("plain, alpha=%d", c.Alpha), "single path (alpha=1)"}
	return []PlotSpec{
		{Name: "success", Title: "Lookup success vs share of colluding Sybils",
			YLabel: "share of lookups that found the target",
			Y:      []string{"disjoint_success", "plain_success", "single_success", "single_model"},
			Legend: append(ways[:3:3], "single path, model (1-f)^h")},
		{Name: "identity_cost", Title: "Identity cost that caps an attacker at this Sybil share",
			YLabel: "CPU-seconds per identity (log scale)", Y: []string{"identity_cost_cpu_s"}, LogY: true},
		{Name: "rpcs", Title: "Cost of a lookup vs share of Sybils",
			YLabel: "RPCs per lookup (mean)", Y: []string{"disjoint_rpcs_mean", "plain_rpcs_mean", "single_rpcs_mean"}, Legend: ways},
	}
}

// runSybilModel runs the same lookups three ways on one network where a
// share of nodes collude (answering only with each other): single path
// (alpha 1), plain (alpha parallel, one candidate set) and S/Kademlia
// disjoint paths. single_model is (1-f)^h, h the mean hop count of the same
// network without Sybils: the success a single path should track.
func runSybilModel(c Config, progress func(float64)) (Metrics, error) {
	n := NewNet(c.Nodes, c.K, c.Seed)
	n.ServiceNs = int64(c.ServiceUs * 1e3)
	n.DialRTTs = c.DialRTTs
	m := Metrics{"sybil_share": c.SybilShare}
	step := func(i int) func(float64) {
		return func(f float64) { progress((float64(i) + f) / 4) }
	}
	one := c
	one.Alpha = 1
	clean := runLookups(one, n, &Engine{}, 1, c.Seed, step(0))
	n.SetSybils(c.SybilShare)
	single := runLookups(one, n, &Engine{}, 1, c.Seed, step(1))
	plain := runLookups(c, n, &Engine{}, 1, c.Seed, step(2))
	disj := runLookups(c, n, &Engine{}, c.Paths, c.Seed, step(3))
	single.metrics("single_", m)
	plain.metrics("plain_", m)
	disj.metrics("disjoint_", m)
	h := mean(clean.hops)
	m["clean_hops_mean"] = h
	m["single_model"] = math.Pow(1-c.SybilShare, h)
	m["paths"] = float64(c.Paths)
	// Making identities expensive: an attacker with attacker_cpu_s of CPU
	// time reaches this point's Sybil share only if one identity costs at
	// most A(1-f)/(fN) CPU-seconds; an honest node pays that cost once.
	if c.SybilShare > 0 {
		m["identity_cost_cpu_s"] = c.AttackerCPUS * (1 - c.SybilShare) / (c.SybilShare * float64(c.Nodes))
	}
	return m, nil
}
