package netlab

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// The userspace switch: the lab's Internet segment when Options.Link is
// set. Each host's link ends in the inet namespace as a veth port that is
// no bridge member; an AF_PACKET socket on each port (created inside inet)
// reads the frames the host sends. A frame goes
//
//	reader(A) -> A's ingress line (A's shape) -> forwarding (MAC learning)
//	          -> B's egress line (B's shape) -> written to B's port
//
// Each line is a FIFO drained by one goroutine that waits for the head
// frame's release time, so a port costs three goroutines whatever the
// traffic. The sockets use PACKET_VNET_HDR: TCP segmentation and checksum
// offload state travels with each frame, so the hosts keep their veth
// offloads (a 64 KB TSO frame crosses as one frame, as over a kernel
// bridge, and the kernel checksums and segments it on the way out).

const (
	vnetHdrLen = 10        // struct virtio_net_hdr
	ethHdrLen  = 14        // Ethernet header
	frameBuf   = 128 << 10 // bigger than any GSO frame a veth hands over
	lineCap    = 8192      // frames in flight per line; more are dropped
	fdbMax     = 4096      // MAC addresses learnt before the table resets
	ethPAll    = 0x0300    // htons(ETH_P_ALL)
)

type frame struct {
	b  []byte // vnet header + Ethernet frame
	at time.Time
}

type swPort struct {
	name    string
	f       *os.File
	in, out *line
	inq     chan frame
	outq    chan frame
}

// vswitch is the lab's userspace Internet switch.
type vswitch struct {
	ns    string
	shape LinkShape

	mu    sync.Mutex
	ports map[string]*swPort // forwarding to
	all   []*swPort          // every port opened, for close
	fdb   fdb
	seed  uint64

	// counters, see SwitchStats
	received, delivered, lineFull, writeErrs atomic.Uint64

	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

// SwitchStats counts what the lab's userspace switch did with frames since
// the lab started. Every frame read from a host is forwarded or dropped
// for one of the reasons counted; a flooded frame counts once per port.
type SwitchStats struct {
	Received  uint64 // frames read from the hosts
	Delivered uint64 // frames written to a host
	Lost      uint64 // dropped by a link's Loss
	// Overflow counts frames dropped by a full queue: a rate-limited
	// link's MaxQueueDelay, or more than 8192 frames in flight on a link.
	Overflow    uint64
	WriteErrors uint64 // frames the kernel refused to send (e.g. too big)
}

func (s *vswitch) stats() SwitchStats {
	st := SwitchStats{Received: s.received.Load(), Delivered: s.delivered.Load(), Overflow: s.lineFull.Load(), WriteErrors: s.writeErrs.Load()}
	s.mu.Lock()
	all := append([]*swPort(nil), s.all...)
	s.mu.Unlock()
	for _, p := range all {
		for _, ln := range []*line{p.in, p.out} {
			lost, over := ln.drops()
			st.Lost += lost
			st.Overflow += over
		}
	}
	return st
}

func newSwitch(ns string, shape LinkShape) *vswitch {
	return &vswitch{ns: ns, shape: shape, ports: map[string]*swPort{}, fdb: fdb{}, done: make(chan struct{})}
}

// addPort opens a socket on veth name in the switch's namespace and starts
// forwarding its frames, with the switch's default shape.
func (s *vswitch) addPort(name string) error {
	fd, err := packetSocket(s.ns, name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.done:
		unix.Close(fd)
		return errClosed
	default:
	}
	s.seed++
	p := &swPort{
		name: name, f: os.NewFile(uintptr(fd), "packet:"+name),
		in: newLine(s.shape, s.seed<<1), out: newLine(s.shape, s.seed<<1|1),
		inq: make(chan frame, lineCap), outq: make(chan frame, lineCap),
	}
	s.ports[name] = p
	s.all = append(s.all, p)
	s.wg.Add(3)
	go s.read(p)
	go s.drain(p.inq, func(b []byte) { s.forward(p, b) })
	go s.drain(p.outq, func(b []byte) { s.write(p, b) })
	return nil
}

// setShape changes the shape of port name's link.
func (s *vswitch) setShape(name string, sh LinkShape) error {
	s.mu.Lock()
	p := s.ports[name]
	s.mu.Unlock()
	if p == nil {
		return fmt.Errorf("netlab: no switch port %s", name)
	}
	p.in.set(sh)
	p.out.set(sh)
	return nil
}

// removePort stops forwarding to p, whose link is gone; its goroutines
// end with the switch.
func (s *vswitch) removePort(p *swPort) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ports[p.name] == p {
		delete(s.ports, p.name)
	}
	s.fdb.forget(p)
}

