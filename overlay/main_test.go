package overlay

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if any goroutine is left running
// after them: every goroutine an Engine starts must end by its Close.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
