package sim

import (
	"fmt"
	"html"
	"math"
	"strconv"
	"strings"
)

// label is a tick label: text, then an optional superscript (the exponent
// of 10^e).
type label struct{ text, sup string }

func (l label) width() float64 { return textW(l.text, fontTick) + textW(l.sup, fontSup) }

func (l label) svg() string {
	s := html.EscapeString(l.text)
	if l.sup != "" {
		s += fmt.Sprintf(`<tspan baseline-shift="super" font-size="%g">%s</tspan>`, fontSup, html.EscapeString(l.sup))
	}
	return s
}

// fmtTick formats v plainly (0.25, 500, 2000) or, when sci, as m×10^e with
// a superscript exponent (10⁴, 2×10⁵).
func fmtTick(v float64, sci bool) label {
	if v == 0 {
		return label{text: "0"} // also for -0
	}
	if !sci {
		return label{text: strconv.FormatFloat(v, 'f', -1, 64)}
	}
	sign := ""
	if v < 0 {
		sign, v = "−", -v
	}
	e := math.Floor(math.Log10(v) + 1e-9)
	m, _ := strconv.ParseFloat(strconv.FormatFloat(v/math.Pow(10, e), 'g', 6, 64), 64)
	exp := strings.Replace(strconv.Itoa(int(e)), "-", "−", 1)
	if m == 1 {
		return label{text: sign + "10", sup: exp}
	}
	return label{text: sign + strconv.FormatFloat(m, 'g', -1, 64) + "×10", sup: exp}
}

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

// ticks returns the values that get a grid line: powers of ten (and 2x, 5x
// when few) on a log axis, a 1-2-5 step otherwise.
func (a axis) ticks() []float64 {
	var out []float64
	if a.log {
		mult := []float64{1, 2, 5}
		if math.Log10(a.hi/a.lo) > 3 {
			mult = mult[:1] // many decades: powers of ten only
		}
		return a.logMults(mult)
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

// logMults returns m·10^e within the axis for every m of mult.
func (a axis) logMults(mult []float64) []float64 {
	var out []float64
	for e := math.Floor(math.Log10(a.lo)); e <= math.Ceil(math.Log10(a.hi)); e++ {
		for _, m := range mult {
			v, _ := strconv.ParseFloat(strconv.FormatFloat(m*math.Pow(10, e), 'g', 12, 64), 64)
			if v >= a.lo*0.999 && v <= a.hi*1.001 {
				out = append(out, v)
			}
		}
	}
	return out
}

// tick is one mark on an axis: grid ticks get a grid line, minor ones only
// a short mark and a faint line; a tick with an empty label is unlabelled.
type tick struct {
	v     float64
	grid  bool
	label label
}

// layout chooses the ticks of an axis drawn over length px (horizontal:
// labels side by side, else stacked) and labels as many as fit without
// overlapping. A log axis labels its decades (10³, 10⁴, with unlabelled
// 2..9 minor ticks between them); when it shows fewer than three decades it
// also labels 2x and 5x, then other multiples, while they fit.
func (a axis) layout(length float64, horizontal bool) []tick {
	extent := func(l label) float64 { // half the room a label needs along the axis
		if horizontal {
			return l.width()/2 + 5
		}
		return fontTick/2 + 2
	}
	px := func(v float64) float64 { return a.pos(v) * length }
	var out []tick
	if !a.log {
		vs := a.ticks()
		sci := false
		for _, v := range vs {
			if av := math.Abs(v); av >= 1e5 || (av != 0 && av < 1e-3) {
				sci = true
			}
		}
		labels := make([]label, len(vs))
		for i, v := range vs {
			labels[i] = fmtTick(v, sci)
		}
		every := 1 // label every n-th tick when neighbours would touch
		for ; every < len(vs); every++ {
			ok := true
			for i := every; i < len(vs); i += every {
				if px(vs[i])-px(vs[i-every]) < extent(labels[i])+extent(labels[i-every]) {
					ok = false
				}
			}
			if ok {
				break
			}
		}
		for i, v := range vs {
			t := tick{v: v, grid: true}
			if i%every == 0 {
				t.label = labels[i]
			}
			out = append(out, t)
		}
		return out
	}
	grid := map[float64]bool{}
	for _, v := range a.ticks() {
		grid[v] = true
	}
	all := a.logMults([]float64{1, 2, 3, 4, 5, 6, 7, 8, 9})
	tiers := [][]float64{a.logMults([]float64{1})}
	if len(tiers[0]) < 3 {
		tiers = append(tiers, a.logMults([]float64{2, 5}), a.logMults([]float64{3, 4, 6, 7, 8, 9}))
	}
	chosen := map[float64]bool{}
	var picked []float64
	for ti, tier := range tiers {
		if ti == 2 && len(picked) >= 4 {
			break // enough labels already
		}
		for _, v := range tier {
			picked = append(picked, v)
			chosen[v] = true
		}
	}
	sci := false
	for _, v := range picked {
		if v >= 1e4 || v < 1e-3 {
			sci = true
		}
	}
	// Accept labels in priority order while they do not overlap.
	type span struct{ lo, hi float64 }
	var taken []span
	labelled := map[float64]label{}
	for _, v := range picked {
		l := fmtTick(v, sci)
		s := span{px(v) - extent(l), px(v) + extent(l)}
		free := true
		for _, o := range taken {
			if s.lo < o.hi && o.lo < s.hi {
				free = false
				break
			}
		}
		if free {
			taken = append(taken, s)
			labelled[v] = l
		}
	}
	for _, v := range all {
		out = append(out, tick{v: v, grid: grid[v] || chosen[v], label: labelled[v]})
	}
	return out
}

// newAxis spans vals with a margin (a share of the span, in log space on
// a log axis) on both sides, so that markers and their labels never sit on
// the frame. A linear axis includes zero when that costs little.
func newAxis(vals []float64, log bool, margin float64) axis {
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
		pad := math.Pow(hi/lo, margin)
		return axis{lo / pad, hi * pad, true}
	}
	if lo > 0 && lo < hi/3 {
		lo = 0 // include zero when it costs little
	}
	switch {
	case lo == hi && lo > 0: // a constant (a share of 1, say): from zero to it
		lo = 0
	case lo == hi && lo < 0:
		hi = 0
	case lo == hi:
		hi = 1
	}
	pad := (hi - lo) * margin
	return axis{lo - pad, hi + pad, false}
}
