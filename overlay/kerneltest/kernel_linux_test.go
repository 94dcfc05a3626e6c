package kerneltest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kadlan/kadlan/overlay"
	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/kadlan/kadlan/tap"
	"github.com/kadlan/kadlan/tap/taptest"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/sys/unix"
)

type member struct {
	key  crypto.PrivKey
	ns   *taptest.Netns
	id   peer.ID
	ip4  netip.Prefix
	ip6  netip.Addr
	dev  *tap.Linux
	eng  *overlay.Engine
	memb *vswitch.Membership
}

func newKey(t testing.TB, seed uint64) (crypto.PrivKey, peer.ID) {
	r := rand.New(rand.NewPCG(seed, 99))
	b := make([]byte, 64)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	k, _, err := crypto.GenerateEd25519Key(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	return k, id
}

func tcpPair(t testing.TB) (net.Conn, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := make(chan net.Conn, 1)
	go func() { a, _ := ln.Accept(); c <- a }()
	d, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return d, <-c
}

// lan builds n members of one public network, each with a TAP in its own
// namespace configured from its Membership, and links every pair over
// loopback TCP in the test's own namespace.
func lan(t *testing.T, n int) []*member { return lanB(t, n, tcpLink) }

// lanB builds a LAN without offload.
func lanB(t testing.TB, n int, link linker) []*member { return lanOpt(t, n, link, false) }

// linker joins two members' engines with one stream.
type linker func(t testing.TB, a, b *member)

// tcpLink joins a and b over a plain loopback TCP connection.
func tcpLink(t testing.TB, a, b *member) {
	ca, cb := tcpPair(t)
	if err := a.eng.AddLink(b.id, ca, true); err != nil {
		t.Fatal(err)
	}
	if err := b.eng.AddLink(a.id, cb, false); err != nil {
		t.Fatal(err)
	}
}

// lanOpt is lan for tests and benchmarks, with a choice of link and, with
// gso, TAPs that hand over TCP super-frames (IFF_VNET_HDR with TSO).
func lanOpt(t testing.TB, n int, link linker, gso bool) []*member {
	owner, _ := newKey(t, 1)
	def, err := netrec.NewDefinition(owner, "kerneltest", false, netip.MustParsePrefix("10.55.0.0/24"), 0, netrec.BroadcastParams{}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	ms := make([]*member, n)
	for i := range ms {
		m := &member{ns: taptest.NewNetns(t, "klk")}
		m.key, m.id = newKey(t, uint64(i+10))
		m.memb = vswitch.NewMembership(def.ID(), m.id, now)
		m.memb.SetDefinition(def)
		ms[i] = m
	}
	// Everyone learns everyone's announcement (as from the DHT or hellos),
	// so IPv4 addresses are known and conflict-free.
	for round := 0; round < 3; round++ {
		for _, a := range ms {
			ann, err := netrec.NewAnnouncement(a.key, def.ID(), a.memb.IPv4(now).Addr(), now.Add(time.Duration(round)*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range ms {
				if a != b {
					b.memb.AddAnnouncement(ann)
				}
			}
		}
	}
	for _, m := range ms {
		m.ip4 = m.memb.IPv4(now)
		m.ip6 = m.memb.IPv6()
		err := m.ns.Do(func() error {
			cfg := tap.Config{Name: "kl%d", MTU: def.MTU, MAC: m.memb.MAC()}
			if gso {
				cfg.VnetHdr, cfg.Offload = true, unix.TUN_F_CSUM|unix.TUN_F_TSO4|unix.TUN_F_TSO6
			}
			d, err := tap.Create(cfg)
			if err != nil {
				return err
			}
			m.dev = d
			for _, p := range []netip.Prefix{m.ip4, netip.PrefixFrom(m.ip6, 64)} {
				if err := d.AddAddr(p); err != nil {
					return err
				}
			}
			return d.SetUp(true)
		})
		if err != nil {
			t.Fatal(err)
		}
		cfg := m.memb.SwitchConfig(now)
		cfg.Key = m.key // signs broadcasts, as the daemon does
		sw, err := vswitch.NewSwitch(cfg)
		if err != nil {
			t.Fatal(err)
		}
		m.eng = overlay.New(m.dev, nil, sw, overlay.EngineConfig{Logf: t.Logf, VnetHdr: gso})
		t.Cleanup(func() { m.eng.Close() })
		for _, o := range ms {
			if o != m {
				if err := m.memb.Authorize(o.id, nil, now); err != nil {
					t.Fatal(err)
				}
			}
		}
		m.eng.Update(func(sw *vswitch.Switch) { m.memb.Sync(sw, now) })
	}
	for i, a := range ms {
		for _, b := range ms[i+1:] {
			link(t, a, b)
		}
	}
	return ms
}

func ping(t *testing.T, from *member, to netip.Addr) {
	t.Helper()
	args := []string{"-c", "2", "-i", "0.2", "-W", "2", to.String()}
	if to.Is6() {
		args = append([]string{"-6"}, args...)
	}
	out, err := from.ns.Exec("ping", args...)
	if err != nil {
		t.Fatalf("ping %v from %s: %v\n%s", to, from.ns.Name, err, out)
	}
	if !strings.Contains(string(out), " 0% packet loss") {
		t.Fatalf("ping %v: %s", to, out)
	}
}

func TestKernelLAN(t *testing.T) { testKernelLAN(t, false) }

// TestKernelLANOffload is TestKernelLAN with TSO and checksum offload on
// every TAP: super-frames cross whole and checksums are completed.
func TestKernelLANOffload(t *testing.T) { testKernelLAN(t, true) }

func testKernelLAN(t *testing.T, gso bool) {
	ms := lanOpt(t, 3, tcpLink, gso)
	a, b, c := ms[0], ms[1], ms[2]
	ping(t, a, b.ip4.Addr())
	ping(t, b, c.ip4.Addr())
	ping(t, c, a.ip6)
	ping(t, a, c.ip6)
	for _, m := range ms {
		cnt := m.eng.Counters()
		t.Logf("%s: %+v", m.ns.Name, cnt)
		if cnt.DropSpoofed != 0 || cnt.DropNotMember != 0 {
			t.Errorf("%s: unexpected drops %+v", m.ns.Name, cnt)
		}
	}
	if a.eng.Counters().ARPAnswered == 0 || a.eng.Counters().NDPAnswered == 0 {
		t.Error("ARP and NDP were not answered locally")
	}

	// A UDP broadcast to the subnet broadcast address from a reaches b
	// and c (a has unicast contacts with both, and they are linked).
	for _, dst := range []string{"10.55.0.255", "255.255.255.255"} {
		recv := make([]chan string, 2)
		for i, m := range []*member{b, c} {
			recv[i] = make(chan string, 1)
			var fd int
			if err := m.ns.Do(func() error {
				var err error
				fd, err = udpListen(9999)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			go func(ch chan string) {
				defer unix.Close(fd)
				buf := make([]byte, 100)
				unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 3})
				n, _, err := unix.Recvfrom(fd, buf, 0)
				if err != nil {
					ch <- "error: " + err.Error()
					return
				}
				ch <- string(buf[:n])
			}(recv[i])
		}
		time.Sleep(50 * time.Millisecond)
		msg := "hello " + dst
		if err := a.ns.Do(func() error { return udpBroadcast(a.dev.Name(), dst, 9999, msg) }); err != nil {
			t.Fatal(err)
		}
		for i, ch := range recv {
			if got := <-ch; got != msg {
				t.Errorf("member %d: broadcast to %s: got %q", i+1, dst, got)
			}
		}
	}

	// Revocation: once b drops a, a's pings to b fail.
	b.eng.Update(func(sw *vswitch.Switch) { sw.RemoveMember(a.id) })
	out, err := a.ns.Exec("ping", "-c", "2", "-i", "0.2", "-W", "1", b.ip4.Addr().String())
	if err == nil {
		t.Fatalf("ping to a member that removed us succeeded:\n%s", out)
	}
	ping(t, a, c.ip4.Addr())
}

func udpListen(port int) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port}); err != nil {
		unix.Close(fd)
		return 0, err
	}
	return fd, nil
}

func udpBroadcast(dev, dst string, port int, msg string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
	if err := unix.BindToDevice(fd, dev); err != nil { // no default route for 255.255.255.255
		return err
	}
	a := netip.MustParseAddr(dst).As4()
	if err := unix.Sendto(fd, []byte(msg), 0, &unix.SockaddrInet4{Port: port, Addr: a}); err != nil {
		return fmt.Errorf("sendto %s: %w", dst, err)
	}
	return nil
}
