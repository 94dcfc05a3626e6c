package bootstrap

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/zeroconf/v2"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// kadlan's own mDNS discovery (DNS-SD service MDNSService, TXT records
// "dnsaddr=<multiaddr>/p2p/<address>", the format libp2p's mdns package
// uses), instead of libp2p's, because that one announces on every multicast
// interface and advertises every interface address: on a kadlan node those
// include its own TAP devices, so it would announce into the virtual LANs
// (flooded to every member by broadcast switching) and offer virtual
// addresses as paths to the overlay itself. Here only the machine's real
// LAN interfaces count (up, multicast, not loopback, not IgnoreInterface),
// in announcing, in browsing and in the addresses announced.

const (
	mdnsDomain = "local"
	mdnsPrefix = "dnsaddr="
	// mdnsMaxPeers bounds the peers remembered from mDNS (others on the LAN
	// may announce as many as they like); mdnsMaxAddrs bounds one's addresses.
	mdnsMaxPeers = 64
	mdnsMaxAddrs = 8
)

// lanInterfaces lists the interfaces mDNS runs on and their IP addresses.
func lanInterfaces(ignore func(string) bool) ([]net.Interface, []net.IP, error) {
	all, err := net.Interfaces()
	if err != nil {
		return nil, nil, err
	}
	var ifs []net.Interface
	var ips []net.IP
	for _, ifi := range all {
		if ifi.Flags&net.FlagUp == 0 || ifi.Flags&net.FlagMulticast == 0 || ifi.Flags&net.FlagLoopback != 0 {
			continue
		}
		if ignore != nil && ignore(ifi.Name) {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		var mine []net.IP
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLinkLocalUnicast() {
				mine = append(mine, ipn.IP)
			}
		}
		if len(mine) > 0 {
			ifs = append(ifs, ifi)
			ips = append(ips, mine...)
		}
	}
	return ifs, ips, nil
}

// mdnsAddrs are the addresses to announce: the host's listen addresses
// with unspecified IPs replaced by ips, TCP and QUIC only (no WebSocket,
// no relay), each with /p2p/<self>.
func mdnsAddrs(listen []ma.Multiaddr, ips []net.IP, self peer.ID) []string {
	var out []string
	seen := map[string]bool{}
	p2p, err := ma.NewComponent("p2p", self.String())
	if err != nil {
		return nil
	}
	for _, l := range listen {
		lip, err := manet.ToIP(l)
		if err != nil || !suitableForMDNS(l) {
			continue
		}
		cands := []net.IP{lip}
		if lip.IsUnspecified() {
			cands = nil
			for _, ip := range ips {
				if (ip.To4() == nil) == (lip.To4() == nil) {
					cands = append(cands, ip)
				}
			}
		} else if !containsIP(ips, lip) {
			continue // an address on an interface mDNS does not serve
		}
		_, rest := ma.SplitFirst(l)
		for _, ip := range cands {
			first, err := manet.FromIP(ip)
			if err != nil {
				continue
			}
			s := first.Encapsulate(rest).Encapsulate(p2p.Multiaddr()).String()
			if !seen[s] && len(out) < mdnsMaxAddrs {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

func containsIP(ips []net.IP, ip net.IP) bool {
	for _, x := range ips {
		if x.Equal(ip) {
			return true
		}
	}
	return false
}

// suitableForMDNS: a direct TCP or QUIC address (no WebSocket, no relay).
func suitableForMDNS(a ma.Multiaddr) bool {
	ok := true
	ma.ForEach(a, func(c ma.Component) bool {
		switch c.Protocol().Code {
		case ma.P_CIRCUIT, ma.P_WS, ma.P_WSS, ma.P_WEBTRANSPORT, ma.P_WEBRTC, ma.P_WEBRTC_DIRECT:
			ok = false
		}
		return ok
	})
	return ok
}

// parseMDNSEntry turns one announcement's TXT records into a peer: bad
// records are skipped, at most mdnsMaxAddrs addresses of one peer are
// kept, and an entry naming several peers names none.
func parseMDNSEntry(txt []string) (peer.AddrInfo, error) {
	var ai peer.AddrInfo
	for _, s := range txt {
		if !strings.HasPrefix(s, mdnsPrefix) {
			continue
		}
		a, err := ma.NewMultiaddr(s[len(mdnsPrefix):])
		if err != nil {
			continue
		}
		info, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil || len(info.Addrs) == 0 {
			continue
		}
		if ai.ID != "" && info.ID != ai.ID {
			return peer.AddrInfo{}, errors.New("mDNS entry names more than one peer")
		}
		ai.ID = info.ID
		if len(ai.Addrs) < mdnsMaxAddrs {
			ai.Addrs = append(ai.Addrs, info.Addrs...)
		}
	}
	if ai.ID == "" {
		return ai, errors.New("mDNS entry without a kadlan address")
	}
	return ai, nil
}

// mdnsService announces this node on the LAN interfaces and hands peers
// others announce to found. Close stops it and waits for its goroutines.
type mdnsService struct {
	server *zeroconf.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func startMDNS(h host.Host, ignore func(string) bool, found func(peer.AddrInfo)) (*mdnsService, error) {
	ifs, ips, err := lanInterfaces(ignore)
	if err != nil {
		return nil, fmt.Errorf("mDNS: %w", err)
	}
	if len(ifs) == 0 {
		return nil, errors.New("mDNS: no LAN interface (up, multicast, not loopback, not kadlan's)")
	}
	txt := mdnsAddrs(h.Network().ListenAddresses(), ips, h.ID())
	if len(txt) == 0 {
		return nil, errors.New("mDNS: no address to announce on the LAN interfaces")
	}
	for i := range txt {
		txt[i] = mdnsPrefix + txt[i]
	}
	var ipStrs []string
	for _, ip := range ips {
		ipStrs = append(ipStrs, ip.String())
	}
	// A random instance name: the kadlan address is in the TXT records
	// anyway, but the name carries nothing else about the machine.
	b := make([]byte, 16)
	rand.Read(b)
	name := hex.EncodeToString(b)
	srv, err := zeroconf.RegisterProxy(name, MDNSService, mdnsDomain, 4001, name, ipStrs, txt, ifs)
	if err != nil {
		return nil, fmt.Errorf("mDNS: announcing: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &mdnsService{server: srv, cancel: cancel}
	entries := make(chan *zeroconf.ServiceEntry, 32)
	browsed := make(chan struct{})
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		// zeroconf closes entries when ctx ends; if Browse fails at once it
		// never does, but then nothing sends either (browsed is closed).
		for {
			select {
			case e, ok := <-entries:
				if !ok {
					return
				}
				ai, err := parseMDNSEntry(e.Text)
				if err == nil && ai.ID != h.ID() {
					found(ai)
				}
			case <-browsed:
				return
			}
		}
	}()
	go func() {
		defer s.wg.Done()
		defer close(browsed)
		zeroconf.Browse(ctx, MDNSService, mdnsDomain, entries, zeroconf.SelectIfaces(ifs))
	}()
	return s, nil
}

func (s *mdnsService) Close() {
	if s == nil {
		return
	}
	s.cancel()
	s.server.Shutdown()
	s.wg.Wait()
}
