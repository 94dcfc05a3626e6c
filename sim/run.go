package sim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Metrics of one point, by name.
type Metrics map[string]float64

// PlotSpec describes one plot of a model: Y metrics against the sweep
// key (Kind "line") or, for Kind "scatter", each point placed at (X, Y[0])
// and labelled with its sweep value.
type PlotSpec struct {
	Name   string
	Title  string
	XLabel string // default: a name for the sweep key (keyLabels)
	YLabel string
	X      string // scatter only: metric on the x axis
	Y      []string
	Legend []string // legend names of Y, in order (default: the metric names)
	Kind   string
	LogX   bool
	LogY   bool
	// YCensored, when > 0, is a y value that stands for "more than was
	// tried": such points get an up arrow and YCensoredText in their label.
	YCensored     float64
	YCensoredText string
}

type modelDef struct {
	// bytesPerNode is the peak memory per node of one point, measured
	// (/usr/bin/time at 10^5-10^6 nodes), for the memory check of Run.
	bytesPerNode float64
	// bytesPerActive, when > 0, is the measured peak memory of each member
	// a model simulates event by event (Config.Active, at most Nodes).
	bytesPerActive float64
	// run computes one point; progress gets the done fraction (0..1).
	run   func(c Config, progress func(float64)) (Metrics, error)
	plots []PlotSpec
	// plotsFor, when set, replaces plots (for metric names that depend on
	// the config).
	plotsFor func(c Config) []PlotSpec
	summary  []string // metrics shown in the terminal table
	// summaryFor, when set, replaces summary.
	summaryFor func(c Config) []string
}

var models = map[string]modelDef{}

