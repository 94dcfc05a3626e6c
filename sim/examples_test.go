package sim

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestBatchExamples: the Slurm array script and the Kubernetes indexed Job
// in examples/ agree on their shard count with the array size and the
// completions, pass the batch system's index as --shard I/N, and sharding
// that sweep then merging gives the unsharded results. The Slurm script is
// run for every array index with a stand-in kadlan that records its
// arguments: each task runs its shard, and the last one merges.
func TestBatchExamples(t *testing.T) {
	slurm, err := os.ReadFile("examples/slurm-array.sh")
	if err != nil {
		t.Fatal(err)
	}
	k8s, err := os.ReadFile("examples/k8s-indexed-job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	num := func(re, s string) int {
		t.Helper()
		m := regexp.MustCompile(re).FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("no %s", re)
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	shards := num(`(?m)^SHARDS=(\d+)`, string(slurm))
	if last := num(`--array=0-(\d+)`, string(slurm)); last != shards-1 {
		t.Errorf("slurm: array 0-%d for %d shards", last, shards)
	}
	if c, v := num(`completions: (\d+)`, string(k8s)), num(`value: "(\d+)"`, string(k8s)); c != shards || v != shards {
		t.Errorf("k8s: completions %d, SHARDS %d; slurm %d", c, v, shards)
	}
	if !strings.Contains(string(slurm), `--shard "${SLURM_ARRAY_TASK_ID}/${SHARDS}"`) ||
		!strings.Contains(string(k8s), `--shard "${JOB_COMPLETION_INDEX}/${SHARDS}"`) {
		t.Error("the batch index is not passed as --shard I/N")
	}
	sweep := regexp.MustCompile(`--sweep (\S+)`).FindStringSubmatch(string(slurm))[1]
	if !strings.Contains(string(k8s), "--sweep "+sweep) {
		t.Errorf("the two examples sweep differently")
	}

	// The sweep, sharded as the examples do (at toy scale), merges into
	// the unsharded run.
	c, _ := LoadPreset("lookup")
	sw, err := ParseSweep(sweep)
	if err != nil {
		t.Fatal(err)
	}
	for i := range sw.Values {
		sw.Values[i] = float64(200 * (i + 1))
	}
	c.Sweep, c.Lookups = sw, 40
	full, err := Run(c, Options{Version: "t"})
	if err != nil {
		t.Fatal(err)
	}
	var parts []*Results
	for i := range shards {
		p, err := Run(c, Options{Version: "t", Shard: i, Shards: shards})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, p)
	}
	merged, err := Merge(parts)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(full)
	b, _ := json.Marshal(merged)
	if !bytes.Equal(a, b) {
		t.Error("merged shards differ from the full run")
	}

	// The script itself, with a stand-in kadlan.
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	stub := "#!/bin/sh\necho \"$@\" >> " + log + "\n" +
		"while [ $# -gt 0 ]; do if [ \"$1\" = --out ]; then mkdir -p \"$2\"; touch \"$2/results.json\"; fi; shift; done\n"
	if err := os.WriteFile(filepath.Join(dir, "kadlan"), []byte(stub), 0o755); err != nil {
		t.Fatal(err)
	}
	script, _ := filepath.Abs("examples/slurm-array.sh")
	for i := range shards {
		cmd := exec.Command("bash", script)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"), "SLURM_ARRAY_TASK_ID="+strconv.Itoa(i), "OUT="+filepath.Join(dir, "runs"))
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("task %d: %v\n%s", i, err, out)
		}
	}
	calls, _ := os.ReadFile(log)
	lines := strings.Split(strings.TrimSpace(string(calls)), "\n")
	if len(lines) != shards+1 || !strings.HasPrefix(lines[shards], "sim merge ") {
		t.Fatalf("calls:\n%s", calls)
	}
	for i := range shards {
		if !strings.Contains(lines[i], "--shard "+strconv.Itoa(i)+"/"+strconv.Itoa(shards)) {
			t.Errorf("task %d ran %q", i, lines[i])
		}
	}
}
