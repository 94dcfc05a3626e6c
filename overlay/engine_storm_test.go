package overlay

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/overlay/social"
	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/kadlan/kadlan/tap/ether"
)

// stormResult is what runStorm measured at the receiver.
type stormResult struct {
	probes          []time.Duration // unicast one-way latencies
	bulk            int             // bulk unicast frames delivered
	stormSent       int
	stormDelivered  int64 // read after the run
	lost            int   // probes not delivered
	counters        vswitch.Counters
	elapsed         time.Duration
	stormTime       time.Duration // until a had handled the whole storm
	unicastExpected uint64
}

func (r stormResult) pct(p float64) time.Duration {
	if len(r.probes) == 0 {
		return 0
	}
	s := slices.Clone(r.probes)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// runStorm: member c (a hand-built attacker writing to its link) sends
// stormRate genuine, signed broadcasts per second to a for d, while b sends
// a unicast probe to a every millisecond and, with bulk, as many unicast
// frames as it can in between. stormRate 0 is the baseline.
func runStorm(t testing.TB, stormRate int, d time.Duration, bulk bool) stormResult {
	ns := newEngineWorld(t, 3)
	a, b, c := ns[0], ns[1], ns[2]
	link(t, a, b)
	attacker, ac := tcpPair(t)
	defer attacker.Close()
	if err := a.eng.AddLink(c.peer, ac, false); err != nil {
		t.Fatal(err)
	}
	go func() { // the attacker reads (and ignores) what a sends it
		buf := make([]byte, 1<<16)
		for {
			if _, err := attacker.Read(buf); err != nil {
				return
			}
		}
	}()
	var r stormResult
	// Pre-signed storm: each with its own sequence number and the real
	// clock's time, as c's switch would send them.
	w := &testWorld{t: t, id: a.sw.Config().Network}
	n := int(float64(stormRate) * d.Seconds())
	now := time.Now()
	var storm []byte
	for i := range n {
		m := w.signedAt(c.key, social.BroadcastID{Origin: netrec.PeerHash(c.peer), Seq: uint32(i + 1)}, now, bcastFrame(c.testNode, fmt.Sprint("storm ", i)))
		storm, _ = vswitch.AppendMessage(storm, m)
	}
	r.stormSent = n
	// a's host: probes signal their arrival, broadcasts are counted.
	arrived := make(chan uint32, 1024)
	var bulkGot, stormGot atomic.Int64
	drain := func(h interface{ Read([]byte) (int, error) }, count func(f []byte)) {
		buf := make([]byte, 70000)
		for {
			n, err := h.Read(buf)
			if err != nil {
				return
			}
			count(buf[:n])
		}
	}
	go drain(a.host, func(f []byte) {
		hd, _ := ether.ParseHeader(f)
		switch {
		case hd.Dst.IsMulticast():
			stormGot.Add(1)
		case len(f) > ether.HeaderLen+20+4 && f[ether.HeaderLen+20] == 'P':
			arrived <- binary.BigEndian.Uint32(f[ether.HeaderLen+21:])
		default:
			bulkGot.Add(1)
		}
	})
	go drain(b.host, func([]byte) {}) // forwarded storm copies
	go drain(c.host, func([]byte) {})
	stormDone := make(chan struct{})
	go func() {
		defer close(stormDone)
		if n == 0 {
			return
		}
		// Paced in 1 ms chunks.
		per := max(1, stormRate/1000)
		off := 0
		tk := time.NewTicker(time.Millisecond)
		defer tk.Stop()
		for i := 0; i < n; i += per {
			end := off
			for j := 0; j < per && i+j < n; j++ {
				_, l, _ := vswitch.DecodeMessage(storm[end:])
				end += l
			}
			if _, err := attacker.Write(storm[off:end]); err != nil {
				return
			}
			off = end
			<-tk.C
		}
	}()
	var bulkSent int
	bulkFrame := ipv4Frame(a.mac, b.mac, b.ipv4, a.ipv4, string(make([]byte, 1400-34)))
	start := time.Now()
	var seq uint32
	for time.Since(start) < d {
		seq++
		p := ipv4Frame(a.mac, b.mac, b.ipv4, a.ipv4, "P\x00\x00\x00\x00")
		binary.BigEndian.PutUint32(p[ether.HeaderLen+21:], seq)
		sent := time.Now()
		b.host.Write(p)
		select {
		case got := <-arrived:
			if got != seq {
				t.Errorf("probe %d arrived, want %d", got, seq)
			}
			r.probes = append(r.probes, time.Since(sent))
		case <-time.After(time.Second):
			r.lost++
		}
		for next := sent.Add(time.Millisecond); time.Now().Before(next); {
			if bulk {
				b.host.Write(bulkFrame)
				bulkSent++
			} else {
				time.Sleep(time.Until(next))
			}
		}
	}
	r.elapsed = time.Since(start)
	<-stormDone
	// Wait until a has handled the whole storm (slow under -race).
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		cn := a.eng.Counters()
		if cn.BroadcastDelivered+cn.DropRateLimit >= uint64(n) {
			break
		}
	}
	r.stormTime = time.Since(start)
	time.Sleep(20 * time.Millisecond) // let the last frames reach the host
	r.bulk = int(bulkGot.Load())
	r.stormDelivered = stormGot.Load()
	r.counters = a.eng.Counters()
	r.unicastExpected = uint64(seq) + uint64(bulkSent)
	return r
}

