//go:build race

package emu

// raceEnabled shrinks the emulation under the race detector (10x slower).
const raceEnabled = true
