package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSimPlotRedraws: `kadlan sim plot DIR` redraws a study's SVG and PNG
// plots from its results.json alone.
func TestSimPlotRedraws(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runCLI(t, "sim", "--set", "nodes=300", "--set", "lookups=20", "--out", dir); code != 0 {
		t.Fatalf("sim: exit %d: %s", code, stderr)
	}
	pngs, _ := filepath.Glob(filepath.Join(dir, "plot_*.png"))
	if len(pngs) == 0 {
		t.Fatal("no PNG plots written")
	}
	for _, f := range pngs {
		os.Remove(f)
	}
	code, stdout, stderr := runCLI(t, "sim", "plot", dir)
	if code != 0 {
		t.Fatalf("sim plot: exit %d: %s", code, stderr)
	}
	for _, f := range pngs {
		if _, err := os.Stat(f); err != nil || !strings.Contains(stdout, f) {
			t.Errorf("%s not redrawn (%v)", f, err)
		}
	}
	if code, _, stderr := runCLI(t, "sim", "plot", t.TempDir()); code == 0 || !strings.Contains(stderr, "results.json") {
		t.Errorf("a directory without results: exit %d, %q", code, stderr)
	}
}
