package sim

import "slices"

// Candidate states of a lookup.
const (
	stNew uint8 = iota
	stInflight
	stOK
	stFailed
)

type lcand struct {
	d    Key // distance to the target
	node int32
	hop  uint8 // RPC hops from the origin to this node's answer
	st   uint8
}

type lpath struct {
	cands    []lcand // sorted by distance
	claimed  map[int32]struct{}
	inflight int
	done     bool
	found    bool // AllPaths: this path learned the target
}

// Lookup is one iterative Kademlia lookup, run by the Engine: alpha RPCs in
// flight per path, each answer merged into the path's candidates sorted by
// XOR distance, until the K closest candidates have answered (or the target
// node is learned, for peer lookups). With Paths > 1 it is an S/Kademlia
// disjoint-path lookup: the origin's K closest contacts are dealt round-robin
// to the paths and no node is ever queried by two paths (unless Shared).
type Lookup struct {
	net        *Net
	eng        *Engine
	Origin     int32
	Target     Key
	TargetNode int32 // -1: a key lookup (FIND_NODE of a random key)
	Alpha      int
	TimeoutNs  int64
	OnDone     func(*Lookup)

	paths   []lpath
	claimed map[int32]struct{} // disjoint paths: one set for all
	opts    LookupOpts
	active  int
	relays  []int32 // a client target's relays: answering, they give its address
	fakes   int     // fake-fresh adversaries: fake contacts handed out so far

	Start, End    int64
	Found         bool  // peer lookup: the target was learned
	FoundAt       int64 // when it was first learned
	PathsFound    []bool
	Hops          int // depth of the answer that named the target (or of the target's own answer)
	RPCs, Timeout int
	done          bool
}

const (
	timeoutFlag = 1 << 62
	arriveFlag  = 1 << 61 // the request reaches the queried node
)

// LookupOpts are the variants of a multi-path lookup.
type LookupOpts struct {
	// Shared: the paths are not disjoint; each path only avoids the nodes
	// it queried itself (d independent lookups from split first contacts).
	Shared bool
	// AllPaths: every path runs until it learns the target or ends; the
	// lookup ends with the last path and PathsFound says which found it.
	AllPaths bool
}

// StartLookup begins a lookup from origin at the engine's current time.
// targetNode >= 0 makes it a peer lookup for that node's key.
func (n *Net) StartLookup(eng *Engine, origin int32, target Key, targetNode int32, alpha, paths int,
	timeoutNs int64, onDone func(*Lookup)) *Lookup {
	return n.StartLookupOpts(eng, origin, target, targetNode, alpha, paths, timeoutNs, LookupOpts{}, onDone)
}

// StartLookupOpts is StartLookup with the variants of opts.
func (n *Net) StartLookupOpts(eng *Engine, origin int32, target Key, targetNode int32, alpha, paths int,
	timeoutNs int64, opts LookupOpts, onDone func(*Lookup)) *Lookup {
	l := &Lookup{net: n, eng: eng, Origin: origin, Target: target, TargetNode: targetNode, Alpha: alpha,
		TimeoutNs: timeoutNs, OnDone: onDone, paths: make([]lpath, max(1, paths)),
		claimed: make(map[int32]struct{}, 64), opts: opts, Start: eng.Now()}
	for i := range l.paths {
		l.paths[i].claimed = l.claimed
		if opts.Shared {
			l.paths[i].claimed = map[int32]struct{}{origin: {}}
		}
	}
	if opts.AllPaths {
		l.PathsFound = make([]bool, len(l.paths))
	}
	l.claimed[origin] = struct{}{}
	if targetNode >= 0 && !n.IsServer(targetNode) {
		l.relays = n.Relays(targetNode, n.RelayCount, n.IsServer)
	}
	// As kad-dht's FindPeer, the lookup runs even when the target is in the
	// origin's own table: it is then a depth-1 candidate, queried first.
	first := n.FindNode(origin, target, eng.Now())
	for i, y := range first {
		p := &l.paths[i%len(l.paths)]
		p.cands = append(p.cands, lcand{d: n.Space.Keys[y].Xor(target), node: y, hop: 1})
		p.claimed[y] = struct{}{}
	}
	l.active = len(l.paths)
	for i := range l.paths {
		l.pump(i)
	}
	return l
}

