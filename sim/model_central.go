package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Tsitsiklis & Xu, "On the power of (even a little) centralization in
// distributed processing" (SIGMETRICS 2011; Stochastic Systems 2012): n
// stations, Poisson arrivals of rate lambda (load) at each; every station
// has a unit of service capacity, split into a local share 1-p that serves
// only its own queue and a central share p, pooled (rate n*p), that always
// serves a longest queue. p = 0 is n independent M/M/1 queues (mean queue
// lambda/(1-lambda)); for p > 0 the mean queue grows only like
// log_{1/(1-p)} 1/(1-lambda) as lambda -> 1.
//
// The fluid limit's invariant state (derived in centralFluid from the
// fluid model: flow balance across each level) is, with s_i the share of
// stations holding at least i jobs, s_0 = 1 and
//   s_i = (lambda*s_{i-1} - p) / (1-p)   while lambda*s_{i-1} > p,
//   s_i = 0                              from then on,
// so the mean queue is sum_i s_i. The model simulates the n-station
// system (uniformised continuous-time Markov chain: every event is an
// arrival, a local service at a random station, or a central service at a
// longest queue), warms up, then measures the time-average queue.
//
// kadlan's designs map onto it only loosely: a rooted design is a large
// central share held by few roots (which then also concentrate trust and
// blocking), root-less DHT rendezvous is p = 0 with work spread by key.
// What carries over is the queueing argument (a little pooled capacity
// removes the 1/(1-lambda) blow-up); what does not: rendezvous work is not
// a queue that the centre can take from any station, latency adds network
// round trips, and roots serve their region, not the longest queue.

func init() {
	models["central"] = modelDef{bytesPerNode: 0, run: runCentralModel, plotsFor: centralPlots, summaryFor: centralSummary}
}

func centralShares(c Config) []float64 {
	if len(c.CentralShares) > 0 {
		return c.CentralShares
	}
	return []float64{c.CentralShare}
}

func shareKey(p float64) string { return fmt.Sprintf("p%g", p) }

// centralName names a metric of share p: plain ("mean_queue") when the
// point has one share (central_share, e.g. swept in a grid), suffixed
// ("mean_queue_p0.1") when it measures central_shares.
func centralName(c Config, base string, p float64) string {
	if len(c.CentralShares) == 0 {
		return base
	}
	return base + "_" + shareKey(p)
}

func centralSummary(c Config) []string {
	out := []string{"load"}
	for _, p := range centralShares(c) {
		out = append(out, centralName(c, "mean_queue", p), centralName(c, "fluid_queue", p))
	}
	return out
}

func centralPlots(c Config) []PlotSpec {
	var y, legend, ye, le []string
	for _, p := range centralShares(c) {
		y = append(y, centralName(c, "mean_queue", p), centralName(c, "fluid_queue", p))
		th := "fluid limit (Tsitsiklis & Xu)"
		if p == 0 {
			th = "M/M/1: lambda/(1-lambda)"
		}
		if len(c.CentralShares) == 0 {
			// one share per point: a grid over central_share names the
			// series after its values
			th = "theory (M/M/1 for p = 0, fluid limit for p > 0)"
			legend = append(legend, "simulated", th)
			le = append(le, "simulated vs theory")
		} else {
			legend = append(legend, fmt.Sprintf("p = %g, simulated", p), fmt.Sprintf("p = %g, %s", p, th))
			le = append(le, fmt.Sprintf("p = %g", p))
		}
		ye = append(ye, centralName(c, "rel_error", p))
	}
	return []PlotSpec{
		{Name: "mean_queue", Title: "Mean queue vs load, central share p", X: "inv_gap",
			XLabel: "1/(1-lambda) (log scale)", YLabel: "mean queue length per station (log scale)",
			Y: y, Legend: legend, LogX: true, LogY: true},
		{Name: "error", Title: "Simulated vs analytic mean queue", X: "inv_gap",
			XLabel: "1/(1-lambda) (log scale)", YLabel: "(simulated - analytic) / analytic",
			Y: ye, Legend: le, LogX: true},
	}
}

// centralFluid is the mean queue of the fluid limit's invariant state (p
// > 0) or of M/M/1 (p = 0), and the top occupied level i*.
//
// Derivation: at the invariant state the flow up across level i (arrivals
// at stations holding i-1 jobs, lambda*(s_{i-1}-s_i)) equals the flow down
// (local service at stations holding i, (1-p)*(s_i-s_{i+1}), plus central
// service applied at level i, c_i). Summing over levels >= i:
// lambda*s_{i-1} = (1-p)*s_i + C_i, C_i the central rate applied at levels
// >= i. The central server works at the top: C_i = p for every occupied
// level below the top, so s_i = (lambda*s_{i-1} - p)/(1-p); the top level
// i* is the first with lambda*s_{i*} <= p, above which jobs are served as
// they arrive (C_{i*+1} = lambda*s_{i*}) and s_{i*+1} = 0.
func centralFluid(lambda, p float64) (mean float64, top int) {
	if p <= 0 {
		return lambda / (1 - lambda), -1
	}
	s := 1.0
	for i := 1; lambda*s > p+1e-12 && i < 1<<20; i++ {
		s = (lambda*s - p) / (1 - p)
		mean += s
		top = i
	}
	return mean, top
}

