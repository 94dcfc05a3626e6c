package dht

import (
	"context"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
)

// watchInterfaces polls the machine's interface addresses and, when they
// change (a laptop moved to another network, a new DHCP lease, another NAT),
// closes every connection at once and kicks the peer source (Config.Peers). Connections
// bound to a vanished address are dead but would otherwise linger until
// keep-alives time out (30 s and more); closing them makes the node redial
// its DHT neighbours and relays from the new address, and lets peers that
// look it up find its new relay and observed addresses within seconds.
func (n *Node) watchInterfaces(ctx context.Context, tick time.Duration) {
	last := interfaceFingerprint(n.cfg.IgnoreInterface)
	every(ctx, tick, func() {
		cur := interfaceFingerprint(n.cfg.IgnoreInterface)
		if cur == last {
			return
		}
		n.logf("dht: network changed (%s -> %s): reconnecting", orDash(last), orDash(cur))
		last = cur
		prev := n.Host.Network().Peers()
		for _, c := range n.Host.Network().Conns() {
			c.Close()
		}
		// Dials that failed while the network was down put peers into
		// libp2p's dial backoff; the new network deserves a fresh start.
		for _, p := range n.Host.Peerstore().Peers() {
			n.clearBackoff(p)
		}
		if n.cfg.Peers != nil {
			n.cfg.Peers.Kick()
		}
		n.reconnect(ctx, prev)
	})
}

// clearBackoff forgets earlier dial failures to p.
func (n *Node) clearBackoff(p peer.ID) {
	if sw, ok := n.Host.Network().(*swarm.Swarm); ok {
		sw.Backoff().Clear(p)
	}
}

// reconnect dials again, in parallel, the peers the node was connected to
// before its network changed: they hold the dead half of those connections,
// and a fresh connection from the new address is what tells them where the
// node is now.
func (n *Node) reconnect(ctx context.Context, peers []peer.ID) {
	for _, p := range peers {
		n.wg.Add(1)
		go func(p peer.ID) {
			defer n.wg.Done()
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			if err := n.Connect(cctx, p); err != nil {
				n.logf("dht: reconnecting to %s: %v", p, err)
			}
		}(p)
	}
}

// ignoredIPs returns the addresses of the interfaces ignore names (nil:
// none).
func ignoredIPs(ignore func(name string) bool) map[string]bool {
	if ignore == nil {
		return nil
	}
	ifs, err := net.Interfaces()
	if err != nil {
		return nil
	}
	out := map[string]bool{}
	for _, ifc := range ifs {
		if !ignore(ifc.Name) {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				out[ipn.IP.String()] = true
			}
		}
	}
	return out
}

// interfaceFingerprint lists the global unicast addresses of the machine's
// interfaces, leaving out those that ignore names (kadlan's own network
// interfaces: their addresses appear when a network comes up, which is not
// a change of the underlying network).
func interfaceFingerprint(ignore func(name string) bool) string {
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	var out []string
	for _, ifc := range ifs {
		if ignore != nil && ignore(ifc.Name) {
			continue
		}
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			ipn, ok := a.(*net.IPNet)
			if !ok || !ipn.IP.IsGlobalUnicast() {
				continue
			}
			out = append(out, ipn.String())
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
