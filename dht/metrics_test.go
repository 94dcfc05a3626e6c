package dht

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestMetrics: with a registry, the node's own families and libp2p's are
// gathered, the routing table gauge says what the routing table holds,
// and a lookup lands in the histogram. Without one, nothing is registered.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	a := newNode(t, func(c *Config) { c.Metrics = reg; c.Relay = "on" })
	b := newNode(t, nil)
	c := newNode(t, nil)
	connect(t, a.Host, b)
	connect(t, c.Host, b)
	waitFor(t, "b in a's routing table", func() bool { return a.DHT.RoutingTable().Find(b.ID()) != "" })
	// The walk finds c only once b holds it in its table.
	waitFor(t, "c in b's routing table", func() bool { return b.DHT.RoutingTable().Find(c.ID()) != "" })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := a.Find(ctx, c.ID()); err != nil {
		t.Fatal(err)
	}

	fams := gather(t, reg)
	if got, want := value(fams["kadlan_dht_routing_table_peers"]), float64(a.Status().RoutingTable); got != want {
		t.Errorf("kadlan_dht_routing_table_peers = %v, want %v (Status)", got, want)
	}
	if got := value(fams["kadlan_dht_connected_peers"]); got < 1 {
		t.Errorf("kadlan_dht_connected_peers = %v, want >= 1", got)
	}
	var found uint64
	for _, m := range fams["kadlan_dht_lookup_duration_seconds"].GetMetric() {
		if m.GetLabel()[0].GetValue() == "found" {
			found = m.GetHistogram().GetSampleCount()
		}
	}
	if found != 1 {
		t.Errorf("%d lookups observed as found, want 1", found)
	}
	for _, name := range []string{"kadlan_relay_reservations_total", "kadlan_relay_circuits_total",
		"libp2p_swarm_connections_opened_total", "libp2p_identify_identify_pushes_triggered_total", "libp2p_relaysvc_status"} {
		if fams[name] == nil {
			t.Errorf("no %s", name)
		}
	}
}

func gather(t *testing.T, g prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// value is the family's only gauge or counter value (NaN-free: -1 if none).
func value(mf *dto.MetricFamily) float64 {
	if mf == nil || len(mf.GetMetric()) == 0 {
		return -1
	}
	m := mf.GetMetric()[0]
	if m.GetGauge() != nil {
		return m.GetGauge().GetValue()
	}
	return m.GetCounter().GetValue()
}
