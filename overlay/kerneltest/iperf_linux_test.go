package kerneltest

import (
	"encoding/json"
	"os/exec"
	"testing"
	"time"
)

// BenchmarkKernelIperf runs one iperf3 TCP stream for 3 s between two
// kernels whose TAPs are joined by Engines over loopback TCP, and reports
// the throughput and the retransmissions (drops in the bounded queues show
// up there). b.N is ignored: one run is one measurement.
func BenchmarkKernelIperf(b *testing.B) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		b.Skip("iperf3 not installed")
	}
	ms := lanB(b, 2)
	srv := exec.Command("ip", "netns", "exec", ms[1].ns.Name, "iperf3", "-s", "-1", "-B", ms[1].ip4.Addr().String())
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	time.Sleep(300 * time.Millisecond)
	b.ResetTimer()
	out, err := ms[0].ns.Exec("iperf3", "-c", ms[1].ip4.Addr().String(), "-t", "3", "-J")
	b.StopTimer()
	if err != nil {
		b.Fatalf("iperf3: %v\n%s", err, out)
	}
	var res struct {
		End struct {
			SumSent struct {
				BitsPerSecond float64 `json:"bits_per_second"`
				Retransmits   int     `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		b.Fatalf("iperf3 output: %v\n%s", err, out)
	}
	for _, m := range ms {
		if st, err := m.ns.Exec("ip", "-s", "link", "show", m.dev.Name()); err == nil {
			b.Logf("%s:\n%s", m.ns.Name, st)
		}
		links, _ := m.eng.Links()
		for _, l := range links {
			b.Logf("%s: queue %+v", m.ns.Name, l.Queue)
		}
	}
	b.ReportMetric(res.End.SumReceived.BitsPerSecond/1e6, "Mbit/s")
	b.ReportMetric(float64(res.End.SumSent.Retransmits), "retransmits")
}
