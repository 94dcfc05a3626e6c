package sim

import "math"

func init() {
	models["nat"] = modelDef{bytesPerNode: 200, run: runNATModel,
		plots: []PlotSpec{
			{Name: "paths", Title: "Direct vs relayed paths vs NAT mix", YLabel: "share of connections",
				Y:      []string{"direct_share", "direct_share_natted", "first_attempt_share_natted", "relayed_share"},
				Legend: []string{"direct, all pairs", "direct, both ends NATed", "direct at the first attempt, both ends NATed", "relayed, all pairs"}},
			{Name: "relay_load", Title: "Relay load per public node", YLabel: "relayed connections or reservations per public node",
				Y:      []string{"relay_conns_per_public_mean", "relay_conns_per_public_p99", "reservations_per_public_mean"},
				Legend: []string{"relayed connections, mean", "relayed connections, p99", "relay reservations, mean"}},
			{Name: "setup", Title: "Connection setup time", YLabel: "time (ms)", Y: []string{"first_packet_ms_p50", "first_packet_ms_p95", "time_to_direct_ms_p50", "time_to_direct_ms_p95"},
				Legend: []string{"first packet, median", "first packet, p95", "direct path up, median", "direct path up, p95"}},
		},
		summary: []string{"public_share", "direct_share", "direct_share_natted", "first_attempt_share_natted", "time_to_direct_ms_p50", "relayed_share", "relay_conns_per_public_mean", "relay_conns_per_public_max", "first_packet_ms_p50"}}
}

// runNATModel connects random pairs under a NAT mix (see nat.go) and
// measures paths and relay load. Lookups are not simulated here (the
// lookup preset covers them).
func runNATModel(c Config, progress func(float64)) (Metrics, error) {
	n := NewNet(c.Nodes, c.K, c.Seed)
	nat := natOf(n, c)
	r := NewRand(c.Seed, 7)
	pub := 0
	for _, t := range nat {
		if t == natPublic {
			pub++
		}
	}
	resv := map[int32]int{}
	for b := range n.N() {
		if nat[b] != natPublic {
			for _, rl := range relaysOf(n, nat, int32(b), max(1, c.Relays)) {
				resv[rl]++
			}
		}
		if b%4096 == 0 {
			progress(0.5 * float64(b) / float64(n.N()))
		}
	}
	relayConns := map[int32]int{}
	var direct, natted, nattedDirect, nattedFirst, nattedBirthday, relayed, ok int
	var first, dir []float64
	type class struct {
		pairs, direct, first int
		ttd                  []float64
	}
	classes := map[string]*class{}
	for i := range c.Pairs {
		a := int32(r.IntN(n.N()))
		b := int32(r.IntN(n.N() - 1))
		if b >= a {
			b++
		}
		cn := connect(n, c, nat, a, b)
		if !cn.ok {
			continue
		}
		ok++
		cl := classes[pairClass(nat, a, b)]
		if cl == nil {
			cl = &class{}
			classes[pairClass(nat, a, b)] = cl
		}
		cl.pairs++
		first = append(first, float64(cn.firstNs)/1e6)
		if cn.direct {
			direct++
			dir = append(dir, float64(cn.directNs)/1e6)
			cl.direct++
			cl.ttd = append(cl.ttd, float64(cn.directNs)/1e6)
			if cn.attempts <= 1 && !cn.birthday {
				cl.first++
			}
		}
		if cn.relayed {
			relayed++
			relayConns[cn.relay]++
		}
		if nat[a] != natPublic && nat[b] != natPublic {
			natted++
			if cn.direct {
				nattedDirect++
				if cn.attempts <= 1 && !cn.birthday {
					nattedFirst++
				}
				if cn.birthday {
					nattedBirthday++
				}
			}
		}
		if i%1024 == 0 {
			progress(0.5 + 0.5*float64(i)/float64(c.Pairs))
		}
	}
	perPub := make([]float64, 0, pub)
	resvPub := make([]float64, 0, pub)
	for i, t := range nat {
		if t == natPublic {
			perPub = append(perPub, float64(relayConns[int32(i)]))
			resvPub = append(resvPub, float64(resv[int32(i)]))
		}
	}
	m := Metrics{
		"public_share":                 float64(pub) / float64(n.N()),
		"connect_success":              float64(ok) / float64(max(1, c.Pairs)),
		"direct_share":                 float64(direct) / float64(max(1, ok)),
		"direct_share_natted":          float64(nattedDirect) / float64(max(1, natted)),
		"relayed_share":                float64(relayed) / float64(max(1, ok)),
		"relay_conns_per_public_mean":  mean(perPub),
		"relay_conns_per_public_p99":   quantile(perPub, 0.99),
		"relay_conns_per_public_max":   quantile(perPub, 1),
		"reservations_per_public_mean": mean(resvPub),
		"reservations_per_public_max":  quantile(resvPub, 1),
		"relay_load_top1pct_share":     topShare(perPub, 0.01),
		"first_packet_ms_p50":          quantile(first, 0.5),
		"first_packet_ms_p95":          quantile(first, 0.95),
		"direct_ms_p50":                quantile(dir, 0.5),
		"time_to_direct_ms_p50":        quantile(dir, 0.5),
		"time_to_direct_ms_p95":        quantile(dir, 0.95),
		"first_attempt_share_natted":   float64(nattedFirst) / float64(max(1, natted)),
		"birthday_share_natted":        float64(nattedBirthday) / float64(max(1, natted)),
		"natted_pairs":                 float64(natted),
	}
	if natted == 0 {
		m["direct_share_natted"], m["first_attempt_share_natted"], m["birthday_share_natted"] = math.NaN(), math.NaN(), math.NaN()
	}
	// Per class of pair (the two NAT profiles, unordered).
	for name, cl := range classes {
		m["pairs."+name] = float64(cl.pairs)
		m["direct_share."+name] = float64(cl.direct) / float64(cl.pairs)
		m["first_attempt_share."+name] = float64(cl.first) / float64(cl.pairs)
		m["time_to_direct_ms_p50."+name] = quantile(cl.ttd, 0.5)
		m["time_to_direct_ms_p95."+name] = quantile(cl.ttd, 0.95)
	}
	return m, nil
}
