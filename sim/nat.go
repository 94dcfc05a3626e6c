package sim

// NAT and connection model, as the node does it (dht/: AutoRelay fed from
// DHT neighbours, DCUtR):
//   - a node is public, behind an endpoint-independent-mapping NAT (EIM,
//     hole-punchable) or behind a symmetric NAT;
//   - a NATed node holds relay reservations on the `relays` public nodes
//     closest to its key (its DHT neighbours), and advertises them;
//   - a connects to b: directly when b is public (1 RTT handshake, first
//     packet after 1.5 RTT); otherwise through one of b's relays (connect to
//     the relay, then the first packet travels a -> relay -> b). When a is
//     public, b reverses the connection (direct). When both are NATed, DCUtR
//     tries a hole punch: success with probability punch_success_eim (both
//     EIM), punch_success_mixed (one symmetric) or 0 (both symmetric); on
//     failure the connection stays relayed.
// The default punch probabilities give about 70% direct among NATed pairs
// with 20% of NATed nodes symmetric: the DCUtR measurement campaign found
// 70% +- 7.1%.

const (
	natPublic uint8 = iota
	natEIM
	natSymmetric
)

// natOf assigns NAT types by hash: a share public_share public, and of the
// rest a share symmetric_share symmetric.
func natOf(n *Net, c Config) []uint8 {
	t := make([]uint8, n.N())
	pub := uint64(c.PublicShare * (1 << 53))
	sym := uint64(c.SymmetricShare * (1 << 53))
	for i := range t {
		switch {
		case hash3(n.Seed, 0x9a7, uint64(i))>>11 < pub:
			t[i] = natPublic
		case hash3(n.Seed, 0x5e3, uint64(i))>>11 < sym:
			t[i] = natSymmetric
		default:
			t[i] = natEIM
		}
	}
	return t
}

// relaysOf returns the public alive nodes closest to b's key: its relays.
func relaysOf(n *Net, nat []uint8, b int32, count int) []int32 {
	return n.Space.Closest(n.Space.Keys[b], count, func(i int32) bool {
		return i != b && nat[i] == natPublic && n.Alive(i)
	})
}

// punchOK decides, deterministically per pair, whether a hole punch works.
func punchOK(n *Net, c Config, nat []uint8, a, b int32) bool {
	p := 0.0
	switch {
	case nat[a] == natEIM && nat[b] == natEIM:
		p = c.PunchEIM
	case nat[a] == natSymmetric && nat[b] == natSymmetric:
		p = 0
	default:
		p = c.PunchMixed
	}
	lo, hi := min(a, b), max(a, b)
	return float64(hash3(n.Seed, 0x9c4, uint64(lo)<<32|uint64(hi))>>11)/(1<<53) < p
}

// conn is how a connection a -> b turned out.
type conn struct {
	ok       bool
	direct   bool   // ended direct (public target, reversal, or punched)
	relay    int32  // relay used for the first packets, -1: none
	relayed  bool   // stays relayed
	firstNs  int64  // from dial to the first packet at b
	directNs int64  // until the direct path is up (if direct)
	kind     string // public, reversal, punched, relayed
}

// connect models a -> b after b's addresses are known; relayPick chooses
// among b's relays (by hash of the pair).
func connect(n *Net, c Config, nat []uint8, a, b int32) conn {
	g := n.Geo
	if nat[b] == natPublic {
		rtt := g.RTT(a, b)
		return conn{ok: true, direct: true, relay: -1, firstNs: rtt * 3 / 2, directNs: rtt * 3 / 2, kind: "public"}
	}
	rl := relaysOf(n, nat, b, max(1, c.Relays))
	if len(rl) == 0 {
		return conn{relay: -1}
	}
	r := rl[int(hash3(n.Seed, uint64(a), uint64(b))%uint64(len(rl)))]
	first := g.RTT(a, r) + (g.RTT(a, r)+g.RTT(r, b))/2
	cn := conn{ok: true, relay: r, firstNs: first}
	// DCUtR: one round trip over the relay to sync, then the punch (about
	// 1.5 RTT of the direct path).
	sync := g.RTT(a, r) + g.RTT(r, b)
	switch {
	case nat[a] == natPublic:
		cn.direct, cn.kind, cn.directNs = true, "reversal", first+g.RTT(a, b)*3/2
	case punchOK(n, c, nat, a, b):
		cn.direct, cn.kind, cn.directNs = true, "punched", first+sync+g.RTT(a, b)*3/2
	default:
		cn.relayed, cn.kind = true, "relayed"
	}
	return cn
}
