package kerneltest

import (
	"context"
	"encoding/json"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/kadlan/kadlan/tap/taptest"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

type iperfResult struct {
	mbps        float64
	retransmits int
}

// iperf runs iperf3 TCP for 3 s from namespace client to server
// (listening on addr) with the given number of parallel streams.
func iperf(b *testing.B, client, server *taptest.Netns, addr string, streams int) iperfResult {
	if _, err := exec.LookPath("iperf3"); err != nil {
		b.Skip("iperf3 not installed")
	}
	srv := exec.Command("ip", "netns", "exec", server.Name, "iperf3", "-s", "-1", "-B", addr)
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	time.Sleep(300 * time.Millisecond)
	out, err := client.Exec("iperf3", "-c", addr, "-t", "3", "-J", "-P", strconv.Itoa(streams))
	if err != nil {
		b.Fatalf("iperf3: %v\n%s", err, out)
	}
	var res struct {
		End struct {
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		b.Fatalf("iperf3 output: %v\n%s", err, out)
	}
	return iperfResult{res.End.SumReceived.BitsPerSecond / 1e6, res.End.SumSent.Retransmits}
}

// libp2pLink joins a and b with a libp2p stream between two hosts on
// loopback (created in the test's own namespace).
func libp2pLink(transport string) linker {
	return func(t testing.TB, a, b *member) {
		mk := func(m *member) *hostT {
			opts := []libp2p.Option{libp2p.Identity(m.key), libp2p.DisableRelay(),
				libp2p.ResourceManager(&network.NullResourceManager{})}
			if transport == "quic" {
				opts = append(opts, libp2p.Transport(quic.NewTransport), libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"))
			} else {
				opts = append(opts, libp2p.Transport(tcp.NewTCPTransport), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
			}
			h, err := libp2p.New(opts...)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { h.Close() })
			return &hostT{h}
		}
		ha, hb := mk(a), mk(b)
		accepted := make(chan error, 1)
		hb.SetStreamHandler(protocol.ID(vswitch.ProtocolID), func(s network.Stream) {
			accepted <- b.eng.AddLink(a.id, s, false)
		})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ha.Connect(ctx, peer.AddrInfo{ID: hb.ID(), Addrs: hb.Addrs()}); err != nil {
			t.Fatal(err)
		}
		s, err := ha.NewStream(ctx, hb.ID(), protocol.ID(vswitch.ProtocolID))
		if err != nil {
			t.Fatal(err)
		}
		if err := a.eng.AddLink(b.id, s, true); err != nil {
			t.Fatal(err)
		}
		if err := <-accepted; err != nil {
			t.Fatal(err)
		}
	}
}

type hostT struct{ host.Host }

// vethPair joins two fresh namespaces with a veth pair: the baseline.
func vethPair(b *testing.B) (*taptest.Netns, *taptest.Netns) {
	x, y := taptest.NewNetns(b, "klv"), taptest.NewNetns(b, "klv")
	cmds := [][]string{
		{"ip", "link", "add", "v0", "netns", x.Name, "type", "veth", "peer", "name", "v1", "netns", y.Name},
		{"ip", "-n", x.Name, "addr", "add", "10.66.0.1/24", "dev", "v0"},
		{"ip", "-n", y.Name, "addr", "add", "10.66.0.2/24", "dev", "v1"},
		{"ip", "-n", x.Name, "link", "set", "v0", "up"},
		{"ip", "-n", y.Name, "link", "set", "v1", "up"},
	}
	for _, c := range cmds {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%v: %v: %s", c, err, out)
		}
	}
	return x, y
}

// BenchmarkKernelIperf measures TAP-to-TAP TCP throughput through kadlan's
// data path (two kernels in namespaces, their TAPs joined by Engines) over
// different links, against a raw veth pair measured in the same run. b.N is
// ignored: each sub-benchmark is one 3-second iperf3 run. Run with
// -benchtime 1x.
func BenchmarkKernelIperf(b *testing.B) {
	var veth float64
	b.Run("raw-veth", func(b *testing.B) {
		x, y := vethPair(b)
		r := iperf(b, x, y, "10.66.0.2", 1)
		veth = r.mbps
		b.ReportMetric(r.mbps, "Mbit/s")
		b.ReportMetric(float64(r.retransmits), "retransmits")
	})
	for _, tt := range []struct {
		name    string
		link    linker
		gso     bool
		streams int
	}{
		{"kadlan-loopback-tcp", tcpLink, false, 1},
		{"kadlan-libp2p-tcp", libp2pLink("tcp"), false, 1},
		{"kadlan-libp2p-quic", libp2pLink("quic"), false, 1},
		{"kadlan-libp2p-tcp-offload", libp2pLink("tcp"), true, 1},
		{"kadlan-libp2p-quic-offload", libp2pLink("quic"), true, 1},
		{"kadlan-libp2p-tcp-offload-4streams", libp2pLink("tcp"), true, 4},
	} {
		b.Run(tt.name, func(b *testing.B) {
			ms := lanOpt(b, 2, tt.link, tt.gso)
			r := iperf(b, ms[0].ns, ms[1].ns, ms[1].ip4.Addr().String(), tt.streams)
			b.ReportMetric(r.mbps, "Mbit/s")
			b.ReportMetric(float64(r.retransmits), "retransmits")
			if veth > 0 {
				b.ReportMetric(r.mbps/veth, "ratio_to_veth")
			}
			for _, m := range ms {
				links, _ := m.eng.Links()
				for _, l := range links {
					if l.Queue.Dropped > 0 {
						b.Logf("%s: queue dropped %d of %d", m.ns.Name, l.Queue.Dropped, l.Queue.Pushed+l.Queue.Dropped)
					}
				}
			}
		})
	}
}

// pingRTT returns the average RTT in ms of 50 pings at 10 ms intervals.
func pingRTT(b *testing.B, from *taptest.Netns, addr string) float64 {
	out, err := from.Exec("ping", "-c", "50", "-i", "0.01", "-W", "1", addr)
	if err != nil {
		b.Fatalf("ping: %v\n%s", err, out)
	}
	s := string(out)
	i := strings.Index(s, "rtt min/avg/max/mdev = ")
	if i < 0 {
		b.Fatalf("ping output: %s", s)
	}
	f := strings.Split(strings.Fields(s[i+len("rtt min/avg/max/mdev = "):])[0], "/")
	avg, err := strconv.ParseFloat(f[1], 64)
	if err != nil {
		b.Fatal(err)
	}
	return avg
}

// BenchmarkKernelPing reports the idle ping RTT through kadlan's data path
// (libp2p TCP link) and over a raw veth, and the difference.
func BenchmarkKernelPing(b *testing.B) {
	x, y := vethPair(b)
	veth := pingRTT(b, x, "10.66.0.2")
	_ = y
	ms := lanB(b, 2, libp2pLink("tcp"))
	pingRTT(b, ms[0].ns, ms[1].ip4.Addr().String()) // warm up ARP and the path
	k := pingRTT(b, ms[0].ns, ms[1].ip4.Addr().String())
	b.ReportMetric(veth, "veth_ms")
	b.ReportMetric(k, "kadlan_ms")
	b.ReportMetric(k-veth, "added_ms")
}

// BenchmarkKernelPingUnderLoad reports the ping RTT through kadlan (libp2p
// TCP link) while one iperf3 TCP stream saturates the same path: the
// bounded queues keep it low (no bufferbloat).
func BenchmarkKernelPingUnderLoad(b *testing.B) {
	if _, err := exec.LookPath("iperf3"); err != nil {
		b.Skip("iperf3 not installed")
	}
	ms := lanB(b, 2, libp2pLink("tcp"))
	dst := ms[1].ip4.Addr().String()
	pingRTT(b, ms[0].ns, dst)
	srv := exec.Command("ip", "netns", "exec", ms[1].ns.Name, "iperf3", "-s", "-1", "-B", dst)
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	time.Sleep(300 * time.Millisecond)
	cli := exec.Command("ip", "netns", "exec", ms[0].ns.Name, "iperf3", "-c", dst, "-t", "4")
	if err := cli.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cli.Process.Kill(); cli.Wait() }()
	time.Sleep(time.Second)
	b.ReportMetric(pingRTT(b, ms[0].ns, dst), "loaded_ms")
}
