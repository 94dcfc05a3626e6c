// Package sim is kadlan's discrete-event simulator: it runs the node's
// algorithms (Kademlia routing, relay choice, implicit social switching from
// package overlay) on simulated networks of 10^3 to 10^6 nodes and produces
// results.json, CSV tables and plots (SVG and PNG, gonum.org/v1/plot).
//
// # Engine
//
// Engine is a virtual clock (int64 nanoseconds) with an event heap ordered by
// (time, insertion sequence), so a run is a pure function of its config and
// seed: every random draw comes from a PCG generator seeded from them, maps
// are never iterated where order matters, and results.json holds no wall
// clock data (TestDeterministicResults checks byte equality).
//
// # Kademlia model (kad.go, lookup.go)
//
// Node keys are SHA-256 digests (of the seed and the node index), the 256-bit
// XOR space of kad-dht. Nodes are numbered in ascending key order, so a
// subtree of the key trie (all keys sharing a prefix) is a contiguous index
// range found by binary search. Routing tables are not stored: bucket i of
// node x is the sibling subtree of x at depth i, and its k contacts are drawn
// from that range by a hash of (seed, x, i, draw), skipping nodes that the
// churn model says were not alive at x's last refresh. This gives the
// routing table a well-maintained node would have after long uptime, at a
// memory cost of O(N) (about 100 bytes per node): lookups run at 10^6 nodes
// in 123 MiB and at 10^7 nodes in 653 MiB. Lookups are iterative with alpha
// RPCs in flight, as in go-libp2p-kad-dht; disjoint-path lookups
// (S/Kademlia) run d paths that never share a queried node.
//
// # Geography (geo.go)
//
// Nodes sit around 20 metropolitan areas weighted by Internet population,
// with a Gaussian spread of 300 km. RTT = 2 * great-circle distance /
// (200 km/ms, light in fibre) * 1.3 (route inflation) + both nodes' access
// latencies (log-normal, median 4 ms); this gives about 75 ms New York -
// London and 250 ms Europe - Australia, close to public ping tables.
//
// # Presets
//
// Each preset (presets/*.json, embedded) names a model and its parameters;
// `kadlan sim presets` lists them and `--config FILE` runs an edited copy.
package sim
