package netlab

import (
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"testing"
)

// TestNATZoo checks each router kind's behaviour mechanically with the
// probe: mapping (the external address and port an inside socket gets
// towards two public servers), filtering (which unsolicited datagrams to
// that external port are delivered: from a third host, and from a
// contacted host's other port; a datagram from the contacted host and port
// sent last proves the path, so a missing one was dropped, not late),
// hairpinning (a second LAN host sending to the external address), and
// what the firewall lets out (UDP, TCP, TCP/443).
func TestNATZoo(t *testing.T) {
	l := newTestLab(t, Options{})
	s1 := must[*Host](t)(l.PublicHost("s1"))
	s2 := must[*Host](t)(l.PublicHost("s2"))
	third := must[*Host](t)(l.PublicHost("third"))
	for _, p := range []struct {
		h    *Host
		args []string
	}{{s1, []string{"udp-echo", ":7000"}}, {s2, []string{"udp-echo", ":7000"}},
		{s1, []string{"tcp-echo", ":7000"}}, {s1, []string{"tcp-echo", ":443"}}} {
		waitFor(t, p.h.Name+" echo", startProbe(t, p.h, p.args...), "listening")
	}
	s1u, s2u := s1.IPv4+":7000", s2.IPv4+":7000"

	tests := []struct {
		kind               NAT
		udp, tcp, tcp443   bool // what gets out
		sameMapping        bool // EIM: one external port for both servers
		fromThird, fromIP  bool // filtering: delivered from a third host / the contacted host's other port
		hairpin, checkHair bool
	}{
		{kind: EIM, udp: true, tcp: true, tcp443: true, sameMapping: true, hairpin: true, checkHair: true},
		{kind: FullCone, udp: true, tcp: true, tcp443: true, sameMapping: true, fromThird: true, fromIP: true, hairpin: true, checkHair: true},
		{kind: AddressRestricted, udp: true, tcp: true, tcp443: true, sameMapping: true, fromIP: true, hairpin: true, checkHair: true},
		{kind: Symmetric, udp: true, tcp: true, tcp443: true, checkHair: true},
		{kind: NoHairpin, udp: true, tcp: true, tcp443: true, sameMapping: true, checkHair: true},
		{kind: CGNAT, udp: true, tcp: true, tcp443: true, sameMapping: true},
		{kind: UDPBlocked, tcp: true, tcp443: true},
		{kind: Only443, tcp443: true},
	}
	mappedRE := regexp.MustCompile(`mapped (\S+) (\S+)`)
	for _, tt := range tests {
		t.Run(tt.kind.String(), func(t *testing.T) {
			if tt.kind.Hairpin() != tt.hairpin && tt.checkHair {
				t.Errorf("%v.Hairpin() = %v", tt.kind, tt.kind.Hairpin())
			}
			r := must[*Host](t)(l.NATRouter("r-"+tt.kind.String(), tt.kind, nil))
			ext := r.IPv4
			lanRouter := r
			if tt.kind == CGNAT {
				// NAT444: a home router behind the carrier's.
				lanRouter = must[*Host](t)(l.NATRouter("home-cgnat", EIM, r))
				if pfx := netip.MustParsePrefix("100.64.0.0/10"); !pfx.Contains(netip.MustParseAddr(lanRouter.IPv4)) {
					t.Fatalf("home router behind CGNAT has WAN address %s, not in %s", lanRouter.IPv4, pfx)
				}
			}
			h := must[*Host](t)(lanRouter.PrivateHost("h-" + tt.kind.String()))

			// The router itself reaches the Internet, and drops
			// unsolicited packets on its WAN side. (Before, "ct state !=
			// established,related drop" dropped its replies too.)
			if out, err := l.Exec(r.NS, "ping", "-c", "1", "-W", "2", s1.IPv4); err != nil {
				t.Errorf("router cannot ping the Internet: %v: %s", err, out)
			}
			if out, err := l.Exec(third.NS, "ping", "-c", "1", "-W", "0.3", r.IPv4); err == nil {
				t.Errorf("unsolicited ping to the router's WAN address answered: %s", out)
			}

			// What gets out.
			tcpOut := func(dst string) bool {
				out, err := runProbe(t, h, "tcp-send", dst, "1000", "1s")
				return err == nil && strings.Contains(out, "from "+ext+":") && strings.Contains(out, "got 1000")
			}
			if got := tcpOut(s1.IPv4 + ":7000"); got != tt.tcp {
				t.Errorf("TCP to port 7000 gets out: %v, want %v", got, tt.tcp)
			}
			if got := tcpOut(s1.IPv4 + ":443"); got != tt.tcp443 {
				t.Errorf("TCP to port 443 gets out: %v, want %v", got, tt.tcp443)
			}
			listen := startProbe(t, h, "udp-listen", ":5000", s1u, s2u)
			out := waitFor(t, "udp-listen", listen, "mapped "+s2u)
			m := map[string]string{}
			for _, x := range mappedRE.FindAllStringSubmatch(out, -1) {
				m[x[1]] = x[2]
			}
			if !tt.udp {
				if m[s1u] != "none" || m[s2u] != "none" {
					t.Errorf("UDP got out: %q", out)
				}
				return
			}
			a1, err1 := netip.ParseAddrPort(m[s1u])
			a2, err2 := netip.ParseAddrPort(m[s2u])
			if err1 != nil || err2 != nil {
				t.Fatalf("UDP mapping: %q", out)
			}
			if a1.Addr().String() != ext || a2.Addr().String() != ext {
				t.Errorf("servers see %v and %v, want the router's external address %s", a1, a2, ext)
			}
			if same := a1.Port() == a2.Port(); same != tt.sameMapping {
				t.Errorf("external ports %d (to s1) and %d (to s2): same %v, want %v", a1.Port(), a2.Port(), same, tt.sameMapping)
			}
			t.Logf("mapping: :5000 -> %v (to s1), %v (to s2)", a1, a2)

			// Filtering: send the unsolicited datagrams, then a control
			// from s1's contacted port, and wait for the control.
			mapped := a1.String()
			send := func(from *Host, local, to, msg string) {
				t.Helper()
				if out, err := runProbe(t, from, "udp-send", local, to, msg, "0s"); err != nil {
					t.Fatalf("udp-send from %s: %v: %s", from.Name, err, out)
				}
			}
			control := func(msg string) string {
				send(s1, ":0", "127.0.0.1:7000", "relay "+mapped+" "+msg)
				return waitFor(t, "control datagram", listen, "recv "+s1u+" "+msg)
			}
			send(third, ":0", mapped, "from-third")
			send(s1, ":7001", mapped, "from-other-port")
			out = control("control1")
			if got := strings.Contains(out, " from-third"); got != tt.fromThird {
				t.Errorf("unsolicited datagram from a third host delivered: %v, want %v", got, tt.fromThird)
			}
			if got := strings.Contains(out, s1.IPv4+":7001 from-other-port"); got != tt.fromIP {
				t.Errorf("datagram from the contacted host's other port delivered: %v, want %v", got, tt.fromIP)
			}

			if tt.checkHair {
				h2 := must[*Host](t)(lanRouter.PrivateHost("h2-" + tt.kind.String()))
				send(h2, ":6000", mapped, "hairpin")
				out = control("control2")
				got := strings.Contains(out, " hairpin")
				if got != tt.hairpin {
					t.Errorf("hairpinned datagram delivered: %v, want %v", got, tt.hairpin)
				}
				if got && !strings.Contains(out, fmt.Sprintf("recv %s:6000 hairpin", ext)) {
					t.Errorf("hairpinned datagram does not come from the sender's external address %s:6000: %q", ext, out)
				}
			}
		})
	}
}
