package sim

import (
	"fmt"
	"strconv"
	"strings"
)

func init() {
	models["triangle"] = modelDef{bytesPerNode: 300, run: runTriangleModel,
		plotsFor: trianglePlots,
		summary:  []string{"connect_ms_p50", "bytes_per_node_s", "sybil_success", "top1pct_share", "critical_nodes"}}
}

func trianglePlots(c Config) []PlotSpec {
	most := 0
	if counts := blockCounts(c.Nodes); len(counts) > 0 {
		most = counts[len(counts)-1]
	}
	sec := fmt.Sprintf("lookup success with %g%% Sybils", 100*c.SybilShare)
	return []PlotSpec{
		{Name: "efficiency_security", Kind: "scatter", Title: "Efficiency vs security", X: "connect_ms_p50",
			XLabel: "time to first packet p50 (ms, lower is better)", YLabel: sec + " (higher is better)",
			Y: []string{"sybil_success"}},
		{Name: "efficiency_decentralization", Kind: "scatter", Title: "Efficiency vs decentralization", X: "connect_ms_p50",
			XLabel: "time to first packet p50 (ms, lower is better)", YLabel: "work on the busiest 1% of nodes (lower is better)",
			Y: []string{"top1pct_share"}},
		{Name: "security_decentralization", Kind: "scatter", Title: "Security vs decentralization", X: "top1pct_share",
			XLabel: "work on the busiest 1% of nodes (lower is better)", YLabel: sec + " (higher is better)",
			Y: []string{"sybil_success"}},
		{Name: "critical", Kind: "scatter", Title: "Nodes whose removal cuts new connections vs background cost",
			X: "bytes_per_node_s", XLabel: "background bytes per node per second", YLabel: "busiest nodes to block to stop half of new connections (log scale)",
			Y: []string{"critical_nodes"}, LogY: true,
			// critical() reports 4x the largest count tried when none stopped half
			YCensored: float64(4 * most), YCensoredText: fmt.Sprintf("> %d", most)},
	}
}

// blockCounts are the numbers of busiest nodes the triangle model blocks:
// 1, 4, 16, ... up to nodes/4.
func blockCounts(nodes int) []int {
	var counts []int
	for b := 1; b <= nodes/4; b *= 4 {
		counts = append(counts, b)
	}
	return counts
}

// runTriangleModel places one design on the three axes of the "pick two"
// conjecture: efficiency (time to first packet, background bytes per
// node), security (peer lookup success with sybil_share colluding Sybils)
// and decentralization (share of work on the busiest 1% of nodes, and how
// many of the busiest nodes must be blocked to stop half of new
// connections, searched over 1, 4, 16, ... up to N/4).
//
// Designs: kad-plain (alpha lookups), kad-disjoint (paths disjoint paths),
// rooted-R (R fixed roots). In a rooted design lookups are answered by the
// operator's roots, so member Sybils cannot misdirect them (success 1 by
// construction); its weakness shows on the other axes.
func runTriangleModel(c Config, progress func(float64)) (Metrics, error) {
	m := Metrics{}
	counts := blockCounts(c.Nodes)
	rc := c
	rc.BlockCounts = counts
	rc.RootShares = nil
	switch {
	case c.Design == "kad-plain" || c.Design == "kad-disjoint":
		if c.Design == "kad-plain" {
			rc.Paths = 1
		}
		rm, err := runRootedModel(rc, func(f float64) { progress(f / 2) })
		if err != nil {
			return nil, err
		}
		m["connect_ms_p50"] = rm["rootless_ttfp_ms_p50"]
		m["top1pct_share"] = rm["rootless_top1pct_share"]
		m["critical_nodes"] = critical(rm, "rootless", counts, c.Nodes)
		n := NewNet(c.Nodes, c.K, c.Seed)
		n.ServiceNs = int64(c.ServiceUs * 1e3)
		n.DialRTTs = c.DialRTTs
		clean := runLookups(rc, n, &Engine{}, rc.Paths, c.Seed, nil)
		m["bytes_per_node_s"] = nonEmptyBuckets(n, 64) * mean(clean.rpcs) * c.RPCBytes * 2 / c.RefreshS
		n.SetSybils(c.SybilShare)
		st := runLookups(rc, n, &Engine{}, rc.Paths, c.Seed, func(f float64) { progress(0.5 + f/2) })
		m["sybil_success"] = float64(st.found) / float64(max(1, st.n))
	case strings.HasPrefix(c.Design, "rooted-"):
		r, err := strconv.Atoi(strings.TrimPrefix(c.Design, "rooted-"))
		if err != nil || r < 1 {
			return nil, fmt.Errorf("design %q: want rooted-R with R >= 1", c.Design)
		}
		rc.Roots = r
		rm, err := runRootedModel(rc, progress)
		if err != nil {
			return nil, err
		}
		m["connect_ms_p50"] = rm["rooted_ttfp_ms_p50"]
		m["top1pct_share"] = rm["rooted_top1pct_share"]
		m["critical_nodes"] = critical(rm, "rooted", append([]int{r}, counts...), c.Nodes)
		m["bytes_per_node_s"] = c.KeepaliveBytesS
		m["sybil_success"] = rm["rooted_success"]
		m["roots"] = float64(r)
	default:
		return nil, fmt.Errorf("unknown design %q (kad-plain, kad-disjoint, rooted-R)", c.Design)
	}
	return m, nil
}

// critical returns the smallest blocked count whose success fell below 1/2,
// or 4x the largest tried when none did.
func critical(m Metrics, prefix string, counts []int, n int) float64 {
	R := int(m["roots"])
	best := -1
	for _, cnt := range counts {
		key := fmt.Sprintf("%s_success_blocked_%d", prefix, min(cnt, n/2))
		if cnt == R {
			key = prefix + "_success_blocked"
		}
		if v, ok := m[key]; ok && v < 0.5 && (best < 0 || cnt < best) {
			best = cnt
		}
	}
	if best < 0 {
		return float64(4 * counts[len(counts)-1])
	}
	return float64(best)
}