// Models lists the model names.
func Models() []string {
	var out []string
	for m := range models {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}

// Point is the outcome of one sweep point.
type Point struct {
	Index   int            `json:"index"`
	Params  map[string]any `json:"params,omitempty"` // the sweep key and its value
	Metrics Metrics        `json:"metrics"`
}

// Results is what results.json holds: enough to cite and rerun a study.
type Results struct {
	Tool    string `json:"tool"`
	Version string `json:"version"`
	Preset  string `json:"preset,omitempty"`
	Seed    uint64 `json:"seed"`
	Config  Config `json:"config"`
	Shard   string `json:"shard,omitempty"` // "i/n" when only some points ran
	Total   int    `json:"total_points"`
	// Interrupted: the run was stopped before every point completed.
	Interrupted bool    `json:"interrupted,omitempty"`
	Points      []Point `json:"points"`
}

// Options control a run.
type Options struct {
	Jobs     int       // points run in parallel (0: number of CPUs)
	Shard    int       // run only points with index % Shards == Shard
	Shards   int       // 0 or 1: all points
	Progress io.Writer // progress bar (nil: quiet)
	Version  string
	// Context, when cancelled (SIGINT, SIGTERM), stops the run: Run
	// returns at once with the points completed so far (Interrupted set)
	// and ErrInterrupted; points still running are abandoned.
	Context context.Context
}

// ErrInterrupted: the run was stopped; the results hold the completed
// points.
var ErrInterrupted = errors.New("sim: interrupted; results hold the completed points")

// Run computes every point (of this shard) of c, in parallel.
func Run(c Config, o Options) (*Results, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	pts, err := c.Points()
	if err != nil {
		return nil, err
	}
	md := models[c.Model]
	combos := c.Combos()
	shards := max(1, o.Shards)
	var todo []int
	for i := range pts {
		if i%shards == o.Shard {
			todo = append(todo, i)
		}
	}
	res := &Results{Tool: "kadlan sim", Version: ResolveVersion(o.Version), Preset: c.Preset, Seed: c.Seed, Config: c,
		Total: len(pts), Points: make([]Point, len(todo))}
	if shards > 1 {
		res.Shard = fmt.Sprintf("%d/%d", o.Shard, shards)
	}
	jobs := o.Jobs
	if jobs <= 0 {
		jobs = runtime.NumCPU()
	}
	// A point too big for this machine says so instead of swapping; points
	// run in parallel only as far as they fit together.
	if avail := memAvailable(); avail > 0 && md.bytesPerNode > 0 {
		var need []float64
		for _, i := range todo {
			b := pointBytes(md, pts[i])
			if b > avail {
				return nil, fmt.Errorf("sim: point %d (%d nodes) needs about %.1f GiB, this machine has %.1f GiB available: run it on a bigger machine or with fewer nodes",
					i, pts[i].Nodes, b/(1<<30), avail/(1<<30))
			}
			need = append(need, b)
		}
		slices.Sort(need)
		slices.Reverse(need)
		for jobs > 1 {
			var sum float64
			for _, b := range need[:min(jobs, len(need))] {
				sum += b
			}
			if sum <= avail {
				break
			}
			jobs--
		}
	}
	bar := newProgress(o.Progress, len(todo))
	ctx := o.Context
	if ctx == nil {
		ctx = context.Background()
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  int
		done  = make([]bool, len(todo))
		out   = make([]Point, len(todo))
	)
	for range min(jobs, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if next >= len(todo) || first != nil || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				j := next
				next++
				mu.Unlock()
				i := todo[j]
				m, err := runReplicates(md, pts[i], func(f float64) { bar.set(j, f) })
				mu.Lock()
				if err != nil && first == nil {
					first = fmt.Errorf("sim: point %d: %w", i, err)
				}
				mu.Unlock()
				p := Point{Index: i, Metrics: clean(m)}
				if combos != nil {
					p.Params = map[string]any{}
					for _, kv := range combos[i] {
						p.Params[kv.Key] = kv.Value
					}
				}
				mu.Lock()
				out[j], done[j] = p, true
				mu.Unlock()
				bar.set(j, 1)
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-ctx.Done():
	}
	bar.finish()
	mu.Lock()
	defer mu.Unlock()
	if ctx.Err() != nil && slices.Contains(done, false) {
		res.Points = nil
		for j, ok := range done {
			if ok {
				res.Points = append(res.Points, out[j])
			}
		}
		res.Interrupted = true
		return res, ErrInterrupted
	}
	copy(res.Points, out)
	return res, first
}

// pointBytes estimates the peak memory of one point: 64 MiB of runtime
// and tables, plus 1.5 times the model's measured bytes per node (and per
// active member).
func pointBytes(md modelDef, c Config) float64 {
	active := c.Nodes
	if c.Active > 0 {
		active = min(c.Active, c.Nodes)
	}
	return 64<<20 + 1.5*(md.bytesPerNode*float64(c.Nodes)+md.bytesPerActive*float64(active))
}

// memAvailable is MemAvailable of /proc/meminfo in bytes (0: unknown).
func memAvailable() float64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "MemAvailable:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

// runReplicates runs a point once per seed (seeds replicates: seed,
// seed+1, ...) and returns the mean of each metric over the replicates
// where it is not missing, with its 95% confidence half-width (Student t)
// as <metric>_ci95.
func runReplicates(md modelDef, c Config, progress func(float64)) (Metrics, error) {
	n := max(1, c.Seeds)
	if n == 1 {
		return md.run(c, progress)
	}
	vals := map[string][]float64{}
	for r := range n {
		rc := c
		rc.Seed = c.Seed + uint64(r)
		m, err := md.run(rc, func(f float64) { progress((float64(r) + f) / float64(n)) })
		if err != nil {
			return nil, fmt.Errorf("seed %d: %w", rc.Seed, err)
		}
		for k, v := range m {
			if !math.IsNaN(v) && !math.IsInf(v, 0) {
				vals[k] = append(vals[k], v)
			} else if _, ok := vals[k]; !ok {
				vals[k] = nil
			}
		}
	}
	out := Metrics{"replicates": float64(n)}
	for k, x := range vals {
		out[k] = mean(x)
		out[k+"_ci95"] = ci95(x)
	}
	return out, nil
}

// ci95 is the half-width of the 95% confidence interval of the mean of x
// (Student t; NaN with fewer than 2 values).
func ci95(x []float64) float64 {
	if len(x) < 2 {
		return math.NaN()
	}
	mu := mean(x)
	var ss float64
	for _, v := range x {
		ss += (v - mu) * (v - mu)
	}
	sd := math.Sqrt(ss / float64(len(x)-1))
	// t_{0.975, df} for df = 1..30, then the normal quantile
	t := []float64{12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
		2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042}
	q := 1.960
	if df := len(x) - 1; df <= len(t) {
		q = t[df-1]
	}
	return q * sd / math.Sqrt(float64(len(x)))
}

// clean makes every missing value (NaN, infinities: a quantile of no
// samples, a share of no pairs, a point not run) NaN, which results.json
// and points.csv write as null.
func clean(m Metrics) Metrics {
	for k, v := range m {
		if math.IsInf(v, 0) {
			m[k] = math.NaN()
		}
	}
	return m
}

// MarshalJSON writes the metrics by name, missing values as null.
func (m Metrics) MarshalJSON() ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b []byte
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		kb, _ := json.Marshal(k)
		b = append(b, kb...)
		b = append(b, ':')
		if v := m[k]; math.IsNaN(v) || math.IsInf(v, 0) {
			b = append(b, "null"...)
		} else {
			b = strconv.AppendFloat(b, v, 'g', -1, 64)
		}
	}
	return append(b, '}'), nil
}

