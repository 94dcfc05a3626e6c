package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/kadlan/kadlan/sim"
	"github.com/kadlan/kadlan/sim/emu"
	"github.com/urfave/cli/v2"
)

func init() { extraCommands = append(extraCommands, simCommand()) }

// repeatable collects every value of a repeatable flag as given (urfave's
// StringSlice would split "designs=a,b" at the comma).
type repeatable []string

func (r *repeatable) Set(v string) error { *r = append(*r, v); return nil }
func (r *repeatable) String() string     { return strings.Join(*r, " ") }

func simCommand() *cli.Command {
	return &cli.Command{
		Name:  "sim",
		Usage: "simulate kadlan's algorithms on 10^3..10^6 nodes (no root, no network)",
		Description: "Runs a preset study (see 'kadlan sim presets') and writes results.json, points.csv\n" +
			"and plots (SVG and PNG) to --out. Without arguments it runs the small 'quick' study.\n" +
			"Same config, seed and version give byte-identical results.json; cite all three.\n\n" +
			"Examples:\n" +
			"  kadlan sim --preset lookup --out runs/lookup\n" +
			"  kadlan sim --preset sybil --set nodes=20000 --sweep sybil_share=0,0.1,0.2,0.3\n" +
			"  kadlan sim --preset lookup --sweep nodes=1e4,1e5,1e6 --shard 0/3 --out part0\n" +
			"  kadlan sim merge part0 part1 part2 --out merged\n\n" +
			"Model lan (--preset lan): one network with links on demand, with the node's bounds\n" +
			"(overlay/bounds). Its inputs, as --set KEY=VALUE: contacts_per_min (exchanges a member\n" +
			"starts per minute with its partners, default 1), partners (members each talks to, 8),\n" +
			"new_contacts_per_min (exchanges with a member drawn afresh, 0.1), contact_skew (0: uniform;\n" +
			"> 1: Zipf exponent over a popularity rank), link_idle_s (--link-idle, 600), link_rtts (round\n" +
			"trips of a link's set-up once the address is known, 3), max_known (--max-members, 0: 1024),\n" +
			"active (members simulated event by event, the rest lazily; 0: all; default 10000),\n" +
			"duration_s, warmup_s, sample_s (1800, 600, 60), broadcasts (per point).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "preset", Aliases: []string{"p"}, Usage: "preset `NAME` (default quick)"},
			&cli.StringFlag{Name: "config", Usage: "config `FILE` (JSON, as printed by 'kadlan sim presets NAME')"},
			&cli.IntFlag{Name: "nodes", Aliases: []string{"n"}, Usage: "network size `N` (overrides the preset)"},
			&cli.Uint64Flag{Name: "seed", Usage: "random `SEED` (overrides the preset)"},
			&cli.IntFlag{Name: "seeds", Usage: "replicates per point, `N` seeds from --seed on: means with 95% confidence intervals (error bars)"},
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "output `DIR` (default kadlan-sim/PRESET)"},
			&cli.GenericFlag{Name: "set", Value: &repeatable{}, Usage: "set a config field, `KEY=VALUE` (repeatable; dotted keys for nested fields)"},
			&cli.GenericFlag{Name: "sweep", Value: &repeatable{}, Usage: "run one point per value: `KEY=V1,V2,...` (repeat for a grid: every combination)"},
			&cli.StringFlag{Name: "shard", Usage: "run only points i, i+n, ...: `I/N` (merge with 'kadlan sim merge')"},
			&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "points run in parallel (default: CPUs)"},
			&cli.BoolFlag{Name: "json", Usage: "print results.json to stdout instead of the summary"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress bar"},
		},
		Subcommands: []*cli.Command{simPresetsCommand(), simMergeCommand(), simPlotCommand(), simBenchCommand(), simEmulateCommand()},
		Action:      simRun,
	}
}

