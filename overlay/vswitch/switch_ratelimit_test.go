package vswitch

import (
	"fmt"
	"testing"
	"time"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/overlay/social"
)

// Issue 10, item 8: a member storming broadcasts gets its burst and then
// its rate delivered, the rest dropped and counted without a signature
// check; other members' unicast and broadcasts are untouched, and neither
// forged nor replayed copies take another origin's tokens.
func TestSwitchBroadcastRateLimit(t *testing.T) {
	w := newTestWorld(t, 3, false)
	a, b, c := w.nodes[0], w.nodes[1], w.nodes[2]
	const storm = 1000
	msgs := make([]Message, storm)
	for i := range msgs {
		msgs[i] = w.signedAt(c.key, social.BroadcastID{Origin: netrec.PeerHash(c.peer), Seq: uint32(i + 1)}, w.now, bcastFrame(c, fmt.Sprint(i)))
	}
	uni := ipv4Frame(a.mac, b.mac, b.ipv4, a.ipv4, "unicast")
	got := 0
	for _, m := range msgs {
		if delivered(a.sw.HandleRemote(w.now, c.peer, m)) {
			got++
		}
		if !delivered(a.sw.HandleRemote(w.now, b.peer, Message{Kind: MsgFrame, Payload: uni})) {
			t.Fatal("unicast dropped during the storm")
		}
	}
	cn := a.sw.Counters()
	if got != DefaultBroadcastBurst || cn.DropRateLimit != storm-DefaultBroadcastBurst || cn.UnicastDelivered != storm {
		t.Fatalf("delivered %d of the storm: %+v", got, cn)
	}
	// Beyond the bucket nothing is verified: a copy with a broken
	// signature is counted as rate-limited, not as a bad origin.
	bad := w.signedAt(c.key, social.BroadcastID{Origin: netrec.PeerHash(c.peer), Seq: storm + 1}, w.now, bcastFrame(c, "x"))
	bad.Social[len(bad.Social)-1] ^= 1
	if a.sw.HandleRemote(w.now, c.peer, bad); a.sw.Counters().DropBadOrigin != 0 {
		t.Fatal("rate-limited copy was verified")
	}
	// c forges and replays in b's name: b's bucket is not touched.
	own := w.signedAt(b.key, social.BroadcastID{Origin: netrec.PeerHash(b.peer), Seq: 1}, w.now, bcastFrame(b, "b's"))
	if !delivered(a.sw.HandleRemote(w.now, b.peer, own)) {
		t.Fatal("b's broadcast not delivered")
	}
	a.sw.social.ForgetSeen() // make replays reach the filter
	for i := range 2 * DefaultBroadcastBurst {
		forged := w.signedAt(c.key, social.BroadcastID{Origin: netrec.PeerHash(b.peer), Seq: uint32(i + 2)}, w.now, bcastFrame(b, "forged"))
		a.sw.HandleRemote(w.now, c.peer, forged)
		a.sw.HandleRemote(w.now, c.peer, own)
	}
	cn = a.sw.Counters()
	if cn.DropBadOrigin != 2*DefaultBroadcastBurst || cn.DropReplay != 2*DefaultBroadcastBurst {
		t.Fatalf("%+v", cn)
	}
	for i := range DefaultBroadcastBurst - 1 {
		m := w.signedAt(b.key, social.BroadcastID{Origin: netrec.PeerHash(b.peer), Seq: uint32(10000 + i)}, w.now, bcastFrame(b, fmt.Sprint(i)))
		if !delivered(a.sw.HandleRemote(w.now, b.peer, m)) {
			t.Fatalf("b's broadcast %d not delivered: its bucket was drained by forgeries: %+v", i, a.sw.Counters())
		}
	}
	// A second later c has DefaultBroadcastRate more tokens.
	later := w.now.Add(time.Second)
	got = 0
	for i := range storm {
		m := w.signedAt(c.key, social.BroadcastID{Origin: netrec.PeerHash(c.peer), Seq: uint32(5000 + i)}, later, bcastFrame(c, fmt.Sprint(i)))
		if delivered(a.sw.HandleRemote(later, c.peer, m)) {
			got++
		}
		if i > DefaultBroadcastRate+10 {
			break
		}
	}
	if got != DefaultBroadcastRate {
		t.Fatalf("after 1 s: %d delivered", got)
	}
}

// TestOriginLimiterBounded: the table never holds more than its bound; a
// refilled bucket is forgotten to make room, a new key is refused while
// every bucket is in use.
func TestOriginLimiterBounded(t *testing.T) {
	l := NewOriginLimiter(10, 10, 4)
	for k := range uint64(4) {
		if !l.Take(k, t0) {
			t.Fatal(k)
		}
	}
	if l.Take(99, t0) || l.Len() != 4 {
		t.Fatalf("fifth key admitted into a table of 4 live buckets (len %d)", l.Len())
	}
	later := t0.Add(2 * time.Second) // every bucket full again
	if !l.Take(99, later) || l.Len() != 1 {
		t.Fatalf("refilled buckets not forgotten: len %d", l.Len())
	}
	if !l.Peek(12345, later) {
		t.Fatal("unknown key has no token")
	}
}

