package sim

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

const (
	svgW, svgH                 = 720.0, 440.0
	padL, padR, padT, padB     = 80.0, 190.0, 50.0, 60.0
	plotW, plotH               = svgW - padL - padR, svgH - padT - padB
	markerR                    = 3.5
	fontAxis, fontTick, fontTi = 14, 11, 16
)

type axis struct {
	lo, hi float64
	log    bool
}

func (a axis) pos(v float64) float64 {
	if a.log {
		v, lo, hi := math.Log10(v), math.Log10(a.lo), math.Log10(a.hi)
		return (v - lo) / (hi - lo)
	}
	return (v - a.lo) / (a.hi - a.lo)
}

// ticks returns tick values: powers of ten (and 2x, 5x when few) on a log
// axis, a 1-2-5 step otherwise.
func (a axis) ticks() []float64 {
	var out []float64
	if a.log {
		mult := []float64{1, 2, 5}
		if math.Log10(a.hi/a.lo) > 3 {
			mult = mult[:1] // many decades: powers of ten only
		}
		for e := math.Floor(math.Log10(a.lo)); e <= math.Ceil(math.Log10(a.hi)); e++ {
			for _, m := range mult {
				v := m * math.Pow(10, e)
				if v >= a.lo*0.999 && v <= a.hi*1.001 {
					out = append(out, v)
				}
			}
		}
		return out
	}
	span := a.hi - a.lo
	step := math.Pow(10, math.Floor(math.Log10(span/5)))
	for _, m := range []float64{1, 2, 5, 10} {
		if span/(step*m) <= 7 {
			step *= m
			break
		}
	}
	for v := math.Ceil(a.lo/step) * step; v <= a.hi+step*1e-9; v += step {
		t, _ := strconv.ParseFloat(strconv.FormatFloat(math.Round(v/step)*step, 'g', 12, 64), 64)
		out = append(out, t)
	}
	return out
}

func newAxis(vals []float64, log bool) axis {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, v := range vals {
		if log && v <= 0 {
			continue
		}
		lo, hi = math.Min(lo, v), math.Max(hi, v)
	}
	if math.IsInf(lo, 0) {
		lo, hi = 0, 1
	}
	if log {
		if lo == hi {
			lo, hi = lo/2, hi*2
		}
		return axis{lo, hi, true}
	}
	if lo > 0 && lo < hi/3 {
		lo = 0 // include zero when it costs little
	}
	if lo == hi {
		lo, hi = lo-1, hi+1
	}
	pad := (hi - lo) * 0.05
	if lo != 0 {
		lo -= pad
	}
	return axis{lo, hi + pad, false}
}

func tickLabel(v float64) string {
	if av := math.Abs(v); av >= 1e4 && av == math.Trunc(av) {
		e := math.Floor(math.Log10(av))
		if m := v / math.Pow(10, e); m == math.Trunc(m) {
			return fmt.Sprintf("%gx10^%g", m, e)
		}
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// plotSVG renders one plot spec; false when the data cannot be plotted
// (no numeric x values, or none of the metrics present).
func (r *Results) plotSVG(ps PlotSpec) (string, bool) {
	type series struct {
		name string
		x, y []float64
		lbl  []string
	}
	var ss []series
	var xs, ys []float64
	var cats []string // categorical x labels
	key := r.SweepKey()
	for _, p := range r.Points {
		if _, ok := p.Params[key].(float64); !ok {
			cats = append(cats, fmtValue(p.Params[key]))
		}
	}
	xOf := func(i int, p Point) (float64, bool) {
		if ps.Kind == "scatter" {
			v, ok := p.Metrics[ps.X]
			return v, ok
		}
		if len(cats) > 0 {
			return float64(i), true
		}
		v, ok := p.Params[key].(float64)
		return v, ok
	}
	for _, yn := range ps.Y {
		s := series{name: yn}
		for i, p := range r.Points {
			x, okx := xOf(i, p)
			y, oky := p.Metrics[yn]
			if !okx || !oky || y == -1 || (ps.LogX && x <= 0) || (ps.LogY && y <= 0) {
				continue
			}
			s.x, s.y = append(s.x, x), append(s.y, y)
			s.lbl = append(s.lbl, fmtValue(p.Params[key]))
		}
		if len(s.x) > 0 {
			ss = append(ss, s)
			xs, ys = append(xs, s.x...), append(ys, s.y...)
		}
	}
	if len(ss) == 0 {
		return "", false
	}
	ax, ay := newAxis(xs, ps.LogX && len(cats) == 0), newAxis(ys, ps.LogY)
	if len(cats) > 0 && ps.Kind != "scatter" {
		ax = axis{-0.5, float64(len(cats)) - 0.5, false}
	}
	X := func(v float64) float64 { return padL + ax.pos(v)*plotW }
	Y := func(v float64) float64 { return padT + plotH - ay.pos(v)*plotH }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif">`+"\n", svgW, svgH, svgW, svgH)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<text x="%g" y="28" font-size="%d" text-anchor="middle">%s</text>`+"\n", padL+plotW/2, fontTi, html.EscapeString(ps.Title))
	fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="#444"/>`+"\n", padL, padT, plotW, plotH)
	// x ticks
	if len(cats) > 0 && ps.Kind != "scatter" {
		for i, c := range cats {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="%d" text-anchor="middle">%s</text>`+"\n", X(float64(i)), padT+plotH+18, fontTick, html.EscapeString(c))
		}
	} else {
		for _, t := range ax.ticks() {
			x := X(t)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="#ddd"/>`+"\n", x, padT, x, padT+plotH)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="%d" text-anchor="middle">%s</text>`+"\n", x, padT+plotH+18, fontTick, tickLabel(t))
		}
	}
	for _, t := range ay.ticks() {
		y := Y(t)
		fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#ddd"/>`+"\n", padL, y, padL+plotW, y)
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" font-size="%d" text-anchor="end">%s</text>`+"\n", padL-6, y+4, fontTick, tickLabel(t))
	}
	xl := ps.XLabel
	if xl == "" {
		xl = key
		if ps.Kind == "scatter" {
			xl = ps.X
		}
	}
	fmt.Fprintf(&b, `<text x="%g" y="%g" font-size="%d" text-anchor="middle">%s</text>`+"\n", padL+plotW/2, svgH-15, fontAxis, html.EscapeString(xl))
	fmt.Fprintf(&b, `<text x="20" y="%g" font-size="%d" text-anchor="middle" transform="rotate(-90 20 %g)">%s</text>`+"\n", padT+plotH/2, fontAxis, padT+plotH/2, html.EscapeString(ps.YLabel))
	for i, s := range ss {
		col := palette[i%len(palette)]
		if ps.Kind != "scatter" && len(s.x) > 1 {
			var pts []string
			for j := range s.x {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", X(s.x[j]), Y(s.y[j])))
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(pts, " "), col)
		}
		for j := range s.x {
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="%g" fill="%s"/>`+"\n", X(s.x[j]), Y(s.y[j]), markerR, col)
			if ps.Kind == "scatter" {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="%d">%s</text>`+"\n", X(s.x[j])+6, Y(s.y[j])-6, fontTick, html.EscapeString(s.lbl[j]))
			}
		}
		ly := padT + 10 + float64(i)*20
		fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="%s" stroke-width="3"/>`+"\n", padL+plotW+12, ly, padL+plotW+32, ly, col)
		fmt.Fprintf(&b, `<text x="%g" y="%g" font-size="%d">%s</text>`+"\n", padL+plotW+38, ly+4, fontTick, html.EscapeString(s.name))
	}
	b.WriteString("</svg>\n")
	return b.String(), true
}