// centralSim is the n-station system.
type centralSim struct {
	q     []int32   // queue length per station
	byLen [][]int32 // stations holding exactly L jobs, L >= 1
	pos   []int32   // index of a station in its byLen list
	maxL  int
	total int64
}

func (s *centralSim) move(i int32, to int32) {
	from := s.q[i]
	if from > 0 {
		l := s.byLen[from]
		j := s.pos[i]
		last := l[len(l)-1]
		l[j], s.pos[last] = last, j
		s.byLen[from] = l[:len(l)-1]
	}
	if to > 0 {
		for int(to) >= len(s.byLen) {
			s.byLen = append(s.byLen, nil)
		}
		s.pos[i] = int32(len(s.byLen[to]))
		s.byLen[to] = append(s.byLen[to], i)
	}
	s.q[i] = to
	s.total += int64(to - from)
	if int(to) > s.maxL {
		s.maxL = int(to)
	}
	for s.maxL > 0 && len(s.byLen[s.maxL]) == 0 {
		s.maxL--
	}
}

// simulateCentral runs n stations at load lambda with central share p for
// warm time units, then returns the time-average queue per station over
// meas more (time in units of a station's total service time).
func simulateCentral(n int, lambda, p, warm, meas float64, r *rand.Rand, progress func(float64)) (meanQ, meanTop float64) {
	s := &centralSim{q: make([]int32, n), pos: make([]int32, n), byLen: make([][]int32, 2)}
	rate := float64(n) * (1 + lambda)
	end := warm + meas
	var area, topArea float64
	t := 0.0
	next := 0.0
	for t < end {
		dt := r.ExpFloat64() / rate
		if t+dt > warm {
			d := t + dt - max(t, warm)
			area += float64(s.total) * d
			topArea += float64(s.maxL) * d
		}
		t += dt
		if t >= next {
			progress(min(1, t/end))
			next += end / 100
		}
		u := r.Float64() * (1 + lambda)
		switch {
		case u < lambda:
			i := int32(r.IntN(n))
			s.move(i, s.q[i]+1)
		case u < 1+lambda-p:
			if i := int32(r.IntN(n)); s.q[i] > 0 {
				s.move(i, s.q[i]-1)
			}
		default:
			if s.maxL > 0 {
				l := s.byLen[s.maxL]
				i := l[len(l)-1]
				s.move(i, s.q[i]-1)
			}
		}
	}
	return area / meas / float64(n), topArea / meas
}

// centralTimes picks the warm-up and the measured window (time units)
// unless given. p = 0: 3 and 60 relaxation times of M/M/1,
// 1/(1-sqrt(lambda))^2. p > 0: the backlog fills at a rate that falls with
// the idle share, about 1-lambda, so the warm-up is 2L/(1-lambda) for the
// fluid mean queue L (TestCentralSteadyState checks that doubling it
// changes nothing).
func centralTimes(c Config, p float64) (warm, meas float64) {
	warm, meas = c.WarmupTime, c.MeasureTime
	if p <= 0 {
		tau := 1 / math.Pow(1-math.Sqrt(c.Load), 2)
		if warm <= 0 {
			warm = 3 * tau
		}
		if meas <= 0 {
			meas = 60 * tau // the time average's variance is ~ 2rho(1+rho)/((1-rho)^4 T)
		}
		return warm, meas
	}
	fluid, _ := centralFluid(c.Load, p)
	if warm <= 0 {
		warm = max(200, 2*fluid/(1-c.Load))
	}
	if meas <= 0 {
		meas = max(1000, warm) // the backlog's correlation time is about L/(1-lambda) too
	}
	return warm, meas
}

func runCentralModel(c Config, progress func(float64)) (Metrics, error) {
	lambda := c.Load
	if lambda <= 0 || lambda >= 1 {
		return nil, fmt.Errorf("load %g not in (0,1)", lambda)
	}
	shares := centralShares(c)
	m := Metrics{"load": lambda, "inv_gap": 1 / (1 - lambda), "mm1_queue": lambda / (1 - lambda)}
	for k, p := range shares {
		if p < 0 || p >= 1 {
			return nil, fmt.Errorf("central share %g not in [0,1)", p)
		}
		warm, meas := centralTimes(c, p)
		n := c.Nodes
		if p == 0 {
			// independent M/M/1 queues: fewer stations, same statistics
			// per event
			n = min(n, c.Stations0)
		}
		events := float64(n) * (1 + lambda) * (warm + meas)
		name := func(base string) string { return centralName(c, base, p) }
		fluid, top := centralFluid(lambda, p)
		m[name("fluid_queue")] = fluid
		m[name("fluid_top_level")] = float64(top)
		if p > 0 {
			m[name("log_asymptote")] = math.Log(1/(1-lambda)) / math.Log(1/(1-p))
		}
		if events > c.MaxEvents {
			// too long for one point: say so (null in results) instead of
			// reporting an unconverged number
			m[name("mean_queue")] = math.NaN()
			m[name("rel_error")] = math.NaN()
			m[name("events")] = events
			continue
		}
		r := NewRand(c.Seed, 0xce+uint64(k))
		q, topSim := simulateCentral(n, lambda, p, warm, meas, r, func(f float64) {
			progress((float64(k) + f) / float64(len(shares)))
		})
		m[name("mean_queue")] = q
		m[name("max_queue_mean")] = topSim
		m[name("rel_error")] = (q - fluid) / fluid
		m[name("events")] = events
	}
	return m, nil
}
