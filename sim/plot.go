package sim

import (
	"bytes"
	"fmt"
	"image/color"
	"math"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Plots are drawn by gonum.org/v1/plot and written as SVG and PNG.

// plotFormats are the formats each plot is written in.
var plotFormats = []string{"svg", "png"}

// Series are told apart by colour, dash pattern and marker shape, so that
// lines which lie on top of each other (two methods that both reach every
// node) stay visible and the plot survives greyscale printing.
var (
	palette = []color.RGBA{
		{0x1f, 0x77, 0xb4, 0xff}, {0xd6, 0x27, 0x28, 0xff}, {0x2c, 0xa0, 0x2c, 0xff}, {0xff, 0x7f, 0x0e, 0xff},
		{0x94, 0x67, 0xbd, 0xff}, {0x8c, 0x56, 0x4b, 0xff}, {0xe3, 0x77, 0xc2, 0xff}, {0x17, 0xbe, 0xcf, 0xff},
	}
	dashes = [][]vg.Length{nil, {7, 4}, {2, 3}, {10, 3, 2, 3}, {4, 2}, {1, 4}, {12, 4}, {6, 2, 2, 2, 2, 2}}
	shapes = []draw.GlyphDrawer{draw.CircleGlyph{}, draw.BoxGlyph{}, draw.PyramidGlyph{}, draw.RingGlyph{},
		draw.CrossGlyph{}, draw.PlusGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}}
)

const (
	plotW, plotH = 16 * vg.Centimeter, 10 * vg.Centimeter // without the legend
	glyphR       = 3 * vg.Millimeter / 2
)

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

// series is one line (or set of markers) of a plot.
type series struct {
	name string
	x, y []float64
	ci   []float64 // 95% confidence half-widths (0: none)
	lbl  []string  // the sweep value of each point (scatter labels)
}

// plotData collects the series of a spec; nil when nothing can be
// plotted. cats are the sweep values when they are not numbers (then x is
// the point's index).
func (r *Results) plotData(ps PlotSpec) (ss []series, cats []string) {
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
	logX := ps.LogX && len(cats) == 0
	for i, yn := range ps.Y {
		for _, grp := range groups {
			s := series{name: yn}
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
				if !okx || !oky || math.IsNaN(y) || math.IsNaN(x) || math.IsInf(x, 0) || math.IsInf(y, 0) ||
					(logX && x <= 0) || (ps.LogY && y <= 0) {
					continue
				}
				ci := p.Metrics[yn+"_ci95"]
				if math.IsNaN(ci) || math.IsInf(ci, 0) || ci < 0 || (ps.LogY && y-ci <= 0) {
					ci = 0
				}
				l := fmtValue(p.Params[key])
				if ps.YCensored > 0 && y == ps.YCensored {
					l += " (" + ps.YCensoredText + ")"
				}
				s.x, s.y, s.ci, s.lbl = append(s.x, x), append(s.y, y), append(s.ci, ci), append(s.lbl, l)
			}
			if len(s.x) > 0 {
				ss = append(ss, s)
			}
		}
	}
	return ss, cats
}

// errorBars are a series' points with a confidence interval.
type errorBars struct {
	plotter.XYs
	ci []float64
}

func (e errorBars) YError(i int) (float64, float64) { return e.ci[i], e.ci[i] }

// sans sets the sans-serif variant of the default typeface.
func sans(s *text.Style) { s.Font.Variant = "Sans" }

// wrapText breaks s at spaces into lines no wider than w.
func wrapText(st text.Style, s string, w vg.Length) string {
	var lines []string
	cur := ""
	for _, word := range strings.Fields(s) {
		if cur != "" && st.Width(cur+" "+word) > w {
			lines = append(lines, cur)
			cur = word
			continue
		}
		if cur != "" {
			cur += " "
		}
		cur += word
	}
	return strings.Join(append(lines, cur), "\n")
}

// figure is a plot and its legend, drawn to the plot's right so that it
// never covers data.
type figure struct {
	p       *plot.Plot
	legend  plot.Legend
	legW    vg.Length
	legH    vg.Length // the legend's height, with margins
	padL    vg.Length // room for a wrapped y label's further lines
	bars    int       // series drawn with error bars
	entries int       // in the legend
}

