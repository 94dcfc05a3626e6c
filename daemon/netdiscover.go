package daemon

import (
	"cmp"
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kadlan/kadlan/overlay/bounds"
	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Member discovery finds members as providers of the network's key and
// fetches their announcements (and certificates). Its cost per node is
// bounded whatever the size of the network (issue 13): each fetch is a
// DHT walk, so
//   - a provider whose records were fetched, or whose fetch failed, is not
//     fetched again for a while (fetchAgain; failures back off from
//     fetchRetryFirst), whether or not it stuck (a public network's known
//     members are trimmed to --max-members);
//   - a round starts at most discoverFetches fetches;
//   - once linked, a round that finds nobody new (and had budget left)
//     doubles the period, from linkedDiscoverEvery to maxDiscoverEvery;
//     one that does resets it;
//   - a node that holds its sample of members looks only every
//     maxDiscoverEvery: --max-members, and with links on demand at most
//     discoverSample (a node links to whom it talks to; a member it does
//     not know yet is looked up by address when a host asks for it).
//
// New members are still found: the period is back at its start as soon
// as one is, a member that links to this node is known from its Hello,
// and an address nobody known holds is looked up at once (resolve).
const (
	discoverFetches  = bounds.DiscoverFetches
	fetchAgain       = republishEvery
	fetchRetryFirst  = 10 * time.Second
	maxDiscoverEvery = republishEvery
	discoverSample   = bounds.DiscoverSample
	// discoverTried bounds the fetch cache: beyond it the oldest entries
	// go (they are at most refetched early).
	discoverTried = 4096
)

// discoverState is member discovery's memory: when each provider was last
// fetched, how long to leave it, and the current period. Rounds run on
// the network's loop and on resolve's goroutines, hence the lock.
type discoverState struct {
	mu    sync.Mutex
	tried map[peer.ID]fetchTry
	every time.Duration // linked period now (0: linkedDiscoverEvery)
}

type fetchTry struct {
	at   time.Time
	wait time.Duration // until the next fetch
}

// period is how long the network's loop waits between rounds while
// linked.
func (d *discoverState) period() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return cmp.Or(d.every, linkedDiscoverEvery)
}

// roundDone takes a round's result: found new members (or no link, where
// the loop polls fast anyway) restart the period, none doubles it.
func (d *discoverState) roundDone(found int, lonely bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if found > 0 || lonely {
		d.every = linkedDiscoverEvery
		return
	}
	d.every = min(2*cmp.Or(d.every, linkedDiscoverEvery), maxDiscoverEvery)
}

// claim reports whether p's records may be fetched now, and if so counts
// the attempt as made.
func (d *discoverState) claim(p peer.ID, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.tried == nil {
		d.tried = map[peer.ID]fetchTry{}
	}
	t, ok := d.tried[p]
	if ok && now.Sub(t.at) < t.wait {
		return false
	}
	if len(d.tried) >= discoverTried {
		d.prune(now)
	}
	wait := fetchRetryFirst
	if ok {
		wait = min(2*t.wait, fetchAgain)
	}
	d.tried[p] = fetchTry{at: now, wait: wait}
	return true
}

// fetched records the outcome of p's fetch: got leaves p alone for
// fetchAgain.
func (d *discoverState) fetched(p peer.ID, got bool) {
	if !got {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if t, ok := d.tried[p]; ok {
		t.wait = fetchAgain
		d.tried[p] = t
	}
}

// prune drops the entries whose wait is over, and if none is, the oldest
// half. d.mu is held.
func (d *discoverState) prune(now time.Time) {
	for p, t := range d.tried {
		if now.Sub(t.at) >= t.wait {
			delete(d.tried, p)
		}
	}
	if len(d.tried) < discoverTried {
		return
	}
	var oldest time.Time
	for _, t := range d.tried {
		if oldest.IsZero() || t.at.Before(oldest) {
			oldest = t.at
		}
	}
	mid := oldest.Add(now.Sub(oldest) / 2)
	for p, t := range d.tried {
		if !t.at.After(mid) {
			delete(d.tried, p)
		}
	}
}

// holdsSample reports whether a public network's node knows as many
// members as it keeps (--max-members; looking for more only trims them),
// or with links on demand discoverSample.
func (j *joined) holdsSample() bool {
	bound := cmp.Or(j.mgr.maxKnown, vswitch.DefaultMaxKnown)
	if j.mgr.linkIdle > 0 {
		bound = min(bound, discoverSample)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.m.Def == nil || j.m.Def.Private {
		return false
	}
	return len(j.m.Members(time.Now())) >= bound
}

// discover finds members as providers of the network's key and fetches
// the records of those it lacks, within the bounds above; it returns how
// many fetches brought something new (at least 1 when it spent its budget).
func (j *joined) discover(ctx context.Context) int {
	dctx, cancel := context.WithTimeout(ctx, dhtOpTimeout)
	defer cancel()
	id := j.m.ID
	private := j.isPrivate()
	var wg sync.WaitGroup
	var mu sync.Mutex
	found, started := 0, 0
	fctx, stop := context.WithCancel(dctx) // the walk ends once the budget is spent
	defer stop()
	j.mgr.walks.providerWalks.Add(1)
	for ai := range j.mgr.node.FindProviders(fctx, netrec.MembersCID(id), bounds.DiscoverProviders) {
		if ai.ID == j.mgr.node.ID() || started >= discoverFetches {
			continue // draining
		}
		j.mgr.node.Host.Peerstore().AddAddrs(ai.ID, ai.Addrs, time.Hour)
		j.mu.Lock()
		mem, known := j.m.Member(ai.ID)
		j.mu.Unlock()
		if known && mem.Announcement != nil && (mem.Certificate != nil || !private) {
			continue
		}
		if !j.disc.claim(ai.ID, time.Now()) {
			continue
		}
		if started++; started == discoverFetches {
			stop()
		}
		wg.Add(1)
		go func(p peer.ID) {
			defer wg.Done()
			changed, err := j.fetchFirst(dctx, netrec.AnnouncementKey(id, p))
			if private {
				c, cerr := j.fetchFirst(dctx, netrec.CertificateKey(id, p))
				changed, err = changed || c, cmp.Or(cerr, err)
			}
			j.disc.fetched(p, err == nil)
			if changed {
				mu.Lock()
				found++
				mu.Unlock()
			}
		}(ai.ID)
	}
	wg.Wait()
	if started == discoverFetches {
		found = max(found, 1) // more may wait: keep the period
	}
	return found
}

// dhtWalks counts the DHT operations of a node's networks by kind: record
// fetches (and those that failed), provider walks (discovery), address
// and MAC lookups (resolve) and publications (PutValue and Provide); the
// scale benchmark reports them per node.
type dhtWalks struct {
	fetches, fetchesFailed, providerWalks, lookups, macLookups, publications atomic.Int64
}
