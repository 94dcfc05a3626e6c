package dht

import (
	"context"
	"errors"
	"time"

	"github.com/libp2p/go-libp2p"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics of the node, registered with Config.Metrics. They read the
// node's existing counters when scraped (routing table, connections, the
// relay ACL's decisions); only lookups observe a histogram as they end.
// libp2p's own metrics (swarm, identify, hole punching, relay service,
// resource manager, AutoNAT, AutoRelay) go to the same registerer.

// lookupBuckets span a lookup on loopback (ms) to a slow walk (10 s+).
var lookupBuckets = prometheus.ExponentialBuckets(0.005, 2.5, 10)

// metricsOptions are libp2p's metrics options: its collectors go to reg,
// or nowhere when reg is nil.
func metricsOptions(reg prometheus.Registerer) []libp2p.Option {
	if reg == nil {
		return []libp2p.Option{libp2p.DisableMetrics()}
	}
	return []libp2p.Option{libp2p.PrometheusRegisterer(reg)}
}

// relayMetricsOptions give a relay service started by the node itself
// (startRelay) the metrics tracer libp2p gives the one it starts.
func relayMetricsOptions(reg prometheus.Registerer) []relayv2.Option {
	if reg == nil {
		return nil
	}
	return []relayv2.Option{relayv2.WithMetricsTracer(relayv2.NewMetricsTracer(relayv2.WithRegisterer(reg)))}
}

// nodeMetrics holds what the node observes itself; nil when metrics are off.
type nodeMetrics struct {
	lookups *prometheus.HistogramVec
}

// registerMetrics registers the node's collectors with reg (nil: none).
func (n *Node) registerMetrics(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	m := &nodeMetrics{lookups: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "kadlan_dht_lookup_duration_seconds",
		Help:    "Time of DHT walks towards a node's key (kadlan find, connecting to a node whose addresses are unknown or stale), by result: found, not_found, error, or canceled (a dial won first).",
		Buckets: lookupBuckets,
	}, []string{"result"})}
	for _, r := range []string{"found", "not_found", "error", "canceled"} {
		m.lookups.WithLabelValues(r) // scraped as zero before the first lookup
	}
	acl := n.acl
	cs := []prometheus.Collector{
		m.lookups,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kadlan_dht_routing_table_peers",
			Help: "Peers in the Internet's (WAN) Kademlia routing table.",
		}, func() float64 { return float64(n.DHT.RoutingTable().Size()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kadlan_dht_lan_routing_table_peers",
			Help: "Peers in the LAN DHT's routing table (private addresses, attached subnets).",
		}, func() float64 { return float64(n.LANRoutingTable()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kadlan_dht_connected_peers",
			Help: "Peers with at least one open connection.",
		}, func() float64 { return float64(len(n.Host.Network().Peers())) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kadlan_dht_server",
			Help: "1 while the node answers Kademlia queries (DHT server mode), 0 as a client.",
		}, func() float64 { return b2f(n.DHTMode() == "server") }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "kadlan_dht_public",
			Help: "1 while the node believes it is publicly reachable.",
		}, func() float64 { return b2f(reachabilityWord(n.Reachability()) == "public") }),
		counterFunc("kadlan_relay_reservations_total", "Relay reservation requests by the kadlan check's decision (allowed requests may still hit the per-IP/ASN caps).",
			"result", map[string]func() uint64{"allowed": acl.allowedReservations.Load, "refused": acl.refusedReservations.Load}),
		counterFunc("kadlan_relay_circuits_total", "Relayed connection requests by decision: allowed, refused (not a kadlan node) or refused_stranger (a non-member over --relay-circuits-stranger).",
			"result", map[string]func() uint64{"allowed": acl.allowedCircuits.Load, "refused": acl.refusedCircuits.Load, "refused_stranger": acl.refusedStranger.Load}),
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	n.metrics = m
	return nil
}

// observeLookup records a walk that started at start.
func (n *Node) observeLookup(start time.Time, found bool, err error) {
	if n.metrics == nil {
		return
	}
	result := "found"
	switch {
	case errors.Is(err, context.Canceled):
		result = "canceled" // a connection came up first (Connect)
	case err != nil:
		result = "error"
	case !found:
		result = "not_found"
	}
	n.metrics.lookups.WithLabelValues(result).Observe(time.Since(start).Seconds())
}

// counterFunc is a counter family with one label whose values are read by
// the functions of vals at scrape time.
func counterFunc(name, help, label string, vals map[string]func() uint64) prometheus.Collector {
	return &funcCollector{desc: prometheus.NewDesc(name, help, []string{label}, nil), vals: vals}
}

type funcCollector struct {
	desc *prometheus.Desc
	vals map[string]func() uint64
}

func (c *funcCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *funcCollector) Collect(ch chan<- prometheus.Metric) {
	for v, f := range c.vals {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, float64(f()), v)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
