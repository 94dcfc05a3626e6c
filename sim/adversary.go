package sim

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sort"
)

// Adversary behaviours (config adversary). Every adversary is a Sybil of
// one colluding attacker; they differ in how they answer FIND_NODE.
const (
	// AdvFake: answer with the K adversaries closest to the target (fake
	// closer contacts, S/Kademlia's colluding nodes).
	AdvFake = "fake"
	// AdvFakeFresh: as AdvFake, but the attacker coordinates its answers
	// to one lookup: each gives the next K adversaries closest to the
	// target that this lookup has not been given yet (so disjoint paths
	// cannot discard them as already used).
	AdvFakeFresh = "fake-fresh"
	// AdvDrop: never answer; the request times out.
	AdvDrop = "drop"
	// AdvMisroute: answer with real contacts far from the target (the
	// adversary's table entries closest to the target's antipode).
	AdvMisroute = "misroute"
)

const (
	advFake uint8 = iota
	advDrop
	advMisroute
	advFakeFresh
)

// Adversaries configures SetAdversaries.
type Adversaries struct {
	Share    float64 // share of all nodes that are adversaries
	Behavior string  // AdvFake, AdvDrop or AdvMisroute ("" is AdvFake)
	// EclipseShare of the adversaries choose IDs next to one of Targets
	// honest target keys (closer to it than any honest node: they share
	// ceil(log2 N)+8 leading bits with it); the rest have random IDs.
	EclipseShare float64
	Targets      int
}

func advCode(b string) (uint8, error) {
	switch b {
	case "", AdvFake:
		return advFake, nil
	case AdvDrop:
		return advDrop, nil
	case AdvMisroute:
		return advMisroute, nil
	case AdvFakeFresh:
		return advFakeFresh, nil
	}
	return 0, fmt.Errorf("adversary %q: want %s, %s, %s or %s", b, AdvFake, AdvFakeFresh, AdvDrop, AdvMisroute)
}

// SetAdversaries marks a share of the nodes as adversaries with the given
// behaviour. With an eclipse share it moves that share of them next to
// the attacked targets (re-sorting the key space, so node indices change)
// and makes lookups target those keys (Targets).
func (n *Net) SetAdversaries(a Adversaries) error {
	code, err := advCode(a.Behavior)
	if err != nil {
		return err
	}
	n.adv = code
	n.SetSybils(a.Share)
	n.Targets = nil
	if n.sybil == nil || a.EclipseShare <= 0 {
		return nil
	}
	T := max(1, a.Targets)
	N := n.N()
	// Targets: honest nodes chosen by hash.
	var targets []Key
	for i := uint64(0); len(targets) < T && i < uint64(64*N); i++ {
		x := int32(hash3(n.Seed, 0xec1, i) % uint64(N))
		if !n.sybil[x] && !slices.Contains(targets, n.Space.Keys[x]) {
			targets = append(targets, n.Space.Keys[x])
		}
	}
	// Move the first EclipseShare of the Sybils (in hash order) next to
	// the targets, round-robin.
	depth := bits.Len(uint(N)) + 8
	moveN := int(math.Round(a.EclipseShare * float64(len(n.sybIdx))))
	type kv struct {
		k   Key
		syb bool
	}
	all := make([]kv, N)
	for i := range all {
		all[i] = kv{n.Space.Keys[i], n.sybil[i]}
	}
	order := slices.Clone(n.sybIdx)
	slices.SortFunc(order, func(a, b int32) int {
		return cmpU64(hash3(n.Seed, 0xec2, uint64(a)), hash3(n.Seed, 0xec2, uint64(b)))
	})
	for j, x := range order[:moveN] {
		t := targets[j%len(targets)]
		lo, hi := prefixBounds(t, depth)
		var k Key
		for w := range k {
			r := hash3(n.Seed, 0xec3+uint64(w), uint64(j))
			k[w] = lo[w] | r&(lo[w]^hi[w])
		}
		if k == t {
			k[3] ^= 1
		}
		all[x].k = k
	}
	slices.SortFunc(all, func(a, b kv) int { return a.k.Cmp(b.k) })
	n.sybSpace = &Space{}
	n.sybIdx = n.sybIdx[:0]
	for i, e := range all {
		n.Space.Keys[i], n.sybil[i] = e.k, e.syb
		if e.syb {
			n.sybSpace.Keys = append(n.sybSpace.Keys, e.k)
			n.sybIdx = append(n.sybIdx, int32(i))
		}
	}
	for _, t := range targets {
		i := sort.Search(N, func(i int) bool { return n.Space.Keys[i].Cmp(t) >= 0 })
		n.Targets = append(n.Targets, int32(i))
	}
	return nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// drops reports whether node y never answers (a dropping adversary).
func (n *Net) drops(y int32) bool { return n.adv == advDrop && n.IsSybil(y) }

// freshFakes returns the adversaries ranked [from, from+K) by distance to
// target: the next fake contacts a coordinated attacker hands one lookup.
func (n *Net) freshFakes(target Key, from int) []int32 {
	out := n.sybSpace.Closest(target, from+n.K, nil)
	out = out[min(from, len(out)):]
	for i, j := range out {
		out[i] = n.sybIdx[j]
	}
	return out
}
