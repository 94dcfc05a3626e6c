package daemon

import "go.uber.org/goleak"

// leakIgnores lists goroutines of libraries that outlive a closed host by
// design (process-wide workers started once), none of them kadlan's.
func leakIgnores() []goleak.Option {
	return []goleak.Option{
		// The bandwidth counter's meters (Config.Bandwidth, the scale
		// benchmark) share one process-wide sweeper.
		goleak.IgnoreAnyFunction("github.com/libp2p/go-flow-metrics.(*sweeper).run"),
	}
}
