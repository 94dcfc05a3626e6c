package sim

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
)

// NAT and connection model, by mechanism. Nothing here reads back a
// configured success rate: whether a pair ends direct comes out of
// simulated packets crossing simulated NATs.
//
// Each NATed node sits behind its own NAT (its own public IP) with an RFC
// 4787 profile: a mapping behaviour (endpoint-independent EIM,
// address-dependent ADM, address-and-port-dependent APDM), a filtering
// behaviour (EIF, ADF, APDF) and a port allocation rule (preserving,
// sequential, random). The NAT keeps a table of mappings and, per external
// port, the remote endpoints it has sent to; an inbound packet passes when
// a mapping holds its destination port and the filter admits its source.
//
// a connects to b (both NATed):
//  1. relay rendezvous: a dials one of b's relays (the public DHT
//     neighbours of b's key on which b holds reservations) and the relay
//     splices the stream to b. Both NATs now hold a mapping towards the
//     relay, and each node's advertised address is the one its relay
//     observes (the mapping towards the relay).
//  2. DCUtR over the relayed stream: b sends CONNECT, a answers CONNECT (b
//     measures the relayed RTT), b sends SYNC and starts dialling RTT/2
//     later, when a receives SYNC and starts too. Both then send UDP
//     packets to the other's advertised address every 10-200 ms (QUIC
//     hole punching) until a 5 s timeout. A packet that passes the other
//     NAT is answered from the receiving socket to the packet's source; the
//     path is direct when such an answer passes back. Packets arrive after
//     the one-way delay of the direct path plus jitter, and each is lost
//     with probability packet_loss, so a packet that arrives before the
//     receiver's NAT has sent anything towards the sender is filtered.
//  3. up to punch_attempts such attempts (DCUtR: 3), then punch_retries
//     later rounds of attempts punch_retry_s apart (a new relayed stream).
//  4. optionally (birthday_probing, as Tailscale does; not in DCUtR), when
//     one side's port is predictable (EIM mapping or port preservation)
//     and the other's is not: the hard side opens birthday_sockets sockets
//     that each send to the easy side's address (each creates a mapping at
//     the hard NAT), and the easy side sends birthday_probes probes to
//     random ports of the hard side's IP at birthday_pps. A probe that hits
//     one of the hard side's mapped ports passes and is answered. The
//     success probability is whatever the simulated port collisions give.
// When one side is public the path is direct: a public target is dialled
// directly; a public dialer is reached by connection reversal through the
// relay.

// RFC 4787 behaviours.
const (
	mapEIM  uint8 = iota // endpoint-independent mapping
	mapADM               // address-dependent mapping
	mapAPDM              // address-and-port-dependent mapping
)

const (
	filEIF  uint8 = iota // endpoint-independent filtering
	filADF               // address-dependent filtering
	filAPDF              // address-and-port-dependent filtering
)

const (
	allocPreserve   uint8 = iota // external port = internal port when free
	allocSequential              // next free port after the last one allocated
	allocRandom                  // uniformly random free port
)

// natProfile is one kind of NAT.
type natProfile struct {
	Name                      string
	Mapping, Filtering, Alloc uint8
	Doc                       string
	// NoUDP: the NAT's firewall lets no UDP out (the lab's UDPBlocked and
	// Only443), so no hole-punching packet leaves. The model punches UDP
	// only: TCP simultaneous open is not modelled.
	NoUDP bool
}

// natProfiles are the NAT kinds a nat_mix may name. Index 0 is "no NAT".
var natProfiles = []natProfile{
	{Name: "public", Doc: "public address, no NAT"},
	{"full-cone", mapEIM, filEIF, allocPreserve, "EIM, endpoint-independent filtering", false},
	{"restricted-cone", mapEIM, filADF, allocPreserve, "EIM, address-dependent filtering", false},
	{"port-restricted", mapEIM, filAPDF, allocPreserve, "EIM, address-and-port-dependent filtering", false},
	{"masquerade", mapAPDM, filAPDF, allocPreserve, "Linux masquerade (e2e netlab.EIM): a conntrack entry per destination, source port kept", false},
	{"address-dependent", mapADM, filAPDF, allocRandom, "ADM, APDF, random ports", false},
	{"symmetric-seq", mapAPDM, filAPDF, allocSequential, "APDM, APDF, sequential ports", false},
	{"symmetric", mapAPDM, filAPDF, allocRandom, "APDM, APDF, random ports (e2e netlab.Symmetric: masquerade random,fully-random)", false},
	// The rest of the lab's zoo (e2e/netlab.NAT): Linux masquerade's
	// port-keeping mapping with the lab's other filters and firewalls.
	{"masquerade-full-cone", mapAPDM, filEIF, allocPreserve, "masquerade with endpoint-independent filtering (e2e netlab.FullCone)", false},
	{"masquerade-restricted", mapAPDM, filADF, allocPreserve, "masquerade with address-dependent filtering (e2e netlab.AddressRestricted)", false},
	{"udp-blocked", mapAPDM, filAPDF, allocPreserve, "masquerade whose firewall lets out TCP only (e2e netlab.UDPBlocked)", true},
	{"tcp443-only", mapAPDM, filAPDF, allocPreserve, "masquerade whose firewall lets out TCP to port 443 only (e2e netlab.Only443)", true},
}

