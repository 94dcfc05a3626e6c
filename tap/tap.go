// Package tap defines kadlan's Ethernet device interface and its
// implementations: a Linux TAP device opened with raw ioctls, a TUN-backed
// device (golang.zx2c4.com/wireguard/tun) that emulates Ethernet for systems
// without TAP, and (in tap/taptest) an in-memory pair for tests.
//
// A Device moves whole Ethernet frames: one Read returns one frame starting
// with its 14-byte Ethernet header, one Write sends one frame. Devices do not
// know about kadlan networks; the overlay switch sits on top of them.
package tap

import (
	"errors"
	"net"
	"net/netip"
	"os"

	"github.com/kadlan/kadlan/tap/ether"
)

// Device is a virtual Ethernet port.
//
// Read and Write may be called concurrently with each other and with Close,
// but Read must not be called concurrently with Read, nor Write with Write.
type Device interface {
	// Read blocks until a frame is available and copies it into buf,
	// returning its length. A frame longer than buf is truncated to len(buf)
	// and its full length is still returned as n with a nil error, so a
	// caller can detect truncation by n > len(buf). buf should hold at least
	// MTU()+ether.HeaderLen+4 bytes (plus VnetHdrLen for offload devices).
	// After Close, Read returns net.ErrClosed (test with errors.Is).
	Read(buf []byte) (n int, err error)

	// Write sends one whole frame, Ethernet header first. The device does not
	// retain frame after Write returns. A frame that the device cannot carry
	// (too short, too long) is an error but does not close the device.
	// After Close, Write returns net.ErrClosed.
	Write(frame []byte) (n int, err error)

	// MTU is the largest Ethernet payload (excluding the 14-byte header) the
	// device carries.
	MTU() int

	// MAC is the device's own Ethernet address.
	MAC() ether.MAC

	// Name is the interface name known to the operating system ("kl0"), or a
	// descriptive name for in-memory devices.
	Name() string

	// Close releases the device. It is idempotent; the first call's error is
	// returned and later calls return nil. Blocked Read and Write calls
	// return net.ErrClosed.
	Close() error
}

// OffloadTSO is the TUNSETOFFLOAD flag set for Config.Offload that lets a
// Linux TAP exchange TCP super-frames: checksum offload (TUN_F_CSUM) and
// TCP segmentation offload for IPv4 and IPv6 (TUN_F_TSO4, TUN_F_TSO6). The
// values are Linux's (include/uapi/linux/if_tun.h), spelled out so that
// portable code can name them.
const OffloadTSO = 0x01 | 0x02 | 0x04

// Offloader is implemented by devices that exchange frames with a
// virtio-net header in front (ether.VnetHdr: TCP segmentation and checksum
// offload, IFF_VNET_HDR): VnetHdrLen is ether.VnetHdrLen then, 0 for plain
// frames. Every Read and Write of such a device carries the header.
type Offloader interface {
	VnetHdrLen() int
}

// Addresser is implemented by devices whose operating-system interface can
// be configured. kadlan calls it once after creating the device.
type Addresser interface {
	// SetMTU sets the interface MTU (Ethernet payload bytes).
	SetMTU(mtu int) error
	// SetMAC sets the interface's Ethernet address.
	SetMAC(mac ether.MAC) error
	// AddAddr assigns an IPv4 or IPv6 prefix (address plus prefix length)
	// to the interface. IPv6 addresses are added without duplicate address
	// detection, since kadlan derives them uniquely.
	AddAddr(p netip.Prefix) error
	// RemoveAddr removes an address added with AddAddr (for example when a
	// derived IPv4 address had to move after a conflict).
	RemoveAddr(p netip.Prefix) error
	// SetUp brings the interface administratively up (true) or down.
	SetUp(up bool) error
}

// mapClosed turns the os package's "file already closed" into
// net.ErrClosed, which the Device contract promises.
func mapClosed(err error) error {
	if errors.Is(err, os.ErrClosed) {
		return net.ErrClosed
	}
	return err
}
