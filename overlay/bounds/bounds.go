// Package bounds holds what a node keeps about one network whatever the
// network's size (issue 13, links on demand): how many links it keeps on a
// quiet network, how many links others dialled it keeps idle, how many
// members its discovery looks for and how fast, and the rule that closes
// idle links (IdleLinks). The engine (overlay), the daemon and the
// simulator (sim's lan model) all take them from here, so the simulator's
// bounds are the node's. It is pure: no I/O, no clock (callers pass now).
package bounds

import (
	"slices"
	"time"
)

// Links on demand (overlay.EngineConfig).
const (
	// MinLinks is how many links idle closing keeps (the seeds a quiet
	// member dials, so that its broadcasts still reach someone):
	// overlay.DefaultMinLinks.
	MinLinks = 3
	// MaxIdleInbound is how many links other members dialled, carrying no
	// unicast frames, idle closing keeps past the idle time: twice the
	// seeds a member chooses, so that on average every seed is kept
	// (overlay.DefaultMaxIdleInbound).
	MaxIdleInbound = 2 * MinLinks
	// DefaultLinkIdle is --link-idle's default: a link without unicast
	// frames either way this long closes (also the social neighbour age).
	DefaultLinkIdle = 10 * time.Minute
	// TickEvery is how often the engine closes idle links
	// (overlay.EngineConfig.TickEvery's default).
	TickEvery = 5 * time.Second
)

// Member discovery (daemon/netdiscover.go).
const (
	// DiscoverSample: with links on demand a node that knows this many
	// members of a public network (or --max-members, if lower) looks for
	// more only every RepublishEvery.
	DiscoverSample = 32
	// DiscoverFetches is how many providers' records one discovery round
	// fetches at most (each fetch a DHT walk).
	DiscoverFetches = 8
	// DiscoverProviders is how many providers of the network's key one
	// round's provider walk takes at most.
	DiscoverProviders = 64
	// DiscoverEvery is the discovery period once linked; a round that
	// finds nobody new doubles it, up to RepublishEvery.
	DiscoverEvery = time.Minute
	// RepublishEvery is how often a member republishes its announcement
	// and provider record, the longest discovery period, and how long a
	// provider whose records were fetched is left alone.
	RepublishEvery = 10 * time.Minute
	// LinkedRevocationEvery is how often a linked member polls the DHT for
	// revocations (they also arrive along links).
	LinkedRevocationEvery = 2 * time.Minute
)

// Link is what IdleLinks needs to know of one link.
type Link[K comparable] struct {
	Peer     K
	Opened   time.Time
	Outbound bool // this node dialled it
}

// IdleLinks returns the links to close at now, oldest first: links this
// node dialled whose member is not fresh (no unicast frame within the
// social neighbour age) and that are older than idle, and such links that
// others dialled beyond maxIdleInbound (the newest are kept), keeping at
// least minLinks links in all. idle <= 0 closes nothing (links stay until
// they fail). Links with equal opening times keep their order in links.
func IdleLinks[K comparable](links []Link[K], fresh func(K) bool, now time.Time, idle time.Duration, minLinks, maxIdleInbound int) []K {
	if idle <= 0 || len(links) <= minLinks {
		return nil
	}
	var out, in []Link[K]
	for _, l := range links {
		if fresh(l.Peer) || now.Sub(l.Opened) < idle {
			continue
		}
		if l.Outbound {
			out = append(out, l)
		} else {
			in = append(in, l)
		}
	}
	oldest := func(a, b Link[K]) int { return a.Opened.Compare(b.Opened) }
	slices.SortStableFunc(out, oldest)
	slices.SortStableFunc(in, oldest)
	// A link the other end dialled may be one of its MinLinks: closing it
	// would only make that node dial again, so such links close only
	// beyond maxIdleInbound (and the dialler picks another seed).
	if extra := len(in) - maxIdleInbound; extra > 0 {
		out = append(out, in[:extra]...)
	}
	keys := make([]K, 0, min(len(out), len(links)-minLinks))
	for _, l := range out[:min(len(out), len(links)-minLinks)] {
		keys = append(keys, l.Peer)
	}
	return keys
}

// StaleSeeds returns the links to make social neighbours again while a
// node has fewer than minLinks fresh ones (nFresh): the newest links whose
// member is not fresh, as many as are missing. Only unicast frames and a
// link's opening make a member fresh, so without this a member that sends
// no unicast frames had no neighbours after the neighbour age, and its
// broadcasts (DHCP, ARP, mDNS) reached nobody, although IdleLinks keeps
// minLinks links for them.
func StaleSeeds[K comparable](links []Link[K], fresh func(K) bool, nFresh, minLinks int) []K {
	need := minLinks - nFresh
	if need <= 0 {
		return nil
	}
	var stale []Link[K]
	for _, l := range links {
		if !fresh(l.Peer) {
			stale = append(stale, l)
		}
	}
	slices.SortStableFunc(stale, func(a, b Link[K]) int { return b.Opened.Compare(a.Opened) })
	out := make([]K, 0, min(need, len(stale)))
	for _, l := range stale[:min(need, len(stale))] {
		out = append(out, l.Peer)
	}
	return out
}
