package sim

import "math"

type box struct{ x0, y0, x1, y1 float64 }

func (a box) overlaps(b box) bool { return a.x0 < b.x1 && b.x0 < a.x1 && a.y0 < b.y1 && b.y0 < a.y1 }

func (a box) inside(b box) bool { return a.x0 >= b.x0 && a.x1 <= b.x1 && a.y0 >= b.y0 && a.y1 <= b.y1 }

// textBox is the box of text of width w whose baseline starts at (x, y)
// with the given anchor.
func textBox(x, y, w, size float64, anchor string) box {
	switch anchor {
	case "end":
		x -= w
	case "middle":
		x -= w / 2
	}
	return box{x, y - 0.8*size, x + w, y + 0.25*size}
}

// placed is a point label put where it overlaps no marker and no other
// label; lead is true when it sits away from its point (draw a line).
type placed struct {
	x, y   float64
	anchor string
	lead   bool
	b      box
}

// groupPoints merges points whose markers (nearly) coincide into one,
// labelled with all their texts, so that no label has to guess which of
// two overlapping markers it names.
func groupPoints(pts [][2]float64, texts []string) ([][2]float64, []string) {
	var gp [][2]float64
	var gt []string
	var n []float64
	for i, p := range pts {
		j := 0
		for ; j < len(gp); j++ {
			if math.Abs(gp[j][0]-p[0]) <= 1.5*markerR && math.Abs(gp[j][1]-p[1]) <= 1.5*markerR {
				break
			}
		}
		if j == len(gp) {
			gp, gt, n = append(gp, p), append(gt, texts[i]), append(n, 1)
			continue
		}
		gt[j] += ", " + texts[i]
		n[j]++
		gp[j] = [2]float64{gp[j][0] + (p[0]-gp[j][0])/n[j], gp[j][1] + (p[1]-gp[j][1])/n[j]}
	}
	return gp, gt
}

// placeLabels lays out one text label per point (px coordinates) inside
// area: next to the point when there is room, else stacked above or below
// it with a leader line.
func placeLabels(pts [][2]float64, texts []string, area box) []placed {
	type cand struct {
		dx, dy float64
		anchor string
		lead   bool
	}
	var cands []cand
	near := []cand{{8, 4, "start", false}, {-8, 4, "end", false}, {7, -7, "start", false}, {-7, -7, "end", false},
		{7, 15, "start", false}, {-7, 15, "end", false}, {0, -9, "middle", false}, {0, 17, "middle", false}}
	cands = append(cands, near...)
	for k := 1.0; k <= 8; k++ {
		up, down := -7-14*k, 15+14*k
		cands = append(cands, cand{14, up, "start", true}, cand{14, down, "start", true},
			cand{-14, up, "end", true}, cand{-14, down, "end", true})
	}
	var obstacles []box
	for _, p := range pts {
		obstacles = append(obstacles, box{p[0] - markerR - 1, p[1] - markerR - 1, p[0] + markerR + 1, p[1] + markerR + 1})
	}
	out := make([]placed, len(pts))
	for i, p := range pts {
		w := textW(texts[i], fontTick)
		best := -1
		for ci, c := range cands {
			b := textBox(p[0]+c.dx, p[1]+c.dy, w, fontTick, c.anchor)
			if !b.inside(area) {
				continue
			}
			free := true
			for _, o := range obstacles {
				if b.overlaps(o) {
					free = false
					break
				}
			}
			if free {
				best = ci
				break
			}
		}
		if best < 0 {
			best = 0 // nowhere free: next to the point, as before
		}
		c := cands[best]
		b := textBox(p[0]+c.dx, p[1]+c.dy, w, fontTick, c.anchor)
		out[i] = placed{p[0] + c.dx, p[1] + c.dy, c.anchor, c.lead, b}
		obstacles = append(obstacles, box{b.x0 - 1, b.y0 - 1, b.x1 + 1, b.y1 + 1})
	}
	return out
}