// labNATs maps each kind of the e2e lab's NAT zoo (e2e/netlab.NAT, by its
// Go name) to the profile that models it. CGNAT and NoHairpin are
// masquerade: a carrier NAT in front of one home router (as the lab and
// bench-connect build it) keeps the home router's preserved port, and
// hairpinning does not arise between two NATs.
var labNATs = map[string]string{
	"EIM": "masquerade", "FullCone": "masquerade-full-cone", "AddressRestricted": "masquerade-restricted",
	"Symmetric": "symmetric", "CGNAT": "masquerade", "NoHairpin": "masquerade",
	"UDPBlocked": "udp-blocked", "Only443": "tcp443-only",
}

const natPublic uint8 = 0

// natProfileIndex finds a profile by name, or by the name of the lab's
// NAT kind it models ("lab.EIM", "lab.Symmetric": see labNATs).
func natProfileIndex(name string) (uint8, bool) {
	if l, ok := strings.CutPrefix(name, "lab."); ok {
		if name, ok = labNATs[l]; !ok {
			return 0, false
		}
	}
	for i, p := range natProfiles {
		if p.Name == name {
			return uint8(i), true
		}
	}
	return 0, false
}

func natProfileNames() []string {
	var out []string
	for _, p := range natProfiles[1:] {
		out = append(out, p.Name)
	}
	return out
}

// validateNATMix checks a nat_mix: known profiles, non-negative weights,
// some weight.
func validateNATMix(mix map[string]float64) error {
	sum := 0.0
	for k, v := range mix {
		if i, ok := natProfileIndex(k); !ok || i == natPublic {
			return fmt.Errorf("nat_mix: unknown NAT %q (have %s, or lab.KIND for the lab's %s)", k,
				strings.Join(natProfileNames(), ", "), strings.Join(slices.Sorted(maps.Keys(labNATs)), ", "))
		}
		if v < 0 {
			return fmt.Errorf("nat_mix: weight of %s is negative", k)
		}
		sum += v
	}
	if sum <= 0 {
		return fmt.Errorf("nat_mix: no weight")
	}
	return nil
}

// natOf assigns NAT profiles by hash: a share public_share public, the
// rest drawn from nat_mix (weights, normalised).
func natOf(n *Net, c Config) []uint8 {
	t := make([]uint8, n.N())
	pub := uint64(c.PublicShare * (1 << 53))
	var idx []uint8
	var cum []float64
	sum := 0.0
	weight := make([]float64, len(natProfiles))
	for _, name := range slices.Sorted(maps.Keys(c.NATMix)) { // sorted: sums in a fixed order
		if i, ok := natProfileIndex(name); ok {
			weight[i] += c.NATMix[name]
		}
	}
	for i := range natProfiles {
		if w := weight[i]; i != 0 && w > 0 {
			sum += w
			idx, cum = append(idx, uint8(i)), append(cum, sum)
		}
	}
	for i := range t {
		if hash3(n.Seed, 0x9a7, uint64(i))>>11 < pub || len(idx) == 0 {
			continue // public
		}
		u := float64(hash3(n.Seed, 0x5e3, uint64(i))>>11) / (1 << 53) * sum
		j, _ := slices.BinarySearch(cum, u)
		t[i] = idx[min(j, len(idx)-1)]
	}
	return t
}

// relaysOf returns b's relays: the public alive nodes closest to b's key.
func relaysOf(n *Net, nat []uint8, b int32, count int) []int32 {
	return n.Relays(b, count, func(i int32) bool { return nat[i] == natPublic })
}

