// Package graph generates the contact graphs the simulator and the overlay
// tests run broadcasts on: communities (a stochastic block model), small
// worlds (Watts-Strogatz) and uniform random graphs. Graphs are undirected and
// stored compactly (CSR: two int32 arrays), so 10^6 nodes with degree 16 fit
// in about 70 MB. Generation is deterministic for a given *rand.Rand.
package graph

import (
	"math/rand/v2"
	"slices"
)

// Graph is an undirected simple graph in compressed sparse row form.
type Graph struct {
	Off []int32 // len N+1; the neighbours of v are Adj[Off[v]:Off[v+1]]
	Adj []int32
	// Community of each node, or nil when the graph has none.
	Community []int32
}

// N returns the number of nodes.
func (g *Graph) N() int { return len(g.Off) - 1 }

// Edges returns the number of undirected edges.
func (g *Graph) Edges() int { return len(g.Adj) / 2 }

// Neighbours returns v's neighbours in ascending order (do not modify).
func (g *Graph) Neighbours(v int) []int32 { return g.Adj[g.Off[v]:g.Off[v+1]] }

// CommunityMembers returns the nodes of community c (in ascending order).
func (g *Graph) CommunityMembers(c int32) []int32 {
	var out []int32
	for v, cv := range g.Community {
		if cv == c {
			out = append(out, int32(v))
		}
	}
	return out
}

// CommunityLists returns the members of every community, indexed by
// community (computed in one pass; keep the result rather than calling
// CommunityMembers in a loop).
func (g *Graph) CommunityLists() [][]int32 {
	var out [][]int32
	for v, c := range g.Community {
		for int(c) >= len(out) {
			out = append(out, nil)
		}
		out[c] = append(out[c], int32(v))
	}
	return out
}

// FromEdges builds a graph on n nodes from edges packed as u<<32|v; self
// loops and duplicates are dropped. edges is sorted in place.
func FromEdges(n int, edges []uint64) *Graph {
	for i, e := range edges {
		u, v := uint32(e>>32), uint32(e)
		if u > v {
			edges[i] = uint64(v)<<32 | uint64(u)
		}
	}
	slices.Sort(edges)
	edges = slices.Compact(edges)
	g := &Graph{Off: make([]int32, n+1)}
	deg := make([]int32, n)
	m := 0
	for _, e := range edges {
		u, v := int(e>>32), int(uint32(e))
		if u == v {
			continue
		}
		deg[u]++
		deg[v]++
		m++
	}
	for v := 0; v < n; v++ {
		g.Off[v+1] = g.Off[v] + deg[v]
	}
	g.Adj = make([]int32, 2*m)
	pos := deg // reuse as fill cursor
	copy(pos, g.Off[:n])
	for _, e := range edges {
		u, v := int32(e>>32), int32(uint32(e))
		if u == v {
			continue
		}
		g.Adj[pos[u]] = v
		pos[u]++
		g.Adj[pos[v]] = u
		pos[v]++
	}
	for v := 0; v < n; v++ {
		slices.Sort(g.Neighbours(v))
	}
	return g
}

func pack(u, v int) uint64 { return uint64(u)<<32 | uint64(v) }

// Communities returns n nodes in consecutive communities of size (the last
// may be smaller). Each node draws inDeg edges to random members of its own
// community and outDeg edges to random nodes elsewhere, so the mean degree is
// at most 2*(inDeg+outDeg) (repeated picks merge; 14.9 for size 40, 8, 1).
func Communities(n, size, inDeg, outDeg int, r *rand.Rand) *Graph {
	size = max(1, min(size, n))
	edges := make([]uint64, 0, n*(inDeg+outDeg))
	comm := make([]int32, n)
	for v := range comm {
		comm[v] = int32(v / size)
	}
	for v := 0; v < n; v++ {
		lo := v / size * size
		hi := min(lo+size, n)
		if hi-lo > 1 {
			for range inDeg {
				edges = append(edges, pack(v, lo+r.IntN(hi-lo)))
			}
		}
		if n > hi-lo {
			for range outDeg {
				u := r.IntN(n - (hi - lo))
				if u >= lo {
					u += hi - lo
				}
				edges = append(edges, pack(v, u))
			}
		}
	}
	g := FromEdges(n, edges)
	g.Community = comm
	return g
}

// SmallWorld is a Watts-Strogatz graph: a ring where each node links to its
// k nearest neighbours on each side, each link rewired to a random node with
// probability beta. Communities are consecutive arcs of commSize nodes
// (commSize <= 0: none), handy for measuring reach "near" the origin.
func SmallWorld(n, k int, beta float64, commSize int, r *rand.Rand) *Graph {
	edges := make([]uint64, 0, n*k)
	for v := 0; v < n; v++ {
		for j := 1; j <= k; j++ {
			u := (v + j) % n
			if r.Float64() < beta {
				u = r.IntN(n)
			}
			edges = append(edges, pack(v, u))
		}
	}
	g := FromEdges(n, edges)
	if commSize > 0 {
		g.Community = make([]int32, n)
		for v := range g.Community {
			g.Community[v] = int32(v / commSize)
		}
	}
	return g
}

// Random is a uniform random graph where each node draws deg/2 random edges
// (mean degree about deg).
func Random(n, deg int, r *rand.Rand) *Graph {
	edges := make([]uint64, 0, n*deg/2)
	for v := 0; v < n; v++ {
		for range max(1, deg/2) {
			edges = append(edges, pack(v, r.IntN(n)))
		}
	}
	return FromEdges(n, edges)
}
