package sim

import (
	"math"
	"testing"
)

func prof(t *testing.T, name string) uint8 {
	t.Helper()
	i, ok := natProfileIndex(name)
	if !ok {
		t.Fatalf("no profile %s", name)
	}
	return i
}

// TestNATBoxRFC4787: the mapping, filtering and allocation rules of RFC
// 4787 on single packets.
func TestNATBoxRFC4787(t *testing.T) {
	r := NewRand(1, 1)
	x, y := endpoint{100, 4001}, endpoint{200, 5000}
	box := func(name string) *natBox { return newNATBox(&natProfiles[prof(t, name)], 7, r) }

	pr := box("port-restricted")
	if e1, e2 := pr.out(listenPort, x), pr.out(listenPort, y); e1 != e2 || e1 != listenPort {
		t.Errorf("EIM + preserving: ports %d %d, want %d twice", e1, e2, listenPort)
	}
	if _, ok := pr.in(listenPort, endpoint{100, 4002}); ok {
		t.Error("APDF admitted another port of a contacted address")
	}
	if _, ok := pr.in(listenPort, x); !ok {
		t.Error("APDF dropped a contacted endpoint")
	}
	rc := box("restricted-cone")
	rc.out(listenPort, x)
	if _, ok := rc.in(listenPort, endpoint{100, 9}); !ok {
		t.Error("ADF dropped another port of a contacted address")
	}
	if _, ok := rc.in(listenPort, y); ok {
		t.Error("ADF admitted an address never contacted")
	}
	fc := box("full-cone")
	fc.out(listenPort, x)
	if _, ok := fc.in(listenPort, y); !ok {
		t.Error("EIF dropped a packet to a mapped port")
	}
	if _, ok := fc.in(listenPort+1, y); ok {
		t.Error("a packet to an unmapped port passed")
	}
	sy := box("symmetric")
	if e1, e2 := sy.out(listenPort, x), sy.out(listenPort, y); e1 == e2 || sy.out(listenPort, x) != e1 {
		t.Errorf("APDM: ports %d %d should differ and be stable", e1, e2)
	}
	sq := box("symmetric-seq")
	if e1, e2 := sq.out(listenPort, x), sq.out(listenPort, y); e2 != e1+1 {
		t.Errorf("sequential: ports %d then %d", e1, e2)
	}
	mq := box("masquerade")
	if e1, e2 := mq.out(listenPort, x), mq.out(listenPort, y); e1 != listenPort || e2 != listenPort {
		t.Errorf("masquerade keeps the source port: %d %d", e1, e2)
	}
	ad := box("address-dependent")
	if e1, e2, e3 := ad.out(listenPort, x), ad.out(listenPort, endpoint{100, 1}), ad.out(listenPort, y); e1 != e2 || e1 == e3 {
		t.Errorf("ADM: same address %d %d, other address %d", e1, e2, e3)
	}
}

// punchClass punches pairs of NATed nodes with profiles pa and pb (every
// fifth node is public, a relay): the share that ended direct, direct at
// the first attempt, and through birthday probing.
func punchClass(t *testing.T, c Config, pa, pb string, pairs int) (direct, first, bday float64) {
	t.Helper()
	n := NewNet(5*pairs/2+5, 20, 5)
	nat := make([]uint8, n.N())
	ia, ib := prof(t, pa), prof(t, pb)
	var natted []int32
	for i := range nat {
		if i%5 != 4 {
			natted = append(natted, int32(i))
			nat[i] = ia
			if len(natted)%2 == 0 {
				nat[i] = ib
			}
		}
	}
	var d, f, b int
	pp := punchParamsOf(c)
	for i := range pairs {
		a, bb := natted[2*i], natted[2*i+1]
		res := punch(n, pp, nat, a, bb, relaysOf(n, nat, bb, 1)[0])
		if res.direct {
			d++
			if res.attempt == 1 && !res.birthday {
				f++
			}
			if res.birthday {
				b++
			}
		}
	}
	p := float64(pairs)
	return float64(d) / p, float64(f) / p, float64(b) / p
}

