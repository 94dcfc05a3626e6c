package dht

import (
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/x/rate"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
)

// Resource limits for a small machine: the libp2p defaults scaled to 512 MiB
// of memory and 1024 file descriptors, whatever the machine has. A kadlan
// node is a DHT server, relay and switch; it should never take the box.
const (
	limitMemory = 512 << 20
	limitFDs    = 1024
)

// ConnLimits order the two connection limits of a node: the connection
// manager trims the least valuable connections (idle strangers first: DHT
// neighbours, relay clients and protected member links are worth more)
// down to LowWater once there are more than HighWater; the resource
// manager refuses connections beyond Inbound / Outbound / Total. HighWater
// must sit well below Inbound, or strangers fill the inbound limit before
// any trimming starts and new peers are refused (issue 10, item 6).
type ConnLimits struct {
	LowWater    int           `json:"low_water"`    // trim down to this many connections
	HighWater   int           `json:"high_water"`   // ... once there are more than this
	GracePeriod time.Duration `json:"grace_period"` // a new connection is not trimmed for this long
	Inbound     int           `json:"inbound"`      // inbound connections the resource manager admits
	Outbound    int           `json:"outbound"`     // outbound connections it admits
	Total       int           `json:"total"`        // all connections it admits
}

// DefaultConnLimits: trimming starts at 128 connections, half the inbound
// limit, so 128 idle strangers arriving within one grace period still
// leave room for new peers, and every trim brings the node back to 64.
var DefaultConnLimits = ConnLimits{
	LowWater:    64,
	HighWater:   128,
	GracePeriod: time.Minute,
	Inbound:     256,
	Outbound:    256,
	Total:       384,
}

// connLimitMargin is how far HighWater must stay below Inbound: connections
// arriving within one grace period cannot be trimmed, and trimming runs at
// most every 10 s.
const connLimitMargin = 32

func (l ConnLimits) withDefaults() ConnLimits {
	d := DefaultConnLimits
	set := func(dst *int, v int) {
		if v > 0 {
			*dst = v
		}
	}
	set(&d.LowWater, l.LowWater)
	set(&d.HighWater, l.HighWater)
	set(&d.Inbound, l.Inbound)
	set(&d.Outbound, l.Outbound)
	set(&d.Total, l.Total)
	if l.GracePeriod > 0 {
		d.GracePeriod = l.GracePeriod
	}
	return d
}

func (l ConnLimits) check() error {
	switch {
	case l.LowWater >= l.HighWater:
		return fmt.Errorf("dht: connection limits: low water %d must be below high water %d", l.LowWater, l.HighWater)
	case l.HighWater+connLimitMargin > l.Inbound:
		return fmt.Errorf("dht: connection limits: high water %d must be at least %d below the inbound limit %d, or strangers fill it before they are trimmed", l.HighWater, connLimitMargin, l.Inbound)
	case l.Inbound > l.Total || l.Outbound > l.Total:
		return fmt.Errorf("dht: connection limits: inbound %d and outbound %d must not exceed the total %d", l.Inbound, l.Outbound, l.Total)
	}
	return nil
}

// resourceLimits are the resource manager's limits for cl: libp2p's
// defaults scaled to the small machine, with the system connection limits
// set from cl.
func resourceLimits(cl ConnLimits) rcmgr.ConcreteLimitConfig {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	scaled := limits.Scale(limitMemory, limitFDs)
	partial := rcmgr.PartialLimitConfig{
		System: rcmgr.ResourceLimits{
			Conns:         rcmgr.LimitVal(cl.Total),
			ConnsInbound:  rcmgr.LimitVal(cl.Inbound),
			ConnsOutbound: rcmgr.LimitVal(cl.Outbound),
		},
	}
	return partial.Build(scaled)
}

func newResourceManager(cl ConnLimits) (network.ResourceManager, error) {
	// No per-IP connection rate limit here: it limits dials too (gater.go
	// limits inbound connections instead).
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(resourceLimits(cl)), rcmgr.WithConnRateLimiters(&rate.Limiter{}))
	if err != nil {
		return nil, fmt.Errorf("dht: resource manager: %w", err)
	}
	return rm, nil
}

// ConnLimits are the node's effective connection limits.
func (n *Node) ConnLimits() ConnLimits { return n.cfg.ConnLimits.withDefaults() }

// ProtectLink keeps the connection manager from ever trimming the
// connections to p while at least one tag protects it. The daemon calls it
// for every member link (tag naming the network), and UnprotectLink when
// the link goes.
func (n *Node) ProtectLink(p peer.ID, tag string) { n.Host.ConnManager().Protect(p, tag) }

// UnprotectLink removes tag's protection of p; it reports whether other
// tags still protect p.
func (n *Node) UnprotectLink(p peer.ID, tag string) bool {
	return n.Host.ConnManager().Unprotect(p, tag)
}
