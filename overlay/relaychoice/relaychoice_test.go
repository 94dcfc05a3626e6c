package relaychoice

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

func key(s string) Key { return sha256.Sum256([]byte(s)) }

func TestChoose(t *testing.T) {
	self := Key{0x80}
	k := func(b ...byte) Key { var x Key; copy(x[:], b); return x }
	cands := []Candidate[string]{
		{"far", k(0x00), true},         // distance 0x80
		{"near", k(0x81), true},        // 0x01
		{"private", k(0x80, 1), false}, // nearest of all, but not usable
		{"mid", k(0x90), true},         // 0x10
		{"self", self, true},           // the node itself
		{"near", k(0x81), true},        // a duplicate (table and connections)
		{"next", k(0x88), true},        // 0x08
	}
	tests := []struct {
		n    int
		want []string
	}{
		{Count, []string{"near", "next", "mid"}},
		{1, []string{"near"}},
		{0, []string{}},
		{-1, []string{"near", "next", "mid", "far"}},
		{10, []string{"near", "next", "mid", "far"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.n), func(t *testing.T) {
			if got := Choose(self, cands, tt.n); !slices.Equal(got, tt.want) {
				t.Errorf("Choose(n=%d) = %v, want %v", tt.n, got, tt.want)
			}
		})
	}
	if cands[0].ID != "far" || cands[5].ID != "near" {
		t.Error("Choose modified its input")
	}
}

// TestChooseIsNearest checks Choose against a brute-force reference: the
// i-th choice is the usable candidate with exactly i usable ones nearer.
func TestChooseIsNearest(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 200 {
		self := key(fmt.Sprint("self", trial))
		var cands []Candidate[int]
		for i := range 1 + r.IntN(40) {
			cands = append(cands, Candidate[int]{i, key(fmt.Sprint(trial, i)), r.IntN(3) > 0})
		}
		got := Choose(self, cands, Count)
		for i, id := range got {
			nearer := 0
			for _, c := range cands {
				if c.Usable && Compare(self, c.Key, cands[id].Key) < 0 {
					nearer++
				}
			}
			if !cands[id].Usable || nearer != i {
				t.Fatalf("trial %d: choice %d (%d) has %d usable candidates nearer", trial, i, id, nearer)
			}
		}
		usable := 0
		for _, c := range cands {
			if c.Usable {
				usable++
			}
		}
		if len(got) != min(Count, usable) {
			t.Fatalf("trial %d: %d choices of %d usable", trial, len(got), usable)
		}
	}
}
