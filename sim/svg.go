package sim

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strings"
	"unicode/utf8"
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"}

// Series are told apart by colour, dash pattern and marker shape, so that
// lines which lie on top of each other (two methods that both reach every
// node) stay visible and the plot survives greyscale printing.
var (
	dashes  = []string{"", "7 4", "2 3", "10 3 2 3", "4 2", "1 4", "12 4", "6 2 2 2 2 2"}
	markers = []string{"circle", "square", "triangle", "diamond", "down", "circle", "square", "triangle"}
)

const (
	plotW, plotH = 480.0, 320.0
	markerR      = 3.5
	tickLen      = 5.0
	// font sizes (px)
	fontAxis, fontTick, fontTitle, fontLegend, fontSup = 14.0, 11.0, 16.0, 11.0, 8.0
	// charW is the mean advance of a glyph of DejaVu Sans (the usual
	// sans-serif) per px of font size, used to keep labels apart.
	charW       = 0.6
	legendTextW = 240.0 // legend text wider than this wraps
)

func textW(s string, size float64) float64 { return float64(utf8.RuneCountInString(s)) * size * charW }

// wrap breaks s at spaces into lines no wider than w px at the given size.
func wrap(s string, w, size float64) []string {
	var lines []string
	cur := ""
	for _, word := range strings.Fields(s) {
		if cur != "" && textW(cur+" "+word, size) > w {
			lines = append(lines, cur)
			cur = word
			continue
		}
		if cur != "" {
			cur += " "
		}
		cur += word
	}
	if cur != "" || len(lines) == 0 {
		lines = append(lines, cur)
	}
	return lines
}

// keyLabels names the usual sweep keys on an x axis.
var keyLabels = map[string]string{
	"nat_mix.symmetric":    "weight of symmetric NATs in nat_mix (the others weigh 0.8)",
	"birthday_probing":     "birthday probing",
	"central_share":        "p",
	"load":                 "load lambda",
	"nodes":                "network size (nodes)",
	"k":                    "k (contacts per bucket)",
	"alpha":                "alpha (RPCs in flight)",
	"paths":                "disjoint paths d",
	"sybil_share":          "share of Sybil nodes",
	"eclipse_share":        "share of adversaries with IDs next to the targets",
	"adversary":            "adversary",
	"session_median_s":     "median session length (s)",
	"refresh_s":            "bucket refresh interval (s)",
	"evict_on_failure":     "evict on failed RPC",
	"dial_rtts":            "handshake round trips before an RPC to a new contact",
	"table_policy":         "bucket policy",
	"public_share":         "share of public (non-NATed) nodes",
	"connect_rate":         "offered load (new connections per second, network-wide)",
	"roots":                "number of roots R",
	"root_capacity":        "root capacity (x a node's)",
	"service_us":           "service time per request (µs)",
	"design":               "design",
	"community":            "community size",
	"lookup_rate":          "lookups per second",
	"availability":         "availability",
	"weibull_shape":        "Weibull shape",
	"rpc_timeout_ms":       "RPC timeout (ms)",
	"attacker_cpu_s":       "attacker budget (CPU-s)",
	"keepalive_bytes_s":    "keepalive bytes per second",
	"root_capacity_shares": "root capacity share",
}

// marker draws one point marker of the given shape.
func marker(b *strings.Builder, shape string, x, y float64, col string) {
	r := markerR
	const outline = `stroke="white" stroke-width="0.8"`
	switch shape {
	case "square":
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s" %s/>`+"\n", x-r*0.9, y-r*0.9, 1.8*r, 1.8*r, col, outline)
	case "triangle":
		fmt.Fprintf(b, `<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s" %s/>`+"\n", x, y-1.2*r, x-1.1*r, y+0.8*r, x+1.1*r, y+0.8*r, col, outline)
	case "down":
		fmt.Fprintf(b, `<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s" %s/>`+"\n", x, y+1.2*r, x-1.1*r, y-0.8*r, x+1.1*r, y-0.8*r, col, outline)
	case "diamond":
		fmt.Fprintf(b, `<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s" %s/>`+"\n", x, y-1.25*r, x+1.25*r, y, x, y+1.25*r, x-1.25*r, y, col, outline)
	case "up-arrow": // a lower bound: the value is above this point
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s" stroke-width="1.5"/>`+"\n", x, y, x, y-14, col)
		fmt.Fprintf(b, `<polygon points="%.1f,%.1f %.1f,%.1f %.1f,%.1f" fill="%s"/>`+"\n", x, y-18, x-3.5, y-12, x+3.5, y-12, col)
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="%g" fill="%s" %s/>`+"\n", x, y, r, col, outline)
	default:
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="%g" fill="%s" %s/>`+"\n", x, y, r, col, outline)
	}
}

