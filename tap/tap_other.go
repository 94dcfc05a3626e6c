//go:build !linux

package tap

import (
	"errors"
	"fmt"

	"github.com/kadlan/kadlan/tap/ether"
)

// Config describes a TAP device to create (see the Linux version); on
// this system only Name, MTU and MAC are used, by the TUN fallback of Open.
type Config struct {
	Name    string
	MTU     int
	MAC     ether.MAC
	VnetHdr bool
	Offload int
}

// Create is not supported on this system: there is no TAP driver kadlan
// can use. Open falls back to a TUN with Ethernet emulation.
func Create(cfg Config) (Device, error) {
	return nil, fmt.Errorf("tap: TAP devices: %w", errors.ErrUnsupported)
}
