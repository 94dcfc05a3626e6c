package sim

import "runtime/debug"

// ResolveVersion returns v unless it is empty or "dev" (a build without
// -ldflags -X): then the build's VCS revision (with "-dirty" when the
// tree had changes), so that results.json always names the code that made
// it; "unknown" only when the binary carries no VCS stamp.
func ResolveVersion(v string) string {
	if v != "" && v != "dev" {
		return v
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
		return "unknown"
	}
	if dirty {
		rev += "-dirty"
	}
	return rev
}
