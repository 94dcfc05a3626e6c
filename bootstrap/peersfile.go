// Package bootstrap decides where a node's first peers come from: its peer
// cache (peers seen working, persisted), --bootstrap flags, a peers file a
// community shares, and mDNS on the local network. None of these is special:
// any kadlan node can be anyone's bootstrap peer, and kadlan ships no list.
package bootstrap

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// maxPeersFileLine bounds a line of a peers file.
const maxPeersFileLine = 4096

// ParsePeers reads a peers file: one multiaddr with /p2p/<address> per line;
// blank lines and text after '#' are ignored. Several lines for one address
// merge into one AddrInfo. Errors name the line.
func ParsePeers(r io.Reader) ([]peer.AddrInfo, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), maxPeersFileLine)
	var addrs []ma.Multiaddr
	for line := 1; sc.Scan(); line++ {
		s := sc.Text()
		if i := strings.IndexByte(s, '#'); i >= 0 {
			s = s[:i]
		}
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		a, err := ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		addrs = append(addrs, a)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading peers: %w", err)
	}
	return peer.AddrInfosFromP2pAddrs(addrs...)
}

// ParseAddr parses one bootstrap multiaddr, which must end in /p2p/<address>.
func ParseAddr(s string) (ma.Multiaddr, error) {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return nil, fmt.Errorf("bad multiaddr %q: %w", s, err)
	}
	if _, err := a.ValueForProtocol(ma.P_P2P); err != nil {
		return nil, fmt.Errorf("multiaddr %q lacks /p2p/<address>: a peer must be named by its address", s)
	}
	if _, err := peer.AddrInfoFromP2pAddr(a); err != nil {
		return nil, fmt.Errorf("multiaddr %q: %w", s, err)
	}
	return a, nil
}

// ReadPeersFile reads and parses a peers file.
func ReadPeersFile(path string) ([]peer.AddrInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: peers file: %w", err)
	}
	defer f.Close()
	ais, err := ParsePeers(f)
	if err != nil {
		return nil, fmt.Errorf("bootstrap: peers file %s: %w", path, err)
	}
	return ais, nil
}
