package daemon

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives its tests: every
// goroutine a daemon starts has an owner that Run's shutdown waits for.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakIgnores()...)
}