// BenchmarkBroadcastStorm measures what one broadcast of a storming member
// costs a receiver once its bucket is empty (compare BenchmarkBroadcastVerify,
// the cost of an accepted one), and a unicast frame from another member in
// between. At 10k storm frames per second the dropped ones cost
// 10^4 x ns/op of CPU per second.
func BenchmarkBroadcastStorm(b *testing.B) {
	w := newTestWorld(b, 3, false)
	a, o, c := w.nodes[0], w.nodes[1], w.nodes[2]
	var msgs []Message
	for i := range 1000 {
		msgs = append(msgs, w.signedAt(c.key, social.BroadcastID{Origin: netrec.PeerHash(c.peer), Seq: uint32(i + 1)}, w.now, bcastFrame(c, fmt.Sprint(i))))
	}
	for _, m := range msgs[:DefaultBroadcastBurst] {
		a.sw.HandleRemote(w.now, c.peer, m)
	}
	uni := Message{Kind: MsgFrame, Payload: ipv4Frame(a.mac, o.mac, o.ipv4, a.ipv4, "unicast")}
	b.Run("dropped", func(b *testing.B) {
		i := 0
		for b.Loop() {
			a.sw.HandleRemote(w.now, c.peer, msgs[DefaultBroadcastBurst+i%(len(msgs)-DefaultBroadcastBurst)])
			i++
		}
	})
	b.Run("unicast", func(b *testing.B) {
		for b.Loop() {
			a.sw.HandleRemote(w.now, o.peer, uni)
		}
	})
	if cn := a.sw.Counters(); cn.BroadcastDelivered != DefaultBroadcastBurst {
		b.Fatalf("%+v", cn)
	}
}

// A member forging broadcasts in others' names gets BadSignatureBurst of
// them verified and then BadSignatureRate per second: the rest are dropped
// without costing an Ed25519 verification, while genuine broadcasts from
// other members are still verified and delivered.
func TestSwitchForgerGetsFewVerifications(t *testing.T) {
	w := newTestWorld(t, 3, false)
	a, b, c := w.nodes[0], w.nodes[1], w.nodes[2]
	const forged = 500
	for i := range forged {
		m := w.signedAt(c.key, social.BroadcastID{Origin: netrec.PeerHash(b.peer), Seq: uint32(i + 1)}, w.now, bcastFrame(b, "forged"))
		if outs := a.sw.HandleRemote(w.now, c.peer, m); len(outs) != 0 {
			t.Fatal("forgery delivered")
		}
	}
	if cn := a.sw.Counters(); cn.DropBadOrigin != forged || a.sw.verifications != BadSignatureBurst {
		t.Fatalf("%d verifications for %d forgeries: %+v", a.sw.verifications, forged, cn)
	}
	m := w.signedAt(b.key, social.BroadcastID{Origin: netrec.PeerHash(b.peer), Seq: 1000}, w.now, bcastFrame(b, "genuine"))
	if !delivered(a.sw.HandleRemote(w.now, b.peer, m)) {
		t.Fatal("genuine broadcast from another member not delivered")
	}
	later := w.now.Add(time.Second)
	for i := range forged {
		m := w.signedAt(c.key, social.BroadcastID{Origin: netrec.PeerHash(b.peer), Seq: uint32(2000 + i)}, later, bcastFrame(b, "forged"))
		a.sw.HandleRemote(later, c.peer, m)
	}
	if v := a.sw.verifications; v != BadSignatureBurst+1+BadSignatureRate {
		t.Fatalf("%d verifications a second later", v)
	}
}

// A member flooding group announcements gets GroupAnnouncementBurst of
// them applied, then GroupAnnouncementRate per second.
func TestSwitchGroupAnnouncementRateLimit(t *testing.T) {
	w := newTestWorld(t, 2, false)
	a, b := w.nodes[0], w.nodes[1]
	groups := make([]uint64, social.MaxAnnouncedGroups)
	for i := range groups {
		groups[i] = uint64(i)
	}
	ann, _ := social.EncodeGroupAnnouncement(groups)
	for range 1000 {
		a.sw.HandleRemote(w.now, b.peer, Message{Kind: MsgGroups, Payload: ann})
	}
	if cn := a.sw.Counters(); cn.GroupsHeard != GroupAnnouncementBurst || cn.DropRateLimit != 1000-GroupAnnouncementBurst {
		t.Fatalf("%+v", cn)
	}
	later := w.now.Add(time.Second)
	for range 10 {
		a.sw.HandleRemote(later, b.peer, Message{Kind: MsgGroups, Payload: ann})
	}
	if cn := a.sw.Counters(); cn.GroupsHeard != GroupAnnouncementBurst+GroupAnnouncementRate {
		t.Fatalf("%+v", cn)
	}
}