// plotSVG renders one plot spec; false when the data cannot be plotted
// (no numeric x values, or none of the metrics present).
func (r *Results) plotSVG(ps PlotSpec) (string, bool) {
	type series struct {
		name, col, dash, shape string
		x, y                   []float64
		ci                     []float64 // 95% confidence half-widths (0: none)
		lbl                    []string
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
	scatter := ps.Kind == "scatter"
	xOf := func(i int, p Point) (float64, bool) {
		if scatter || ps.X != "" {
			v, ok := p.Metrics[ps.X]
			return v, ok
		}
		if len(cats) > 0 {
			return float64(i), true
		}
		v, ok := p.Params[key].(float64)
		return v, ok
	}
	// A grid plots one series per metric and combination of the further
	// keys' values, named after them.
	var gridKeys []string
	if ks := r.Config.SweepKeys(); len(ks) > 1 {
		gridKeys = ks[1:]
	}
	groupOf := func(p Point) string {
		var parts []string
		for _, k := range gridKeys {
			l := k
			if kl, ok := keyLabels[k]; ok {
				l = kl
			}
			parts = append(parts, l+" = "+fmtValue(p.Params[k]))
		}
		return strings.Join(parts, ", ")
	}
	var groups []string
	for _, p := range r.Points {
		if g := groupOf(p); !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	for i, yn := range ps.Y {
		for gi, grp := range groups {
			si := i*len(groups) + gi
			s := series{name: yn, col: palette[si%len(palette)], dash: dashes[si%len(dashes)], shape: markers[si%len(markers)]}
			if i < len(ps.Legend) && ps.Legend[i] != "" {
				s.name = ps.Legend[i]
			}
			if grp != "" {
				s.name += " (" + grp + ")"
			}
			for j, p := range r.Points {
				if groupOf(p) != grp {
					continue
				}
				x, okx := xOf(j, p)
				y, oky := p.Metrics[yn]
				if !okx || !oky || math.IsNaN(y) || math.IsNaN(x) || (ps.LogX && len(cats) == 0 && x <= 0) || (ps.LogY && y <= 0) {
					continue
				}
				s.x, s.y = append(s.x, x), append(s.y, y)
				ci := p.Metrics[yn+"_ci95"]
				if math.IsNaN(ci) || ci < 0 || (ps.LogY && y-ci <= 0) {
					ci = 0
				}
				s.ci = append(s.ci, ci)
				if ci > 0 {
					ys = append(ys, y-ci, y+ci)
				}
				l := fmtValue(p.Params[key])
				if ps.YCensored > 0 && y == ps.YCensored {
					l += " (" + ps.YCensoredText + ")"
				}
				s.lbl = append(s.lbl, l)
			}
			if len(s.x) > 0 {
				ss = append(ss, s)
				xs, ys = append(xs, s.x...), append(ys, s.y...)
			}
		}
	}
	if len(ss) == 0 {
		return "", false
	}
	margin := 0.05
	if scatter {
		margin = 0.1 // room for point labels
	}
	categorical := len(cats) > 0 && !scatter
	ax, ay := newAxis(xs, ps.LogX && len(cats) == 0, margin), newAxis(ys, ps.LogY, margin)
	if categorical {
		ax = axis{-0.5, float64(len(cats)) - 0.5, false}
	}
	xticks, yticks := ax.layout(plotW, true), ay.layout(plotH, false)

	// Margins from what they hold: y tick labels and the (wrapped) y
	// label on the left, the legend on the right, the title on top.
	xl := ps.XLabel
	if xl == "" {
		xl = key
		if l, ok := keyLabels[key]; ok {
			xl = l
		}
		if scatter {
			xl = ps.X
		}
	}
	yw := 0.0
	for _, t := range yticks {
		yw = math.Max(yw, t.label.width())
	}
	yLines := wrap(ps.YLabel, plotH, fontAxis)
	padL := 14 + float64(len(yLines))*(fontAxis+4) + 6 + yw + tickLen + 4
	legend := len(ss) > 1
	var legLines [][]string
	legW := 0.0
	if legend {
		for _, s := range ss {
			ls := wrap(s.name, legendTextW, fontLegend)
			legLines = append(legLines, ls)
			for _, l := range ls {
				legW = math.Max(legW, textW(l, fontLegend))
			}
		}
	}
	padR := 24.0
	if legend {
		padR = 16 + 30 + legW + 12
	}
	svgW := math.Ceil(padL + plotW + padR)
	titleLines := wrap(ps.Title, svgW-24, fontTitle)
	padT := 14 + float64(len(titleLines))*(fontTitle+4) + 12
	xLines := wrap(xl, plotW+padR-10, fontAxis)
	padB := tickLen + 18 + 10 + float64(len(xLines))*(fontAxis+4) + 6
	stagger := false // categories too wide for their slot: two rows
	for _, c := range cats {
		if categorical && textW(c, fontTick) > plotW/float64(len(cats))-6 {
			stagger = true
		}
	}
	if stagger {
		padB += fontTick + 3
	}
	svgH := math.Ceil(padT + plotH + padB)

	X := func(v float64) float64 { return padL + ax.pos(v)*plotW }
	Y := func(v float64) float64 { return padT + plotH - ay.pos(v)*plotH }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" viewBox="0 0 %g %g" font-family="sans-serif">`+"\n", svgW, svgH, svgW, svgH)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	for i, l := range titleLines {
		fmt.Fprintf(&b, `<text x="%g" y="%g" font-size="%g" text-anchor="middle">%s</text>`+"\n", svgW/2, 14+fontTitle+float64(i)*(fontTitle+4), fontTitle, html.EscapeString(l))
	}
	// grid, then ticks and their labels
	bottom := padT + plotH
	if categorical {
		for i, c := range cats {
			y := bottom + tickLen + 14
			if stagger && i%2 == 1 {
				y += fontTick + 3
			}
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="#444"/>`+"\n", X(float64(i)), bottom, X(float64(i)), bottom+tickLen)
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="%g" text-anchor="middle">%s</text>`+"\n", X(float64(i)), y, fontTick, html.EscapeString(c))
		}
	} else {
		for _, t := range xticks {
			x := X(t.v)
			col := "#f0f0f0"
			if t.grid {
				col = "#d8d8d8"
			}
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="%s"/>`+"\n", x, padT, x, bottom, col)
			l := tickLen
			if !t.grid && t.label.text == "" {
				l = tickLen * 0.6
			}
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%g" x2="%.1f" y2="%g" stroke="#444"/>`+"\n", x, bottom, x, bottom+l)
			if t.label.text != "" {
				fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="%g" text-anchor="middle">%s</text>`+"\n", x, bottom+tickLen+14, fontTick, t.label.svg())
			}
		}
	}
	for _, t := range yticks {
		y := Y(t.v)
		col := "#f0f0f0"
		if t.grid {
			col = "#d8d8d8"
		}
		fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="%s"/>`+"\n", padL, y, padL+plotW, y, col)
		l := tickLen
		if !t.grid && t.label.text == "" {
			l = tickLen * 0.6
		}
		fmt.Fprintf(&b, `<line x1="%g" y1="%.1f" x2="%g" y2="%.1f" stroke="#444"/>`+"\n", padL-l, y, padL, y)
		if t.label.text != "" {
			fmt.Fprintf(&b, `<text x="%g" y="%.1f" font-size="%g" text-anchor="end">%s</text>`+"\n", padL-tickLen-3, y+4, fontTick, t.label.svg())
		}
	}
	fmt.Fprintf(&b, `<rect x="%g" y="%g" width="%g" height="%g" fill="none" stroke="#444"/>`+"\n", padL, padT, plotW, plotH)
	// axis labels
	xly := bottom + tickLen + 18 + 10 + fontAxis
	if stagger {
		xly += fontTick + 3
	}
	for i, l := range xLines {
		fmt.Fprintf(&b, `<text x="%g" y="%g" font-size="%g" text-anchor="middle">%s</text>`+"\n", padL+plotW/2, xly+float64(i)*(fontAxis+4), fontAxis, html.EscapeString(l))
	}
	for i, l := range yLines {
		x := 14 + fontAxis + float64(i)*(fontAxis+4) - 2
		fmt.Fprintf(&b, `<text x="%g" y="%g" font-size="%g" text-anchor="middle" transform="rotate(-90 %g %g)">%s</text>`+"\n", x, padT+plotH/2, fontAxis, x, padT+plotH/2, html.EscapeString(l))
	}
	// data
	for _, s := range ss {
		if !scatter && !categorical && len(s.x) > 1 { // categories are not a continuum: markers only
			var pts []string
			for j := range s.x {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", X(s.x[j]), Y(s.y[j])))
			}
			dash := ""
			if s.dash != "" {
				dash = fmt.Sprintf(` stroke-dasharray="%s"`, s.dash)
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), s.col, dash)
		}
		for j := range s.x {
			if ci := s.ci[j]; ci > 0 { // error bar
				x, y0, y1 := X(s.x[j]), Y(s.y[j]-ci), Y(s.y[j]+ci)
				fmt.Fprintf(&b, `<path d="M%.1f,%.1fV%.1fM%.1f,%.1fH%.1fM%.1f,%.1fH%.1f" stroke="%s" stroke-width="1.2" fill="none"/>`+"\n",
					x, y0, y1, x-3, y0, x+3, x-3, y1, x+3, s.col)
			}
			shape := s.shape
			if ps.YCensored > 0 && s.y[j] == ps.YCensored {
				shape = "up-arrow"
			}
			marker(&b, shape, X(s.x[j]), Y(s.y[j]), s.col)
		}
	}
	if scatter {
		var pts [][2]float64
		var texts []string
		for _, s := range ss {
			for j := range s.x {
				pts = append(pts, [2]float64{X(s.x[j]), Y(s.y[j])})
				texts = append(texts, s.lbl[j])
			}
		}
		pts, texts = groupPoints(pts, texts)
		for i, p := range placeLabels(pts, texts, box{padL + 2, padT + 2, padL + plotW - 2, bottom - 2}) {
			if p.lead {
				// from the marker to the nearest corner of the label
				lx := p.b.x0
				if p.anchor == "end" {
					lx = p.b.x1
				}
				ly := p.b.y0 // label below the point: its top edge
				if p.b.y1 < pts[i][1] {
					ly = p.b.y1
				}
				fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#888" stroke-width="0.8"/>`+"\n", pts[i][0], pts[i][1], lx, ly)
			}
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" font-size="%g" text-anchor="%s" fill="#222">%s</text>`+"\n", p.x, p.y, fontTick, p.anchor, html.EscapeString(texts[i]))
		}
	}
	// legend, outside the plot so that it never covers data
	if legend {
		y := padT + 8
		lx := padL + plotW + 16
		for i, s := range ss {
			dash := ""
			if s.dash != "" {
				dash = fmt.Sprintf(` stroke-dasharray="%s"`, s.dash)
			}
			if !scatter && !categorical {
				fmt.Fprintf(&b, `<line x1="%g" y1="%g" x2="%g" y2="%g" stroke="%s" stroke-width="2"%s/>`+"\n", lx, y, lx+26, y, s.col, dash)
			}
			marker(&b, s.shape, lx+13, y, s.col)
			for k, l := range legLines[i] {
				fmt.Fprintf(&b, `<text x="%g" y="%g" font-size="%g">%s</text>`+"\n", lx+32, y+4+float64(k)*(fontLegend+3), fontLegend, html.EscapeString(l))
			}
			y += float64(len(legLines[i]))*(fontLegend+3) + 8
		}
	}
	b.WriteString("</svg>\n")
	return b.String(), true
}