// Ports.
const (
	portLo     = 1024  // NATs allocate from [portLo, portHi)
	portHi     = 65536 //
	portRange  = portHi - portLo
	listenPort = 4001 // the node's UDP socket (libp2p's default port)
)

type endpoint struct {
	ip   uint32
	port uint16
}

// key packs a port and an endpoint into a map key: (internal port,
// destination) for mappings, with zero fields where the mapping does not
// depend on them; (external port, source) for the filter, source port 0
// meaning any port of that address.
func key(port uint16, e endpoint) uint64 {
	return uint64(port)<<48 | uint64(e.ip)<<16 | uint64(e.port)
}

// natBox is the state of one NAT during one connection attempt.
type natBox struct {
	prof  *natProfile
	ip    uint32
	r     *rand.Rand
	seq   uint16
	byKey map[uint64]uint16 // mapping -> external port
	byExt map[uint32]uint16 // external port -> internal port
	perm  map[uint64]struct{}
}

func newNATBox(p *natProfile, ip uint32, r *rand.Rand) *natBox {
	return &natBox{prof: p, ip: ip, r: r, seq: uint16(portLo + r.IntN(portRange)),
		byKey: make(map[uint64]uint16, 8), byExt: make(map[uint32]uint16, 8), perm: make(map[uint64]struct{}, 16)}
}

func (x *natBox) alloc(in uint16) uint16 {
	free := func(p uint16) bool {
		q, used := x.byExt[uint32(p)]
		return p >= portLo && (!used || q == in)
	}
	switch x.prof.Alloc {
	case allocPreserve:
		if free(in) {
			return in
		}
		fallthrough
	case allocSequential:
		for {
			x.seq++
			if x.seq < portLo {
				x.seq = portLo
			}
			if _, used := x.byExt[uint32(x.seq)]; !used {
				return x.seq
			}
		}
	default:
		for {
			p := uint16(portLo + x.r.IntN(portRange))
			if _, used := x.byExt[uint32(p)]; !used {
				return p
			}
		}
	}
}

// out translates a packet from internal port in to dst: the external port
// it leaves from (creating the mapping if needed); the filter now admits
// dst (and, for address-dependent filtering, any port of dst's address).
func (x *natBox) out(in uint16, dst endpoint) uint16 {
	var d endpoint
	switch x.prof.Mapping {
	case mapADM:
		d.ip = dst.ip
	case mapAPDM:
		d = dst
	}
	k := key(in, d)
	ext, ok := x.byKey[k]
	if !ok {
		ext = x.alloc(in)
		x.byKey[k] = ext
		x.byExt[uint32(ext)] = in
	}
	x.perm[key(ext, dst)] = struct{}{}
	x.perm[key(ext, endpoint{ip: dst.ip})] = struct{}{}
	return ext
}

// in filters an inbound packet from src to external port ext: the internal
// port it reaches, or false when dropped.
func (x *natBox) in(ext uint16, src endpoint) (uint16, bool) {
	in, ok := x.byExt[uint32(ext)]
	if !ok {
		return 0, false
	}
	switch x.prof.Filtering {
	case filADF:
		_, ok = x.perm[key(ext, endpoint{ip: src.ip})]
	case filAPDF:
		_, ok = x.perm[key(ext, src)]
	}
	return in, ok
}

// host is a node's side of a punch: its IP and NAT (nil: public).
type host struct {
	ip  uint32
	box *natBox
}

func (h host) send(in uint16, dst endpoint) endpoint {
	if h.box == nil {
		return endpoint{h.ip, in}
	}
	return endpoint{h.ip, h.box.out(in, dst)}
}

func (h host) recv(ext uint16, src endpoint) (uint16, bool) {
	if h.box == nil {
		return ext, true
	}
	return h.box.in(ext, src)
}

// predictable: the port this NAT uses towards a new destination is the one
// its relay observed (EIM, or an APDM NAT that keeps source ports).
func (p *natProfile) predictable() bool { return p.Mapping == mapEIM || p.Alloc == allocPreserve }

// punchParams are the knobs of the punching mechanism (from Config).
type punchParams struct {
	attempts, retries  int
	retryNs, timeoutNs int64
	loss               float64
	birthday           bool
	bdSockets, bdProbe int
	bdGapNs            int64
}

