package tap

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/kadlan/kadlan/tap/ether"
	"golang.org/x/sys/unix"
)

// inNetns runs fn on a goroutine locked to an OS thread that has entered a
// fresh network namespace created for this test (and deleted after it).
// The thread is never unlocked, so Go discards it when fn returns and no
// other goroutine ever runs in the namespace. It skips unless root.
func inNetns(t *testing.T, fn func() error) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("tap: skipping: creating a TAP device needs root, and this test does so only inside its own network namespace")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("tap: skipping: ip(8) is needed to create the test's network namespace")
	}
	name := fmt.Sprintf("kltap-%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("tap: skipping: ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	nsPath := "/run/netns/" + name
	nsfd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nsfd)
	var want unix.Stat_t
	if err := unix.Fstat(nsfd, &want); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // deliberately never unlocked
		if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns: %w", err)
			return
		}
		var cur unix.Stat_t
		if err := unix.Stat("/proc/thread-self/ns/net", &cur); err != nil || cur.Ino != want.Ino {
			errc <- fmt.Errorf("not in the test namespace after setns (%v)", err)
			return
		}
		errc <- fn()
	}()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// readUntil reads frames until match accepts one or the deadline passes.
func readUntil(d *Linux, match func([]byte) bool) ([]byte, error) {
	return readUntilFor(d, 3*time.Second, match)
}

// ask writes req and waits for a matching answer, retrying a few times:
// right after a link comes up the kernel may still ignore neighbour
// discovery for a moment.
func ask(d *Linux, req []byte, match func([]byte) bool) ([]byte, error) {
	var err error
	for range 6 {
		if _, err := d.Write(req); err != nil {
			return nil, err
		}
		var f []byte
		if f, err = readUntilFor(d, 500*time.Millisecond, match); err == nil {
			return f, nil
		}
	}
	return nil, err
}

func readUntilFor(d *Linux, timeout time.Duration, match func([]byte) bool) ([]byte, error) {
	d.SetReadDeadline(time.Now().Add(timeout))
	defer d.SetReadDeadline(time.Time{})
	buf := make([]byte, 2048)
	for {
		n, err := d.Read(buf)
		if err != nil {
			return nil, err
		}
		if match(buf[:n]) {
			return append([]byte(nil), buf[:n]...), nil
		}
	}
}

func TestLinuxTAP(t *testing.T) {
	mac := ether.MAC{0x02, 0x6b, 0x6c, 0, 0, 1}
	peerMAC := ether.MAC{0x02, 0x6b, 0x6c, 0, 0, 2}
	v4 := netip.MustParsePrefix("10.99.0.1/24")
	v6 := netip.MustParsePrefix("fd99::1/64")
	inNetns(t, func() error {
		d, err := Create(Config{Name: "kltest%d", MTU: 1400, MAC: mac})
		if err != nil {
			return err
		}
		defer d.Close()
		if !strings.HasPrefix(d.Name(), "kltest") || d.MTU() != 1400 || d.MAC() != mac {
			return fmt.Errorf("device %s mtu %d mac %v", d.Name(), d.MTU(), d.MAC())
		}
		for _, p := range []netip.Prefix{v4, v6} {
			if err := d.AddAddr(p); err != nil {
				return err
			}
		}
		if err := d.SetUp(true); err != nil {
			return err
		}
		iface, err := net.InterfaceByName(d.Name())
		if err != nil {
			return err
		}
		if iface.MTU != 1400 || !bytes.Equal(iface.HardwareAddr, mac[:]) || iface.Flags&net.FlagUp == 0 {
			return fmt.Errorf("kernel sees %+v", iface)
		}
		addrs, _ := iface.Addrs()
		s := fmt.Sprint(addrs)
		if !strings.Contains(s, "10.99.0.1/24") || !strings.Contains(s, "fd99::1/64") {
			return fmt.Errorf("addresses %s", s)
		}

		// The kernel answers ARP for its IPv4 address.
		req := ether.AppendARPFrame(nil, ether.Broadcast, peerMAC, ether.ARP{Op: ether.ARPRequest,
			SenderMAC: peerMAC, SenderIP: netip.MustParseAddr("10.99.0.2"), TargetIP: v4.Addr()})
		rep, err := ask(d, req, func(f []byte) bool {
			h, _ := ether.ParseHeader(f)
			a, err := ether.ParseARP(f[ether.HeaderLen:])
			return h.Type == ether.TypeARP && err == nil && a.Op == ether.ARPReply
		})
		if err != nil {
			return fmt.Errorf("no ARP reply: %w", err)
		}
		a, _ := ether.ParseARP(rep[ether.HeaderLen:])
		if a.SenderMAC != mac || a.SenderIP != v4.Addr() || a.TargetMAC != peerMAC {
			return fmt.Errorf("ARP reply %+v", a)
		}

		// And NDP for its IPv6 address, usable at once (no DAD).
		ns := ether.NDP{Type: ether.ICMPv6NeighborSol, Src: netip.MustParseAddr("fd99::2"),
			Dst: ether.SolicitedNode(v6.Addr()), Target: v6.Addr(), LLAddr: peerMAC}
		na, err := ask(d, ether.AppendNDPFrame(nil, ether.IPv6Multicast(ns.Dst), peerMAC, ns), func(f []byte) bool {
			n, err := ether.ParseNDP(f[ether.HeaderLen:])
			return err == nil && n.Type == ether.ICMPv6NeighborAdv && n.Target == v6.Addr()
		})
		if err != nil {
			return fmt.Errorf("no neighbour advertisement: %w", err)
		}
		if h, _ := ether.ParseHeader(na); h.Src != mac || h.Dst != peerMAC {
			return fmt.Errorf("NA header %+v", h)
		}

		// The subnet broadcast address is set: a UDP broadcast to it leaves
		// as an Ethernet broadcast (not as an ARP for 10.99.0.255).
		sock, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(sock)
		unix.SetsockoptInt(sock, unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
		if err := unix.Sendto(sock, []byte("kadlan"), 0, &unix.SockaddrInet4{Port: 9, Addr: [4]byte{10, 99, 0, 255}}); err != nil {
			return fmt.Errorf("send broadcast: %w", err)
		}
		if _, err := readUntil(d, func(f []byte) bool {
			h, _ := ether.ParseHeader(f)
			return h.Dst.IsBroadcast() && h.Type == ether.TypeIPv4 && bytes.HasSuffix(f, []byte("kadlan"))
		}); err != nil {
			return fmt.Errorf("no subnet broadcast frame: %w", err)
		}

		// Addresses can be removed again.
		if err := d.RemoveAddr(v6); err != nil {
			return err
		}
		addrs, _ = iface.Addrs()
		if s := fmt.Sprint(addrs); strings.Contains(s, "fd99::1") || !strings.Contains(s, "10.99.0.1/24") {
			return fmt.Errorf("after RemoveAddr: %s", s)
		}

		// Close unblocks a pending Read with net.ErrClosed and removes the interface.
		errc := make(chan error, 1)
		go func() {
			buf := make([]byte, 2048)
			for {
				if _, err := d.Read(buf); err != nil {
					errc <- err
					return
				}
			}
		}()
		time.Sleep(50 * time.Millisecond)
		if err := d.Close(); err != nil {
			return err
		}
		if err := <-errc; !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("read after close: %v", err)
		}
		if _, err := d.Write(req); !errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("write after close: %v", err)
		}
		if d.Close() != nil {
			return errors.New("second Close failed")
		}
		if _, err := net.InterfaceByName(d.Name()); err == nil {
			return errors.New("interface still present after Close")
		}
		return nil
	})
}