// directByRules is the outcome of DCUtR hole punching between two NATs,
// derived by hand from RFC 4787 (not from the code): both ports
// predictable (EIM, or APDM keeping source ports) => direct; otherwise the
// unpredictable side's packets, sent from a fresh port, pass only an EIM
// peer with endpoint-independent or address-dependent filtering (full or
// restricted cone); two unpredictable sides stay relayed.
//
// A NAT whose firewall lets no UDP out sends no punching packet at all, so
// (UDP being all the model punches) it stays relayed with any NAT.
func directByRules(a, b string) bool {
	pred := map[string]bool{"full-cone": true, "restricted-cone": true, "port-restricted": true, "masquerade": true,
		"masquerade-full-cone": true, "masquerade-restricted": true}
	loose := map[string]bool{"full-cone": true, "restricted-cone": true, "masquerade-full-cone": true, "masquerade-restricted": true}
	noUDP := map[string]bool{"udp-blocked": true, "tcp443-only": true}
	if noUDP[a] || noUDP[b] {
		return false
	}
	return pred[a] && pred[b] || loose[a] || loose[b]
}

// TestPunchClasses: per class of pair, DCUtR ends direct exactly where
// RFC 4787's rules say, with no packet loss at the first attempt. The lab
// (e2e TestHolePunchEIM, TestSymmetricNATRelayed) sees masquerade +
// masquerade direct and masquerade + symmetric relayed.
func TestPunchClasses(t *testing.T) {
	c := Defaults()
	c.PacketLoss, c.PunchRetries = 0, 0
	names := natProfileNames()
	for i, a := range names {
		for _, b := range names[i:] {
			d, f, _ := punchClass(t, c, a, b, 20)
			want := 0.0
			if directByRules(a, b) {
				want = 1
			}
			if d != want || f != want {
				t.Errorf("%s + %s: direct %.2f, first attempt %.2f; want %.0f", a, b, d, f, want)
			}
		}
	}
	// With 30% loss some pairs need a second attempt or a later round,
	// and the first-attempt share falls below the direct share.
	c.PacketLoss, c.PunchRetries, c.PunchTimeoutMs = 0.3, 1, 300
	d, f, _ := punchClass(t, c, "port-restricted", "port-restricted", 300)
	t.Logf("30%% loss, 300 ms attempts: direct %.3f, first attempt %.3f", d, f)
	if d < 0.9 || f >= d {
		t.Errorf("lossy: direct %.3f, first attempt %.3f", d, f)
	}
}

// TestBirthdayProbing: between an easy (port-restricted, EIM) and a hard
// (random or sequential APDM) NAT, birthday probing with k sockets on the
// hard side and n random probes from the easy side succeeds as often as
// the collision probability 1-(1-k'/R)^n with R = 64512 ports; k' = k+1
// because the hard NAT also holds the mapping its DCUtR packets created
// towards the easy side. Two hard sides never meet.
func TestBirthdayProbing(t *testing.T) {
	c := Defaults()
	c.PacketLoss, c.PunchRetries, c.PunchAttempts, c.BirthdayProbing = 0, 0, 1, true
	c.BirthdayPPS, c.PunchTimeoutMs = 1000, 300
	for _, tc := range []struct {
		hard                   string
		sockets, probes, pairs int
	}{{"symmetric", 256, 256, 2000}, {"symmetric-seq", 64, 512, 1500}} {
		c.BirthdaySockets, c.BirthdayProbes = tc.sockets, tc.probes
		if raceEnabled {
			tc.pairs /= 3
		}
		_, _, got := punchClass(t, c, "port-restricted", tc.hard, tc.pairs)
		want := 1 - math.Pow(1-float64(tc.sockets+1)/portRange, float64(tc.probes))
		sd := math.Sqrt(want * (1 - want) / float64(tc.pairs))
		t.Logf("%s, k=%d n=%d: direct by probing %.4f, analytic %.4f (sd %.4f)", tc.hard, tc.sockets, tc.probes, got, want, sd)
		if math.Abs(got-want) > 4*sd {
			t.Errorf("%s k=%d n=%d: %.4f vs analytic %.4f (> 4 sd)", tc.hard, tc.sockets, tc.probes, got, want)
		}
	}
	if d, _, _ := punchClass(t, c, "symmetric", "symmetric", 50); d != 0 {
		t.Errorf("symmetric + symmetric with probing: direct %.2f", d)
	}
}

