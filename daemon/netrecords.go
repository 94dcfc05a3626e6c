package daemon

import (
	"context"
	"fmt"
	"time"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/libp2p/go-libp2p/core/peer"
)

type marshaler interface{ Marshal() ([]byte, error) }

// publish puts a record into the DHT.
func (j *joined) publish(ctx context.Context, key string, r marshaler) error {
	b, err := r.Marshal()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, dhtOpTimeout)
	defer cancel()
	j.mgr.walks.publications.Add(1)
	if err := j.mgr.node.PutValue(ctx, key, b); err != nil {
		return fmt.Errorf("publishing %s: %w", key, err)
	}
	return nil
}

// fetch gets a record from the DHT and hands it to the membership.
func (j *joined) fetch(ctx context.Context, key string) (bool, error) {
	return j.fetchWith(ctx, key, j.mgr.node.GetValue)
}

// fetchFirst is fetch that takes the first valid record (kad-dht's
// Quorum(1)) rather than asking all the key's closest peers for the
// newest: discovery's, where any valid announcement of a member will do
// (its links carry the current one) and a full walk per member found
// was most of a node's background bytes (issue 13).
func (j *joined) fetchFirst(ctx context.Context, key string) (bool, error) {
	return j.fetchWith(ctx, key, j.mgr.node.GetFirstValue)
}

// pollQuorum is how many holders' records a poll of a record every
// member republishes takes (the best wins): enough that one stale or
// unhelpful holder does not hide a newer revocation, few enough that the
// walk ends well before the key's closest peers.
const pollQuorum = 3

// fetchPoll is fetch that ends the walk at pollQuorum holders (kad-dht's
// Quorum): the periodic polls of the definition and revocation list,
// which members republish, so that many peers hold them.
func (j *joined) fetchPoll(ctx context.Context, key string) (bool, error) {
	return j.fetchWith(ctx, key, func(ctx context.Context, key string) ([]byte, error) {
		return j.mgr.node.GetValueQuorum(ctx, key, pollQuorum)
	})
}

func (j *joined) fetchWith(ctx context.Context, key string, get func(context.Context, string) ([]byte, error)) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, dhtOpTimeout)
	defer cancel()
	j.mgr.walks.fetches.Add(1)
	b, err := get(ctx, key)
	if err != nil {
		j.mgr.walks.fetchesFailed.Add(1)
		return false, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	changed, err := j.m.AddRecord(b, time.Now())
	if changed {
		j.dirty = true
	}
	return changed, err
}

// maxResolving bounds the address and MAC lookups one network runs at
// once.
const maxResolving = 4

// linkingKeep is how long a member whose link is coming up is kept from
// TrimKnown (the link is up well before: then the link keeps it), and
// maxLinking how many such members are kept at once.
const (
	linkingKeep = 30 * time.Second
	maxLinking  = 64
)

// keepLinking keeps p, whose link is coming up, from TrimKnown for a
// while: a member just found or just heard from would otherwise be the
// one forgotten when the others are kept (linked, social neighbours), as
// at a small --max-members, before its link is up; j.mu is held.
func (j *joined) keepLinking(p peer.ID, now time.Time) {
	if j.linking == nil {
		j.linking = map[peer.ID]time.Time{}
	}
	if _, ok := j.linking[p]; ok || len(j.linking) < maxLinking {
		j.linking[p] = now
	}
}

// resolve looks up the member behind u in the DHT (an address the local
// host asked for, or the MAC of a unicast frame it sent, that no known
// member holds: links on demand), and adds it with its certificate on a
// private network; the host's next ARP or NDP request is then answered,
// and the frames the engine holds for the MAC go to the member. Called
// by the engine's device reader: it only starts the work.
func (j *joined) resolve(u vswitch.Unresolved) {
	if j.resolving.Add(1) > maxResolving {
		j.resolving.Add(-1)
		j.logs.Log("resolve busy", "networks: %s: looking up %s: %d lookups already running, left for the host's next request", j.m.ID.Short(), u, maxResolving)
		return
	}
	j.spawn(func(ctx context.Context) {
		defer j.resolving.Add(-1)
		ctx, cancel := context.WithTimeout(ctx, dhtOpTimeout)
		defer cancel()
		key := netrec.MACKey(j.m.ID, u.MAC)
		if u.IP.IsValid() {
			key = netrec.AddressKey(j.m.ID, u.IP)
			j.mgr.walks.lookups.Add(1)
		} else {
			j.mgr.walks.macLookups.Add(1)
		}
		b, err := j.mgr.node.GetFirstValue(ctx, key)
		if err != nil {
			j.logs.Log("resolve "+u.String(), "networks: %s: looking up %s: %v (asking the members instead)", j.m.ID.Short(), u, err)
			// Not filed (yet): look for members as providers instead,
			// which also brings their announcements.
			j.discover(ctx)
			j.syncSwitch()
			return
		}
		a, err := netrec.ParseAnnouncement(b)
		if err != nil || a.Member == j.mgr.node.ID() {
			return
		}
		if j.isPrivate() {
			j.fetch(ctx, netrec.CertificateKey(j.m.ID, a.Member))
		}
		j.mu.Lock()
		now := time.Now()
		changed, _ := j.m.AddRecord(b, now)
		if changed {
			j.dirty = true
		}
		holds := j.m.HoldsMAC(a.Member, u.MAC, now)
		if u.IP.IsValid() {
			holds = j.m.Holds(a.Member, u.IP, now)
		}
		if holds {
			j.keepLinking(a.Member, now)
		}
		j.mu.Unlock()
		if !holds {
			j.logs.Log("resolve "+u.String(), "networks: %s: looking up %s: the record names %s, who does not hold it (asking the members instead)", j.m.ID.Short(), u, a.Member)
			// The record names someone who is no member, or who does not
			// hold the address or MAC by the network's rules (anyone can file a record
			// under any key, and the latest wins): ask the members, as
			// providers, instead of trusting it.
			j.discover(ctx)
			changed = true
		}
		if changed || holds {
			j.syncSwitch()
		}
	})
}

// pushRecord sends a record to every member link (revocations and
// certificates travel along links as well as through the DHT).
func (j *joined) pushRecord(r marshaler) {
	b, err := r.Marshal()
	if err != nil {
		return
	}
	if eng := j.engine(); eng != nil {
		eng.SendAll(vswitch.Message{Kind: vswitch.MsgRecord, Payload: b})
	}
}

// onRecord takes a record a member pushed (called by the engine's record
// worker, one at a time); a new one is passed on.
func (j *joined) onRecord(from peer.ID, b []byte) {
	j.mu.Lock()
	changed, err := j.m.AddRecord(b, time.Now())
	if changed {
		j.dirty = true
	}
	eng := j.eng
	j.mu.Unlock()
	if err != nil {
		j.logs.Log("record", "networks: %s: record from %s: %v", j.m.ID.Short(), from, err)
		return
	}
	if changed {
		j.syncSwitch()
		if eng != nil {
			eng.SendAll(vswitch.Message{Kind: vswitch.MsgRecord, Payload: b})
		}
	}
}
