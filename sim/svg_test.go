package sim

import (
	"fmt"
	"math"
	"strings"
	"testing"
)

func TestTickFormat(t *testing.T) {
	for _, c := range []struct {
		v    float64
		sci  bool
		want label
	}{
		{1e4, true, label{"10", "4"}},
		{2e5, true, label{"2×10", "5"}},
		{1e-3, true, label{"10", "−3"}},
		{5e3, true, label{"5×10", "3"}},
		{math.Copysign(0, -1), false, label{"0", ""}},
		{0.25, false, label{"0.25", ""}},
		{2000, false, label{"2000", ""}},
	} {
		if got := fmtTick(c.v, c.sci); got != c.want {
			t.Errorf("fmtTick(%g, %v) = %+v, want %+v", c.v, c.sci, got, c.want)
		}
	}
}

// labelled returns the labelled ticks of a layout and fails when two
// labels overlap along the axis.
func labelled(t *testing.T, a axis, length float64, horizontal bool) []tick {
	t.Helper()
	var out []tick
	lastEnd := math.Inf(-1)
	for _, tk := range a.layout(length, horizontal) {
		if tk.label.text == "" {
			continue
		}
		p, half := a.pos(tk.v)*length, fontTick/2
		if horizontal {
			half = tk.label.width() / 2
		}
		if p-half < lastEnd {
			t.Errorf("axis %+v: label %q%s overlaps the one before", a, tk.label.text, tk.label.sup)
		}
		lastEnd = p + half
		out = append(out, tk)
	}
	return out
}

func TestAxisLabelsDoNotOverlap(t *testing.T) {
	// The lookup preset's x axis: 10^3..10^6 nodes, margins added.
	x := newAxis([]float64{1e3, 3e3, 1e4, 3e4, 1e5, 3e5, 1e6}, true, 0.05)
	got := labelled(t, x, plotW, true)
	var s []string
	for _, tk := range got {
		s = append(s, tk.label.text+"^"+tk.label.sup)
	}
	if strings.Join(s, " ") != "10^3 10^4 10^5 10^6" {
		t.Errorf("decade labels %v, want 10^3 10^4 10^5 10^6", s)
	}
	minor := 0
	for _, tk := range x.layout(plotW, true) {
		if tk.label.text == "" {
			minor++
		}
	}
	if minor < 3*8-2 {
		t.Errorf("%d unlabelled minor ticks on three decades", minor)
	}
	for _, c := range []struct {
		a          axis
		horizontal bool
		min        int
	}{
		{newAxis([]float64{1e3, 1e4, 1e5}, true, 0.05), true, 3},
		{newAxis([]float64{600, 86400}, true, 0.05), true, 2},
		{newAxis([]float64{211, 1036}, true, 0.05), false, 4}, // less than a decade: 200..1000 labelled
		{newAxis([]float64{211, 1036}, true, 0.05), true, 3},
		{newAxis([]float64{2900, 60000}, true, 0.05), false, 3},
		{newAxis([]float64{1e-4, 1}, true, 0.05), false, 4},
		{newAxis([]float64{0, 3e6}, false, 0.05), true, 3},
		{newAxis([]float64{0.991, 1}, false, 0.1), false, 4},
		{newAxis([]float64{1, 1}, false, 0.05), false, 2},
	} {
		if got := labelled(t, c.a, map[bool]float64{true: plotW, false: plotH}[c.horizontal], c.horizontal); len(got) < c.min {
			t.Errorf("axis %+v: %d labels, want at least %d", c.a, len(got), c.min)
		}
	}
	if a := newAxis([]float64{1, 1}, false, 0.05); a.lo > 0 || a.hi < 1 || a.hi > 1.1 {
		t.Errorf("constant share 1: axis %g..%g, want about 0..1", a.lo, a.hi)
	}
}

func TestScatterLabelsDoNotOverlap(t *testing.T) {
	// The triangle preset's efficiency/security plot: three designs at
	// nearly the same place, two of them on the same pixel.
	pts := [][2]float64{{560, 100}, {520, 100}, {200, 100}, {204, 100}, {170, 100}, {480, 300}}
	texts := []string{"kad-plain", "kad-disjoint", "rooted-1", "rooted-3", "rooted-12", "far"}
	gp, gt := groupPoints(pts, texts)
	if len(gp) != 5 || gt[2] != "rooted-1, rooted-3" {
		t.Fatalf("groups %v %q", gp, gt)
	}
	area := box{80, 50, 620, 400}
	ls := placeLabels(gp, gt, area)
	for i, a := range ls {
		if !a.b.inside(area) {
			t.Errorf("label %q at %+v leaves the plot", gt[i], a.b)
		}
		for j, p := range gp {
			m := box{p[0] - markerR, p[1] - markerR, p[0] + markerR, p[1] + markerR}
			if a.b.overlaps(m) {
				t.Errorf("label %q covers the marker of %q", gt[i], gt[j])
			}
		}
		for j := range i {
			if a.b.overlaps(ls[j].b) {
				t.Errorf("labels %q and %q overlap", gt[i], gt[j])
			}
		}
	}
}

func TestPlotSVG(t *testing.T) {
	r := &Results{Config: Config{Model: "lookup", Sweep: &Sweep{Key: "nodes"}}}
	for i, n := range []float64{1e3, 1e4, 1e5, 1e6} {
		r.Points = append(r.Points, Point{Index: i, Params: map[string]any{"nodes": n},
			Metrics: Metrics{"a": math.Log2(n), "b": math.Log2(n) + 1}})
	}
	svg, ok := r.plotSVG(PlotSpec{Name: "t", Title: "A title", YLabel: "y", Y: []string{"a", "b"}, Legend: []string{"first", "second"}, LogX: true})
	if !ok {
		t.Fatal("not plotted")
	}
	for _, want := range []string{`10<tspan baseline-shift="super"`, ">first<", ">second<", "network size (nodes)", "stroke-dasharray", ">A title<"} {
		if !strings.Contains(svg, want) {
			t.Errorf("svg lacks %q", want)
		}
	}
	if strings.Contains(svg, "x10^") {
		t.Error("svg still has x10^ labels")
	}
	// Categories on an axis the spec wants logarithmic: every point shows.
	c := &Results{Config: Config{Model: "churn", Sweep: &Sweep{Key: "churn"}}}
	for i, d := range []string{"weibull", "exponential"} {
		c.Points = append(c.Points, Point{Index: i, Params: map[string]any{"churn": d}, Metrics: Metrics{"a": 0.99}})
	}
	svg, _ = c.plotSVG(PlotSpec{Name: "t", Title: "t", YLabel: "y", Y: []string{"a"}, LogX: true})
	if n := strings.Count(svg, "<circle"); n != 2 || !strings.Contains(svg, ">weibull<") {
		t.Errorf("categorical plot: %d markers, want 2", n)
	}
	// A title too long for one line wraps instead of leaving the image.
	long := strings.Repeat("very long title ", 12)
	svg, _ = r.plotSVG(PlotSpec{Name: "t", Title: long, YLabel: "y", Y: []string{"a"}, LogX: true})
	var w float64
	fmt.Sscanf(svg[strings.Index(svg, `width="`)+7:], "%g", &w)
	for _, line := range strings.Split(svg, "\n") {
		if strings.Contains(line, "very long") && textW(line[strings.Index(line, ">")+1:strings.LastIndex(line, "<")], fontTitle) > w {
			t.Errorf("title line wider than the image (%g px): %s", w, line)
		}
	}
}
