package linkbench

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/kadlan/kadlan/overlay"
	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/kadlan/kadlan/tap/ether"
	"github.com/kadlan/kadlan/tap/taptest"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	quic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

func key(tb testing.TB, seed uint64) crypto.PrivKey {
	r := rand.New(rand.NewPCG(seed, ^seed))
	b := make([]byte, 64)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	k, _, err := crypto.GenerateEd25519Key(bytes.NewReader(b))
	if err != nil {
		tb.Fatal(err)
	}
	return k
}

type node struct {
	h    host.Host
	id   peer.ID
	mac  ether.MAC
	ip   netip.Addr
	eng  *overlay.Engine
	host *taptest.Device
}

func newHost(tb testing.TB, k crypto.PrivKey, transport string) host.Host {
	opts := []libp2p.Option{libp2p.Identity(k), libp2p.DisableRelay(),
		libp2p.ResourceManager(&network.NullResourceManager{})}
	switch transport {
	case "tcp":
		opts = append(opts, libp2p.Transport(tcp.NewTCPTransport), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
	case "quic":
		opts = append(opts, libp2p.Transport(quic.NewTransport), libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"))
	}
	h, err := libp2p.New(opts...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { h.Close() })
	return h
}

// pair builds two hosts whose Engines are joined by one link stream.
func pair(tb testing.TB, transport string) (*node, *node) {
	var id netrec.NetworkID
	id[0] = 7
	nodes := make([]*node, 2)
	for i := range nodes {
		k := key(tb, uint64(i+1))
		h := newHost(tb, k, transport)
		n := &node{h: h, id: h.ID(), mac: netrec.MemberMAC(id, h.ID()), ip: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})}
		sw, err := vswitch.NewSwitch(vswitch.SwitchConfig{Network: id, Self: n.id, IPv4: n.ip})
		if err != nil {
			tb.Fatal(err)
		}
		hostDev, dev := taptest.NewPair(n.mac, n.mac, 0, 1024)
		n.host = hostDev
		n.eng = overlay.New(dev, nil, sw, overlay.EngineConfig{Logf: tb.Logf, TickEvery: time.Hour})
		tb.Cleanup(func() { n.eng.Close() })
		nodes[i] = n
	}
	a, b := nodes[0], nodes[1]
	a.eng.Update(func(sw *vswitch.Switch) { sw.SetMember(vswitch.SwitchMember{Peer: b.id, IPv4: b.ip}) })
	b.eng.Update(func(sw *vswitch.Switch) { sw.SetMember(vswitch.SwitchMember{Peer: a.id, IPv4: a.ip}) })
	accepted := make(chan error, 1)
	b.h.SetStreamHandler(protocol.ID(vswitch.ProtocolID), func(s network.Stream) {
		accepted <- b.eng.AddLink(s.Conn().RemotePeer(), s, false)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.h.Connect(ctx, peer.AddrInfo{ID: b.id, Addrs: b.h.Addrs()}); err != nil {
		tb.Fatal(err)
	}
	s, err := a.h.NewStream(ctx, b.id, protocol.ID(vswitch.ProtocolID))
	if err != nil {
		tb.Fatal(err)
	}
	if err := a.eng.AddLink(b.id, s, true); err != nil {
		tb.Fatal(err)
	}
	// The stream reaches b's handler with the first data (the group
	// announcement a sends on AddLink).
	if err := <-accepted; err != nil {
		tb.Fatal(err)
	}
	return a, b
}

func frame(dst, src *node, size int) []byte {
	f := make([]byte, size)
	ether.PutHeader(f, ether.Header{Dst: dst.mac, Src: src.mac, Type: ether.TypeIPv4})
	f[14] = 0x45
	s, d := src.ip.As4(), dst.ip.As4()
	copy(f[26:30], s[:])
	copy(f[30:34], d[:])
	return f
}

// TestLinkOverLibp2p checks the path the benchmark measures.
func TestLinkOverLibp2p(t *testing.T) {
	for _, tr := range []string{"tcp", "quic"} {
		t.Run(tr, func(t *testing.T) {
			a, b := pair(t, tr)
			for i := range 50 {
				f := frame(b, a, 100+i)
				a.host.Write(f)
				buf := make([]byte, 2048)
				n, err := b.host.Read(buf)
				if err != nil || !bytes.Equal(buf[:n], f) {
					t.Fatalf("frame %d: %v", i, err)
				}
			}
		})
	}
}

// BenchmarkLinkOverLibp2p offers 1400-byte frames at the sender's device
// as fast as it takes them and counts what arrives at the receiver's device
// (the bounded queue drops the excess, as Ethernet would).
func BenchmarkLinkOverLibp2p(b *testing.B) {
	for _, tr := range []string{"tcp", "quic"} {
		b.Run(tr, func(b *testing.B) {
			x, y := pair(b, tr)
			f := frame(y, x, 1400)
			done := make(chan int)
			go func() {
				buf := make([]byte, 2048)
				got := 0
				for got < b.N {
					if _, err := y.host.Read(buf); err != nil {
						break
					}
					got++
				}
				done <- got
			}()
			b.SetBytes(int64(len(f)))
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				x.host.Write(f)
			}
			var got int
			select {
			case got = <-done:
			case <-time.After(time.Second):
				y.host.Close()
				got = <-done
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(100*float64(b.N-got)/float64(b.N), "loss_%")
			b.ReportMetric(float64(got)*float64(len(f))*8/1e9/elapsed.Seconds(), "delivered_Gbit/s")
		})
	}
}

// BenchmarkLinkRoundTrip measures one frame's round trip across a member
// link, device to device and back (a ping's path through two engines, the
// muxer and the transport, without the kernel): ns/op is the RTT.
func BenchmarkLinkRoundTrip(b *testing.B) {
	for _, tr := range []string{"tcp", "quic"} {
		b.Run(tr, func(b *testing.B) {
			x, y := pair(b, tr)
			req, rep := frame(y, x, 100), frame(x, y, 100)
			stop := make(chan struct{})
			defer close(stop)
			go func() { // y answers every frame
				buf := make([]byte, 2048)
				for {
					if _, err := y.host.Read(buf); err != nil {
						return
					}
					select {
					case <-stop:
						return
					default:
					}
					y.host.Write(rep)
				}
			}()
			buf := make([]byte, 2048)
			// Warm up: the first frames open the path.
			for range 10 {
				x.host.Write(req)
				x.host.Read(buf)
			}
			b.ResetTimer()
			for range b.N {
				x.host.Write(req)
				if _, err := x.host.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			y.host.Close()
		})
	}
}
