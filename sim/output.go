package sim

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// MetricNames lists every metric name of the points, sorted.
func (r *Results) MetricNames() []string {
	set := map[string]bool{}
	for _, p := range r.Points {
		for k := range p.Metrics {
			set[k] = true
		}
	}
	var out []string
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// SweepKey is the swept field, or "" when the study has a single point.
func (r *Results) SweepKey() string {
	if r.Config.Sweep == nil {
		return ""
	}
	return r.Config.Sweep.Key
}

func fmtValue(v any) string {
	switch x := v.(type) {
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

func fmtMetric(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "null"
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

// WriteCSV writes one row per point: index, the sweep value, every metric.
func (r *Results) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	names := r.MetricNames()
	var keys []string
	for _, k := range r.Config.SweepKeys() {
		if !slices.Contains(names, k) { // else the metric column already holds it
			keys = append(keys, k)
		}
	}
	head := append([]string{"point"}, keys...)
	if err := cw.Write(append(head, names...)); err != nil {
		return err
	}
	for _, p := range r.Points {
		row := []string{strconv.Itoa(p.Index)}
		for _, k := range keys {
			row = append(row, fmtValue(p.Params[k]))
		}
		for _, n := range names {
			if v, ok := p.Metrics[n]; ok {
				row = append(row, fmtMetric(v))
			} else {
				row = append(row, "null") // not measured at this point
			}
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteLongCSV writes one row per point and metric ("long form"): point,
// the swept keys, metric, value (null when missing).
func (r *Results) WriteLongCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	keys := r.Config.SweepKeys()
	if err := cw.Write(append(append([]string{"point"}, keys...), "metric", "value")); err != nil {
		return err
	}
	names := r.MetricNames()
	for _, p := range r.Points {
		head := []string{strconv.Itoa(p.Index)}
		for _, k := range keys {
			head = append(head, fmtValue(p.Params[k]))
		}
		for _, n := range names {
			v, ok := p.Metrics[n]
			if !ok {
				continue
			}
			if err := cw.Write(append(slices.Clone(head), n, fmtMetric(v))); err != nil {
				return err
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

// WriteDir writes results.json, points.csv, points_long.csv and each plot
// (SVG and PNG) into dir (created if needed) and returns the files written.
func (r *Results) WriteDir(dir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("sim: output: %w", err)
	}
	var files []string
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("sim: output: %w", err)
	}
	write := func(name string, data []byte) error {
		p := filepath.Join(dir, name)
		if err := writeAtomic(p, data); err != nil {
			return err
		}
		files = append(files, p)
		return nil
	}
	if err := write("results.json", append(b, '\n')); err != nil {
		return files, err
	}
	var csvb strings.Builder
	if err := r.WriteCSV(&csvb); err != nil {
		return files, err
	}
	if err := write("points.csv", []byte(csvb.String())); err != nil {
		return files, err
	}
	var longb strings.Builder
	if err := r.WriteLongCSV(&longb); err != nil {
		return files, err
	}
	if err := write("points_long.csv", []byte(longb.String())); err != nil {
		return files, err
	}
	pf, err := r.WritePlots(dir)
	return append(files, pf...), err
}

// WritePlots writes each of the model's plots into dir as
// plot_NAME.svg and plot_NAME.png and returns the files written.
func (r *Results) WritePlots(dir string) ([]string, error) {
	md, ok := models[r.Config.Model]
	if !ok {
		return nil, fmt.Errorf("sim: plot: unknown model %q", r.Config.Model)
	}
	plots := md.plots
	if md.plotsFor != nil {
		plots = md.plotsFor(r.Config)
	}
	var files []string
	for _, ps := range plots {
		out, err := r.plotFiles(ps)
		if err != nil {
			return files, err
		}
		for _, format := range plotFormats {
			name := "plot_" + ps.Name + "." + format
			b, ok := out[name]
			if !ok {
				continue
			}
			p := filepath.Join(dir, name)
			if err := writeAtomic(p, b); err != nil {
				return files, err
			}
			files = append(files, p)
		}
	}
	return files, nil
}

func writeAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return fmt.Errorf("sim: output: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("sim: output: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sim: output: %w", err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("sim: output: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sim: output: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("sim: output: %w", err)
	}
	return nil
}

// Summary writes a short table of the model's key metrics, one row per point.
func (r *Results) Summary(w io.Writer) {
	cols := models[r.Config.Model].summary
	if f := models[r.Config.Model].summaryFor; f != nil {
		cols = f(r.Config)
	}
	if len(cols) == 0 {
		cols = r.MetricNames()
	}
	var keys []string
	for _, k := range r.Config.SweepKeys() {
		if !slices.Contains(cols, k) {
			keys = append(keys, k)
		}
	}
	head := append([]string{}, keys...)
	head = append(head, cols...)
	rows := [][]string{head}
	for _, p := range r.Points {
		var row []string
		for _, k := range keys {
			row = append(row, fmtValue(p.Params[k]))
		}
		for _, c := range cols {
			if v, ok := p.Metrics[c]; ok && !math.IsNaN(v) {
				row = append(row, strconv.FormatFloat(v, 'g', 4, 64))
			} else {
				row = append(row, "-")
			}
		}
		rows = append(rows, row)
	}
	width := make([]int, len(head))
	for _, row := range rows {
		for i, s := range row {
			width[i] = max(width[i], len(s))
		}
	}
	for _, row := range rows {
		for i, s := range row {
			fmt.Fprintf(w, "%*s  ", width[i], s)
		}
		fmt.Fprintln(w)
	}
}

// ReadResults loads a results.json.
func ReadResults(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sim: results: %w", err)
	}
	var r Results
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("sim: results: %s: %w", path, err)
	}
	return &r, nil
}

// Merge combines the results of shards of one study (same config, seed
// and version) into one, points in index order.
func Merge(parts []*Results) (*Results, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("sim: merge: nothing to merge")
	}
	base := parts[0]
	cfg0, _ := json.Marshal(base.Config)
	out := *base
	out.Shard = ""
	out.Points = nil
	seen := map[int]bool{}
	for _, p := range parts {
		cfg, _ := json.Marshal(p.Config)
		if string(cfg) != string(cfg0) || p.Seed != base.Seed || p.Version != base.Version || p.Total != base.Total {
			return nil, fmt.Errorf("sim: merge: results differ in config, seed or version")
		}
		for _, pt := range p.Points {
			if seen[pt.Index] {
				return nil, fmt.Errorf("sim: merge: point %d twice", pt.Index)
			}
			seen[pt.Index] = true
			out.Points = append(out.Points, pt)
		}
	}
	slices.SortFunc(out.Points, func(a, b Point) int { return a.Index - b.Index })
	if len(out.Points) != out.Total {
		return &out, fmt.Errorf("sim: merge: %d of %d points present", len(out.Points), out.Total)
	}
	return &out, nil
}
