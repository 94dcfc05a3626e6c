package sim

import (
	"slices"

	"github.com/kadlan/kadlan/overlay/relaychoice"
)

// Net is the simulated Kademlia network: keys, geography, adversaries,
// churn state and per-node load. Node i has key Space.Keys[i].
type Net struct {
	Space *Space
	Geo   *Geo
	K     int
	Seed  uint64

	sybil    []bool  // nil: no Sybils
	sybSpace *Space  // Sybil keys, ascending
	sybIdx   []int32 // node index of sybSpace.Keys[i]
	adv      uint8   // the adversaries' behaviour (advFake, advDrop, advMisroute)
	// Targets: when set, lookups look these nodes up (the keys an
	// eclipse attack surrounds).
	Targets []int32

	// Churn: node i is alive iff up[i] > down[i]; nil slices: always alive.
	up, down  []int64
	RefreshNs int64 // bucket refresh interval (churn only)
	// Oldest: a bucket keeps the longest-up of its candidates (kad-dht
	// keeps old live entries and never replaces one with a newer peer)
	// instead of a random K.
	Oldest bool
	// evicted[x<<32|y]: when x evicted y after an RPC to it failed (nil:
	// no eviction); y stays out of x's table until x's next refresh and
	// the bucket takes its next candidate instead.
	evicted map[uint64]int64

	// Service queue: an RPC waits until busy[y], then takes ServiceNs.
	busy      []int64
	ServiceNs int64
	// Load counts RPCs served (and relayed connections, for the models
	// that relay) per node.
	Load []uint32
	RPCs uint64
	// DialRTTs: round trips of transport and security handshakes an RPC
	// to a contact learned during the lookup pays first (0: none).
	DialRTTs float64

	// server: nodes that are DHT servers (nil: all). Only servers are in
	// routing tables; a client is found through the RelayCount servers
	// closest to its key (its relays, connected to it: kad-dht answers
	// FindPeer with a connected peer's addresses).
	server     []bool
	RelayCount int
}

// SetServers makes only the nodes with server[i] DHT servers (as in the
// node: only publicly reachable nodes are); clients are found through
// their relays, the relays closest servers to their key.
func (n *Net) SetServers(server []bool, relays int) {
	n.server, n.RelayCount = server, max(1, relays)
}

// Relays returns the count relays that node b chooses, by the node's own
// rule (relaychoice.Choose, as dht's relayNeighbours). The candidates are
// what b knows after its self-lookup: the K alive DHT servers nearest its
// key that are publicly reachable (public(i): the model's "has a direct
// address").
func (n *Net) Relays(b int32, count int, public func(int32) bool) []int32 {
	self := n.Space.Keys[b]
	known := n.Space.Closest(self, max(n.K, count), func(i int32) bool {
		return i != b && n.IsServer(i) && n.Alive(i) && public(i)
	})
	cands := make([]relaychoice.Candidate[int32], len(known))
	for j, i := range known {
		cands[j] = relaychoice.Candidate[int32]{ID: i, Key: n.Space.Keys[i].Bytes(), Usable: public(i)}
	}
	return relaychoice.Choose(self.Bytes(), cands, count)
}

// IsServer reports whether i is a DHT server.
func (n *Net) IsServer(i int32) bool { return n.server == nil || n.server[i] }

// NewNet places n nodes with keys from seed and the given bucket size.
func NewNet(n, k int, seed uint64) *Net {
	return &Net{Space: NewSpace(n, seed), Geo: NewGeo(n, NewRand(seed, 1)), K: k, Seed: seed,
		Load: make([]uint32, n)}
}

// N is the number of nodes.
func (n *Net) N() int { return n.Space.N() }

// SetSybils marks a share f of the nodes, chosen by hash, as Sybils who
// answer every FIND_NODE with the Sybils closest to the target.
func (n *Net) SetSybils(f float64) {
	if f <= 0 {
		n.sybil, n.sybSpace, n.sybIdx = nil, nil, nil
		return
	}
	n.sybil = make([]bool, n.N())
	n.sybSpace = &Space{}
	lim := uint64(f * float64(1<<53))
	for i := range n.sybil {
		if hash3(n.Seed, 0x5b1, uint64(i))>>11 < lim {
			n.sybil[i] = true
			n.sybSpace.Keys = append(n.sybSpace.Keys, n.Space.Keys[i])
			n.sybIdx = append(n.sybIdx, int32(i))
		}
	}
}

// IsSybil reports whether node i is adversarial.
func (n *Net) IsSybil(i int32) bool { return n.sybil != nil && n.sybil[i] }

// EnableQueue gives every node a FIFO service queue of serviceNs per RPC.
func (n *Net) EnableQueue(serviceNs int64) {
	n.busy = make([]int64, n.N())
	n.ServiceNs = serviceNs
}

// Alive reports whether node i is up at the current churn state.
func (n *Net) Alive(i int32) bool { return n.up == nil || n.up[i] > n.down[i] }

// lastRefresh is when node x last refreshed its buckets before now.
func (n *Net) lastRefresh(x int32, now int64) int64 {
	phase := int64(hash3(n.Seed, 0x4ef, uint64(x)) % uint64(n.RefreshNs))
	return now - ((now-phase)%n.RefreshNs+n.RefreshNs)%n.RefreshNs
}

