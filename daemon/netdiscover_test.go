package daemon

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Discovery's memory: a provider is fetched again only after its wait
// (failures back off from fetchRetryFirst, a fetch that worked waits
// fetchAgain), the period doubles while rounds find nobody, and the cache
// stays within its bound.
func TestDiscoverStateBounds(t *testing.T) {
	var d discoverState
	now := time.Unix(1e9, 0)
	p := peer.ID("provider")
	if !d.claim(p, now) || d.claim(p, now.Add(fetchRetryFirst-time.Millisecond)) {
		t.Fatal("a failed fetch is retried before fetchRetryFirst")
	}
	now = now.Add(fetchRetryFirst)
	if !d.claim(p, now) || d.claim(p, now.Add(2*fetchRetryFirst-time.Millisecond)) {
		t.Fatal("the second failure does not double the wait")
	}
	now = now.Add(2 * fetchRetryFirst)
	if !d.claim(p, now) {
		t.Fatal("not retried after the doubled wait")
	}
	d.fetched(p, true)
	if d.claim(p, now.Add(fetchAgain-time.Millisecond)) || !d.claim(p, now.Add(fetchAgain)) {
		t.Fatal("a fetch that worked is not left alone for fetchAgain")
	}

	if d.period() != linkedDiscoverEvery {
		t.Fatalf("period %v at first", d.period())
	}
	for range 10 {
		d.roundDone(0, false)
	}
	if d.period() != maxDiscoverEvery {
		t.Fatalf("period %v after idle rounds, want %v", d.period(), maxDiscoverEvery)
	}
	d.roundDone(1, false)
	if d.period() != linkedDiscoverEvery {
		t.Fatalf("period %v after a round that found a member", d.period())
	}

	for i := range 3 * discoverTried {
		d.claim(peer.ID(fmt.Sprint(i)), now.Add(time.Duration(i)*time.Millisecond))
	}
	if len(d.tried) > discoverTried {
		t.Fatalf("%d providers remembered, bound %d", len(d.tried), discoverTried)
	}
}
