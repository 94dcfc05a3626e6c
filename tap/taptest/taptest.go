// Package taptest provides in-memory tap.Device implementations for tests:
// a connected pair of devices whose frames travel over Go channels.
package taptest

import (
	"fmt"
	"net"
	"sync"

	"github.com/kadlan/kadlan/tap"
	"github.com/kadlan/kadlan/tap/ether"
)

// DefaultMTU is the MTU of devices made by NewPair when mtu is zero.
const DefaultMTU = 1500

// Device is one end of an in-memory Ethernet cable. Frames written to one end
// are read from the other, in order. Writes block when the peer's queue is
// full, as a lossless link would; use TryWrite for a non-blocking write.
type Device struct {
	name string
	mac  ether.MAC
	mtu  int

	in   chan *[]byte // frames to be read from this end
	peer *Device

	closeOnce *sync.Once    // shared by both ends
	closed    chan struct{} // closed on Close of either end
	pool      *sync.Pool
}

var _ tap.Device = (*Device)(nil)

// NewPair returns two connected devices with the given MACs. depth is the
// number of frames each direction buffers (at least 1). mtu 0 means
// DefaultMTU. Closing either end closes both.
func NewPair(macA, macB ether.MAC, mtu, depth int) (*Device, *Device) {
	if mtu == 0 {
		mtu = DefaultMTU
	}
	depth = max(depth, 1)
	closed := make(chan struct{})
	once := new(sync.Once)
	maxFrame := mtu + ether.HeaderLen + 4
	pool := &sync.Pool{New: func() any { b := make([]byte, maxFrame); return &b }}
	a := &Device{name: "mem-a", mac: macA, mtu: mtu, in: make(chan *[]byte, depth), closed: closed, closeOnce: once, pool: pool}
	b := &Device{name: "mem-b", mac: macB, mtu: mtu, in: make(chan *[]byte, depth), closed: closed, closeOnce: once, pool: pool}
	a.peer, b.peer = b, a
	return a, b
}

// Read implements tap.Device.
func (d *Device) Read(buf []byte) (int, error) {
	select {
	case <-d.closed:
		return 0, net.ErrClosed
	case fp := <-d.in:
		f := *fp
		n := copy(buf, f)
		if n < len(f) {
			n = len(f)
		}
		d.put(fp)
		return n, nil
	}
}

func (d *Device) put(fp *[]byte) {
	*fp = (*fp)[:cap(*fp)]
	d.pool.Put(fp)
}

// get returns a pooled buffer holding a copy of frame.
func (d *Device) get(frame []byte) *[]byte {
	fp := d.pool.Get().(*[]byte)
	*fp = (*fp)[:copy(*fp, frame)]
	return fp
}

func (d *Device) check(frame []byte) error {
	if len(frame) < ether.HeaderLen {
		return fmt.Errorf("taptest: frame of %d bytes is shorter than an Ethernet header", len(frame))
	}
	if len(frame) > d.mtu+ether.HeaderLen+4 {
		return fmt.Errorf("taptest: frame of %d bytes exceeds MTU %d", len(frame), d.mtu)
	}
	return nil
}

// Write implements tap.Device: it copies frame to the peer's queue and blocks
// while that queue is full.
func (d *Device) Write(frame []byte) (int, error) {
	if err := d.check(frame); err != nil {
		return 0, err
	}
	select {
	case <-d.closed:
		return 0, net.ErrClosed
	default:
	}
	f := d.get(frame)
	select {
	case <-d.closed:
		d.put(f)
		return 0, net.ErrClosed
	case d.peer.in <- f:
		return len(frame), nil
	}
}

// TryWrite is Write without blocking: it reports false (and drops the frame)
// when the peer's queue is full.
func (d *Device) TryWrite(frame []byte) (bool, error) {
	if err := d.check(frame); err != nil {
		return false, err
	}
	select {
	case <-d.closed:
		return false, net.ErrClosed
	default:
	}
	f := d.get(frame)
	select {
	case d.peer.in <- f:
		return true, nil
	default:
		d.put(f)
		return false, nil
	}
}

// MTU implements tap.Device.
func (d *Device) MTU() int { return d.mtu }

// MAC implements tap.Device.
func (d *Device) MAC() ether.MAC { return d.mac }

// Name implements tap.Device.
func (d *Device) Name() string { return d.name }

// Close implements tap.Device; it closes both ends.
func (d *Device) Close() error {
	d.closeOnce.Do(func() { close(d.closed) })
	return nil
}
