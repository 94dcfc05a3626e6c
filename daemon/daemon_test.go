package daemon

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/kadlan/kadlan/tap"
	"github.com/kadlan/kadlan/tap/ether"
	"github.com/kadlan/kadlan/tap/taptest"
)

// testDaemon is a daemon running in-process on loopback with in-memory
// network devices; kernel holds the other end of each device (the side an
// operating system would read and write).
type testDaemon struct {
	d      *Daemon
	client *api.Client
	mu     sync.Mutex
	kernel map[string]*taptest.Device // by interface name
}

func startDaemon(t *testing.T, bootstrap ...string) *testDaemon {
	return startDaemonWith(t, nil, bootstrap...)
}

// startDaemonWith starts a daemon whose devices come from newDevice (nil:
// in-memory pairs).
func startDaemonWith(t *testing.T, newDevice DeviceFactory, bootstrap ...string) *testDaemon {
	t.Helper()
	return startDaemonFull(t, newDevice, nil, bootstrap...)
}

// testStateDirs, when set by a test, gives startDaemonFull the directory
// to run in (its state under DIR/state), so a test can prepare it.
var testStateDirs = map[*testing.T]string{}

// testConfigs, when set by a test, changes the Config startDaemonFull runs.
var testConfigs = map[*testing.T]func(*Config){}

// startDaemonFull is startDaemonWith that also hands every log line to
// onLog (nil: none).
func startDaemonFull(t *testing.T, newDevice DeviceFactory, onLog func(string), bootstrap ...string) *testDaemon {
	t.Helper()
	dir, ok := testStateDirs[t]
	if !ok {
		dir = t.TempDir()
	}
	td := &testDaemon{kernel: map[string]*taptest.Device{}}
	if newDevice == nil {
		newDevice = func(name string, mtu int, m *vswitch.Membership) (tap.Device, error) {
			dev, kern := taptest.NewPair(m.MAC(), ether.MAC{0x02, 0, 0, 0, 0, 0x99}, mtu, 256)
			td.mu.Lock()
			td.kernel[name] = kern
			td.mu.Unlock()
			return dev, nil
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *Daemon, 1)
	done := make(chan error, 1)
	modCfg := testConfigs[t]
	go func() {
		cfg := Config{
			StateDir:      filepath.Join(dir, "state"),
			APIPath:       filepath.Join(dir, "api.sock"),
			Listen:        []string{"/ip4/127.0.0.1/tcp/0"},
			Bootstrap:     bootstrap,
			Reachability:  "public",
			AllowLoopback: true,
			Logf: func(f string, a ...any) {
				if onLog != nil {
					onLog(fmt.Sprintf(f, a...))
				}
				t.Logf("%s: "+f, append([]any{filepath.Base(dir)}, a...)...)
			},
			NewDevice: newDevice,
		}
		if modCfg != nil {
			modCfg(&cfg)
		}
		done <- Run(ctx, cfg, func(d *Daemon) { ready <- d })
	}()
	select {
	case td.d = <-ready:
	case err := <-done:
		t.Fatalf("daemon: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not start")
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("daemon exit: %v", err)
		}
	})
	td.client = api.NewClient(filepath.Join(dir, "api.sock"))
	return td
}

func (td *testDaemon) call(t *testing.T, method, path string, in, out any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := td.client.Do(ctx, method, path, in, out); err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
}

func (td *testDaemon) network(t *testing.T, id string) (api.Network, bool) {
	var nets []api.Network
	td.call(t, "GET", "/v1/networks", nil, &nets)
	for _, n := range nets {
		if n.Network == id {
			return n, true
		}
	}
	return api.Network{}, false
}

func waitStatus(t *testing.T, td *testDaemon, id, want string, links int) api.Network {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, ok := td.network(t, id)
		if ok && n.Status == want && n.Links >= links && (want != "ok" || len(n.IPv4) > 0) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("network %s: %+v (found %v), want status %s with %d links", id, n, ok, want, links)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// udpFrame builds an Ethernet/IPv4/UDP frame.
func udpFrame(dstMAC, srcMAC ether.MAC, src, dst netip.Addr, payload []byte) []byte {
	f := make([]byte, 14+20+8+len(payload))
	copy(f[0:6], dstMAC[:])
	copy(f[6:12], srcMAC[:])
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:34]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	s4, d4 := src.As4(), dst.As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(ip[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(ip[10:], ^uint16(sum))
	udp := f[34:]
	binary.BigEndian.PutUint16(udp[0:], 4000)
	binary.BigEndian.PutUint16(udp[2:], 4001)
	binary.BigEndian.PutUint16(udp[4:], uint16(8+len(payload)))
	copy(udp[8:], payload)
	return f
}

// kernelOf returns the kernel side of td's device on network n.
func (td *testDaemon) kernelOf(n api.Network) *taptest.Device {
	td.mu.Lock()
	defer td.mu.Unlock()
	return td.kernel[n.Interface]
}

// arrival reads k (a device's kernel side) until a frame containing
// payload arrives and sends a copy of it on the channel it returns; the
// reader ends there or when k is closed.
func arrival(k *taptest.Device, payload []byte) <-chan []byte {
	got := make(chan []byte, 1)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, err := k.Read(buf)
			if err != nil {
				return
			}
			if bytes.Contains(buf[:n], payload) {
				got <- bytes.Clone(buf[:n])
				return
			}
		}
	}()
	return got
}

