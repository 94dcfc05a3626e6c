package netlab

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
)

// NAT is the kind of a NAT router: the behaviours of RFC 4787 that users
// actually sit behind. Every kind drops unsolicited packets on its WAN side
// (addressed to the router itself or to a port without a matching mapping
// and filter), as home routers do.
//
// Mapping: masquerade keeps the inside host's source port unless another
// LAN host holds it, so one inside socket gets the same external port
// towards every destination: endpoint-independent mapping (EIM). Symmetric
// picks a random port per destination (address-and-port-dependent).
//
// Filtering and hairpinning of the EIM kinds rest on a table the router
// keeps from the packets its LAN sends out: (protocol, source port) -> the
// inside host, which, as masquerade keeps ports, is (protocol, external
// port) -> inside host, and the (protocol, port, remote address) triples
// contacted; entries live 2 minutes after the last packet. An unsolicited
// packet to the external port is forwarded to the inside host when the
// filtering allows it (DNAT through that table). If two LAN hosts use the
// same source port, masquerade renumbers the second and the table follows
// the first: a lab should give its hosts distinct ports (kadlan's fixed
// 4242 on distinct routers is fine).
type NAT int

const (
	// EIM is endpoint-independent mapping with address-and-port-dependent
	// ("port-restricted") filtering and hairpinning: most home routers.
	// Only a host and port the inside host sent to can answer it. Hole
	// punching works.
	EIM NAT = iota
	// Symmetric maps each destination to a new random port (masquerade
	// random,fully-random) and filters port-restricted; no hairpinning.
	// Hole punching fails; paths stay relayed.
	Symmetric
	// Only443 is EIM whose firewall lets out nothing but TCP to port 443
	// (a guest or corporate network).
	Only443
	// FullCone is EIM with endpoint-independent filtering: once the inside
	// host has sent from a port, anyone may send to its external port.
	FullCone
	// AddressRestricted is EIM with address-dependent filtering: any port
	// of a host the inside host sent to may send to its external port.
	AddressRestricted
	// NoHairpin is EIM without hairpinning: a LAN host's packet to the
	// router's own external address and another LAN host's mapped port
	// reaches the router, not the other host.
	NoHairpin
	// UDPBlocked is EIM whose firewall lets out TCP only.
	UDPBlocked
	// CGNAT is a carrier-grade NAT: EIM, port-restricted, hairpinning, with
	// its LAN on 100.64.0.0/10 (shared address space). Put home routers
	// behind it (NATRouter(name, EIM, cgnat)) for NAT444.
	CGNAT
)

type natKind struct {
	name    string
	random  bool   // random port per destination
	filter  string // "port", "address" or "none": what unsolicited input needs
	hairpin bool
	out     string // nft statements dropping what the LAN may not send out
	lan     string // first two octets of the LAN
}

var natKinds = map[NAT]natKind{
	EIM:               {name: "eim", filter: "port", hairpin: true, lan: "192.168"},
	Symmetric:         {name: "symmetric", random: true, filter: "port", lan: "192.168"},
	Only443:           {name: "only443", filter: "port", hairpin: true, out: "meta l4proto != tcp drop; tcp dport != 443 drop;", lan: "192.168"},
	FullCone:          {name: "fullcone", filter: "none", hairpin: true, lan: "192.168"},
	AddressRestricted: {name: "address-restricted", filter: "address", hairpin: true, lan: "192.168"},
	NoHairpin:         {name: "nohairpin", filter: "port", lan: "192.168"},
	UDPBlocked:        {name: "udpblocked", filter: "port", hairpin: true, out: "meta l4proto != tcp drop;", lan: "192.168"},
	CGNAT:             {name: "cgnat", filter: "port", hairpin: true, lan: "100.64"},
}

// String is the kind's name, as the zoo test names its subtests.
func (k NAT) String() string {
	if nk, ok := natKinds[k]; ok {
		return nk.name
	}
	return fmt.Sprintf("NAT(%d)", int(k))
}

// Hairpin reports whether routers of kind k hairpin: forward a LAN host's
// packet to the router's external address and a mapped port to the LAN
// host that holds the mapping, from the sender's external address.
func (k NAT) Hairpin() bool { return natKinds[k].hairpin }

