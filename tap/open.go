package tap

import (
	"errors"
	"fmt"
)

// Open creates the best device this system offers for cfg: a TAP where
// the kernel has one (Linux), otherwise a TUN with Ethernet emulation
// (cfg.MTU and cfg.MAC apply; VnetHdr is ignored). Use the Addresser
// interface of the result to configure addresses.
func Open(cfg Config) (Device, error) {
	d, err := Create(cfg)
	if err == nil {
		return d, nil
	}
	if !errors.Is(err, errors.ErrUnsupported) {
		return nil, err
	}
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = 1420
	}
	t, terr := CreateTUN(cfg.Name, mtu, TUNConfig{MAC: cfg.MAC})
	if terr != nil {
		return nil, fmt.Errorf("tap: no TAP (%v) and no TUN: %w", err, terr)
	}
	return t, nil
}