func mustMAC(t *testing.T, s string) ether.MAC {
	m, err := ether.ParseMAC(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestNetworkLifecycle drives two in-process daemons through the control
// API: a private network is created, a member joins (unauthorized, pending
// at the owner), is authorized, frames cross between their devices, and a
// revocation cuts the member off.
func TestNetworkLifecycle(t *testing.T) {
	owner := startDaemon(t)
	boot := owner.d.Node.ShareableAddrs()[0]
	member := startDaemon(t, boot)

	var created api.NetworkCreated
	owner.call(t, "POST", "/v1/networks/create", api.NetworkCreateRequest{Name: "t", Private: true, IPv4: "10.5.0.0/24"}, &created)
	member.call(t, "POST", "/v1/networks/join", api.NetworkRequest{Network: created.Network}, nil)
	waitStatus(t, member, created.Network, "unauthorized", 0)

	memberAddr := member.d.Node.ID().String()
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, _ := owner.network(t, created.Network)
		pending := false
		for _, m := range n.Members {
			pending = pending || m.Address == memberAddr && m.Status == "pending"
		}
		if pending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("owner never saw the joiner as pending: %+v", n.Members)
		}
		time.Sleep(100 * time.Millisecond)
	}
	owner.call(t, "POST", "/v1/networks/authorize", api.NetworkRequest{Network: created.Network[:10], Address: memberAddr, IPv4: "10.5.0.7", Name: "m1"}, nil)
	mn := waitStatus(t, member, created.Network, "ok", 1)
	on := waitStatus(t, owner, created.Network, "ok", 1)
	if mn.IPv4[0] != "10.5.0.7/24" {
		t.Fatalf("member IPv4 %v, want the certificate's 10.5.0.7/24", mn.IPv4)
	}
	// The certificate's name, on both sides.
	if mn.MemberName != "m1" || mn.DNSZone != "" {
		t.Fatalf("member's own name %q, zone %q (DNS is off here)", mn.MemberName, mn.DNSZone)
	}
	if len(on.Members) != 1 || on.Members[0].Name != "m1" {
		t.Fatalf("owner's members %+v, want m1", on.Members)
	}
	// Member links are protected from the connection manager's trimming.
	oj, err := owner.d.nets.resolve(created.Network)
	if err != nil {
		t.Fatal(err)
	}
	if !owner.d.Node.Host.ConnManager().IsProtected(member.d.Node.ID(), oj.linkTag()) {
		t.Fatal("the owner's connection to its member is not protected from trimming")
	}

	// A frame written on the owner's device arrives on the member's.
	ok, mk := owner.kernelOf(on), member.kernelOf(mn)
	payload := []byte("hello over kadlan")
	frame := udpFrame(mustMAC(t, mn.MAC), mustMAC(t, on.MAC), netip.MustParsePrefix(on.IPv4[0]).Addr(), netip.MustParsePrefix(mn.IPv4[0]).Addr(), payload)
	got := arrival(mk, payload)
	if _, err := ok.Write(frame); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-got:
		if !bytes.Equal(f, frame) {
			t.Fatalf("frame changed in transit:\n got %x\nwant %x", f, frame)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("frame did not arrive on the member's device")
	}

	// Revocation: the member learns it and the owner drops its link.
	owner.call(t, "POST", "/v1/networks/revoke", api.NetworkRequest{Network: created.Network, Address: memberAddr}, nil)
	waitStatus(t, member, created.Network, "revoked", 0)
	deadline = time.Now().Add(20 * time.Second)
	for {
		n, _ := owner.network(t, created.Network)
		if n.Links == 0 && !owner.d.Node.Host.ConnManager().IsProtected(member.d.Node.ID(), oj.linkTag()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("owner still linked to (or protecting) the revoked member: %+v", n)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Bad requests get clear errors.
	ctx := context.Background()
	for _, tc := range []struct {
		path string
		body any
	}{
		{"/v1/networks/join", api.NetworkRequest{Network: "not-an-id"}},
		{"/v1/networks/leave", api.NetworkRequest{Network: "zzzz"}},
		{"/v1/networks/authorize", api.NetworkRequest{Network: created.Network, Address: "nope"}},
		{"/v1/networks/create", api.NetworkCreateRequest{IPv4: "10.0.0.1"}},
		{"/v1/networks/create", map[string]any{"bogus": 1}},
	} {
		if err := member.client.Do(ctx, "POST", tc.path, tc.body, nil); err == nil {
			t.Errorf("%s %v: accepted", tc.path, tc.body)
		}
	}
	// A name must be a DNS label.
	if err := owner.client.Do(ctx, "POST", "/v1/networks/authorize", api.NetworkRequest{Network: created.Network, Address: memberAddr, Name: "Not_A_Label"}, nil); err == nil || !strings.Contains(err.Error(), "name") {
		t.Errorf("authorize with a bad name: %v", err)
	}
	// Only the owner can authorize.
	if err := member.client.Do(ctx, "POST", "/v1/networks/authorize", api.NetworkRequest{Network: created.Network, Address: memberAddr}, nil); err == nil {
		t.Error("a member issued a certificate")
	}
}

// TestRevocationListFromCreation: a network starts with an empty,
// owner-signed revocation list in the DHT (so members' polls find a
// record and end early instead of walking to every closest peer), and a
// member takes it on.
func TestRevocationListFromCreation(t *testing.T) {
	owner := startDaemon(t)
	boot := owner.d.Node.ShareableAddrs()[0]
	member := startDaemon(t, boot)
	other := startDaemon(t, member.d.Node.ShareableAddrs()[0]) // on no network

	var created api.NetworkCreated
	owner.call(t, "POST", "/v1/networks/create", api.NetworkCreateRequest{Name: "r", IPv4: "10.6.0.0/24"}, &created)
	id, err := netrec.ParseNetworkID(created.Network)
	if err != nil {
		t.Fatal(err)
	}
	oj, err := owner.d.nets.resolve(created.Network)
	if err != nil {
		t.Fatal(err)
	}
	oj.mu.Lock()
	rev := oj.m.Revocation
	oj.mu.Unlock()
	if rev == nil || rev.Seq != 1 || len(rev.Entries) != 0 {
		t.Fatalf("the owner's revocation list after create: %+v, want an empty one, sequence 1", rev)
	}

	member.call(t, "POST", "/v1/networks/join", api.NetworkRequest{Network: created.Network}, nil)
	waitStatus(t, member, created.Network, "ok", 1)
	mj, err := member.d.nets.resolve(created.Network)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		mj.mu.Lock()
		got := mj.m.Revocation
		mj.mu.Unlock()
		if got != nil && got.Seq == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the member never took on the revocation list: %+v", got)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A node on no network reads it from the DHT.
	deadline = time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		b, err := other.d.Node.GetValueQuorum(ctx, netrec.RevocationKey(id), 1)
		cancel()
		if err == nil {
			r, err := netrec.ParseRevocation(b)
			if err != nil || r.Network() != id || r.Seq != 1 {
				t.Fatalf("revocation record from the DHT: %+v, %v", r, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no revocation list in the DHT: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestReadmitReachesMembers: on a public network the owner revokes a
// member and then authorizes it again; another member learns both along
// its link (the new revocation list readmits it), not only at the
// owner's next republication.
func TestReadmitReachesMembers(t *testing.T) {
	owner := startDaemon(t)
	boot := owner.d.Node.ShareableAddrs()[0]
	member := startDaemon(t, boot)
	other := startDaemon(t, boot)
	var created api.NetworkCreated
	owner.call(t, "POST", "/v1/networks/create", api.NetworkCreateRequest{Name: "p", IPv4: "10.7.0.0/24"}, &created)
	member.call(t, "POST", "/v1/networks/join", api.NetworkRequest{Network: created.Network}, nil)
	waitStatus(t, member, created.Network, "ok", 1)
	// Joined second, other finds both in its first rounds and links to
	// both (links to every member: no --link-idle here).
	other.call(t, "POST", "/v1/networks/join", api.NetworkRequest{Network: created.Network}, nil)
	waitStatus(t, other, created.Network, "ok", 2)
	addr := member.d.Node.ID().String()
	statusAt := func(td *testDaemon, want string) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			n, _ := td.network(t, created.Network)
			got := "not known"
			for _, m := range n.Members {
				if m.Address == addr {
					got = m.Status
				}
			}
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the member is %s at %s, want %s", got, td.d.Node.ID(), want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	statusAt(other, "ok")
	owner.call(t, "POST", "/v1/networks/revoke", api.NetworkRequest{Network: created.Network, Address: addr}, nil)
	statusAt(other, "revoked")
	owner.call(t, "POST", "/v1/networks/authorize", api.NetworkRequest{Network: created.Network, Address: addr}, nil)
	statusAt(other, "ok")
}

// TestDeviceErrorIsReported: when the interface cannot be created (no
// CAP_NET_ADMIN), the network says so instead of pretending to work.
func TestDeviceErrorIsReported(t *testing.T) {
	td := startDaemonWith(t, func(string, int, *vswitch.Membership) (tap.Device, error) {
		return nil, errors.New("open /dev/net/tun: operation not permitted")
	})
	var created api.NetworkCreated
	td.call(t, "POST", "/v1/networks/create", api.NetworkCreateRequest{Name: "x"}, &created)
	n := waitStatus(t, td, created.Network, "error", 0)
	if !strings.Contains(n.Error, "operation not permitted") {
		t.Fatalf("error %q does not say why", n.Error)
	}
}
