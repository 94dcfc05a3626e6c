//go:build !linux

package tap

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.zx2c4.com/wireguard/tun"
)

// CreateTUN creates a TUN interface with the given name and MTU and wraps
// it in Ethernet emulation. Configure its addresses with the system's
// tools; AddAddr only informs the emulation here.
func CreateTUN(name string, mtu int, cfg TUNConfig) (*TUN, error) {
	dev, err := tun.CreateTUN(name, mtu)
	if err != nil {
		return nil, fmt.Errorf("tap: create TUN %q: %w", name, err)
	}
	t, err := NewTUN(dev, cfg)
	if err != nil {
		dev.Close()
		return nil, err
	}
	return t, nil
}

// AddAddr makes the emulation answer ARP/NDP for p; configuring the
// kernel interface is not supported on this system.
func (t *TUN) AddAddr(p netip.Prefix) error {
	t.addAddr(p)
	return nil
}

// RemoveAddr stops the emulation answering for p.
func (t *TUN) RemoveAddr(p netip.Prefix) error {
	t.removeAddr(p)
	return nil
}

// SetUp is not supported on this system.
func (t *TUN) SetUp(bool) error { return errors.ErrUnsupported }

// SetMTU is not supported on this system.
func (t *TUN) SetMTU(int) error { return errors.ErrUnsupported }
