package daemon

import (
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/kadlan/kadlan/dht"
	"github.com/kadlan/kadlan/internal/hostport"
	"github.com/kadlan/kadlan/overlay"
	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// MetricsPath is where --metrics serves Prometheus' text format.
const MetricsPath = "/metrics"

// checkMetricsAddr accepts HOST:PORT with an explicit host. The endpoint
// has no authentication and tells who this node talks to, so it does not
// listen on every interface by accident: ":9464" is refused, and exposing
// it takes "0.0.0.0:9464" or a LAN address, written out.
func checkMetricsAddr(addr string) error {
	host, port, err := hostport.Split("--metrics", addr, "127.0.0.1:9464")
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("--metrics %q: give the host: 127.0.0.1:%s serves this machine only; the endpoint has no authentication, so for the network write 0.0.0.0:%s or [::]:%s", addr, port, port, port)
	}
	return nil
}

// metricsHandler serves reg at MetricsPath.
func metricsHandler(reg *prometheus.Registry, logf func(string, ...any)) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(MetricsPath, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      promLogger(logf),
		ErrorHandling: promhttp.ContinueOnError, // a broken collector must not hide the others
	}))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "kadlan: metrics are at "+MetricsPath, http.StatusNotFound)
	})
	return mux
}

type promLogger func(string, ...any)

func (l promLogger) Println(v ...any) { l("metrics: %s", strings.TrimSpace(fmt.Sprintln(v...))) }

// newRegistry returns the daemon's private registry with the Go runtime's
// and the process's collectors; the node and the networks add theirs.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// netCollector reports the joined networks, reading the switch and engine
// counters at scrape time (nothing is counted twice on the data path).
type netCollector struct {
	nm *netManager

	networks, members, links, frames, bytes, drops, events *prometheus.Desc
}

func newNetCollector(nm *netManager) *netCollector {
	l := []string{"network", "name"}
	d := func(name, help string, extra ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, append(append([]string(nil), l...), extra...), nil)
	}
	return &netCollector{nm: nm,
		networks: prometheus.NewDesc("kadlan_networks", "Networks this node has joined.", nil, nil),
		members:  d("kadlan_network_members", "Members this node knows of (itself excluded), by status (ok, pending, expired, revoked, ...).", "status"),
		links:    d("kadlan_network_links", "Member links up, by path of the connection under them: direct, relayed, or none (closing).", "path"),
		frames:   d("kadlan_network_frames_total", "Messages on member links (frames, broadcast copies, records); in: read from members, out: queued to them.", "direction"),
		bytes:    d("kadlan_network_bytes_total", "Bytes of the messages of kadlan_network_frames_total, link framing included.", "direction"),
		drops: d("kadlan_network_drops_total", "Frames and messages dropped, by reason: the switch's checks (not_member, spoofed, replay, rate_limit, ...), "+
			"no_link (no link to the member yet), queue_full (its link's send queue), gso_rejected, offload, record_queue_full.", "reason"),
		events: d("kadlan_network_switch_total", "The switch's other counters: local_in, remote_in, unicast_out, broadcast_sent, arp_answered, ...", "event"),
	}
}

func (c *netCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.networks, c.members, c.links, c.frames, c.bytes, c.drops, c.events} {
		ch <- d
	}
}

func (c *netCollector) Collect(ch chan<- prometheus.Metric) {
	c.nm.mu.Lock()
	js := make([]*joined, 0, len(c.nm.nets))
	for _, j := range c.nm.nets {
		js = append(js, j)
	}
	c.nm.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(c.networks, prometheus.GaugeValue, float64(len(js)))
	now := time.Now()
	for _, j := range js {
		j.mu.Lock()
		ni := j.m.Info(now)
		eng := j.eng
		j.mu.Unlock()
		lv := []string{ni.Network.Short(), strings.ToValidUTF8(ni.Name, "?")}
		with := func(v string) []string { return append(append([]string(nil), lv...), v) }
		byStatus := map[string]int{}
		for _, m := range ni.Members {
			byStatus[string(m.Status)]++
		}
		for _, s := range []vswitch.Status{vswitch.StatusOK, vswitch.StatusPending} {
			byStatus[string(s)] += 0 // present even when zero
		}
		for s, n := range byStatus {
			ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(n), with(s)...)
		}
		if eng == nil {
			continue // no device (yet): no traffic
		}
		c.collectEngine(ch, eng, with)
	}
}

func (c *netCollector) collectEngine(ch chan<- prometheus.Metric, eng *overlay.Engine, with func(string) []string) {
	links, _ := eng.Links()
	paths := map[string]int{"direct": 0, "relayed": 0}
	for _, l := range links {
		p, _ := dht.PathOf(c.nm.node.Host.Network().ConnsToPeer(l.Peer))
		if p == "" {
			p = "none"
		}
		paths[p]++
	}
	for p, n := range paths {
		ch <- prometheus.MustNewConstMetric(c.links, prometheus.GaugeValue, float64(n), with(p)...)
	}
	tr := eng.Traffic()
	counter := func(d *prometheus.Desc, v uint64, label string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), with(label)...)
	}
	counter(c.frames, tr.InMessages, "in")
	counter(c.frames, tr.OutMessages, "out")
	counter(c.bytes, tr.InBytes, "in")
	counter(c.bytes, tr.OutBytes, "out")
	st := eng.Stats()
	counter(c.drops, tr.OutDropped, "queue_full")
	counter(c.drops, st.NoLink, "no_link")
	counter(c.drops, st.GSORejected, "gso_rejected")
	counter(c.drops, st.OffloadDrops, "offload")
	counter(c.drops, st.RecordsDropped, "record_queue_full")
	// The switch's counters by their JSON names: drop_X is drop reason X,
	// the rest are events. New counters show up without a change here.
	sc := reflect.ValueOf(eng.Counters())
	for i := range sc.NumField() {
		name, _, _ := strings.Cut(sc.Type().Field(i).Tag.Get("json"), ",")
		v, ok := sc.Field(i).Interface().(uint64)
		if name == "" || !ok {
			continue
		}
		if r, isDrop := strings.CutPrefix(name, "drop_"); isDrop {
			counter(c.drops, v, r)
		} else {
			counter(c.events, v, name)
		}
	}
}