// close stops every goroutine of the switch and closes its sockets.
func (s *vswitch) close() {
	s.once.Do(func() {
		s.mu.Lock()
		close(s.done)
		for _, p := range s.all {
			p.f.Close() // wakes the reader
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
}

// packetSocket creates a non-blocking AF_PACKET socket bound to interface
// ifname of namespace ns, with PACKET_VNET_HDR. A socket stays in the
// namespace it was created in, so it is created on a locked thread moved
// into ns and back. The thread must not die: processes the lab started
// from it (Host.Start) would get their Pdeathsig, which follows the thread,
// not the process. So it returns to its namespace and is unlocked; only if
// that fails is it left locked to end with the goroutine.
func packetSocket(ns, ifname string) (int, error) {
	type result struct {
		fd  int
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{-1, err}
			return
		}
		defer self.Close()
		fd, err := socketHere(ns, ifname)
		if rerr := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); rerr != nil {
			// Stuck in ns: the thread ends with this goroutine.
			if fd >= 0 {
				unix.Close(fd)
			}
			ch <- result{-1, fmt.Errorf("setns back: %w", rerr)}
			return
		}
		runtime.UnlockOSThread()
		ch <- result{fd, err}
	}()
	r := <-ch
	if r.err != nil {
		return -1, fmt.Errorf("netlab: switch port %s in %s: %w", ifname, ns, r.err)
	}
	return r.fd, nil
}

// socketHere moves the calling (locked) thread into ns and creates the
// socket there; the caller moves the thread back.
func socketHere(ns, ifname string) (int, error) {
	nsf, err := os.Open("/var/run/netns/" + ns)
	if err != nil {
		return -1, err
	}
	defer nsf.Close()
	if err := unix.Setns(int(nsf.Fd()), unix.CLONE_NEWNET); err != nil {
		return -1, fmt.Errorf("setns %s: %w", ns, err)
	}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, ethPAll)
	if err != nil {
		return -1, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	for _, o := range [][2]int{{unix.PACKET_VNET_HDR, 1}, {unix.PACKET_IGNORE_OUTGOING, 1}} {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, o[0], o[1]); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("setsockopt %d: %w", o[0], err)
		}
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 4<<20)
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: ethPAll, Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind %s: %w", ifname, err)
	}
	return fd, nil
}

// read hands each frame the host sends to its port's ingress line.
func (s *vswitch) read(p *swPort) {
	defer s.wg.Done()
	rc, err := p.f.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, frameBuf)
	for {
		var n int
		var from unix.Sockaddr
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, from, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		})
		if err != nil {
			return // closed
		}
		if rerr != nil {
			if errors.Is(rerr, unix.ENETDOWN) || errors.Is(rerr, unix.ENXIO) {
				s.removePort(p) // the link is gone (Move, or a deleted host)
				return
			}
			continue
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		if n < vnetHdrLen+ethHdrLen {
			continue
		}
		s.received.Add(1)
		at, ok := p.in.admit(time.Now(), n-vnetHdrLen)
		if !ok {
			continue
		}
		select {
		case p.inq <- frame{append([]byte(nil), buf[:n]...), at}:
		default:
			s.lineFull.Add(1)
		}
	}
}

// drain hands each frame of q to deliver at its release time.
func (s *vswitch) drain(q chan frame, deliver func([]byte)) {
	defer s.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case fr := <-q:
			if d := time.Until(fr.at); d > 0 {
				t.Reset(d)
				select {
				case <-s.done:
					return
				case <-t.C:
				}
			}
			deliver(fr.b)
		}
	}
}

// forward hands a frame that left from's ingress line to the egress lines
// that the forwarding table picks.
func (s *vswitch) forward(from *swPort, b []byte) {
	s.mu.Lock()
	outs := s.fdb.outputs(from, b[vnetHdrLen:], s.ports)
	s.mu.Unlock()
	now := time.Now()
	for i, p := range outs {
		at, ok := p.out.admit(now, len(b)-vnetHdrLen)
		if !ok {
			continue
		}
		fb := b
		if i < len(outs)-1 {
			fb = append([]byte(nil), b...)
		}
		select {
		case p.outq <- frame{fb, at}:
		default:
			s.lineFull.Add(1)
		}
	}
}

// write sends a frame out of port p (to its host).
func (s *vswitch) write(p *swPort, b []byte) {
	rc, err := p.f.SyscallConn()
	if err != nil {
		return
	}
	var werr error
	if err := rc.Write(func(fd uintptr) bool {
		_, werr = unix.Write(int(fd), b)
		return werr != unix.EAGAIN
	}); err != nil {
		return // closed
	}
	if werr != nil {
		s.writeErrs.Add(1)
		return
	}
	s.delivered.Add(1)
}

// fdb is the switch's forwarding table: a pure MAC-learning machine, not
// safe for concurrent use.
type fdb map[[6]byte]*swPort

// outputs learns that eth's source MAC lives behind port from and returns
// the ports eth goes out of: the one its destination was learnt on, or
// every port but from (broadcast, multicast, unknown destination), never
// from itself. The table starts over when it holds fdbMax addresses.
func (t fdb) outputs(from *swPort, eth []byte, ports map[string]*swPort) []*swPort {
	var dst, src [6]byte
	copy(dst[:], eth[0:6])
	copy(src[:], eth[6:12])
	if src[0]&1 == 0 && t[src] != from {
		if len(t) >= fdbMax {
			clear(t)
		}
		t[src] = from
	}
	if to := t[dst]; dst[0]&1 == 0 && to != nil {
		if to == from {
			return nil
		}
		return []*swPort{to}
	}
	var outs []*swPort
	for _, p := range ports {
		if p != from {
			outs = append(outs, p)
		}
	}
	return outs
}

// forget drops the addresses learnt on port p.
func (t fdb) forget(p *swPort) {
	for mac, q := range t {
		if q == p {
			delete(t, mac)
		}
	}
}
