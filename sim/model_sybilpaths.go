package sim

import (
	"fmt"
	"math"
	"slices"
)

func init() {
	models["sybil-paths"] = modelDef{bytesPerNode: 250, run: runSybilPathsModel, plotsFor: sybilPathsPlots,
		summary: []string{"success", "shared_success", "path_success", "indep_model", "rpcs_mean", "latency_ms_p50"}}
}

func sybilPathsPlots(c Config) []PlotSpec {
	adv := map[string]string{AdvFake: "a fixed set of fake closer contacts", AdvFakeFresh: "coordinated fake closer contacts",
		AdvDrop: "adversaries drop requests", AdvMisroute: "adversaries misroute"}[c.Adversary]
	if slices.Contains(c.SweepKeys(), "adversary") {
		adv = "adversaries as in the legend"
	}
	if c.EclipseShare > 0 {
		adv += fmt.Sprintf(", %g of them next to the targets", c.EclipseShare)
	}
	x := "fraction of adversarial nodes"
	if c.Sweep != nil && c.Sweep.Key != "sybil_share" {
		x = ""
	}
	return []PlotSpec{
		{Name: "success", Title: "S/Kademlia disjoint paths: lookup success (" + adv + ")",
			XLabel: x, YLabel: "share of lookups that found the target",
			Y: []string{"success"}, Legend: []string{"disjoint"}},
		{Name: "shared", Title: "The same d paths, not disjoint (" + adv + ")",
			XLabel: x, YLabel: "share of lookups that found the target",
			Y: []string{"shared_success"}, Legend: []string{"shared"}},
		{Name: "rpcs", Title: "Cost of a disjoint-path lookup", XLabel: x,
			YLabel: "RPCs per lookup (mean)", Y: []string{"rpcs_mean"}, Legend: []string{"disjoint"}},
	}
}

// runSybilPathsModel runs the same lookups with d disjoint paths and with
// d shared (not disjoint) paths on one network with adversaries (config
// adversary, eclipse_share). Every path runs to its end, so each path's
// own success q_i is measured; indep_model = 1 - prod(1-q_i) is what d
// independent paths with those marginals would give.
func runSybilPathsModel(c Config, progress func(float64)) (Metrics, error) {
	n := NewNet(c.Nodes, c.K, c.Seed)
	n.ServiceNs = int64(c.ServiceUs * 1e3)
	n.DialRTTs = c.DialRTTs
	if err := n.SetAdversaries(Adversaries{Share: c.SybilShare, Behavior: c.Adversary,
		EclipseShare: c.EclipseShare, Targets: c.EclipseTargets}); err != nil {
		return nil, err
	}
	m := Metrics{"sybil_share": c.SybilShare, "paths": float64(c.Paths), "k": float64(c.K)}
	disj := runLookupsOpts(c, n, &Engine{}, c.Paths, LookupOpts{AllPaths: true}, c.Seed,
		func(f float64) { progress(f / 2) })
	shared := runLookupsOpts(c, n, &Engine{}, c.Paths, LookupOpts{AllPaths: true, Shared: true}, c.Seed,
		func(f float64) { progress(0.5 + f/2) })
	disj.metrics("", m)
	shared.metrics("shared_", m)
	for prefix, st := range map[string]*lookupStats{"": disj, "shared_": shared} {
		fail, sum := 1.0, 0.0
		for _, f := range st.pathFound {
			q := float64(f) / float64(max(1, st.n))
			fail *= 1 - q
			sum += q
		}
		m[prefix+"path_success"] = sum / float64(max(1, len(st.pathFound)))
		m[prefix+"indep_model"] = 1 - fail
	}
	m["disjoint_gain"] = m["success"] - m["shared_success"]
	m["eclipse_share"] = c.EclipseShare
	if math.IsNaN(m["path_success"]) {
		m["path_success"] = 0
	}
	return m, nil
}
