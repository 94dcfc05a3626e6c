package tap

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/kadlan/kadlan/tap/ether"
	"golang.org/x/sys/unix"
)

// Config describes a Linux TAP device to create.
type Config struct {
	// Name is the interface name, at most 15 bytes; it may contain one
	// "%d" for the kernel to number ("kl%d"). Empty means "tap%d".
	Name string
	// MTU, when not zero, is set on the interface (Ethernet payload bytes).
	MTU int
	// MAC, when not zero, is set on the interface.
	MAC ether.MAC
	// VnetHdr opens the device with IFF_VNET_HDR: every frame read or
	// written is then preceded by a 10-byte virtio-net header (see
	// VnetHdrLen), which lets the kernel hand over and accept unsegmented
	// GSO frames and unchecksummed packets. For offload work; off by
	// default.
	VnetHdr bool
	// Offload is the TUN_F_* flag set passed to TUNSETOFFLOAD when VnetHdr
	// is on (for example unix.TUN_F_CSUM|unix.TUN_F_TSO4|unix.TUN_F_TSO6).
	Offload int
}

// Linux is a TAP device created through /dev/net/tun. It lives in the
// network namespace of the thread that created it and disappears on Close.
type Linux struct {
	f       *os.File
	name    string
	index   int
	vnetHdr bool

	mu  sync.Mutex // guards mtu and mac
	mtu int
	mac ether.MAC

	closeOnce sync.Once
}

var (
	_ Device    = (*Linux)(nil)
	_ Addresser = (*Linux)(nil)
)

// Create makes a TAP interface (this needs CAP_NET_ADMIN) and applies
// cfg.MTU and cfg.MAC. The interface is left down: configure addresses,
// then call SetUp(true).
func Create(cfg Config) (*Linux, error) {
	name := cfg.Name
	if name == "" {
		name = "tap%d"
	}
	if len(name) >= unix.IFNAMSIZ {
		return nil, fmt.Errorf("tap: interface name %q longer than %d bytes", name, unix.IFNAMSIZ-1)
	}
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("tap: open /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap: %w", err)
	}
	flags := uint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if cfg.VnetHdr {
		flags |= unix.IFF_VNET_HDR
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap: TUNSETIFF %q: %w", name, err)
	}
	if cfg.VnetHdr {
		if err := unix.IoctlSetPointerInt(fd, unix.TUNSETVNETHDRSZ, ether.VnetHdrLen); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("tap: TUNSETVNETHDRSZ: %w", err)
		}
		if err := unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, cfg.Offload); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("tap: TUNSETOFFLOAD %#x: %w", cfg.Offload, err)
		}
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("tap: set nonblocking: %w", err)
	}
	d := &Linux{f: os.NewFile(uintptr(fd), "/dev/net/tun"), name: ifr.Name(), vnetHdr: cfg.VnetHdr}
	if d.index, err = ifIndex(d.name); err != nil {
		d.Close()
		return nil, fmt.Errorf("tap: index of %s: %w", d.name, err)
	}
	if iface, err := net.InterfaceByIndex(d.index); err == nil {
		d.mtu = iface.MTU
		copy(d.mac[:], iface.HardwareAddr)
	}
	if cfg.MTU != 0 {
		if err := d.SetMTU(cfg.MTU); err != nil {
			d.Close()
			return nil, err
		}
	}
	if !cfg.MAC.IsZero() {
		if err := d.SetMAC(cfg.MAC); err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

// Read implements Device. With VnetHdr the frame is preceded by its
// virtio-net header.
func (d *Linux) Read(buf []byte) (int, error) {
	n, err := d.f.Read(buf)
	if err != nil {
		return 0, fmt.Errorf("tap: read %s: %w", d.name, mapClosed(err))
	}
	return n, nil
}

// Write implements Device. With VnetHdr the frame must be preceded by its
// virtio-net header.
func (d *Linux) Write(frame []byte) (int, error) {
	n, err := d.f.Write(frame)
	if err != nil {
		return n, fmt.Errorf("tap: write %s: %w", d.name, mapClosed(err))
	}
	return n, nil
}

// SetReadDeadline makes a blocked Read return an error wrapping
// os.ErrDeadlineExceeded at t (zero: no deadline).
func (d *Linux) SetReadDeadline(t time.Time) error { return d.f.SetReadDeadline(t) }

// MTU implements Device.
func (d *Linux) MTU() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mtu
}

// MAC implements Device.
func (d *Linux) MAC() ether.MAC {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mac
}

// Name implements Device.
func (d *Linux) Name() string { return d.name }

// Index is the interface index.
func (d *Linux) Index() int { return d.index }

// VnetHdrLen is the length of the header before each frame: 10 with
// Config.VnetHdr, else 0.
func (d *Linux) VnetHdrLen() int {
	if d.vnetHdr {
		return ether.VnetHdrLen
	}
	return 0
}

// SetMTU implements Addresser.
func (d *Linux) SetMTU(mtu int) error {
	if err := linkSetMTU(d.index, mtu); err != nil {
		return err
	}
	d.mu.Lock()
	d.mtu = mtu
	d.mu.Unlock()
	return nil
}

// SetMAC implements Addresser.
func (d *Linux) SetMAC(mac ether.MAC) error {
	if mac.IsMulticast() {
		return fmt.Errorf("tap: MAC %v is multicast", mac)
	}
	if err := linkSetMAC(d.index, mac); err != nil {
		return err
	}
	d.mu.Lock()
	d.mac = mac
	d.mu.Unlock()
	return nil
}

// AddAddr implements Addresser.
func (d *Linux) AddAddr(p netip.Prefix) error { return addrAdd(d.index, p) }

// RemoveAddr implements Addresser.
func (d *Linux) RemoveAddr(p netip.Prefix) error { return addrDel(d.index, p) }

// SetUp implements Addresser.
func (d *Linux) SetUp(up bool) error { return linkSetUp(d.index, up) }

// Close implements Device; the kernel removes the interface.
func (d *Linux) Close() error {
	var err error
	d.closeOnce.Do(func() {
		if e := d.f.Close(); e != nil {
			err = fmt.Errorf("tap: close %s: %w", d.name, e)
		}
	})
	return err
}

var _ Offloader = (*Linux)(nil)
