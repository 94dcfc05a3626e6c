package sim

import (
	"bytes"
	"image/png"
	"math"
	"strings"
	"testing"

	"gonum.org/v1/plot"
)

// hasErrorBars reports whether a figure draws error bars.
func hasErrorBars(f *figure) bool { return f.bars > 0 }

func TestPlotFiles(t *testing.T) {
	r := &Results{Config: Config{Model: "lookup", Sweep: &Sweep{Key: "nodes"}}}
	for i, n := range []float64{1e3, 1e4, 1e5, 1e6} {
		r.Points = append(r.Points, Point{Index: i, Params: map[string]any{"nodes": n},
			Metrics: Metrics{"a": math.Log2(n), "a_ci95": 0.3, "b": math.Log2(n) + 1}})
	}
	ps := PlotSpec{Name: "t", Title: "A title", YLabel: "y", Y: []string{"a", "b"}, Legend: []string{"first", "second"}, LogX: true}
	f, ok := r.plotFigure(ps)
	if !ok {
		t.Fatal("not plotted")
	}
	if _, log := f.p.X.Scale.(plot.LogScale); !log {
		t.Error("x axis not logarithmic")
	}
	if !hasErrorBars(f) {
		t.Error("no error bars for a metric with a _ci95")
	}
	if f.legW <= 0 {
		t.Error("two series and no legend")
	}
	files, err := r.plotFiles(ps)
	if err != nil {
		t.Fatal(err)
	}
	svg := string(files["plot_t.svg"])
	for _, want := range []string{"<svg", ">first<", ">second<", "network size (nodes)", ">A title<", "stroke-dasharray"} {
		if !strings.Contains(svg, want) {
			t.Errorf("svg lacks %q", want)
		}
	}
	img, err := png.Decode(bytes.NewReader(files["plot_t.png"]))
	if err != nil {
		t.Fatalf("png: %v", err)
	}
	if b := img.Bounds(); b.Dx() < 400 || b.Dy() < 250 {
		t.Errorf("png %v", b)
	}
	again, _ := r.plotFiles(ps)
	if !bytes.Equal(again["plot_t.svg"], files["plot_t.svg"]) || !bytes.Equal(again["plot_t.png"], files["plot_t.png"]) {
		t.Error("the same results give different plots")
	}

	// Categories on an axis the spec wants logarithmic: every point shows,
	// on a nominal axis.
	c := &Results{Config: Config{Model: "churn", Sweep: &Sweep{Key: "churn"}}}
	for i, d := range []string{"weibull", "exponential"} {
		c.Points = append(c.Points, Point{Index: i, Params: map[string]any{"churn": d}, Metrics: Metrics{"a": 0.99}})
	}
	ss, cats := c.plotData(PlotSpec{Name: "t", Y: []string{"a"}, LogX: true})
	if len(ss) != 1 || len(ss[0].x) != 2 || len(cats) != 2 {
		t.Errorf("categorical plot: series %v, categories %v", ss, cats)
	}
	cf, err := c.plotFiles(PlotSpec{Name: "t", Title: "t", YLabel: "y", Y: []string{"a"}, LogX: true})
	if err != nil || !strings.Contains(string(cf["plot_t.svg"]), ">weibull<") {
		t.Errorf("categorical plot: %v", err)
	}
	// A long title wraps.
	lf, _ := r.plotFigure(PlotSpec{Name: "t", Title: strings.Repeat("very long title ", 12), YLabel: "y", Y: []string{"a"}})
	if !strings.Contains(lf.p.Title.Text, "\n") {
		t.Error("long title not wrapped")
	}
	// Nothing to plot.
	if _, ok := r.plotFigure(PlotSpec{Name: "t", Y: []string{"missing"}}); ok {
		t.Error("plotted a missing metric")
	}
}

func TestLogTicks(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{{1e4, "10⁴"}, {2e5, "2×10⁵"}, {1e-4, "10⁻⁴"}, {1000, "1000"}, {0.25, "0.25"}} {
		if got := fmtPow10(c.v); got != c.want {
			t.Errorf("fmtPow10(%g) = %q, want %q", c.v, got, c.want)
		}
	}
	var labels []string
	for _, tk := range (logTicks{}).Ticks(900, 1.1e6) {
		if tk.Label != "" && tk.Value >= 900 && tk.Value <= 1.1e6 { // gonum's axis clips the others
			labels = append(labels, tk.Label)
		}
	}
	if strings.Join(labels, " ") != "1000 10⁴ 10⁵ 10⁶" {
		t.Errorf("decade labels %v", labels)
	}
}

func TestLinTicks(t *testing.T) {
	for _, c := range []struct {
		lo, hi float64
		want   string
	}{
		{0, 0.5, "0.0 0.1 0.2 0.3 0.4 0.5"},
		{83, 2260, "500 1000 1500 2000"},
		{0.35, 1.0, "0.4 0.5 0.6 0.7 0.8 0.9 1.0"},
	} {
		var labels []string
		for _, tk := range (linTicks{}).Ticks(c.lo, c.hi) {
			if tk.Label != "" {
				labels = append(labels, tk.Label)
			}
		}
		if got := strings.Join(labels, " "); got != c.want {
			t.Errorf("ticks %g..%g: %s, want %s", c.lo, c.hi, got, c.want)
		}
	}
}