func TestLinuxTAPVnetHdr(t *testing.T) {
	inNetns(t, func() error {
		d, err := Create(Config{Name: "klvnet%d", VnetHdr: true, Offload: unix.TUN_F_CSUM})
		if err != nil {
			return err
		}
		defer d.Close()
		if d.VnetHdrLen() != ether.VnetHdrLen {
			return fmt.Errorf("VnetHdrLen %d", d.VnetHdrLen())
		}
		if err := d.AddAddr(netip.MustParsePrefix("10.98.0.1/24")); err != nil {
			return err
		}
		if err := d.SetUp(true); err != nil {
			return err
		}
		// A frame written with a zero virtio header is accepted: the kernel
		// answers this ARP request, and its reply comes with a header too.
		peer := ether.MAC{2, 0, 0, 0, 0, 9}
		req := ether.AppendARPFrame(make([]byte, ether.VnetHdrLen), ether.Broadcast, peer, ether.ARP{Op: ether.ARPRequest,
			SenderMAC: peer, SenderIP: netip.MustParseAddr("10.98.0.2"), TargetIP: netip.MustParseAddr("10.98.0.1")})
		_, err = ask(d, req, func(f []byte) bool {
			if len(f) < ether.VnetHdrLen+ether.HeaderLen {
				return false
			}
			f = f[ether.VnetHdrLen:]
			h, _ := ether.ParseHeader(f)
			a, err := ether.ParseARP(f[ether.HeaderLen:])
			return h.Type == ether.TypeARP && err == nil && a.Op == ether.ARPReply
		})
		return err
	})
}

func TestOpenPrefersTAP(t *testing.T) {
	inNetns(t, func() error {
		d, err := Open(Config{Name: "klopen%d", MTU: 1300, MAC: ether.MAC{2, 1, 2, 3, 4, 5}})
		if err != nil {
			return err
		}
		defer d.Close()
		if _, ok := d.(*Linux); !ok || d.MTU() != 1300 {
			return fmt.Errorf("Open gave %T with MTU %d", d, d.MTU())
		}
		if _, ok := d.(Addresser); !ok {
			return errors.New("device cannot be configured")
		}
		return nil
	})
}

func TestOffloadTSOMatchesKernel(t *testing.T) {
	if want := unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6; OffloadTSO != want {
		t.Fatalf("OffloadTSO = %#x, want %#x", OffloadTSO, want)
	}
}