func simConfig(c *cli.Context) (sim.Config, error) {
	var cfg sim.Config
	var err error
	switch {
	case c.IsSet("config") && c.IsSet("preset"):
		return cfg, userErrorf("sim: use --preset or --config, not both")
	case c.IsSet("config"):
		b, rerr := os.ReadFile(c.String("config"))
		if rerr != nil {
			return cfg, userErrorf("sim: %v", rerr)
		}
		cfg, err = sim.ParseConfig(b)
	default:
		name := c.String("preset")
		if name == "" {
			name = "quick"
		}
		cfg, err = sim.LoadPreset(name)
	}
	if err != nil {
		return cfg, userErrorf("%v", err)
	}
	if c.IsSet("nodes") {
		cfg.Nodes = c.Int("nodes")
		if cfg.Sweep != nil && cfg.Sweep.Key == "nodes" {
			cfg.Sweep = nil // an explicit size replaces a size sweep
		}
	}
	if c.IsSet("seed") {
		cfg.Seed = c.Uint64("seed")
	}
	if c.IsSet("seeds") {
		cfg.Seeds = c.Int("seeds")
	}
	for _, kv := range *c.Generic("set").(*repeatable) {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return cfg, userErrorf("sim: --set %q: want KEY=VALUE", kv)
		}
		if err := cfg.Set(k, v); err != nil {
			return cfg, userErrorf("%v", err)
		}
	}
	if sweeps := *c.Generic("sweep").(*repeatable); len(sweeps) > 0 {
		cfg.Sweep, cfg.Grid = nil, nil
		for i, s := range sweeps {
			sw, err := sim.ParseSweep(s)
			if err != nil {
				return cfg, userErrorf("%v", err)
			}
			if i == 0 {
				cfg.Sweep = sw
			} else {
				cfg.Grid = append(cfg.Grid, *sw)
			}
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, userErrorf("%v", err)
	}
	return cfg, nil
}

func simRun(c *cli.Context) error {
	if c.Args().Len() > 0 {
		return userErrorf("sim: unexpected argument %q (see kadlan sim --help)", c.Args().First())
	}
	cfg, err := simConfig(c)
	if err != nil {
		return err
	}
	o := sim.Options{Jobs: c.Int("jobs"), Version: sim.ResolveVersion(version)}
	if s := c.String("shard"); s != "" {
		if _, err := fmt.Sscanf(s, "%d/%d", &o.Shard, &o.Shards); err != nil || o.Shards < 1 || o.Shard < 0 || o.Shard >= o.Shards {
			return userErrorf("sim: --shard %q: want I/N with 0 <= I < N", s)
		}
	}
	if !c.Bool("quiet") && !c.Bool("json") {
		o.Progress = c.App.ErrWriter
	}
	out := c.String("out")
	if out == "" && !c.Bool("json") {
		name := cfg.Preset
		if name == "" {
			name = cfg.Model
		}
		out = filepath.Join("kadlan-sim", name)
	}
	start := time.Now()
	w := c.App.Writer
	if !c.Bool("json") {
		fmt.Fprintf(w, "kadlan sim: %s (model %s), seed %d, %s\n", orDash(cfg.Preset), cfg.Model, cfg.Seed, simPointsDesc(cfg))
	}
	// SIGINT/SIGTERM stop the run; the completed points are written.
	ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	defer stop()
	o.Context = ctx
	res, err := sim.Run(cfg, o)
	if errors.Is(err, sim.ErrInterrupted) {
		if rerr := simReport(c, res, out, time.Since(start)); rerr != nil {
			return rerr
		}
		return &exitError{code: 130, msg: fmt.Sprintf("sim: interrupted: %d of %d points written", len(res.Points), res.Total)}
	}
	if err != nil {
		return userErrorf("%v", err)
	}
	return simReport(c, res, out, time.Since(start))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func simPointsDesc(cfg sim.Config) string {
	if cfg.Sweep == nil {
		return fmt.Sprintf("%d nodes", cfg.Nodes)
	}
	var vs []string
	for _, v := range cfg.Sweep.Values {
		vs = append(vs, fmt.Sprint(v))
	}
	desc := fmt.Sprintf("%d nodes, sweep %s = %s", cfg.Nodes, cfg.Sweep.Key, strings.Join(vs, ", "))
	for _, g := range cfg.Grid {
		vs = vs[:0]
		for _, v := range g.Values {
			vs = append(vs, fmt.Sprint(v))
		}
		desc += fmt.Sprintf(" × %s = %s", g.Key, strings.Join(vs, ", "))
	}
	return desc
}

func simReport(c *cli.Context, res *sim.Results, out string, took time.Duration) error {
	w := c.App.Writer
	var files []string
	if out != "" {
		var err error
		if files, err = res.WriteDir(out); err != nil {
			return userErrorf("%v", err)
		}
	}
	if c.Bool("json") {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintln(w)
	res.Summary(w)
	fmt.Fprintf(w, "\n%d points in %s. Wrote:\n", len(res.Points), took.Round(time.Millisecond))
	for _, f := range files {
		fmt.Fprintf(w, "  %s\n", f)
	}
	if len(files) > 0 {
		fmt.Fprintf(w, "Plots are the .svg and .png files in %s.\n", out)
	}
	if res.Shard != "" {
		fmt.Fprintf(w, "shard %s: combine the shards with 'kadlan sim merge DIR...'\n", res.Shard)
	}
	return nil
}

func simPresetsCommand() *cli.Command {
	return &cli.Command{
		Name:      "presets",
		Usage:     "list presets, or print one preset's config file to copy and edit",
		ArgsUsage: "[NAME]",
		Flags:     []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "machine-readable list"}},
		Action: func(c *cli.Context) error {
			w := c.App.Writer
			if name := c.Args().First(); name != "" {
				b, err := sim.PresetJSON(name)
				if err != nil {
					return userErrorf("%v", err)
				}
				_, err = w.Write(b)
				return err
			}
			type entry struct {
				Name        string `json:"name"`
				Model       string `json:"model"`
				Description string `json:"description"`
			}
			var list []entry
			for _, n := range sim.PresetNames() {
				cfg, err := sim.LoadPreset(n)
				if err != nil {
					return userErrorf("%v", err)
				}
				list = append(list, entry{n, cfg.Model, cfg.Description})
			}
			if c.Bool("json") {
				enc := json.NewEncoder(w)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			for _, e := range list {
				fmt.Fprintf(w, "%-20s %s\n", e.Name, wrap(e.Description, 58, 21))
			}
			return nil
		},
	}
}

func wrap(s string, width, indent int) string {
	var b strings.Builder
	col := 0
	for i, word := range strings.Fields(s) {
		if i > 0 && col+1+len(word) > width {
			b.WriteString("\n" + strings.Repeat(" ", indent))
			col = 0
		} else if i > 0 {
			b.WriteByte(' ')
			col++
		}
		b.WriteString(word)
		col += len(word)
	}
	return b.String()
}

func simMergeCommand() *cli.Command {
	return &cli.Command{
		Name:      "merge",
		Usage:     "merge the results of shards (--shard i/n) into one study",
		ArgsUsage: "DIR...",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "output `DIR` (default kadlan-sim/merged)"},
			&cli.BoolFlag{Name: "json", Usage: "print the merged results.json to stdout"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return userErrorf("sim merge: give the shard output directories")
			}
			// urfave/cli stops parsing flags at the first argument: accept
			// --out/-o and --json after the directories too.
			out, asJSON := c.String("out"), c.Bool("json")
			var dirs []string
			args := c.Args().Slice()
			for i := 0; i < len(args); i++ {
				switch a := args[i]; {
				case (a == "--out" || a == "-o") && i+1 < len(args):
					out = args[i+1]
					i++
				case strings.HasPrefix(a, "--out="):
					out = strings.TrimPrefix(a, "--out=")
				case a == "--json":
					asJSON = true
				default:
					dirs = append(dirs, a)
				}
			}
			if asJSON {
				if err := c.Set("json", "true"); err != nil {
					return err
				}
			}
			var parts []*sim.Results
			for _, d := range dirs {
				r, err := sim.ReadResults(filepath.Join(d, "results.json"))
				if err != nil {
					return userErrorf("%v", err)
				}
				parts = append(parts, r)
			}
			res, err := sim.Merge(parts)
			if err != nil {
				return userErrorf("%v", err)
			}
			if out == "" {
				out = filepath.Join("kadlan-sim", "merged")
			}
			return simReport(c, res, out, 0)
		},
	}
}