// plotFigure builds the figure of one plot spec; false when the data
// cannot be plotted (no numeric x values, or none of the metrics present).
func (r *Results) plotFigure(ps PlotSpec) (*figure, bool) {
	ss, cats := r.plotData(ps)
	if len(ss) == 0 {
		return nil, false
	}
	scatter := ps.Kind == "scatter"
	categorical := len(cats) > 0 && !scatter
	p := plot.New()
	for _, st := range []*text.Style{&p.Title.TextStyle, &p.X.Label.TextStyle, &p.Y.Label.TextStyle, &p.X.Tick.Label, &p.Y.Tick.Label} {
		sans(st)
	}
	p.Title.TextStyle.Font.Size, p.Title.Padding = 14, vg.Points(8)
	p.X.Label.TextStyle.Font.Size, p.Y.Label.TextStyle.Font.Size = 12, 12
	p.Title.Text = wrapText(p.Title.TextStyle, ps.Title, plotW)
	xl := ps.XLabel
	if xl == "" {
		xl = r.SweepKey()
		if l, ok := keyLabels[xl]; ok {
			xl = l
		}
		if scatter {
			xl = ps.X
		}
	}
	p.X.Label.Text = wrapText(p.X.Label.TextStyle, xl, plotW)
	// Along the y axis: smaller when long, then wrapped; gonum leaves room
	// for one line, so the figure moves right by the others (render).
	p.Y.Label.Text = ps.YLabel
	avail := plotH * 3 / 4
	for p.Y.Label.TextStyle.Width(ps.YLabel) > avail && p.Y.Label.TextStyle.Font.Size > 10 {
		p.Y.Label.TextStyle.Font.Size--
	}
	yLabelLines := 1
	if p.Y.Label.TextStyle.Width(ps.YLabel) > avail {
		p.Y.Label.Text = wrapText(p.Y.Label.TextStyle, ps.YLabel, avail)
		yLabelLines = strings.Count(p.Y.Label.Text, "\n") + 1
	}
	p.X.Tick.Marker, p.Y.Tick.Marker = linTicks{}, linTicks{}
	grid := plotter.NewGrid()
	grid.Vertical.Color, grid.Horizontal.Color = color.Gray{0xd8}, color.Gray{0xd8}
	p.Add(grid)
	p.X.Padding, p.Y.Padding = 3*glyphR, 3*glyphR // markers stay off the frame
	if ps.LogX && len(cats) == 0 {
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, logTicks{}
	}
	if ps.LogY {
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, logTicks{}
	}
	if categorical {
		p.NominalX(cats...)
		p.X.Min, p.X.Max = -0.5, float64(len(cats))-0.5
	}
	f := &figure{p: p, legend: plot.NewLegend(), padL: vg.Length(yLabelLines-1) * p.Y.Label.TextStyle.Font.Size * 1.2}
	sans(&f.legend.TextStyle)
	f.legend.Padding = vg.Points(4)
	f.legend.Top, f.legend.Left = true, true
	for i, s := range ss {
		col := palette[i%len(palette)]
		xys := make(plotter.XYs, len(s.x))
		for j := range s.x {
			xys[j] = plotter.XY{X: s.x[j], Y: s.y[j]}
		}
		var thumbs []plot.Thumbnailer
		if !scatter && !categorical && len(xys) > 1 { // categories are not a continuum: markers only
			l, err := plotter.NewLine(xys)
			if err != nil {
				continue
			}
			l.Color, l.Width, l.Dashes = col, vg.Points(1.5), dashes[i%len(dashes)]
			p.Add(l)
			thumbs = append(thumbs, l)
		}
		var eb errorBars
		for j, ci := range s.ci {
			if ci > 0 {
				eb.XYs, eb.ci = append(eb.XYs, xys[j]), append(eb.ci, ci)
			}
		}
		if len(eb.ci) > 0 {
			bars, err := plotter.NewYErrorBars(eb)
			if err == nil {
				bars.Color = col
				p.Add(bars)
				f.bars++
			}
		}
		if scatter {
			// One glyph per point, named in the legend: labels next to
			// points that lie close together would cover each other.
			for j := range xys {
				sc, err := plotter.NewScatter(xys[j : j+1])
				if err != nil {
					continue
				}
				k := f.entries
				sc.GlyphStyle = draw.GlyphStyle{Color: palette[k%len(palette)], Radius: glyphR, Shape: shapes[(k/len(palette)+k)%len(shapes)]}
				if ps.YCensored > 0 && s.y[j] == ps.YCensored { // a lower bound: an up arrow
					sc.GlyphStyle.Shape, sc.GlyphStyle.Radius = draw.TriangleGlyph{}, 2*glyphR
				}
				p.Add(sc)
				name := s.lbl[j]
				if len(ss) > 1 {
					name = s.name + ": " + name
				}
				f.legend.Add(wrapText(f.legend.TextStyle, name, 7*vg.Centimeter), sc)
				f.entries++
			}
			continue
		}
		sc, err := plotter.NewScatter(xys)
		if err != nil {
			continue
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: col, Radius: glyphR, Shape: shapes[i%len(shapes)]}
		p.Add(sc)
		thumbs = append(thumbs, sc)
		if len(ss) > 1 {
			f.legend.Add(wrapText(f.legend.TextStyle, s.name, 7*vg.Centimeter), thumbs...)
			f.entries++
		}
	}
	switch lo, hi := yRange(ss); {
	case ps.LogY:
	case lo == hi: // a constant (a share of 1): show it against zero
		p.Y.Min, p.Y.Max = min(0, lo), max(0, hi)+0.1*max(math.Abs(hi), 1)
	case lo > 0 && lo < hi/2: // zero costs little: include it
		p.Y.Min = 0
	}
	if f.entries > 0 {
		var c draw.Canvas // measure text only
		r := f.legend.Rectangle(c)
		f.legW, f.legH = r.Size().X+vg.Centimeter, r.Size().Y+2*vg.Centimeter
	}
	return f, true
}

