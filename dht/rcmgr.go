package dht

import (
	"fmt"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// Resource limits for a small machine: the libp2p defaults scaled to 512 MiB
// of memory and 1024 file descriptors, whatever the machine has. A kadlan
// node is a DHT server, relay and switch; it should never take the box.
const (
	limitMemory = 512 << 20
	limitFDs    = 1024
)

func newResourceManager() (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(limits.Scale(limitMemory, limitFDs)))
	if err != nil {
		return nil, fmt.Errorf("dht: resource manager: %w", err)
	}
	return rm, nil
}
