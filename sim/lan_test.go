package sim

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/kadlan/kadlan/overlay/bounds"
)

// lanConfig is a small lan point: everyone active, measured from 0.
func lanConfig(nodes int) Config {
	c := Defaults()
	c.Model, c.Nodes, c.Active, c.WarmupS, c.DurationS, c.Broadcasts = "lan", nodes, 0, 0, 600, 0
	return c
}

// TestLanBoundsHold checks, after every tick of every member of a busy
// network with a small --max-members, what the node guarantees: no idle
// link it dialled and at most MaxIdleInbound idle ones others dialled
// survive a tick unless it holds MinLinks or fewer; every other link is a
// fresh social neighbour or younger than the idle time; social neighbours
// within SocialParams.Neighbours; known members within max_known unless
// all are linked or neighbours; and both ends of a link agree.
func TestLanBoundsHold(t *testing.T) {
	c := lanConfig(300)
	c.ContactsPerMin, c.NewContactsPerMin, c.LinkIdleS, c.MaxKnown = 4, 2, 30, 40
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	w := newLanWorld(c)
	idle := time.Duration(c.LinkIdleS * float64(time.Second))
	ticks, knownFull, manyLinks := 0, 0, 0
	w.onTick = func(m *lanMember, now int64) {
		ticks++
		nb := m.soc.Neighbours(simEpoch.Add(time.Duration(now)))
		if len(nb) > w.sp.Neighbours {
			t.Fatalf("member %d: %d social neighbours, bound %d", m.id, len(nb), w.sp.Neighbours)
		}
		idleOut, idleIn, young := 0, 0, 0
		for p, l := range m.links {
			if o := w.mem[w.act[p]]; o.links[m.id] == nil {
				t.Fatalf("member %d links to %d, which has no link back", m.id, p)
			}
			switch {
			case slices.Contains(nb, p):
			case time.Duration(now-l.opened) < idle:
				young++
			case l.outbound:
				idleOut++
			default:
				idleIn++
			}
		}
		if n := len(m.links); n > bounds.MinLinks {
			manyLinks++
			if idleOut > 0 || idleIn > bounds.MaxIdleInbound {
				t.Fatalf("member %d at %v: %d links, %d idle it dialled, %d idle inbound (bound %d)", m.id, time.Duration(now), n, idleOut, idleIn, bounds.MaxIdleInbound)
			}
			if n > len(nb)+young+bounds.MaxIdleInbound {
				t.Fatalf("member %d: %d links > %d neighbours + %d young + %d", m.id, n, len(nb), young, bounds.MaxIdleInbound)
			}
		}
		if len(m.known) >= c.MaxKnown {
			knownFull++
		}
		if len(m.known) > c.MaxKnown {
			for p := range m.known {
				if _, linked := m.links[p]; !linked && !m.dialing[p] && !slices.Contains(nb, p) {
					t.Fatalf("member %d knows %d > max_known %d, %d of them neither linked nor a neighbour", m.id, len(m.known), c.MaxKnown, p)
				}
			}
		}
	}
	w.eng.Run(-1)
	// The bounds must have bitten, or the test shows nothing.
	if knownFull < ticks/2 || manyLinks < ticks/2 {
		t.Fatalf("of %d ticks %d had max_known members and %d more than MinLinks links: the bounds did not bite", ticks, knownFull, manyLinks)
	}
	t.Logf("%d ticks, %d at max_known, %d above MinLinks", ticks, knownFull, manyLinks)
}

// TestLanQuietBroadcast: 4 members, no traffic. Each knows the other 3
// (one provider walk names them all) and dials them as its MinLinks = 3
// seeds, so a link opening makes each a social neighbour of each. By
// hand: a broadcast then goes to the 3 others (fan-out 12 > 3), and none
// forwards it (the other two are in its visited list): reach 3, 3
// messages; with budget 2, reach 2 and 2 messages. Once the neighbour age
// (link_idle_s = 30 s) has passed without unicast frames, the seeds are
// made neighbours again (bounds.StaleSeeds, the engine's keepSeeds): the
// same reach (before that rule: reach 0, no message).
func TestLanQuietBroadcast(t *testing.T) {
	for _, tt := range []struct{ budget, early, late int }{{0, 3, 3}, {2, 2, 2}} {
		c := lanConfig(4)
		c.ContactsPerMin, c.NewContactsPerMin, c.LinkIdleS, c.DurationS = 0, 0, 30, 120
		c.Social.Budget = tt.budget
		w := newLanWorld(c)
		w.eng.Run(int64(20 * time.Second))
		for _, m := range w.mem {
			if len(m.links) != 3 {
				t.Fatalf("member %d: %d links, want its 3 seeds", m.id, len(m.links))
			}
		}
		w.broadcast(w.eng.Now())
		w.eng.Run(int64(100 * time.Second))
		w.broadcast(w.eng.Now())
		if w.reach[0] != float64(tt.early) || w.msgs[0] != float64(tt.early) || w.reach[1] != float64(tt.late) || w.msgs[1] != float64(tt.late) {
			t.Errorf("budget %d: reach %v, messages %v; want %d then %d", tt.budget, w.reach, w.msgs, tt.early, tt.late)
		}
	}
}

