package sim

import (
	"fmt"
	"math"

	"github.com/kadlan/kadlan/overlay/bounds"
)

func init() {
	// Measured (/usr/bin/time, preset lan): 55 MiB at 10^3 (all active),
	// 203 MiB at 10^4 (all active), 228 at 10^5 and 463 at 10^6 (10^4
	// active): ~270 bytes per member, ~16 KB per active member.
	models["lan"] = modelDef{bytesPerNode: 300, bytesPerActive: 17000, run: runLanModel,
		plots: []PlotSpec{
			{Name: "state", Title: "What a member holds vs network size", YLabel: "per member (mean)",
				Y: []string{"links_mean", "known_mean", "neighbours_mean"}, Legend: []string{"links", "known members", "social neighbours"}, LogX: true},
			{Name: "state_max", Title: "What a member holds at most vs network size", YLabel: "per member (max over samples)",
				Y: []string{"links_max", "known_max", "neighbours_max"}, Legend: []string{"links", "known members", "social neighbours"}, LogX: true},
			{Name: "dht", Title: "DHT operations per member vs network size", YLabel: "per member per minute (mean)",
				Y: []string{"lookups_per_min_mean", "fetches_per_min_mean", "provider_walks_per_min_mean"}, Legend: []string{"address lookups", "discovery fetches", "provider walks"}, LogX: true},
			{Name: "first_contact", Title: "First-contact latency vs network size", YLabel: "ms",
				Y: []string{"first_contact_ms_mean", "first_contact_ms_p95"}, Legend: []string{"mean", "95th percentile"}, LogX: true},
			{Name: "broadcast", Title: "A broadcast by social switching vs network size", YLabel: "per broadcast (mean)",
				Y: []string{"bcast_reach_mean", "bcast_msgs_mean"}, Legend: []string{"members reached", "messages"}, LogX: true},
		},
		summary: []string{"links_mean", "links_max", "known_mean", "known_max", "neighbours_mean", "lookups_per_min_mean",
			"fetches_per_min_mean", "first_contact_ms_mean", "first_contact_ms_p95", "bcast_reach_mean", "bcast_msgs_mean"}}
}

// dist puts mean, p95, max and the sample count of x under name.
func dist(m Metrics, name string, x []float64) {
	m[name+"_mean"] = mean(x)
	m[name+"_p95"] = quantile(x, 0.95)
	m[name+"_max"] = quantile(x, 1)
	m[name+"_samples"] = float64(len(x))
}

// runLanModel runs one network with links on demand (lan.go) and reports
// per member what bench-scale measures of the real daemon: links, known
// members, social neighbours, DHT operations, first-contact latency, and
// the reach and messages of broadcasts.
func runLanModel(c Config, progress func(float64)) (Metrics, error) {
	if int64(c.Nodes)*int64(c.Partners) >= math.MaxInt32 {
		return nil, fmt.Errorf("sim: lan: nodes × partners must be below 2^31")
	}
	w := newLanWorld(c)
	for next := w.end / 100; w.eng.Step(); {
		if w.eng.Now() >= next {
			progress(float64(w.eng.Now()) / float64(w.end))
			next += w.end / 100
		}
	}
	return w.metrics(), nil
}

// metrics turns the observations into the point's metrics.
func (w *lanWorld) metrics() Metrics {
	minutes := float64(w.end-w.warm) / 60e9
	m := Metrics{"nodes": float64(w.M), "active": float64(len(w.mem)), "partners": float64(w.P),
		"contacts_per_min": w.c.ContactsPerMin, "link_idle_s": w.c.LinkIdleS}
	dist(m, "links", w.links)
	dist(m, "known", w.known)
	dist(m, "neighbours", w.nbrs)
	var look, fetch, walk, seeds []float64
	for _, o := range w.mem {
		if o.hot {
			continue
		}
		look = append(look, float64(o.lookups)/minutes)
		fetch = append(fetch, float64(o.fetches)/minutes)
		walk = append(walk, float64(o.walks)/minutes)
		seeds = append(seeds, float64(o.seeds)/minutes)
	}
	dist(m, "lookups_per_min", look)
	dist(m, "fetches_per_min", fetch)
	dist(m, "provider_walks_per_min", walk)
	m["seed_dials_per_min_mean"] = mean(seeds)
	// The daemon's timers, per linked member per minute: a revocation
	// poll, the definition fetch, and the announcement's put and provide
	// every republish (inputs: bounds' periods, not simulated).
	m["timer_dht_ops_per_min"] = 1/bounds.LinkedRevocationEvery.Minutes() + 3/bounds.RepublishEvery.Minutes()
	m["lookup_rpcs_mean"] = mean(w.lookupRPCs)
	m["lookups_failed"] = float64(w.lookupFailed)
	// An estimate, not a measurement: every walk costs the address
	// lookups' mean RPCs of rpc_bytes each.
	m["dht_bytes_s_est"] = (m["lookups_per_min_mean"] + m["fetches_per_min_mean"] + m["provider_walks_per_min_mean"] +
		m["timer_dht_ops_per_min"]) * m["lookup_rpcs_mean"] * w.c.RPCBytes / 60
	dist(m, "first_contact_ms", w.firstLat)
	m["first_contacts"] = float64(w.firstContacts)
	m["first_contact_lookup_share"] = float64(w.firstLook) / float64(max(1, w.firstContacts))
	dist(m, "bcast_reach", w.reach)
	m["bcast_reach_p5"] = quantile(w.reach, 0.05)
	dist(m, "bcast_msgs", w.msgs)
	m["bcast_partner_reach_mean"] = mean(w.partnerReach)
	m["broadcasts"] = float64(len(w.reach))
	if len(w.hotLinks) > 0 {
		m["hot_links_max"] = quantile(w.hotLinks, 1)
		m["hot_known_max"] = quantile(w.hotKnown, 1)
	}
	return m
}