func simPlotCommand() *cli.Command {
	return &cli.Command{
		Name:      "plot",
		Usage:     "redraw the plots (SVG and PNG) of a study from its results.json",
		ArgsUsage: "DIR...",
		Action: func(c *cli.Context) error {
			if c.NArg() == 0 {
				return userErrorf("sim plot: give the study's output directories")
			}
			for _, d := range c.Args().Slice() {
				r, err := sim.ReadResults(filepath.Join(d, "results.json"))
				if err != nil {
					return userErrorf("%v", err)
				}
				files, err := r.WritePlots(d)
				if err != nil {
					return userErrorf("%v", err)
				}
				for _, f := range files {
					fmt.Fprintln(c.App.Writer, f)
				}
			}
			return nil
		},
	}
}

func simBenchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "measure the lookup model: nodes, lookups per second, peak memory",
		Description: "Builds one network of N nodes and runs LOOKUPS peer lookups on one core.\n" +
			"Peak memory is the process's maximum resident set (getrusage), so run one\n" +
			"size per process (make bench-sim does).",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "nodes", Aliases: []string{"n"}, Value: 100000, Usage: "network size `N`"},
			&cli.IntFlag{Name: "lookups", Value: 20000, Usage: "lookups to run"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "random `SEED`"},
			&cli.BoolFlag{Name: "json", Usage: "machine-readable output"},
		},
		Action: func(c *cli.Context) error {
			b, err := sim.Bench(c.Int("nodes"), c.Int("lookups"), c.Uint64("seed"))
			if err != nil {
				return userErrorf("%v", err)
			}
			var ru syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			out := map[string]any{"nodes": b.Nodes, "lookups": b.Lookups, "build_s": b.Build.Seconds(),
				"run_s": b.Run.Seconds(), "lookups_per_s": b.LookupsPerSec, "hops_mean": b.HopsMean,
				"rpcs_mean": b.RPCsMean, "success": b.Success, "peak_rss_mib": float64(ru.Maxrss) / 1024,
				"heap_sys_mib": float64(ms.HeapSys) / (1 << 20)}
			if c.Bool("json") {
				return json.NewEncoder(c.App.Writer).Encode(out)
			}
			printBench(c.App.Writer, out)
			return nil
		},
	}
}

