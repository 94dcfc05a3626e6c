package tap

import (
	"fmt"
	"net/netip"

	"golang.zx2c4.com/wireguard/tun"
)

var _ Addresser = (*TUN)(nil)

// CreateTUN creates a kernel TUN interface (needs CAP_NET_ADMIN) with the
// given name and MTU and wraps it in Ethernet emulation.
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

func (t *TUN) index() (int, error) {
	name, err := t.dev.Name()
	if err != nil {
		return 0, fmt.Errorf("tap: TUN name: %w", err)
	}
	return ifIndex(name)
}

// AddAddr implements Addresser: it assigns p to the kernel interface and
// makes the emulation answer ARP/NDP for it.
func (t *TUN) AddAddr(p netip.Prefix) error {
	i, err := t.index()
	if err != nil {
		return err
	}
	if err := addrAdd(i, p); err != nil {
		return err
	}
	t.addAddr(p)
	return nil
}

// RemoveAddr implements Addresser.
func (t *TUN) RemoveAddr(p netip.Prefix) error {
	i, err := t.index()
	if err != nil {
		return err
	}
	t.removeAddr(p)
	return addrDel(i, p)
}

// SetMTU implements Addresser. The emulation keeps the MTU it started
// with for sizing buffers, so only lower values are accepted.
func (t *TUN) SetMTU(mtu int) error {
	if mtu > t.mtu {
		return fmt.Errorf("tap: TUN MTU can only be lowered (from %d)", t.mtu)
	}
	i, err := t.index()
	if err != nil {
		return err
	}
	if err := linkSetMTU(i, mtu); err != nil {
		return err
	}
	t.mtu = mtu
	return nil
}

// SetUp implements Addresser.
func (t *TUN) SetUp(up bool) error {
	i, err := t.index()
	if err != nil {
		return err
	}
	return linkSetUp(i, up)
}