// TestNATDirectShare: the population's direct share among NATed pairs is
// the mix-weighted sum of the per-class outcomes of RFC 4787's rules, and
// moves with the mix; every pair connects.
func TestNATDirectShare(t *testing.T) {
	var shares []float64
	for _, mix := range []map[string]float64{
		DefaultNATMix(),
		{"port-restricted": 0.3, "symmetric": 0.5, "full-cone": 0.2},
	} {
		c := Defaults()
		c.Nodes, c.Pairs, c.NATMix = 5000, 5000, mix
		if raceEnabled {
			c.Pairs = 2000
		}
		m := point(t, "nat", c)
		var sum, want float64
		for _, w := range mix {
			sum += w
		}
		for a, wa := range mix {
			for b, wb := range mix {
				if directByRules(a, b) {
					want += wa * wb / sum / sum
				}
			}
		}
		nat := m["natted_pairs"]
		sd := math.Sqrt(want * (1 - want) / nat)
		t.Logf("mix %v: direct among %0.f NATed pairs %.3f (rules: %.3f), first attempt %.3f, all pairs %.3f, ttd p50 %.0f ms",
			mix, nat, m["direct_share_natted"], want, m["first_attempt_share_natted"], m["direct_share"], m["time_to_direct_ms_p50"])
		if math.Abs(m["direct_share_natted"]-want) > 4*sd+0.005 || m["connect_success"] != 1 {
			t.Errorf("direct share %.3f, rules give %.3f; success %.3f", m["direct_share_natted"], want, m["connect_success"])
		}
		if math.Abs(m["direct_share"]+m["relayed_share"]-1) > 1e-9 {
			t.Errorf("direct + relayed != 1")
		}
		shares = append(shares, m["direct_share_natted"])
	}
	if shares[0]-shares[1] < 0.2 {
		t.Errorf("direct share barely moves with the mix: %v", shares)
	}
}

// TestNATMixConfig: the mix is set by profile name, replaced whole by a
// config file, and unknown profiles are rejected.
func TestNATMixConfig(t *testing.T) {
	c := Defaults()
	if err := c.Set("nat_mix.symmetric", "0.5"); err != nil || c.NATMix["symmetric"] != 0.5 || c.NATMix["port-restricted"] != 0.4 {
		t.Fatalf("set: %v %v", c.NATMix, err)
	}
	if err := c.Set("nat_mix.symmetric-seq", "0.1"); err != nil || c.NATMix["symmetric-seq"] != 0.1 {
		t.Fatalf("set a new profile: %v %v", c.NATMix, err)
	}
	if err := c.Set("nat_mix.cone", "1"); err != nil || c.Validate() == nil {
		t.Error("unknown profile accepted")
	}
	p, err := ParseConfig([]byte(`{"model":"nat","nat_mix":{"full-cone":1}}`))
	if err != nil || len(p.NATMix) != 1 {
		t.Fatalf("config mix %v %v", p.NATMix, err)
	}
}

// TestLabZooPairs: the model's direct share for each class of pair that
// `make bench-connect` measures in the lab (e2e/netlab's NAT zoo, through
// labNATs), with the defaults' 1% loss and retries, for comparison with
// the lab's table (sim/README.md). Public pairs are direct by dialling.
func TestLabZooPairs(t *testing.T) {
	c := Defaults()
	pairs := 200
	if raceEnabled {
		pairs = 60
	}
	want := map[string]float64{
		"eim-eim": 1, "fullcone-fullcone": 1, "addrrestricted-addrrestricted": 1, "cgnat-cgnat": 1,
		"udpblocked-eim": 0, "only443-eim": 0, "symmetric-eim": 0, "symmetric-symmetric": 0,
	}
	for _, tc := range []struct{ class, a, b string }{
		{"eim-eim", "EIM", "EIM"},
		{"fullcone-fullcone", "FullCone", "FullCone"},
		{"addrrestricted-addrrestricted", "AddressRestricted", "AddressRestricted"},
		{"cgnat-cgnat", "CGNAT", "CGNAT"},
		{"udpblocked-eim", "UDPBlocked", "EIM"},
		{"only443-eim", "Only443", "EIM"},
		{"symmetric-eim", "Symmetric", "EIM"},
		{"symmetric-symmetric", "Symmetric", "Symmetric"},
	} {
		d, f, _ := punchClass(t, c, labNATs[tc.a], labNATs[tc.b], pairs)
		t.Logf("%-30s %s + %s: direct %.3f, first attempt %.3f", tc.class, labNATs[tc.a], labNATs[tc.b], d, f)
		if math.Abs(d-want[tc.class]) > 0.02 {
			t.Errorf("%s: direct %.3f, want %.0f", tc.class, d, want[tc.class])
		}
	}
	for kind := range labNATs {
		if _, ok := natProfileIndex("lab." + kind); !ok {
			t.Errorf("nat_mix cannot name lab.%s", kind)
		}
	}
	if err := validateNATMix(map[string]float64{"lab.Symmetric": 1, "masquerade": 1}); err != nil {
		t.Error(err)
	}
}
