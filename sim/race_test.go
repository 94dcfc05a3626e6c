//go:build race

package sim

// raceEnabled shrinks the slowest validation tests under the race
// detector (5-10x slower); tolerances follow the sample sizes.
const raceEnabled = true
