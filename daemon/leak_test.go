package daemon

import "go.uber.org/goleak"

// leakIgnores lists goroutines of libraries that outlive a closed host by
// design (process-wide workers started once), none of them kadlan's.
func leakIgnores() []goleak.Option {
	return []goleak.Option{}
}
