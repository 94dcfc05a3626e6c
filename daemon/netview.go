package daemon

import (
	"cmp"
	"encoding/json"
	"sort"
	"time"

	"github.com/kadlan/kadlan/api"
	"github.com/kadlan/kadlan/dht"
	"github.com/kadlan/kadlan/overlay"
	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// info describes the network for `kadlan networks`.
func (j *joined) info() api.Network {
	now := time.Now()
	j.mu.Lock()
	ni := j.m.Info(now)
	eng := j.eng
	devIPv4 := j.devIPv4
	devErr := j.devErr
	dnsServer := j.dnsServer
	zone := zoneOf(j.m.ID, j.m.Def, j.mgr.dnsSuffix)
	names := j.m.Names(now, j.mgr.name)
	j.mu.Unlock()
	out := api.Network{Error: devErr, Network: ni.Network.String(), Name: ni.Name, Status: string(ni.Status), Private: ni.Private,
		IsOwner: ni.IsOwner, Interface: ni.Interface, MAC: ni.MAC, IPv4: []string{}, IPv6: ni.IPv6, MTU: ni.MTU}
	if devIPv4.IsValid() {
		out.IPv4 = []string{devIPv4.String()}
	}
	if ni.Owner != "" {
		out.Owner = ni.Owner.String()
	}
	if !ni.Expires.IsZero() {
		out.Expires = ni.Expires.UTC().Format(time.RFC3339)
	}
	out.Invite = ni.Invite
	out.MemberName = names.Of[j.m.Self]
	if j.mgr.dns {
		out.DNSZone = zone
	}
	if dnsServer.IsValid() {
		out.DNSServer = dnsServer.String()
	}
	out.Broadcast, _ = json.Marshal(vswitch.SocialOf(ni.Broadcast))
	linked := map[peer.ID]bool{}
	routes := map[peer.ID]dht.Route{}
	if eng != nil {
		links, _ := eng.Links()
		for _, l := range links {
			linked[l.Peer] = true
			if s, ok := l.Stream.(network.Stream); ok {
				routes[l.Peer] = dht.RouteOf(s.Conn())
			}
		}
		out.Links = len(links)
		tr := eng.Traffic()
		out.Traffic = &api.Traffic{InFrames: tr.InMessages, InBytes: tr.InBytes, OutFrames: tr.OutMessages, OutBytes: tr.OutBytes, Dropped: tr.OutDropped}
		out.Counters, _ = json.Marshal(eng.Counters())
		st := eng.Stats()
		out.SocialNeighbours = st.Neighbours
		out.Engine, _ = json.Marshal(st)
	}
	out.KnownMembers = len(ni.Members)
	sp := vswitch.SocialOf(ni.Broadcast)
	b := &api.LinkBounds{OnDemand: j.mgr.linkIdle > 0, SocialNeighbours: sp.Neighbours, PendingMembers: vswitch.MaxPending}
	if !ni.Private {
		b.KnownMembers = cmp.Or(j.mgr.maxKnown, vswitch.DefaultMaxKnown)
	}
	if b.OnDemand {
		b.MinLinks, b.LinkIdle = overlay.DefaultMinLinks, j.mgr.linkIdle.Seconds()
		b.MaxIdleInbound = overlay.DefaultMaxIdleInbound
	}
	out.Bounds = b
	for _, mi := range ni.Members {
		m := api.Member{Address: mi.Address.String(), Name: names.Of[mi.Address], Status: string(mi.Status), MAC: mi.MAC, IPv6: mi.IPv6.String(), Link: linked[mi.Address]}
		if mi.IPv4.IsValid() {
			m.IPv4 = mi.IPv4.String()
		}
		if !mi.Expires.IsZero() {
			m.Expires = mi.Expires.UTC().Format(time.RFC3339)
		}
		if !mi.LastSeen.IsZero() {
			m.LastSeen = mi.LastSeen.UTC().Format(time.RFC3339)
		}
		r, ok := routes[mi.Address]
		if !ok {
			r = dht.BestRoute(j.mgr.node.Host.Network().ConnsToPeer(mi.Address))
		}
		m.Path, m.Via, m.Transport, m.Scope = r.Path, r.Via, r.Transport, r.Scope
		out.Members = append(out.Members, m)
	}
	if out.Members == nil {
		out.Members = []api.Member{}
	}
	if ni.Status == vswitch.StatusOK && out.Links == 0 && len(out.Members) > 0 {
		out.Status = statusConnecting
	}
	if devErr != "" {
		out.Status = statusDeviceError
	}
	return out
}

func (nm *netManager) list() []api.Network {
	nm.mu.Lock()
	var js []*joined
	for _, j := range nm.nets {
		js = append(js, j)
	}
	broken := make(map[string]string, len(nm.broken))
	for id, why := range nm.broken {
		broken[id] = why
	}
	nm.mu.Unlock()
	out := []api.Network{}
	for _, j := range js {
		out = append(out, j.info())
	}
	for id, why := range broken {
		out = append(out, api.Network{Network: id, Status: statusDeviceError, Error: "saved state unreadable: " + why,
			IPv4: []string{}, IPv6: []string{}, Members: []api.Member{}})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Network < out[b].Network })
	return out
}