func punchParamsOf(c Config) punchParams {
	return punchParams{attempts: max(1, c.PunchAttempts), retries: max(0, c.PunchRetries),
		retryNs: int64(c.PunchRetryS * 1e9), timeoutNs: int64(c.PunchTimeoutMs * 1e6), loss: c.PacketLoss,
		birthday: c.BirthdayProbing, bdSockets: max(1, c.BirthdaySockets), bdProbe: max(0, c.BirthdayProbes),
		bdGapNs: int64(1e9 / max(1, c.BirthdayPPS))}
}

// punchSim runs the packets of one punching attempt between h[0] and h[1].
type punchSim struct {
	eng    Engine
	r      *rand.Rand
	h      [2]host
	adv    [2]endpoint // addresses each side advertises (observed by its relay)
	owd    int64       // one-way delay of the direct path
	loss   float64
	doneAt int64 // time the direct path is up, -1: not yet
	end    int64 // senders stop at end
}

func (s *punchSim) delay() int64 {
	return s.owd + int64(s.r.ExpFloat64()*float64(s.owd)/20) // jitter: mean 5% of the one-way delay
}

// packet sends from side from, internal port in, to dst; reply marks the
// answer to a packet that passed.
func (s *punchSim) packet(from int, in uint16, dst endpoint, reply bool) {
	if b := s.h[from].box; b != nil && b.prof.NoUDP {
		return // the firewall drops it on its way out
	}
	src := s.h[from].send(in, dst)
	if s.r.Float64() < s.loss {
		return
	}
	to := 1 - from
	s.eng.After(s.delay(), HandlerFunc(func(now, _ int64) {
		if s.doneAt >= 0 {
			return
		}
		rin, ok := s.h[to].recv(dst.port, src)
		if !ok {
			return
		}
		if reply {
			s.doneAt = now + s.owd // the handshake's last flight
			return
		}
		s.packet(to, rin, src, true)
	}), 0)
}

// sender sends from side i to the other's advertised address every
// 10-200 ms until the path is up or the attempt ends.
func (s *punchSim) sender(i int, at int64) {
	s.eng.At(at, HandlerFunc(func(now, _ int64) {
		if s.doneAt >= 0 || now >= s.end {
			return
		}
		s.packet(i, listenPort, s.adv[1-i], false)
		s.sender(i, now+int64(10e6+s.r.Float64()*190e6))
	}), 0)
}

// attempt runs one DCUtR attempt whose hole punch starts at start (side 1
// dials then, side 0 when SYNC arrives, skew later).
func (s *punchSim) attempt(start, skew, timeout int64) bool {
	s.end = start + timeout
	s.sender(1, start)
	s.sender(0, start+skew)
	s.eng.Run(-1)
	return s.doneAt >= 0
}

// birthday runs birthday-paradox probing from start: side hard opens
// sockets sockets towards the easy side's address, the easy side probes
// random ports of the hard side's IP.
func (s *punchSim) birthday(start int64, easy int, sockets, probes int, gap int64) bool {
	hard := 1 - easy
	s.end = start + int64(probes)*gap
	s.eng.At(start, HandlerFunc(func(now, _ int64) {
		for j := range sockets {
			s.packet(hard, uint16(20000+j), s.adv[easy], false)
		}
	}), 0)
	j := 0
	var probe HandlerFunc
	probe = func(now, _ int64) {
		if s.doneAt >= 0 || j >= probes {
			return
		}
		j++
		dst := endpoint{s.h[hard].ip, uint16(portLo + s.r.IntN(portRange))}
		s.packet(easy, listenPort, dst, false)
		s.eng.At(now+gap, probe, 0)
	}
	s.eng.At(start, probe, 0)
	s.eng.Run(-1)
	return s.doneAt >= 0
}

// punchResult is how hole punching between two NATed nodes went.
type punchResult struct {
	direct   bool
	attempt  int   // attempts made until direct (or in all)
	birthday bool  // direct thanks to birthday probing
	ns       int64 // from the start of DCUtR until the direct path is up
}

