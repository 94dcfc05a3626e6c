package sim

import (
	"fmt"
	"math"
	"math/rand/v2"
)

func init() {
	models["churn"] = modelDef{bytesPerNode: 500, run: runChurnModel, plotsFor: churnPlots,
		summary: []string{"alive_share", "leave_within_2h", "success", "timeouts_mean", "latency_ms_p50", "latency_ms_p95", "bg_bytes_per_node_s"}}
}

func refreshValues(c Config) []float64 {
	if len(c.RefreshValues) > 0 {
		return c.RefreshValues
	}
	return []float64{c.RefreshS}
}

func churnPlots(c Config) []PlotSpec {
	var succ, lat, to, bg, names []string
	for _, r := range refreshValues(c) {
		sfx := fmt.Sprintf("_refresh_%gs", r)
		succ = append(succ, "success"+sfx)
		lat = append(lat, "latency_ms_p95"+sfx)
		to = append(to, "timeouts_mean"+sfx)
		bg = append(bg, "bg_bytes_per_node_s"+sfx)
		names = append(names, "bucket refresh every "+fmtSeconds(r))
	}
	return []PlotSpec{
		{Name: "success", Title: "Lookup success under churn", YLabel: "share of lookups that found the target", Y: succ, Legend: names, LogX: true},
		{Name: "latency", Title: "Lookup latency (p95) under churn", YLabel: "latency p95 (ms)", Y: lat, Legend: names, LogX: true},
		{Name: "timeouts", Title: "Stale contacts hit per lookup", YLabel: "RPC timeouts per lookup (mean)", Y: to, Legend: names, LogX: true},
		{Name: "background", Title: "Background traffic per node (bucket refresh)", YLabel: "bytes per node per second", Y: bg, Legend: names, LogX: true},
	}
}

// fmtSeconds writes a duration in s as the largest whole unit: 90 s, 10 min, 1 h.
func fmtSeconds(s float64) string {
	switch {
	case s >= 86400 && math.Mod(s, 86400) == 0:
		return fmt.Sprintf("%g d", s/86400)
	case s >= 3600 && math.Mod(s, 3600) == 0:
		return fmt.Sprintf("%g h", s/3600)
	case s >= 60 && math.Mod(s, 60) == 0:
		return fmt.Sprintf("%g min", s/60)
	}
	return fmt.Sprintf("%g s", s)
}

// sessions draws on-line session lengths (seconds) from the configured
// distribution, with the configured median, and off-line gaps from an
// exponential whose mean gives the configured availability.
type sessions struct {
	weibull      bool
	shape, scale float64 // Weibull; exponential uses scale as the mean
	offMean      float64
}

func newSessions(c Config) sessions {
	s := sessions{weibull: c.Churn == "weibull", shape: c.WeibullShape}
	var onMean float64
	if s.weibull {
		s.scale = c.SessionMedianS / math.Pow(math.Ln2, 1/s.shape)
		onMean = s.scale * math.Gamma(1+1/s.shape)
	} else {
		s.scale = c.SessionMedianS / math.Ln2
		onMean = s.scale
	}
	s.offMean = onMean * (1 - c.Availability) / c.Availability
	return s
}

func (s sessions) on(r *rand.Rand) float64 {
	if s.weibull {
		return s.scale * math.Pow(r.ExpFloat64(), 1/s.shape)
	}
	return s.scale * r.ExpFloat64()
}

func (s sessions) off(r *rand.Rand) float64 { return s.offMean * r.ExpFloat64() }

// cdf is the share of sessions shorter than t seconds.
func (s sessions) cdf(t float64) float64 {
	if s.weibull {
		return 1 - math.Exp(-math.Pow(t/s.scale, s.shape))
	}
	return 1 - math.Exp(-t/s.scale)
}

// gammaRand draws a Gamma(shape, 1) variate (Marsaglia and Tsang; shape >= 1).
func gammaRand(r *rand.Rand, shape float64) float64 {
	d := shape - 1.0/3
	c := 1 / math.Sqrt(9*d)
	for {
		x := r.NormFloat64()
		v := 1 + c*x
		if v <= 0 {
			continue
		}
		v = v * v * v
		u := r.Float64()
		if math.Log(u) < 0.5*x*x+d-d*v+d*math.Log(v) {
			return d * v
		}
	}
}

// straddling draws the length of the session in progress at a fixed time
// (length-biased: density x f(x) / E[L], the inspection paradox) and splits
// it uniformly into age and residual. For Weibull(a, scale) the
// length-biased law is scale * G^(1/a), G ~ Gamma(1 + 1/a); for the
// exponential, Gamma(2) times the mean.
func (s sessions) straddling(r *rand.Rand) (age, residual float64) {
	var l float64
	if s.weibull {
		l = s.scale * math.Pow(gammaRand(r, 1+1/s.shape), 1/s.shape)
	} else {
		l = s.scale * (r.ExpFloat64() + r.ExpFloat64())
	}
	u := r.Float64()
	return u * l, (1 - u) * l
}

