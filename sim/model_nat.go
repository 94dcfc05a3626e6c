package sim

func init() {
	models["nat"] = modelDef{run: runNATModel,
		plots: []PlotSpec{
			{Name: "paths", Title: "Direct vs relayed paths vs NAT mix", YLabel: "share of connections",
				Y:      []string{"direct_share", "direct_share_natted", "relayed_share"},
				Legend: []string{"direct, all pairs", "direct, both ends NATed", "relayed, all pairs"}},
			{Name: "relay_load", Title: "Relay load per public node", YLabel: "relayed connections or reservations per public node",
				Y:      []string{"relay_conns_per_public_mean", "relay_conns_per_public_p99", "reservations_per_public_mean"},
				Legend: []string{"relayed connections, mean", "relayed connections, p99", "relay reservations, mean"}},
			{Name: "setup", Title: "Connection setup time", YLabel: "time (ms)", Y: []string{"first_packet_ms_p50", "first_packet_ms_p95", "direct_ms_p50"},
				Legend: []string{"first packet, median", "first packet, p95", "direct path up, median"}},
		},
		summary: []string{"public_share", "direct_share", "direct_share_natted", "relayed_share", "relay_conns_per_public_mean", "relay_conns_per_public_max", "first_packet_ms_p50"}}
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
	var direct, natted, nattedDirect, relayed, ok int
	var first, dir []float64
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
		first = append(first, float64(cn.firstNs)/1e6)
		if cn.direct {
			direct++
			dir = append(dir, float64(cn.directNs)/1e6)
		}
		if cn.relayed {
			relayed++
			relayConns[cn.relay]++
		}
		if nat[a] != natPublic && nat[b] != natPublic {
			natted++
			if cn.direct {
				nattedDirect++
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
	}
	return m, nil
}