// punch simulates DCUtR (and optionally birthday probing) between NATed
// nodes a and b that share a relayed stream through r. Deterministic per
// (seed, pair).
func punch(n *Net, pp punchParams, nat []uint8, a, b, r int32) punchResult {
	lo, hi := min(a, b), max(a, b)
	rnd := NewRand(hash3(n.Seed, 0x9c4, uint64(lo)<<32|uint64(hi)), 11)
	g := n.Geo
	s := &punchSim{r: rnd, owd: g.RTT(a, b) / 2, loss: pp.loss, doneAt: -1}
	relay := endpoint{uint32(r) + 1, listenPort}
	for i, v := range []int32{a, b} {
		s.h[i] = host{ip: uint32(v) + 1}
		if nat[v] != natPublic {
			s.h[i].box = newNATBox(&natProfiles[nat[v]], uint32(v)+1, rnd)
		}
		s.adv[i] = s.h[i].send(listenPort, relay) // the reservation / relayed stream
	}
	R := g.RTT(a, r) + g.RTT(r, b) // relayed round trip
	jit := func() int64 { return int64(rnd.NormFloat64() * float64(R) / 20) }
	t := int64(0)
	res := punchResult{}
	for round := 0; round <= pp.retries; round++ {
		if round > 0 {
			t += pp.retryNs
		}
		for range pp.attempts {
			res.attempt++
			// CONNECT, CONNECT back (b measures R), SYNC; b dials R/2 after
			// SYNC, a when SYNC arrives.
			start := t + R + R/2
			skew := jit()
			if s.attempt(start, skew, pp.timeoutNs) {
				res.direct, res.ns = true, s.doneAt
				return res
			}
			t = start + pp.timeoutNs
		}
		if round == 0 && pp.birthday && pp.bdProbe > 0 && s.h[0].box != nil && s.h[1].box != nil {
			e0, e1 := s.h[0].box.prof.predictable(), s.h[1].box.prof.predictable()
			if e0 != e1 {
				easy := 0
				if e1 {
					easy = 1
				}
				if s.birthday(t+R, easy, pp.bdSockets, pp.bdProbe, pp.bdGapNs) {
					res.direct, res.birthday, res.ns = true, true, s.doneAt
					return res
				}
				t = s.end
			}
		}
	}
	return res
}

// conn is how a connection a -> b turned out.
type conn struct {
	ok       bool
	direct   bool   // ended direct (public target, reversal, or punched)
	relay    int32  // relay used for the first packets, -1: none
	relayed  bool   // stays relayed
	firstNs  int64  // from dial to the first packet at b
	directNs int64  // until the direct path is up (if direct)
	attempts int    // DCUtR attempts made (0: none needed)
	birthday bool   // direct through birthday probing
	kind     string // public, reversal, punched, relayed
}

// connect models a -> b after b's addresses are known.
func connect(n *Net, c Config, nat []uint8, a, b int32) conn {
	g := n.Geo
	if nat[b] == natPublic {
		rtt := g.RTT(a, b)
		first := rtt * 3 / 2
		if c.DialRTTs > 0 {
			first = int64(c.DialRTTs*float64(rtt)) + rtt/2
		}
		return conn{ok: true, direct: true, relay: -1, firstNs: first, directNs: first, kind: "public"}
	}
	rl := relaysOf(n, nat, b, max(1, c.Relays))
	if len(rl) == 0 {
		return conn{relay: -1}
	}
	r := rl[int(hash3(n.Seed, uint64(a), uint64(b))%uint64(len(rl)))]
	first := g.RTT(a, r) + (g.RTT(a, r)+g.RTT(r, b))/2
	if c.DialRTTs > 0 {
		// dial the relay, set up the circuit (1 round trip over it),
		// secure it (1 more), then the first packet
		circ := g.RTT(a, r) + g.RTT(r, b)
		first = int64(c.DialRTTs*float64(g.RTT(a, r))) + 2*circ + circ/2
	}
	cn := conn{ok: true, relay: r, firstNs: first}
	if nat[a] == natPublic {
		// connection reversal: b dials a directly (a's address came with
		// the relayed stream); b's NAT lets the answer in.
		cn.direct, cn.kind, cn.directNs = true, "reversal", first+g.RTT(a, b)*3/2
		return cn
	}
	pr := punch(n, punchParamsOf(c), nat, a, b, r)
	cn.attempts, cn.birthday = pr.attempt, pr.birthday
	if pr.direct {
		cn.direct, cn.kind, cn.directNs = true, "punched", first+pr.ns
	} else {
		cn.relayed, cn.kind = true, "relayed"
	}
	return cn
}

// pairClass names the unordered pair of NAT profiles of a and b, e.g.
// "port-restricted+symmetric" (profiles in table order).
func pairClass(nat []uint8, a, b int32) string {
	x, y := min(nat[a], nat[b]), max(nat[a], nat[b])
	return natProfiles[x].Name + "+" + natProfiles[y].Name
}