func printBench(w io.Writer, m map[string]any) {
	fmt.Fprintf(w, "sim bench: nodes=%d lookups=%d build=%.2fs run=%.2fs lookups/s=%.0f hops=%.2f rpcs=%.2f success=%.4f peak_rss=%.0fMiB heap=%.0fMiB\n",
		m["nodes"], m["lookups"], m["build_s"], m["run_s"], m["lookups_per_s"], m["hops_mean"], m["rpcs_mean"],
		m["success"], m["peak_rss_mib"], m["heap_sys_mib"])
}

func simEmulateCommand() *cli.Command {
	return &cli.Command{
		Name:  "emulate",
		Usage: "run the real go-libp2p-kad-dht on an in-memory mocknet and compare it with the model",
		Description: "Starts N real kad-dht nodes on go-libp2p's mocknet (no sockets, no root), runs\n" +
			"FindPeer lookups between random pairs, and runs the model with the same N, k\n" +
			"and alpha. Exits non-zero when hops or RPCs differ beyond the documented\n" +
			"tolerance (mean hops within 10%, RPCs within a factor of 2, success >= 95%).",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "nodes", Aliases: []string{"n"}, Value: 300, Usage: "network size `N` (each node is a real DHT)"},
			&cli.IntFlag{Name: "k", Value: 20, Usage: "bucket size"},
			&cli.IntFlag{Name: "alpha", Value: 3, Usage: "lookup concurrency"},
			&cli.IntFlag{Name: "lookups", Value: 100, Usage: "lookups to run"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "random `SEED`"},
			&cli.BoolFlag{Name: "json", Usage: "machine-readable output"},
		},
		Action: func(c *cli.Context) error {
			cfg := emu.Config{Nodes: c.Int("nodes"), K: c.Int("k"), Alpha: c.Int("alpha"), Lookups: c.Int("lookups"), Seed: c.Uint64("seed")}
			e, m, err := emu.Compare(c.Context, cfg)
			if err != nil {
				return userErrorf("%v", err)
			}
			within := e.Success() >= 0.95 && m["success"] >= 0.95 &&
				emu.HopsWithin(e.HopsMean, m["hops_mean"]) &&
				e.RPCsMean <= emu.RPCFactor*m["rpcs_mean"] && e.RPCsMean >= m["rpcs_mean"]/emu.RPCFactor
			out := map[string]any{"nodes": cfg.Nodes, "k": cfg.K, "alpha": cfg.Alpha, "lookups": cfg.Lookups,
				"emulation":        map[string]float64{"success": e.Success(), "hops_mean": e.HopsMean, "rpcs_mean": e.RPCsMean},
				"model":            map[string]float64{"success": m["success"], "hops_mean": m["hops_mean"], "rpcs_mean": m["rpcs_mean"]},
				"within_tolerance": within}
			w := c.App.Writer
			if c.Bool("json") {
				if err := json.NewEncoder(w).Encode(out); err != nil {
					return err
				}
			} else {
				fmt.Fprintf(w, "N=%d k=%d alpha=%d, %d lookups\n", cfg.Nodes, cfg.K, cfg.Alpha, cfg.Lookups)
				fmt.Fprintf(w, "%-28s %8s %6s %6s\n", "", "success", "hops", "rpcs")
				fmt.Fprintf(w, "%-28s %8.3f %6.2f %6.2f\n", "kad-dht on mocknet", e.Success(), e.HopsMean, e.RPCsMean)
				fmt.Fprintf(w, "%-28s %8.3f %6.2f %6.2f\n", "model (kadlan sim)", m["success"], m["hops_mean"], m["rpcs_mean"])
				fmt.Fprintf(w, "within tolerance: %v\n", within)
			}
			if !within {
				return &exitError{code: 1, msg: "sim emulate: model and emulation differ beyond the tolerance"}
			}
			return nil
		},
	}
}
