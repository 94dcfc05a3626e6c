package daemon

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kadlan/kadlan/api"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches the daemon's /metrics and parses it with Prometheus'
// text parser.
func scrape(t *testing.T, td *testDaemon) map[string]*dto.MetricFamily {
	t.Helper()
	addr := td.d.MetricsAddr()
	if addr == "" {
		t.Fatal("metrics are off")
	}
	resp, err := http.Get("http://" + addr + MetricsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", MetricsPath, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parsing the scrape: %v", err)
	}
	return fams
}

// sample is the value of the family's series whose labels include want
// (-1 if there is none).
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	mf := fams[name]
	if mf == nil {
		return -1
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		case m.GetUntyped() != nil:
			return m.GetUntyped().GetValue()
		}
	}
	return -1
}

// TestMetricsEndpoint: a daemon with --metrics on loopback serves its own
// families (node, networks) and libp2p's; a frame sent on a network moves
// that network's counters.
func TestMetricsEndpoint(t *testing.T) {
	testConfigs[t] = func(c *Config) { c.Metrics = "127.0.0.1:0" }
	owner := startDaemon(t)
	delete(testConfigs, t)
	member := startDaemon(t, owner.d.Node.ShareableAddrs()[0])
	if member.d.MetricsAddr() != "" {
		t.Fatal("metrics on without --metrics")
	}

	var created api.NetworkCreated
	owner.call(t, "POST", "/v1/networks/create", api.NetworkCreateRequest{Name: "metered", IPv4: "10.6.0.0/24"}, &created)
	member.call(t, "POST", "/v1/networks/join", api.NetworkRequest{Network: created.Network}, nil)
	mn := waitStatus(t, member, created.Network, "ok", 1)
	on := waitStatus(t, owner, created.Network, "ok", 1)
	net := map[string]string{"network": created.Network[:12], "name": "metered"}
	with := func(k, v string) map[string]string {
		m := map[string]string{k: v}
		for a, b := range net {
			m[a] = b
		}
		return m
	}
	before := scrape(t, owner)

	// One frame from the owner's device to the member's.
	ok, mk := owner.kernelOf(on), member.kernelOf(mn)
	payload := []byte("counted by prometheus")
	frame := udpFrame(mustMAC(t, mn.MAC), mustMAC(t, on.MAC), netip.MustParsePrefix(on.IPv4[0]).Addr(), netip.MustParsePrefix(mn.IPv4[0]).Addr(), payload)
	got := arrival(mk, payload)
	if _, err := ok.Write(frame); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("frame did not arrive")
	}
	fams := scrape(t, owner)

	if got, want := sample(fams, "kadlan_dht_routing_table_peers", nil), float64(owner.d.Node.Status().RoutingTable); got != want {
		t.Errorf("kadlan_dht_routing_table_peers = %v, Status says %v", got, want)
	}
	if got := sample(fams, "kadlan_networks", nil); got != 1 {
		t.Errorf("kadlan_networks = %v, want 1", got)
	}
	if got := sample(fams, "kadlan_network_members", with("status", "ok")); got != 1 {
		t.Errorf("members ok = %v, want 1", got)
	}
	if got := sample(fams, "kadlan_network_links", with("path", "direct")); got != 1 {
		t.Errorf("direct links = %v, want 1", got)
	}
	out0, out1 := sample(before, "kadlan_network_frames_total", with("direction", "out")), sample(fams, "kadlan_network_frames_total", with("direction", "out"))
	if out0 < 0 || out1 < out0+1 {
		t.Errorf("frames out %v then %v, want one more at least", out0, out1)
	}
	b0, b1 := sample(before, "kadlan_network_bytes_total", with("direction", "out")), sample(fams, "kadlan_network_bytes_total", with("direction", "out"))
	if b1 < b0+float64(len(frame)) {
		t.Errorf("bytes out %v then %v, want %d more at least", b0, b1, len(frame))
	}
	if sample(fams, "kadlan_network_frames_total", with("direction", "in")) < 0 {
		t.Error("no frames in")
	}
	for _, reason := range []string{"not_member", "spoofed", "replay", "no_link", "queue_full"} {
		if sample(fams, "kadlan_network_drops_total", with("reason", reason)) != 0 {
			t.Errorf("drops %s missing or not 0", reason)
		}
	}
	if sample(fams, "kadlan_network_switch_total", with("event", "unicast_out")) < 1 {
		t.Error("switch unicast_out not counted")
	}
	for _, name := range []string{"kadlan_dht_connected_peers", "kadlan_dht_lookup_duration_seconds", "kadlan_relay_circuits_total",
		"libp2p_swarm_connections_opened_total", "libp2p_identify_identify_pushes_triggered_total", "libp2p_rcmgr_streams", "go_goroutines"} {
		if fams[name] == nil {
			t.Errorf("no family %s", name)
		}
	}
	if resp, err := http.Get("http://" + owner.d.MetricsAddr() + "/"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /: %v %v, want 404", resp, err)
	} else {
		resp.Body.Close()
	}
}

// TestMetricsAddrErrors: a bad --metrics address is refused before
// anything starts, with an error that says what to write.
func TestMetricsAddrErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	addrErrors(t, "--metrics", func(c *Config, addr string) { c.Metrics = addr }, map[string]string{
		"9464":                   "want HOST:PORT",
		":9464":                  "give the host: 127.0.0.1:9464",
		"127.0.0.1:http":         "not a number",
		"127.0.0.1:70000":        "not a number",
		busy.Addr().String():     "address already in use",
		"[::1]:9464:9":           "want HOST:PORT",
		"no-such-host.invalid:1": "--metrics",
	})
}

// addrErrors runs a daemon with each address of cases set by set and
// checks that Run fails at once with an error that starts with flag and
// says what cases want.
func addrErrors(t *testing.T, flag string, set func(*Config, string), cases map[string]string) {
	t.Helper()
	for addr, want := range cases {
		dir := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cfg := Config{StateDir: filepath.Join(dir, "state"), Listen: []string{"/ip4/127.0.0.1/tcp/0"}}
		set(&cfg, addr)
		err := Run(ctx, cfg, nil)
		cancel()
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), flag) {
			t.Errorf("%s %s: %v, want an error saying %q", flag, addr, err, want)
		}
	}
}
