package emu

import (
	"context"
	"testing"
	"time"
)

func TestEmulationMatchesModel(t *testing.T) {
	if testing.Short() {
		t.Skip("emulation runs hundreds of real DHT nodes")
	}
	cases := []struct{ n, k, alpha, lookups int }{
		{700, 20, 3, 100},
		{700, 20, 10, 100}, // kad-dht's default concurrency
	}
	if raceEnabled {
		cases = cases[:1]
		cases[0].n, cases[0].lookups = 300, 40
	}
	for _, tc := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		e, m, err := Compare(ctx, Config{Nodes: tc.n, K: tc.k, Alpha: tc.alpha, Lookups: tc.lookups, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("N=%d alpha=%d: kad-dht on mocknet: success %.3f hops %.2f rpcs %.2f | model: success %.3f hops %.2f rpcs %.2f",
			tc.n, tc.alpha, e.Success(), e.HopsMean, e.RPCsMean, m["success"], m["hops_mean"], m["rpcs_mean"])
		if e.Success() < 0.95 || m["success"] < 0.95 {
			t.Errorf("success: emulation %.3f, model %.3f", e.Success(), m["success"])
		}
		if !HopsWithin(e.HopsMean, m["hops_mean"]) {
			t.Errorf("hops: emulation %.2f, model %.2f (tolerance %.0f%%)", e.HopsMean, m["hops_mean"], 100*HopsTolerance)
		}
		if r := e.RPCsMean / m["rpcs_mean"]; r > RPCFactor || r < 1/RPCFactor {
			t.Errorf("rpcs: emulation %.2f, model %.2f (factor %.1f)", e.RPCsMean, m["rpcs_mean"], RPCFactor)
		}
	}
}