// NATRouter adds a router of the given kind (see NAT): masquerade on its
// WAN side, stateful forwarding, the kind's filtering, and a WAN input
// firewall that drops unsolicited packets silently (so that, as on real
// routers, a hole-punch packet arriving early leaves no conntrack entry
// behind that would force the router to pick another port for its own
// side's packet). Its WAN side is on the Internet (upstream nil) or on the
// LAN of another router (double NAT), with a private LAN behind:
// 192.168.n.0/24, or 100.64.n.0/24 for CGNAT; the router is .1.
func (l *Lab) NATRouter(name string, kind NAT, upstream *Host) (*Host, error) {
	nk, ok := natKinds[kind]
	if !ok {
		return nil, fmt.Errorf("netlab: unknown NAT kind %d", int(kind))
	}
	var r *Host
	var err error
	if upstream == nil {
		r, err = l.PublicHost(name)
	} else {
		r, err = upstream.PrivateHost(name)
	}
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.nextLAN++
	r.lanIdx = l.nextLAN
	l.mu.Unlock()
	r.lanNet = fmt.Sprintf("%s.%d", nk.lan, r.lanIdx)
	if err := l.runAll(r.NS,
		[]string{"ip", "link", "set", "eth0", "name", "wan"},
		[]string{"ip", "link", "add", "br0", "type", "bridge"},
		[]string{"ip", "link", "set", "br0", "up"},
		[]string{"ip", "addr", "add", r.lanNet + ".1/24", "dev", "br0"},
		[]string{"sysctl", "-qw", "net.ipv4.ip_forward=1"}); err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", "netns", "exec", r.NS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(nk.rules(r.IPv4, r.lanNet+".0/24"))
	if b, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("netlab: nft in %s: %v: %s", r.NS, err, bytes.TrimSpace(b))
	}
	return r, nil
}

// rules is the router's nftables ruleset; wan is its WAN address, lan its
// LAN prefix.
func (nk natKind) rules(wan, lan string) string {
	var pre, post, fwd, out strings.Builder
	masq := "masquerade"
	if nk.random {
		masq = "masquerade random,fully-random"
	}
	fmt.Fprintf(&post, "oifname \"wan\" %s\n", masq)
	fmt.Fprintf(&out, "%s\n", nk.out)
	table := !nk.random && (nk.filter != "port" || nk.hairpin)
	if table {
		out.WriteString("meta l4proto { tcp, udp } update @mapped { meta l4proto . th sport : ip saddr }\n")
		if nk.filter == "address" {
			out.WriteString("meta l4proto { tcp, udp } update @contacted { meta l4proto . th sport . ip daddr }\n")
		}
	}
	switch nk.filter {
	case "none":
		pre.WriteString("iifname \"wan\" meta l4proto { tcp, udp } dnat ip to meta l4proto . th dport map @mapped\n")
	case "address":
		pre.WriteString("iifname \"wan\" meta l4proto { tcp, udp } meta l4proto . th dport . ip saddr @contacted dnat ip to meta l4proto . th dport map @mapped\n")
	}
	if nk.hairpin {
		fmt.Fprintf(&pre, "iifname \"br0\" ip daddr %s meta l4proto { tcp, udp } dnat ip to meta l4proto . th dport map @mapped\n", wan)
		fmt.Fprintf(&post, "oifname \"br0\" ct status dnat ip saddr %s snat ip to %s\n", lan, wan)
	}
	if table {
		fwd.WriteString("ct status dnat accept\n")
	}
	return fmt.Sprintf(`table ip kadlan_lab {
  map mapped { type inet_proto . inet_service : ipv4_addr; flags timeout; timeout 2m; }
  set contacted { type inet_proto . inet_service . ipv4_addr; flags timeout; timeout 2m; }
  chain kl_pre {
    type nat hook prerouting priority -100; policy accept;
%s  }
  chain kl_post {
    type nat hook postrouting priority 100; policy accept;
%s  }
  chain kl_forward {
    type filter hook forward priority 0; policy drop;
    iifname "br0" oifname "wan" jump kl_out
    ct state established,related accept
    iifname "br0" oifname "br0" ct status != dnat accept  # LAN to LAN (br_netfilter sends bridged frames here)
%s  }
  chain kl_out {
%s    accept
  }
  chain kl_input {
    type filter hook input priority 0; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" drop
  }
}
`, pre.String(), post.String(), fwd.String(), out.String())
}