// pump issues RPCs on path pi while fewer than Alpha are in flight and one
// of the K closest live candidates has not been queried.
func (l *Lookup) pump(pi int) {
	p := &l.paths[pi]
	n := l.net
	now := l.eng.Now()
	for p.inflight < l.Alpha {
		next, seen := -1, 0
		for i := range p.cands {
			if seen >= n.K {
				break
			}
			switch p.cands[i].st {
			case stFailed:
				continue
			case stNew:
				next = i
			}
			seen++
			if next >= 0 {
				break
			}
		}
		if next < 0 {
			break
		}
		c := &p.cands[next]
		c.st = stInflight
		p.inflight++
		l.RPCs++
		n.RPCs++
		y := c.node
		arg := int64(pi)<<32 | int64(uint32(y))
		if !n.Alive(y) || n.drops(y) {
			l.eng.At(now+l.TimeoutNs, l, arg|timeoutFlag)
			continue
		}
		n.Load[y]++
		rtt := n.Geo.RTT(l.Origin, y)
		var dial int64 // a contact learned from an answer: connect first
		if c.hop > 1 && n.DialRTTs > 0 {
			dial = int64(n.DialRTTs * float64(rtt))
		}
		if n.busy != nil {
			// Queue at y in arrival order: an event when the request arrives.
			l.eng.At(now+dial+rtt/2, l, arg|arriveFlag)
		} else {
			l.eng.At(now+dial+rtt+n.ServiceNs, l, arg)
		}
	}
	if p.inflight == 0 && !p.done {
		p.done = true
		l.active--
		if l.active == 0 {
			l.finish(now)
		}
	}
}

// Fire handles an RPC answer or timeout.
func (l *Lookup) Fire(now, arg int64) {
	pi, y := int(arg>>32&0xffff), int32(uint32(arg))
	if arg&arriveFlag != 0 {
		n := l.net
		start := max(now, n.busy[y])
		n.busy[y] = start + n.ServiceNs
		l.eng.At(n.busy[y]+n.Geo.RTT(l.Origin, y)/2, l, arg&^arriveFlag)
		return
	}
	p := &l.paths[pi]
	p.inflight--
	if l.done || p.found {
		return
	}
	ci := slices.IndexFunc(p.cands, func(c lcand) bool { return c.node == y })
	if arg&timeoutFlag != 0 {
		l.Timeout++
		l.net.Evict(l.Origin, y, now)
		p.cands[ci].st = stFailed
		l.pump(pi)
		return
	}
	c := &p.cands[ci]
	c.st = stOK
	hop := c.hop
	if y == l.TargetNode || slices.Contains(l.relays, y) { // the target itself, or a relay connected to it, answered
		l.found(pi, int(hop), now)
		return
	}
	var res []int32
	if l.net.adv == advFakeFresh && l.net.IsSybil(y) {
		res = l.net.freshFakes(l.Target, l.fakes)
		l.fakes += len(res)
	} else {
		res = l.net.FindNode(y, l.Target, now)
	}
	added := false
	for _, r := range res {
		if r == l.TargetNode {
			l.found(pi, int(hop), now)
			return
		}
		if _, ok := p.claimed[r]; ok {
			continue
		}
		p.claimed[r] = struct{}{}
		p.cands = append(p.cands, lcand{d: l.net.Space.Keys[r].Xor(l.Target), node: r, hop: hop + 1})
		added = true
	}
	if added {
		slices.SortFunc(p.cands, func(a, b lcand) int { return a.d.Cmp(b.d) })
		// Forget far candidates never queried: they can no longer matter.
		keep := 0
		for i, c := range p.cands {
			if c.st != stNew || i < 3*l.net.K {
				p.cands[keep] = c
				keep++
			}
		}
		p.cands = p.cands[:keep]
	}
	l.pump(pi)
}

// found: path pi learned the target at depth hop. Without AllPaths the
// lookup ends; with it, only the path does.
func (l *Lookup) found(pi, hop int, now int64) {
	if !l.Found {
		l.Found, l.Hops, l.FoundAt = true, hop, now
	}
	if !l.opts.AllPaths {
		l.finish(now)
		return
	}
	p := &l.paths[pi]
	l.PathsFound[pi], p.found = true, true
	if !p.done {
		p.done = true
		l.active--
		if l.active == 0 {
			l.finish(now)
		}
	}
}

func (l *Lookup) finish(now int64) {
	if l.done {
		return
	}
	l.done, l.End = true, now
	if l.TargetNode < 0 {
		if c := l.Closest(1); len(c) > 0 {
			for _, p := range l.paths {
				for _, cc := range p.cands {
					if cc.node == c[0] {
						l.Hops = int(cc.hop)
					}
				}
			}
		}
	}
	if l.OnDone != nil {
		l.OnDone(l)
	}
}

// Closest returns up to k nodes that answered, nearest to the target first,
// over all paths.
func (l *Lookup) Closest(k int) []int32 {
	var all []lcand
	for _, p := range l.paths {
		for _, c := range p.cands {
			if c.st == stOK {
				all = append(all, c)
			}
		}
	}
	slices.SortFunc(all, func(a, b lcand) int { return a.d.Cmp(b.d) })
	out := make([]int32, 0, k)
	for _, c := range all[:min(k, len(all))] {
		out = append(out, c.node)
	}
	return out
}

// Latency is the lookup's duration in nanoseconds: until the target was
// first learned, if it was.
func (l *Lookup) Latency() int64 {
	if l.Found {
		return l.FoundAt - l.Start
	}
	return l.End - l.Start
}
