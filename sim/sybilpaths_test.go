package sim

import (
	"math"
	"testing"
)

func sybilPathsConfig() Config {
	c := Defaults()
	c.Nodes, c.Lookups, c.K, c.Alpha = 4000, 400, 16, 1
	if raceEnabled {
		c.Nodes, c.Lookups = 3000, 250
	}
	c.Adversary = AdvFakeFresh
	return c
}

// TestSybilPathsBaumgartMies: Baumgart & Mies (2007) find about 99% of
// lookups successful at 20% random-ID adversaries with d = 8 disjoint
// paths, and a single path far below that. A model whose adversaries do
// not hurt (d = 1 near 1) or whose paths do not help (d = 8 below 0.97)
// fails; so does one where success does not fall with the share.
func TestSybilPathsBaumgartMies(t *testing.T) {
	c := sybilPathsConfig()
	c.SybilShare = 0.2
	c.Paths = 8
	d8 := point(t, "sybil-paths", c)
	c.Paths = 1
	d1 := point(t, "sybil-paths", c)
	c.SybilShare = 0.4
	d1hi := point(t, "sybil-paths", c)
	t.Logf("20%%: d=8 %.3f, d=1 %.3f; 40%%: d=1 %.3f", d8["success"], d1["success"], d1hi["success"])
	if d8["success"] < 0.97 {
		t.Errorf("d=8 at 20%%: success %.3f, want >= 0.97 (published ~0.99)", d8["success"])
	}
	if d1["success"] > 0.92 || d1["success"] < 0.5 {
		t.Errorf("d=1 at 20%%: success %.3f, want a single path clearly hurt (0.5..0.92)", d1["success"])
	}
	if d1hi["success"] > d1["success"]-0.1 {
		t.Errorf("d=1: success %.3f at 40%% not below %.3f at 20%%", d1hi["success"], d1["success"])
	}
}

// TestSybilPathsDisjointness: against adversaries that all answer with the
// same k fake contacts (the k adversaries closest to the target), disjoint
// paths discard those contacts on every path but the first that learns
// them, while shared paths are each captured when they meet an adversary:
// shared success ~ 1-(1-q_s)^d (q_s: a shared path's own success), and
// disjoint success near 1. At d=4, k=8, 40% adversaries the predicted
// margin is (1-q_s)^4 ~ 0.1; removing disjointness (or letting paths share
// a claimed set in name only) makes it vanish.
func TestSybilPathsDisjointness(t *testing.T) {
	c := sybilPathsConfig()
	c.Adversary, c.K, c.Paths, c.SybilShare = AdvFake, 8, 4, 0.4
	m := point(t, "sybil-paths", c)
	pred := math.Pow(1-m["shared_path_success"], float64(c.Paths))
	t.Logf("disjoint %.3f shared %.3f (shared path q %.3f, predicted margin %.3f)", m["success"], m["shared_success"], m["shared_path_success"], pred)
	if m["success"] < 0.97 {
		t.Errorf("disjoint success %.3f, want >= 0.97", m["success"])
	}
	if margin := m["success"] - m["shared_success"]; margin < 0.5*pred || margin < 0.04 {
		t.Errorf("disjoint - shared = %.3f, want >= max(0.04, half the predicted %.3f)", margin, pred)
	}
}

// TestSybilPathsIndependence: with drop-only adversaries nothing a path
// learns depends on another path, so d disjoint paths should fail
// together only by chance: success = 1 - prod(1 - q_i), q_i each path's
// own measured success, within 4 binomial standard deviations. This
// checks that the paths are independent trials (not copies of one path:
// then success would equal the mean q_i, which the second check rejects);
// it says nothing about paths that share nodes, where answers couple them.
func TestSybilPathsIndependence(t *testing.T) {
	c := sybilPathsConfig()
	c.Adversary, c.K, c.Paths, c.SybilShare = AdvDrop, 4, 4, 0.65
	c.Lookups *= 2
	m := point(t, "sybil-paths", c)
	s, f := m["success"], m["indep_model"]
	sd := math.Sqrt(f * (1 - f) / float64(c.Lookups))
	t.Logf("drop-only: success %.3f, 1-prod(1-q_i) %.3f (sd %.3f), mean q %.3f", s, f, sd, m["path_success"])
	if math.Abs(s-f) > 4*sd+0.005 {
		t.Errorf("success %.3f vs independent paths %.3f: more than 4 sd (%.3f)", s, f, sd)
	}
	if s-m["path_success"] < 0.15 {
		t.Errorf("success %.3f barely above one path's %.3f: the paths are not independent trials", s, m["path_success"])
	}
}

// TestEclipse: adversaries that take IDs next to the target (more of them
// than k) keep a single path from it; with a fixed set of fake contacts,
// d = 8 disjoint paths still reach it, shared ones much less.
func TestEclipse(t *testing.T) {
	c := sybilPathsConfig()
	c.SybilShare, c.EclipseShare, c.EclipseTargets = 0.2, 1, 10
	c.Paths = 1
	one := point(t, "sybil-paths", c)
	c.Adversary, c.Paths = AdvFake, 8
	eight := point(t, "sybil-paths", c)
	t.Logf("eclipse: d=1 %.3f; fixed fakes d=8 disjoint %.3f shared %.3f", one["success"], eight["success"], eight["shared_success"])
	if one["success"] > 0.3 {
		t.Errorf("eclipsed single path succeeds %.3f, want <= 0.3", one["success"])
	}
	if eight["success"] < 0.9 || eight["shared_success"] > eight["success"]-0.3 {
		t.Errorf("eclipse, d=8: disjoint %.3f shared %.3f", eight["success"], eight["shared_success"])
	}
}
