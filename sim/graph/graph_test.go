package graph

import (
	"math/rand/v2"
	"reflect"
	"testing"
)

func TestFromEdges(t *testing.T) {
	g := FromEdges(4, []uint64{1<<32 | 0, 0<<32 | 1, 2<<32 | 2, 3<<32 | 1})
	if g.N() != 4 || g.Edges() != 2 {
		t.Fatalf("n=%d m=%d", g.N(), g.Edges())
	}
	if !reflect.DeepEqual(g.Neighbours(1), []int32{0, 3}) || len(g.Neighbours(2)) != 0 {
		t.Fatalf("adjacency %v", g.Adj)
	}
}

func TestGenerators(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	g := Communities(1000, 40, 8, 1, r)
	in, out := 0, 0
	for v := 0; v < g.N(); v++ {
		for _, u := range g.Neighbours(v) {
			if g.Community[u] == g.Community[v] {
				in++
			} else {
				out++
			}
		}
	}
	if d := float64(in+out) / 1000; d < 13 || d > 18 {
		t.Errorf("mean degree %.1f, want 13..18 (duplicates merged)", d)
	}
	if float64(in) < 6*float64(out) {
		t.Errorf("in-community edges %d vs out %d", in, out)
	}
	if len(g.CommunityMembers(3)) != 40 {
		t.Error("community size")
	}
	sw := SmallWorld(1000, 3, 0.1, 0, r)
	if d := float64(len(sw.Adj)) / 1000; d < 5.5 || d > 6.1 {
		t.Errorf("small world mean degree %.2f, want about 6", d)
	}
	a, b := Random(500, 8, rand.New(rand.NewPCG(2, 2))), Random(500, 8, rand.New(rand.NewPCG(2, 2)))
	if !reflect.DeepEqual(a, b) {
		t.Error("not deterministic")
	}
}

func TestCommunityLists(t *testing.T) {
	g := Communities(100, 30, 3, 1, rand.New(rand.NewPCG(4, 4)))
	l := g.CommunityLists()
	if len(l) != 4 || len(l[3]) != 10 || !reflect.DeepEqual(l[1], g.CommunityMembers(1)) {
		t.Fatalf("lists %v", l)
	}
}