// logTicks are gonum's log-axis ticks with the decades written 10³, 10⁴
// (gonum writes 1e+06) and 2×, 5× added when the axis spans few decades.
type logTicks struct{}

func (logTicks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.LogTicks{Prec: -1}.Ticks(lo, hi)
	labelled := 0
	for _, t := range ts {
		if t.Label != "" {
			labelled++
		}
	}
	for i, t := range ts {
		m := t.Value / math.Pow(10, math.Floor(math.Log10(t.Value)+1e-9))
		switch {
		case t.Label != "":
			ts[i].Label = fmtPow10(t.Value)
		case labelled < 3 && (math.Abs(m-2) < 1e-6 || math.Abs(m-5) < 1e-6):
			ts[i].Label = fmtPow10(t.Value)
		}
	}
	return ts
}

// linTicks put a labelled tick every 1, 2 or 5 times a power of ten, 4 to
// 10 of them, labelled as short as the step allows (gonum's default labels
// 250.00 where 250 will do).
type linTicks struct{}

func (linTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) {
		return []plot.Tick{{Value: lo, Label: strconv.FormatFloat(lo, 'g', 4, 64)}}
	}
	raw := (hi - lo) / 6
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := mag
	for _, m := range []float64{2, 5, 10} {
		if step < raw*0.75 {
			step = m * mag
		}
	}
	dec := max(0, -int(math.Floor(math.Log10(step)+1e-9)))
	var ts []plot.Tick
	for v := math.Ceil(lo/step-1e-9) * step; v <= hi+step*1e-9; v += step {
		if v = math.Round(v/step) * step; v == 0 {
			v = 0 // not -0
		}
		ts = append(ts, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', dec, 64)})
		if half := v + step/2; half < hi {
			ts = append(ts, plot.Tick{Value: half}) // minor
		}
	}
	return ts
}

// fmtPow10 writes v plainly below 10⁴ and above 10⁻³, else as m×10ᵉ.
func fmtPow10(v float64) string {
	if v >= 1e-3 && v < 1e4 {
		return strconv.FormatFloat(v, 'g', -1, 64)
	}
	e := int(math.Floor(math.Log10(v) + 1e-9))
	m := v / math.Pow(10, float64(e))
	sup := strings.NewReplacer("-", "⁻", "0", "⁰", "1", "¹", "2", "²", "3", "³", "4", "⁴", "5", "⁵", "6", "⁶", "7", "⁷", "8", "⁸", "9", "⁹").Replace(strconv.Itoa(e))
	if math.Abs(m-1) < 1e-9 {
		return "10" + sup
	}
	return strconv.FormatFloat(m, 'g', 3, 64) + "×10" + sup
}

// yRange is the smallest and largest y value of the series, error bars
// included.
func yRange(ss []series) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, s := range ss {
		for j, y := range s.y {
			lo, hi = min(lo, y-s.ci[j]), max(hi, y+s.ci[j])
		}
	}
	return lo, hi
}

// render draws the figure in one of plotFormats.
func (f *figure) render(format string) ([]byte, error) {
	w, h := f.padL+plotW+f.legW, max(plotH, f.legH)
	c, err := draw.NewFormattedCanvas(w, h, format)
	if err != nil {
		return nil, fmt.Errorf("sim: plot: %w", err)
	}
	dc := draw.New(c)
	dc.FillPolygon(color.White, []vg.Point{{X: 0, Y: 0}, {X: w, Y: 0}, {X: w, Y: h}, {X: 0, Y: h}}) // the legend's side too
	f.p.Draw(draw.Crop(dc, f.padL, -f.legW, 0, 0))
	if f.legW > 0 {
		f.legend.Draw(draw.Crop(dc, f.padL+plotW+vg.Millimeter*3, 0, 0, -vg.Centimeter))
	}
	var b bytes.Buffer
	if _, err := c.WriteTo(&b); err != nil {
		return nil, fmt.Errorf("sim: plot: %w", err)
	}
	if format == "svg" {
		// Text was measured in Liberation Sans; Arial has its metrics,
		// and a viewer with neither should still draw sans-serif.
		return bytes.ReplaceAll(b.Bytes(), []byte("font-family:Liberation Sans;"),
			[]byte("font-family:'Liberation Sans',Arial,Helvetica,sans-serif;")), nil
	}
	return b.Bytes(), nil
}

// plotFiles renders one plot spec in every format, keyed by file name
// (plot_NAME.svg, plot_NAME.png); nil when it cannot be plotted.
func (r *Results) plotFiles(ps PlotSpec) (map[string][]byte, error) {
	f, ok := r.plotFigure(ps)
	if !ok {
		return nil, nil
	}
	out := map[string][]byte{}
	for _, format := range plotFormats {
		b, err := f.render(format)
		if err != nil {
			return nil, err
		}
		out["plot_"+ps.Name+"."+format] = b
	}
	return out, nil
}
