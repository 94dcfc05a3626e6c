package sim

import (
	"math"
	"testing"
)

// TestDialRoundTrips: with one RPC in flight and no queues, a lookup's
// latency is the sum of its RPCs' round trips, and each RPC to a contact
// learned from an answer pays dial_rtts more round trips first, while the
// origin's own (connected) contacts pay none. So the mean latency is
// linear in dial_rtts (L(2) - L(0) = 2 (L(1) - L(0))), the extra per
// round trip is below L(0) (hop-1 RPCs pay nothing), and QUIC (1)
// against TCP + TLS (2) differs by exactly that extra.
func TestDialRoundTrips(t *testing.T) {
	c := Defaults()
	c.Nodes, c.Lookups, c.Alpha = 3000, 300, 1
	var lat []float64
	for _, d := range []float64{0, 1, 2} {
		c.DialRTTs = d
		m := point(t, "lookup", c)
		lat = append(lat, m["latency_ms_mean"])
		if m["success"] != 1 {
			t.Fatalf("dial_rtts %g: success %.3f", d, m["success"])
		}
	}
	extra := lat[1] - lat[0]
	t.Logf("mean latency: %.1f, %.1f, %.1f ms for 0, 1, 2 dial round trips", lat[0], lat[1], lat[2])
	if extra <= 0 || extra >= lat[0] {
		t.Errorf("one dial round trip adds %.1f ms to %.1f ms", extra, lat[0])
	}
	if math.Abs(lat[2]-lat[0]-2*extra) > 0.01*lat[2] {
		t.Errorf("not linear in dial_rtts: %.1f %.1f %.1f", lat[0], lat[1], lat[2])
	}
}
