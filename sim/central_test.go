package sim

import (
	"math"
	"testing"
)

// TestCentralFluid: the invariant state's mean queue against hand values
// (p = 0.1, lambda = 0.9: s_i = 1 - i/9, mean 4) and its growth like
// log_{1/(1-p)} 1/(1-lambda) as lambda -> 1.
func TestCentralFluid(t *testing.T) {
	if m, top := centralFluid(0.9, 0.1); math.Abs(m-4) > 1e-9 || top != 8 {
		t.Errorf("fluid(0.9, 0.1) = %v, top %d; want 4, 8", m, top)
	}
	if m, _ := centralFluid(0.9, 0); math.Abs(m-9) > 1e-9 {
		t.Errorf("p = 0: %v, want 9", m)
	}
	// the increments per decade of 1/(1-lambda) approach log(10)/log(1/(1-p))
	for _, p := range []float64{0.1, 0.5} {
		a, _ := centralFluid(1-1e-6, p)
		b, _ := centralFluid(1-1e-7, p)
		if want := math.Log(10) / math.Log(1/(1-p)); math.Abs((b-a)/want-1) > 0.02 {
			t.Errorf("p=%g: %.3f per decade, want %.3f", p, b-a, want)
		}
	}
}

// TestCentralMatchesTheory: the simulated steady-state mean queue is
// within 20% of theory (M/M/1 for p = 0, the fluid limit's invariant state
// for p > 0) at lambda = 0.9, 0.99 and 0.999. Under the race detector
// (10x slower) the longest cases are left out: p = 0 at 0.99 (3e7 events
// for a 6% standard error: the time average's variance is
// 2rho(1+rho)/((1-rho)^4 T)) and lambda = 0.999 (5e7 events: the
// warm-up is 2L/(1-lambda)). p = 0 at 0.999 would need ~2e10 events and is
// not tested.
func TestCentralMatchesTheory(t *testing.T) {
	type tc struct {
		n         int
		lam, p    float64
		warm, mes float64
	}
	cases := []tc{
		{20, 0.9, 0, 0, 0},
		{200, 0.9, 0.1, 0, 0}, {200, 0.99, 0.1, 0, 0},
		{500, 0.9, 0.5, 0, 0}, {500, 0.99, 0.5, 0, 0},
	}
	if !raceEnabled {
		cases = append(cases, tc{40, 0.99, 0, 1.2e5, 3e5}, tc{200, 0.999, 0.1, 0, 0})
	}
	for _, k := range cases {
		c := Defaults()
		c.Nodes, c.Stations0, c.Load, c.CentralShare, c.WarmupTime, c.MeasureTime = k.n, k.n, k.lam, k.p, k.warm, k.mes
		m := point(t, "central", c)
		q, f := m["mean_queue"], m["fluid_queue"]
		t.Logf("n=%d lambda=%g p=%g: simulated %.3f, theory %.3f (%+.1f%%), %.2g events", k.n, k.lam, k.p, q, f, 100*(q-f)/f, m["events"])
		if math.IsNaN(q) || math.Abs(q-f) > 0.2*f {
			t.Errorf("lambda=%g p=%g: simulated %.3f, theory %.3f", k.lam, k.p, q, f)
		}
	}
}

// TestCentralSteadyState: doubling the warm-up moves the measured mean by
// less than 5% (the automatic warm-up reaches steady state), and a model
// whose central server were idle (p taken from the local share but never
// used) would sit near M/M/1 with rate 1-p: far outside the tolerance.
func TestCentralSteadyState(t *testing.T) {
	c := Defaults()
	c.Nodes, c.Load, c.CentralShare = 1000, 0.9, 0.1
	if !raceEnabled {
		c.Nodes, c.Load = 200, 0.99
	}
	w, _ := centralTimes(c, 0.1)
	a := point(t, "central", c)["mean_queue"]
	c.WarmupTime = 2 * w
	b := point(t, "central", c)["mean_queue"]
	t.Logf("warm-up %.0f: %.3f, doubled: %.3f", w, a, b)
	if math.Abs(a-b) > 0.05*b {
		t.Errorf("not at steady state: %.3f vs %.3f", a, b)
	}
}