// UnmarshalJSON reads metrics, null as a missing value (NaN).
func (m *Metrics) UnmarshalJSON(b []byte) error {
	var raw map[string]*float64
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*m = Metrics{}
	for k, v := range raw {
		if v == nil {
			(*m)[k] = math.NaN()
		} else {
			(*m)[k] = *v
		}
	}
	return nil
}

// progress draws a one-line bar: points done and the running ones' share.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	frac  []float64
	last  time.Time
	start time.Time
	every time.Duration
	lines bool // newline-terminated updates instead of a redrawn bar
}

func newProgress(w io.Writer, n int) *progress {
	p := &progress{w: w, frac: make([]float64, n), start: time.Now(), every: 200 * time.Millisecond}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice == 0 {
			// not a terminal (a log file, a batch system): one line per
			// update, every 10 s
			p.lines, p.every = true, 10*time.Second
		}
	}
	return p
}

func (p *progress) set(i int, f float64) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.frac[i] = f
	if time.Since(p.last) < p.every && (f < 1 || p.lines) {
		return
	}
	p.last = time.Now()
	p.draw()
}

func (p *progress) draw() {
	var sum float64
	done := 0
	for _, f := range p.frac {
		sum += f
		if f >= 1 {
			done++
		}
	}
	tot := sum / float64(max(1, len(p.frac)))
	const width = 30
	n := int(tot * width)
	el := time.Since(p.start)
	eta := "?"
	if tot > 0.01 {
		eta = (time.Duration(float64(el)/tot) - el).Round(time.Second).String()
	}
	if p.lines {
		fmt.Fprintf(p.w, "%3.0f%%  %d/%d points  elapsed %s  eta %s\n", 100*tot, done, len(p.frac), el.Round(time.Second), eta)
		return
	}
	fmt.Fprintf(p.w, "\r[%s%s] %3.0f%%  %d/%d points  %s  eta %s ", strings.Repeat("=", n), strings.Repeat(" ", width-n),
		100*tot, done, len(p.frac), el.Round(time.Second), eta)
}

func (p *progress) finish() {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	p.draw()
	if !p.lines {
		fmt.Fprintln(p.w)
	}
	p.mu.Unlock()
}

// stats helpers

func mean(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	var s float64
	for _, v := range x {
		s += v
	}
	return s / float64(len(x))
}

// quantile of x (sorted in place), q in [0,1], nearest rank.
func quantile(x []float64, q float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	if !sort.Float64sAreSorted(x) {
		sort.Float64s(x)
	}
	i := int(math.Ceil(q*float64(len(x)))) - 1
	return x[max(0, min(i, len(x)-1))]
}

// gini coefficient of non-negative loads.
func gini(load []float64) float64 {
	x := slices.Clone(load)
	sort.Float64s(x)
	var cum, sum float64
	for i, v := range x {
		cum += float64(i+1) * v
		sum += v
	}
	n := float64(len(x))
	if sum == 0 || n == 0 {
		return 0
	}
	return 2*cum/(n*sum) - (n+1)/n
}

// topShare is the share of the total carried by the busiest fraction f.
func topShare(load []float64, f float64) float64 {
	x := slices.Clone(load)
	sort.Sort(sort.Reverse(sort.Float64Slice(x)))
	k := max(1, int(math.Ceil(f*float64(len(x)))))
	var top, sum float64
	for i, v := range x {
		if i < k {
			top += v
		}
		sum += v
	}
	if sum == 0 {
		return 0
	}
	return top / sum
}