// TestLanFirstContactLookup: a first contact to a member not known costs
// an address lookup (through the Kademlia model) before the link's set-up;
// to a known member, the set-up alone.
func TestLanFirstContactLookup(t *testing.T) {
	c := lanConfig(500)
	c.ContactsPerMin, c.NewContactsPerMin, c.DurationS = 0, 0, 120
	w := newLanWorld(c)
	w.eng.Run(int64(30 * time.Second))
	m := w.mem[0]
	var unknown, known int32 = -1, -1
	for v := range int32(c.Nodes) {
		_, k := m.known[v]
		_, l := m.links[v]
		switch {
		case v == m.id || l || m.dialing[v]:
		case !k && unknown < 0:
			unknown = v
		case k && known < 0:
			known = v
		}
	}
	if unknown < 0 || known < 0 {
		t.Fatalf("member %d knows %d of %d: no unknown or no known unlinked member", m.id, len(m.known), c.Nodes)
	}
	before := m.lookups
	w.contactOut(m, unknown, w.eng.Now())
	w.eng.Run(w.eng.Now() + int64(10*time.Second))
	if m.lookups != before+1 || m.links[unknown] == nil || len(w.firstLat) != 1 {
		t.Fatalf("unknown target: %d lookups (want %d), link %v, %d first contacts", m.lookups, before+1, m.links[unknown] != nil, len(w.firstLat))
	}
	if setup := float64(w.setup(m.id, unknown)) / 1e6; w.firstLat[0] <= setup || w.firstLook != 1 {
		t.Errorf("unknown target: first contact %.1f ms, set-up alone %.1f ms: no lookup paid", w.firstLat[0], setup)
	}
	w.contactOut(m, known, w.eng.Now())
	w.eng.Run(w.eng.Now() + int64(10*time.Second))
	if m.lookups != before+1 || m.links[known] == nil || len(w.firstLat) != 2 {
		t.Fatalf("known target: %d lookups (want %d), link %v", m.lookups, before+1, m.links[known] != nil)
	}
	if setup := float64(w.setup(m.id, known)) / 1e6; math.Abs(w.firstLat[1]-setup) > 1e-3 {
		t.Errorf("known target: first contact %.3f ms, want the set-up %.3f ms", w.firstLat[1], setup)
	}
}

// TestLanFlatInM: what a member holds and the DHT work it does are the
// same at 2,000 and 20,000 members (both sampled: 1,000 active), within
// the noise of the samples, while lookups get longer.
func TestLanFlatInM(t *testing.T) {
	run := func(n int) Metrics {
		c := lanConfig(n)
		c.Active, c.WarmupS, c.DurationS, c.Broadcasts = 1000, 600, 1200, 30
		if raceEnabled {
			c.Active = 300
		}
		m, err := runLanModel(c, func(float64) {})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b := run(2000), run(20000)
	for _, k := range []string{"links_mean", "known_mean", "neighbours_mean", "lookups_per_min_mean", "fetches_per_min_mean", "bcast_msgs_mean"} {
		t.Logf("%s: %.3f at 2000, %.3f at 20000", k, a[k], b[k])
		if r := b[k] / a[k]; math.IsNaN(r) || r < 0.85 || r > 1.15 {
			t.Errorf("%s: %.3f at 2000 members, %.3f at 20000: not flat (ratio %.2f)", k, a[k], b[k], r)
		}
	}
	if b["links_max"] > a["links_max"]*1.5 || b["known_max"] > a["known_max"]*1.5 {
		t.Errorf("max links %v -> %v, known %v -> %v", a["links_max"], b["links_max"], a["known_max"], b["known_max"])
	}
	if b["first_contact_ms_mean"] < a["first_contact_ms_mean"] || b["bcast_msgs_max"] > float64(Defaults().Social.Budget) {
		t.Errorf("first contact %.0f -> %.0f ms (lookups should not get shorter), messages max %v", a["first_contact_ms_mean"], b["first_contact_ms_mean"], b["bcast_msgs_max"])
	}
}
