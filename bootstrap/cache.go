package bootstrap

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"time"

	"github.com/kadlan/kadlan/internal/atomicfile"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// Cache bounds.
const (
	CacheMaxPeers = 64
	CacheMaxAge   = 30 * 24 * time.Hour
	cacheVersion  = 1
)

// CachedPeer is a peer this node saw working.
type CachedPeer struct {
	Address  string    `json:"address"`
	Addrs    []string  `json:"addrs"`
	LastSeen time.Time `json:"last_seen"`
}

type cacheFile struct {
	Version int          `json:"version"`
	Peers   []CachedPeer `json:"peers"`
}

// Cache is the persisted list of peers seen working. It is pure data plus
// Load/Save; Bootstrapper keeps it fresh.
type Cache struct {
	path  string
	peers map[peer.ID]CachedPeer
}

// LoadCache reads the cache at path; a missing file is an empty cache.
// A corrupt file is reported and treated as empty (it is rewritten on the
// next save): the cache is an optimisation, never a reason not to start.
// Temporary files left by a save that crashed are removed first.
func LoadCache(path string) (*Cache, error) {
	atomicfile.RemoveStaleOf(path)
	c := &Cache{path: path, peers: map[peer.ID]CachedPeer{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("bootstrap: peer cache: %w", err)
	}
	var f cacheFile
	if err := json.Unmarshal(b, &f); err != nil {
		return c, fmt.Errorf("bootstrap: peer cache %s is corrupt, starting empty: %w", path, err)
	}
	for _, p := range f.Peers {
		id, err := peer.Decode(p.Address)
		if err != nil {
			continue
		}
		c.peers[id] = p
	}
	return c, nil
}

// Observe records that id was seen working at addrs at time now.
func (c *Cache) Observe(id peer.ID, addrs []ma.Multiaddr, now time.Time) {
	var s []string
	for _, a := range addrs {
		s = append(s, a.String())
	}
	if len(s) == 0 {
		return
	}
	c.peers[id] = CachedPeer{Address: id.String(), Addrs: s, LastSeen: now.UTC()}
}

// Peers returns the cached peers, most recently seen first, dropping those
// older than CacheMaxAge and keeping at most CacheMaxPeers.
func (c *Cache) Peers(now time.Time) []CachedPeer {
	out := make([]CachedPeer, 0, len(c.peers))
	for _, p := range c.peers {
		if now.Sub(p.LastSeen) <= CacheMaxAge {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].LastSeen.Equal(out[j].LastSeen) {
			return out[i].LastSeen.After(out[j].LastSeen)
		}
		return out[i].Address < out[j].Address
	})
	if len(out) > CacheMaxPeers {
		out = out[:CacheMaxPeers]
	}
	return out
}

// AddrInfos returns the cached peers as dialable AddrInfos.
func (c *Cache) AddrInfos(now time.Time) []peer.AddrInfo {
	var out []peer.AddrInfo
	for _, p := range c.Peers(now) {
		id, err := peer.Decode(p.Address)
		if err != nil {
			continue
		}
		ai := peer.AddrInfo{ID: id}
		for _, s := range p.Addrs {
			if a, err := ma.NewMultiaddr(s); err == nil {
				ai.Addrs = append(ai.Addrs, a)
			}
		}
		if len(ai.Addrs) > 0 {
			out = append(out, ai)
		}
	}
	return out
}

// Len is the number of peers in the cache.
func (c *Cache) Len() int { return len(c.peers) }

// Save writes the cache atomically with mode 0600.
func (c *Cache) Save(now time.Time) error {
	b, err := json.MarshalIndent(cacheFile{Version: cacheVersion, Peers: c.Peers(now)}, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(c.path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("bootstrap: saving peer cache: %w", err)
	}
	return nil
}