// Issue 10, item 8: with a member storming broadcasts at 10k/s, the
// rate limit drops what is beyond the origin's bucket (counted) and not a
// single unicast frame of another member; the latency figures are logged,
// not asserted (the machine running the tests is shared).
func TestEngineUnicastUnderBroadcastStorm(t *testing.T) {
	d := 200 * time.Millisecond
	base := runStorm(t, 0, d, false)
	r := runStorm(t, 10000, d, false)
	t.Logf("unicast probe latency p50/p99: %v/%v alone, %v/%v under a 10k/s storm (%d storm broadcasts delivered, %d dropped by the rate limit)",
		base.pct(.5), base.pct(.99), r.pct(.5), r.pct(.99), r.stormDelivered, r.counters.DropRateLimit)
	cn := r.counters
	if r.lost != 0 || cn.UnicastDelivered != r.unicastExpected {
		t.Fatalf("unicast lost under the storm: %d probes lost, %d of %d delivered", r.lost, cn.UnicastDelivered, r.unicastExpected)
	}
	// Burst plus rate over the storm's duration (and some slack for the
	// clock), everything else dropped and counted.
	allowed := uint64(vswitch.DefaultBroadcastBurst + vswitch.DefaultBroadcastRate*(r.stormTime.Seconds()+0.1))
	if cn.BroadcastDelivered > allowed || cn.BroadcastDelivered+cn.DropRateLimit != uint64(r.stormSent) {
		t.Fatalf("storm of %d: %d delivered (allowed %d), %d rate-limited", r.stormSent, cn.BroadcastDelivered, allowed, cn.DropRateLimit)
	}
}

// BenchmarkEngineUnicastUnderStorm reports unicast throughput and probe
// latency at a receiver while another member storms it with 10k signed
// broadcasts/s, relative to no storm (issue 10's goal: >= 90% of the
// throughput, p99 < 5 ms).
func BenchmarkEngineUnicastUnderStorm(b *testing.B) {
	var base, r stormResult
	for b.Loop() {
		base = runStorm(b, 0, time.Second, true)
		r = runStorm(b, 10000, time.Second, true)
	}
	b.ReportMetric(float64(r.bulk)/float64(max(1, base.bulk))*100, "throughput_%_of_baseline")
	b.ReportMetric(float64(base.pct(.99).Microseconds()), "p99_us_alone")
	b.ReportMetric(float64(r.pct(.99).Microseconds()), "p99_us_storm")
	b.ReportMetric(float64(r.pct(.5).Microseconds()), "p50_us_storm")
	b.ReportMetric(float64(r.counters.DropRateLimit), "storm_dropped")
}