// inTable reports whether y would be in x's routing table at now: it was
// alive at x's last refresh (a contact that died since is stale: still in
// the table, costing a timeout when queried).
func (n *Net) inTable(x, y int32, now int64) bool {
	if n.server != nil && !n.server[y] {
		return false // clients are in no routing table
	}
	if n.up == nil {
		return true
	}
	lr := n.lastRefresh(x, now)
	if n.evicted != nil {
		if t, ok := n.evicted[uint64(x)<<32|uint64(uint32(y))]; ok && t >= lr {
			return false
		}
	}
	if n.up[y] > n.down[y] { // alive now
		return n.up[y] <= lr
	}
	return n.down[y] > lr && n.up[y] <= lr
}

// bucket appends to dst the contacts of x's bucket i at now.
func (n *Net) bucket(x int32, i int, now int64, dst []int32) []int32 {
	lo, hi := n.Space.Bucket(n.Space.Keys[x], i)
	s := hi - lo
	if s == 0 {
		return dst
	}
	start, got := len(dst), 0
	if n.Oldest && n.up != nil {
		return n.oldestBucket(x, i, lo, s, now, dst)
	}
	if s <= 2*n.K {
		off := int(hash3(n.Seed, uint64(x)<<9|uint64(i), 0) % uint64(s))
		for j := 0; j < s && got < n.K; j++ {
			y := int32(lo + (off+j)%s)
			if n.inTable(x, y, now) {
				dst = append(dst, y)
				got++
			}
		}
		return dst
	}
	for m := uint64(0); got < n.K && m < uint64(8*n.K); m++ {
		y := int32(lo + int(hash3(n.Seed, uint64(x)<<9|uint64(i), m+1)%uint64(s)))
		if n.inTable(x, y, now) && !slices.Contains(dst[start:], y) {
			dst = append(dst, y)
			got++
		}
	}
	return dst
}

// oldestBucket is bucket i of x under the Oldest policy: of the
// candidates x knows (the whole subtree when small, else 8K drawn by hash)
// that pass inTable, the K up the longest.
func (n *Net) oldestBucket(x int32, i, lo, s int, now int64, dst []int32) []int32 {
	start := len(dst)
	add := func(y int32) {
		if !n.inTable(x, y, now) || slices.Contains(dst[start:], y) {
			return
		}
		dst = append(dst, y)
		// keep dst[start:] sorted by up time, at most K
		for j := len(dst) - 1; j > start && n.up[dst[j]] < n.up[dst[j-1]]; j-- {
			dst[j], dst[j-1] = dst[j-1], dst[j]
		}
		if len(dst)-start > n.K {
			dst = dst[:start+n.K]
		}
	}
	if s <= 2*n.K {
		for j := range s {
			add(int32(lo + j))
		}
		return dst
	}
	for m := uint64(0); m < uint64(8*n.K); m++ {
		add(int32(lo + int(hash3(n.Seed, uint64(x)<<9|uint64(i), m+1)%uint64(s))))
	}
	return dst
}

// Evict records that x evicted y at now (an RPC to it failed).
func (n *Net) Evict(x, y int32, now int64) {
	if n.evicted != nil {
		n.evicted[uint64(x)<<32|uint64(uint32(y))] = now
	}
}

// EnableEviction makes failed RPCs evict the contact from the querier's
// table until its next refresh.
func (n *Net) EnableEviction() { n.evicted = map[uint64]int64{} }

// FindNode is node x's answer to FIND_NODE(target) at now: the K contacts of
// its routing table closest to target, nearest first. A Sybil answers with
// the K Sybils closest to target (fake closer contacts); a misrouting one
// with its real contacts closest to the target's antipode.
func (n *Net) FindNode(x int32, target Key, now int64) []int32 {
	if n.IsSybil(x) {
		if n.adv == advMisroute {
			target[0] ^= 1 << 63
			return n.tableClosest(x, target, now)
		}
		out := n.sybSpace.Closest(target, n.K, nil)
		for i, j := range out {
			out[i] = n.sybIdx[j]
		}
		return out
	}
	return n.tableClosest(x, target, now)
}

// tableClosest is the K contacts of x's routing table closest to target.
func (n *Net) tableClosest(x int32, target Key, now int64) []int32 {
	xk := n.Space.Keys[x]
	cpl := CPL(xk, target)
	out := make([]int32, 0, 2*n.K)
	if cpl < 256 {
		out = n.bucket(x, cpl, now, out)
	}
	if len(out) < n.K {
		// Deeper buckets: closer to target than any shallower bucket.
		mark := len(out)
		SortByDistance(n.Space, out, target)
		for j := cpl + 1; j < 256; j++ {
			if lo, hi := n.Space.Subtree(xk, j); hi-lo <= 1 {
				break
			}
			out = n.bucket(x, j, now, out)
		}
		SortByDistance(n.Space, out[mark:], target)
		for j := min(cpl, 255) - 1; j >= 0 && len(out) < n.K; j-- {
			m2 := len(out)
			out = n.bucket(x, j, now, out)
			SortByDistance(n.Space, out[m2:], target)
		}
	} else {
		SortByDistance(n.Space, out, target)
	}
	return out[:min(len(out), n.K)]
}

// TrueClosest returns the K alive honest nodes closest to target.
func (n *Net) TrueClosest(target Key, k int) []int32 {
	return n.Space.Closest(target, k, func(i int32) bool { return n.Alive(i) && !n.IsSybil(i) })
}
