package sim

import (
	"math"
	"testing"
)

// TestChurnResidualLife: a node alive when the simulation starts has the
// equilibrium residual life, mean E[L^2]/(2E[L]) (inspection paradox), not
// a fresh session's E[L]. For Weibull shape 0.5 they differ by 3x
// (scale*Gamma(5)/(2*Gamma(3)) = 6 scale vs scale*Gamma(3) = 2 scale), so a
// model that redraws the residual from the session distribution fails. The
// residual is measured end to end: the time until each initially alive
// node first goes down in the engine.
func TestChurnResidualLife(t *testing.T) {
	for _, shape := range []float64{0.5, 1} {
		c := Defaults()
		c.WeibullShape = shape
		c.Nodes = 20000
		n := NewNet(c.Nodes, c.K, c.Seed)
		eng := &Engine{}
		ch := startChurn(n, c, eng, c.Seed)
		s := ch.s
		alive := map[int32]bool{}
		for i := range n.N() {
			if n.Alive(int32(i)) {
				alive[int32(i)] = true
			}
		}
		var sum float64
		cnt := 0
		ch.onDown = func(i int32, now int64) {
			if alive[i] {
				delete(alive, i)
				sum += float64(now) / 1e9
				cnt++
			}
		}
		for len(alive) > 0 && eng.Step() {
		}
		got := sum / float64(cnt)
		g := math.Gamma
		wantEq := s.scale * g(1+2/shape) / (2 * g(1+1/shape))
		life := s.scale * g(1+1/shape)
		// standard error of the mean residual: E[R^2] = E[L^3]/(3E[L])
		er2 := s.scale * s.scale * g(1+3/shape) / (3 * g(1+1/shape))
		se := math.Sqrt((er2 - wantEq*wantEq) / float64(cnt))
		t.Logf("shape %.1f: mean residual %.0f s over %d nodes; equilibrium %.0f (se %.0f), session mean %.0f", shape, got, cnt, wantEq, se, life)
		if math.Abs(got-wantEq) > 4*se {
			t.Errorf("shape %.1f: mean residual %.0f s, equilibrium %.0f ± %.0f", shape, got, wantEq, 4*se)
		}
	}
}

// TestChurnEviction: when a node's RPC to a stale contact fails, kad-dht
// drops the contact, so the node's later lookups do not wait on it again.
// With lookups from few origins (each repeats) eviction must cut the
// timeouts per lookup and the p95 latency; success must not fall. (It
// does not rise either: the lookups that fail look up nodes that joined
// after every table's last refresh, which no eviction brings in, and most
// stale contacts hit are in other nodes' tables.)
func TestChurnEviction(t *testing.T) {
	c := Defaults()
	c.Nodes, c.Lookups, c.Origins = 3000, 2000, 10
	c.SessionMedianS, c.RefreshS, c.RefreshValues = 300, 3600, []float64{3600}
	c.TablePolicy = "oldest"
	off := point(t, "churn", c)
	c.EvictOnFailure = true
	on := point(t, "churn", c)
	t.Logf("no eviction: success %.3f timeouts %.2f p95 %.0f ms; eviction: %.3f %.2f %.0f ms", off["success"], off["timeouts_mean"],
		off["latency_ms_p95"], on["success"], on["timeouts_mean"], on["latency_ms_p95"])
	if on["timeouts_mean"] > 0.97*off["timeouts_mean"] || on["latency_ms_p95"] > 0.95*off["latency_ms_p95"] {
		t.Errorf("eviction did not cut timeouts (%.2f vs %.2f) and p95 latency (%.0f vs %.0f ms)", on["timeouts_mean"], off["timeouts_mean"],
			on["latency_ms_p95"], off["latency_ms_p95"])
	}
	if on["success"] < off["success"]-0.02 {
		t.Errorf("eviction lowered success: %.3f vs %.3f", on["success"], off["success"])
	}
}