// churner flips nodes up and down; it is the Handler of their transitions.
type churner struct {
	n   *Net
	s   sessions
	r   *rand.Rand
	eng *Engine
	// onDown, if set, is called when a node goes down.
	onDown func(i int32, now int64)
}

// startChurn puts every node in its equilibrium state at now: up with
// probability availability; an up node is in a session drawn length-biased
// (straddling: a node alive at t has the equilibrium residual life, not a
// fresh session), preceded by an off gap; a down node is in an off gap
// (exponential: residual and age exponential) preceded by a session. Its
// next transition ends the current state.
func startChurn(n *Net, c Config, eng *Engine, seed uint64) *churner {
	ch := &churner{n: n, s: newSessions(c), r: NewRand(seed, 5), eng: eng}
	N := n.N()
	n.up, n.down = make([]int64, N), make([]int64, N)
	n.RefreshNs = int64(c.RefreshS * 1e9)
	now := float64(eng.Now()) / 1e9
	for i := range N {
		var rem float64
		if ch.r.Float64() < c.Availability {
			age, res := ch.s.straddling(ch.r)
			rem = res
			n.up[i] = int64((now - age) * 1e9)
			n.down[i] = n.up[i] - int64(ch.s.off(ch.r)*1e9) - 1
		} else {
			age, res := ch.s.off(ch.r), ch.s.off(ch.r)
			rem = res
			n.down[i] = int64((now - age) * 1e9)
			n.up[i] = n.down[i] - int64(ch.s.on(ch.r)*1e9) - 1
		}
		eng.At(eng.Now()+int64(rem*1e9), ch, int64(i))
	}
	return ch
}

func (ch *churner) Fire(now, arg int64) {
	i := int32(arg)
	var d float64
	if ch.n.Alive(i) {
		ch.n.down[i] = now
		d = ch.s.off(ch.r)
		if ch.onDown != nil {
			ch.onDown(i, now)
		}
	} else {
		ch.n.up[i] = now
		d = ch.s.on(ch.r)
	}
	ch.eng.At(now+int64(max(d, 1e-3)*1e9), ch, arg)
}

// nonEmptyBuckets averages, over a sample of nodes, how many buckets hold
// at least one node: the refresh lookups one node does per interval.
func nonEmptyBuckets(n *Net, samples int) float64 {
	tot := 0
	for s := range samples {
		x := int32(int(hash3(n.Seed, 0xb0c, uint64(s)) % uint64(n.N())))
		for j := 0; j < 256; j++ {
			if lo, hi := n.Space.Subtree(n.Space.Keys[x], j); hi-lo <= 1 {
				break
			}
			if lo, hi := n.Space.Bucket(n.Space.Keys[x], j); hi > lo {
				tot++
			}
		}
	}
	return float64(tot) / float64(samples)
}

// runChurnModel runs the same lookups under churn once per refresh
// interval. Contacts that died since their holder's last refresh are stale
// (each costs an RPC timeout); nodes that joined since are not yet known.
// Background cost: each node refreshes every non-empty bucket once per
// interval with a lookup of the measured RPC count, and answers as many
// RPCs as it sends, each rpc_bytes.
func runChurnModel(c Config, progress func(float64)) (Metrics, error) {
	m := Metrics{"session_median_s": c.SessionMedianS}
	sess := newSessions(c)
	m["leave_within_2h"] = sess.cdf(7200)
	rv := refreshValues(c)
	var base *Net
	headline := 0 // the refresh interval reported without suffix
	for i, rs := range rv {
		if rs == c.RefreshS {
			headline = i
		}
	}
	for i, rs := range rv {
		cc := c
		cc.RefreshS = rs
		n := NewNet(c.Nodes, c.K, c.Seed)
		n.ServiceNs = int64(c.ServiceUs * 1e3)
		n.DialRTTs = c.DialRTTs
		eng := &Engine{}
		startChurn(n, cc, eng, c.Seed)
		n.Oldest = c.TablePolicy == "oldest"
		if c.EvictOnFailure {
			n.EnableEviction()
		}
		st := runLookups(cc, n, eng, c.Paths, c.Seed, func(f float64) { progress((float64(i) + f) / float64(len(rv))) })
		sfx := fmt.Sprintf("_refresh_%gs", rs)
		sub := Metrics{}
		st.metrics("", sub)
		for k, v := range sub {
			m[k+sfx] = v
			if i == headline {
				m[k] = v
			}
		}
		if base == nil {
			base = n
			alive := 0
			for j := range n.N() {
				if n.Alive(int32(j)) {
					alive++
				}
			}
			m["alive_share"] = float64(alive) / float64(n.N())
			m["buckets"] = nonEmptyBuckets(n, 64)
		}
		bg := m["buckets"] * sub["rpcs_mean"] * c.RPCBytes * 2 / rs
		m["bg_bytes_per_node_s"+sfx] = bg
		if i == headline {
			m["bg_bytes_per_node_s"] = bg
		}
	}
	return m, nil
}
