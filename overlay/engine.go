package overlay

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kadlan/kadlan/internal/ratelog"
	"github.com/kadlan/kadlan/overlay/bounds"
	"github.com/kadlan/kadlan/overlay/vswitch"
	"github.com/kadlan/kadlan/tap"
	"github.com/kadlan/kadlan/tap/ether"
	"github.com/libp2p/go-libp2p/core/peer"
)

// EngineConfig configures an Engine. Zero fields take the defaults.
type EngineConfig struct {
	// Logf receives diagnostics; nil discards them. It must be safe for
	// concurrent use.
	Logf func(format string, args ...any)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// QueueBytes bounds each link's send queue; 0 means DefaultQueueBytes.
	QueueBytes int
	// TickEvery is the period of Switch.Tick; 0 means 5 s.
	TickEvery time.Duration
	// MaxWait is how long the device reader waits for room in a full link
	// queue before dropping a unicast frame; while it waits the local
	// kernel queues (and paces its TCP senders) instead of losing frames.
	// 0 means 20 ms; negative means drop at once.
	MaxWait time.Duration
	// Hello returns the hello the engine writes first on every link it
	// dials (AppendHello of the membership's Hello). Required with a
	// Transport; called without the engine's lock.
	Hello func() ([]byte, error)
	// OnLink is called once a link is up, dialled or accepted, without
	// the engine's lock (the daemon protects the connection from trimming
	// and logs its path). May be nil.
	OnLink func(p peer.ID, rw io.ReadWriteCloser, outbound bool)
	// OnRecord receives MsgRecord payloads (a copy) pushed by members. It
	// is called from one goroutine that the engine owns, in the order the
	// records arrived, without the engine's lock held: it may call Engine
	// methods other than Close, but must not block for long, since records
	// that arrive meanwhile wait in a queue of RecordQueue entries and are
	// dropped (counted) when it is full. Close waits for a call in
	// progress, so Close must not be called while holding a lock that
	// OnRecord takes. A record byte-identical to one queued less than
	// RecordDedupWindow ago is skipped (counted).
	OnRecord func(from peer.ID, record []byte)
	// RecordQueue bounds the records waiting for OnRecord; 0 means 64.
	RecordQueue int
	// LinkIdle > 0 makes links come and go with traffic: a link whose
	// member is no longer a fresh social neighbour of the switch (no
	// unicast frame either way within the neighbour age, SocialParams.
	// NeighbourAgeSec, which the daemon sets to the same duration) and has
	// been up for LinkIdle is closed, keeping at least MinLinks links.
	// Links to members are dialled when a frame needs one. 0 keeps links
	// until they fail.
	LinkIdle time.Duration
	// OnUnresolved is called, from the device reader without the engine's
	// lock, with a destination the local host wanted that no known member
	// holds (an address it asked for by ARP or NDP, the MAC of a unicast
	// frame, which is held meanwhile), at most once per destination per
	// second: the daemon looks the member up (links on demand) and adds
	// it (Update). It must not block. May be nil (frames are not held).
	OnUnresolved func(u vswitch.Unresolved)
	// MinLinks is how many links idle closing keeps (0 means
	// DefaultMinLinks), so that broadcasts (DHCP, mDNS) still reach a few
	// members on a quiet network.
	MinLinks int
	// MaxIdleInbound is how many links other members dialled that carry
	// no unicast frames (their seeds: see MinLinks) idle closing keeps
	// once they are older than LinkIdle (0 means DefaultMaxIdleInbound),
	// so that a member many others happen to pick as a seed (the first
	// members of a network, which every newcomer knows) does not hold a
	// link with each of them. The dialler then picks another seed.
	MaxIdleInbound int
	// VnetHdr says that the device's frames carry a virtio-net header
	// (tap.Linux opened with Config.VnetHdr and TSO offloads). The engine
	// then sends TCP super-frames whole (MsgFrameGSO), completes checksums
	// the kernel left open, and gives received super-frames to the device
	// whole. Without it, received super-frames are segmented in software.
	VnetHdr bool
}

// EngineStats counts the engine's own events (the switch has Counters).
type EngineStats struct {
	NoLink       uint64 `json:"no_link"`       // outputs for members without a link
	GSOSent      uint64 `json:"gso_sent"`      // super-frames sent whole
	GSOReceived  uint64 `json:"gso_received"`  // super-frames received
	Segmented    uint64 `json:"segmented"`     // received super-frames segmented in software
	OffloadDrops uint64 `json:"offload_drops"` // frames dropped for a bad offload header
	// GSORejected counts members' super-frames refused by the checks of
	// checkGSO (GSOMinSize, GSOMaxSegments, header lengths) before any
	// work; LocalSegmented local super-frames that would fail them (a
	// segment size below GSOMinSize) and were sent as plain frames.
	GSORejected    uint64 `json:"gso_rejected"`
	LocalSegmented uint64 `json:"local_segmented"`
	// RecordsQueued, RecordsDropped and RecordsDuplicate count MsgRecord
	// messages handed to OnRecord, dropped because its queue was full, and
	// skipped as byte-identical to a recent one.
	RecordsQueued    uint64 `json:"records_queued"`
	RecordsDropped   uint64 `json:"records_dropped"`
	RecordsDuplicate uint64 `json:"records_duplicate"`
	// PendingHeld counts frames held while their member's link was being
	// dialled (sent once it came up), PendingDropped those dropped because
	// the bounds were reached or no link came within pendingMaxAge.
	// IdleClosed counts links closed for idleness (EngineConfig.LinkIdle).
	PendingHeld    uint64 `json:"pending_held"`
	PendingDropped uint64 `json:"pending_dropped"`
	IdleClosed     uint64 `json:"idle_closed"`
	// Neighbours is the number of fresh social neighbours now.
	Neighbours int `json:"social_neighbours"`
}

// DefaultMinLinks is the default of EngineConfig.MinLinks.
const DefaultMinLinks = bounds.MinLinks

// DefaultMaxIdleInbound is the default of EngineConfig.MaxIdleInbound:
// twice the seeds a member chooses, so that on average every seed is kept.
const DefaultMaxIdleInbound = bounds.MaxIdleInbound

// Bounds of the frames held for members whose link is being dialled.
const (
	pendingFrames = 32        // per member
	pendingBytes  = 256 << 10 // per member
	pendingPeers  = 64        // members with frames held
	pendingMaxAge = 5 * time.Second
)

// engineCounters are the EngineStats the engine updates without its lock.
type engineCounters struct {
	segmented, offloadDrops, gsoRejected, localSegmented atomic.Uint64
	recordsQueued, recordsDropped, recordsDuplicate      atomic.Uint64
}

// Defaults of the record queue.
const (
	DefaultRecordQueue = 64
	// RecordDedupWindow is how long a record's hash is remembered to skip
	// byte-identical copies.
	RecordDedupWindow = 10 * time.Second
	recordDedupSize   = 256
	// logEvery is the period of rate-limited log lines (one per reason).
	logEvery = 10 * time.Second
)

// Engine drives a Switch with real I/O, the way etcd's node drives a
// RawNode: one goroutine reads the device, each member link has a reader
// goroutine and a writer goroutine that sends batches from its Queue, and a
// ticker calls Switch.Tick. The daemon authenticates a stream (Hello,
// Membership.Authorize) and hands it over with AddLink.
type Engine struct {
	cfg EngineConfig
	dev tap.Device

	mu       sync.Mutex // guards sw, links, noLink and closed; held while dispatching
	sw       *vswitch.Switch
	links    map[peer.ID]*engineLink
	noLink   uint64
	stats    EngineStats
	gone     Traffic               // of the links closed so far
	tr       Transport             // nil: links only come from AddLink
	asked    map[peer.ID]time.Time // last dial started per member
	dialing  map[peer.ID]bool
	pending  map[peer.ID]*pendingMsgs         // frames waiting for a link being dialled
	heldMAC  map[ether.MAC]*pendingMsgs       // frames waiting for an unknown MAC's member
	draining map[*engineLink]bool             // replaced links still read (drain)
	lookups  map[vswitch.Unresolved]time.Time // last OnUnresolved per destination
	ctx      context.Context                  // ends with Close: cancels dials
	cancel   context.CancelFunc
	closed   bool
	seg      []byte // segmentation scratch of the device reader

	// wmu serialises device writes (tap.Device allows one writer at a
	// time); it may be taken with mu held, never the other way round, so
	// that link readers write and segment without holding mu.
	wmu  sync.Mutex
	wbuf []byte // device write buffer with room for a virtio-net header

	counters engineCounters
	logs     *ratelog.Limiter

	records chan engineRecord
	recMu   sync.Mutex // guards recSeen
	recSeen recordSet
	recHash maphash.Seed

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// NewEngine starts driving sw with dev. The engine owns dev: Close closes it.
func New(dev tap.Device, tr Transport, sw *vswitch.Switch, cfg EngineConfig) *Engine {
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.TickEvery == 0 {
		cfg.TickEvery = bounds.TickEvery
	}
	if cfg.MaxWait == 0 {
		cfg.MaxWait = 20 * time.Millisecond
	}
	if cfg.RecordQueue <= 0 {
		cfg.RecordQueue = DefaultRecordQueue
	}
	if cfg.MinLinks <= 0 {
		cfg.MinLinks = DefaultMinLinks
	}
	if cfg.MaxIdleInbound <= 0 {
		cfg.MaxIdleInbound = DefaultMaxIdleInbound
	}
	e := &Engine{cfg: cfg, dev: dev, tr: tr, sw: sw, links: map[peer.ID]*engineLink{}, asked: map[peer.ID]time.Time{},
		dialing: map[peer.ID]bool{}, pending: map[peer.ID]*pendingMsgs{}, heldMAC: map[ether.MAC]*pendingMsgs{}, draining: map[*engineLink]bool{}, lookups: map[vswitch.Unresolved]time.Time{}, stop: make(chan struct{}), records: make(chan engineRecord, cfg.RecordQueue), recHash: maphash.MakeSeed()}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.logs = ratelog.New(cfg.Logf, cfg.Now, logEvery)
	sw.BeginBroadcasts(cfg.Now()) // broadcasts from before now may have been delivered by a previous run
	e.wg.Add(2)
	go e.readDevice()
	go e.tick()
	if cfg.OnRecord != nil {
		e.wg.Add(1)
		go e.handleRecords()
	}
	return e
}

// Update runs fn with the switch under the engine's lock (SetMember,
// RemoveMember, Membership.Sync, JoinGroup, reading counters) and then
// closes the links of peers that are no longer members and sends the
// frames held for a MAC whose member is now known.
func (e *Engine) Update(fn func(sw *vswitch.Switch)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fn(e.sw)
	e.resolveHeld()
	e.dispatch(e.sw.AnswerAsked(e.cfg.Now())) // the host's requests for members just added
	for p, l := range e.links {
		if !e.sw.IsMember(p) {
			delete(e.links, p)
			e.retire(l)
			l.close()
		}
	}
}

// Counters returns the switch counters.
func (e *Engine) Counters() vswitch.Counters {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sw.Counters()
}

// EngineLinkStats describes one link.
type EngineLinkStats struct {
	Peer     peer.ID
	Outbound bool               // opened by this node
	Stream   io.ReadWriteCloser // what the link runs on (the transport's stream)
	Queue    QueueStats
	Queued   int
}

// Stats returns the engine's counters.
func (e *Engine) Stats() EngineStats {
	e.mu.Lock()
	s := e.stats
	s.NoLink = e.noLink
	s.Neighbours = len(e.sw.Neighbours(e.cfg.Now()))
	e.mu.Unlock()
	c := &e.counters
	s.Segmented, s.OffloadDrops, s.GSORejected = c.segmented.Load(), c.offloadDrops.Load(), c.gsoRejected.Load()
	s.LocalSegmented = c.localSegmented.Load()
	s.RecordsQueued, s.RecordsDropped, s.RecordsDuplicate = c.recordsQueued.Load(), c.recordsDropped.Load(), c.recordsDuplicate.Load()
	return s
}

// Links returns the current links with their queue statistics, and the
// number of messages dropped because their member had no link.
func (e *Engine) Links() ([]EngineLinkStats, uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]EngineLinkStats, 0, len(e.links))
	for p, l := range e.links {
		s, n := l.q.Stats()
		out = append(out, EngineLinkStats{Peer: p, Outbound: l.outbound, Stream: l.rw, Queue: s, Queued: n})
	}
	return out, e.noLink
}

// Traffic counts the messages (frames, broadcast copies, records) on a
// network's member links, over every link the engine has had. Bytes are
// the messages' encoded length (link framing included).
type Traffic struct {
	InMessages, InBytes   uint64 // read from members (but super-frames refused by the GSO checks)
	OutMessages, OutBytes uint64 // queued to members
	OutDropped            uint64 // not queued: the link's queue was full
}

func (t *Traffic) add(in, inBytes uint64, q QueueStats) {
	t.InMessages += in
	t.InBytes += inBytes
	t.OutMessages += q.Pushed
	t.OutBytes += q.Bytes
	t.OutDropped += q.Dropped
}

// Traffic returns the link traffic so far. Its fields only grow.
func (e *Engine) Traffic() Traffic {
	e.mu.Lock()
	defer e.mu.Unlock()
	t := e.gone
	for _, l := range e.links {
		s, _ := l.q.Stats()
		t.add(l.rxMsgs, l.rxBytes, s)
	}
	return t
}

// ErrDuplicateLink is returned by AddLink for a stream that loses to the
// existing link; the caller closes it.
var ErrDuplicateLink = errors.New("overlay: duplicate link")

// AddLink attaches an authenticated stream to member p (after the Hello).
// outbound says whether this node opened it. When both nodes open a stream
// at once, both keep the one opened by the node with the smaller address
// and AddLink returns ErrDuplicateLink for the other; a new stream from the
// same opener replaces the old one (a reconnect). p must be a member of the
// switch.
func (e *Engine) AddLink(p peer.ID, rw io.ReadWriteCloser, outbound bool) error {
	if err := e.addLink(p, rw, outbound); err != nil {
		return err
	}
	if e.cfg.OnLink != nil {
		e.cfg.OnLink(p, rw, outbound)
	}
	return nil
}

func (e *Engine) addLink(p peer.ID, rw io.ReadWriteCloser, outbound bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return net.ErrClosed
	}
	if !e.sw.IsMember(p) {
		return fmt.Errorf("overlay: link to %s: not a member", p)
	}
	var replaced *engineLink
	if old, ok := e.links[p]; ok {
		if old.outbound != outbound {
			selfOpens := e.sw.Self() < p
			if outbound != selfOpens {
				return ErrDuplicateLink
			}
		}
		e.retire(old)
		e.drain(old)
		replaced = old
	}
	delete(e.asked, p)
	l := &engineLink{peer: p, outbound: outbound, opened: e.cfg.Now(), rw: rw, q: NewQueue(e.cfg.QueueBytes), done: make(chan struct{})}
	if replaced != nil {
		// What waited on the replaced link (the first frames, when both
		// ends dialled at once) goes out on this one, first.
		replaced.q.MoveTo(l.q)
	}
	e.links[p] = l
	e.wg.Add(2)
	go e.readLink(l)
	go e.writeLink(l)
	e.dispatch(e.sw.Connected(p, e.cfg.Now()))
	e.flushPending(l)
	return nil
}

// RemoveLink closes the link to p, if any.
func (e *Engine) RemoveLink(p peer.ID) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if l, ok := e.links[p]; ok {
		delete(e.links, p)
		e.retire(l)
		l.close()
	}
}

// needLinkEvery rate-limits NeedLink calls per member.
const needLinkEvery = 2 * time.Second

// blocked is a unicast frame from the device whose link queue was full.
type blocked struct {
	l *engineLink
	m vswitch.Message
}

// dispatch carries out outputs; e.mu is held. With wait, unicast frames
// that do not fit their link's queue are returned instead of dropped (their
// payload is the device read buffer, stable until the next read).
func (e *Engine) dispatch(outs []vswitch.Output) { e.dispatchWait(outs, nil) }

func (e *Engine) dispatchWait(outs []vswitch.Output, wait *[]blocked) {
	for _, o := range outs {
		e.dispatchOne(o, wait)
	}
}

func (e *Engine) dispatchOne(o vswitch.Output, wait *[]blocked) {
	switch o.Kind {
	case vswitch.ToLocal:
		e.writeDev(o.Msg.Payload)
	case vswitch.ToPeer:
		l := e.link(o.Peer)
		if l == nil {
			e.hold(o.Peer, o.Msg)
			return
		}
		if wait != nil && (o.Msg.Kind == vswitch.MsgFrame || o.Msg.Kind == vswitch.MsgFrameGSO) {
			if !l.q.TryPush(o.Msg) {
				*wait = append(*wait, blocked{l, o.Msg})
			}
			return
		}
		l.q.Push(o.Msg)
	case vswitch.ToUnresolved:
		e.holdMAC(o.MAC, o.Msg)
	}
}

// link returns p's link, or nil after counting and asking for one.
func (e *Engine) link(p peer.ID) *engineLink {
	l, ok := e.links[p]
	if ok {
		return l
	}
	e.noLink++
	e.connect(p)
	return nil
}

func (e *Engine) readDevice() {
	defer e.wg.Done()
	hdrLen := 0
	size := e.dev.MTU() + ether.HeaderLen + 4 + 64
	if e.cfg.VnetHdr {
		hdrLen = ether.VnetHdrLen
		size = max(size, hdrLen+65536+ether.HeaderLen+64)
	}
	buf := make([]byte, size)
	var wait []blocked
	for {
		n, err := e.dev.Read(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				e.cfg.Logf("overlay: read %s: %v", e.dev.Name(), err)
			}
			return
		}
		if n > len(buf) || n < hdrLen {
			continue // truncated: larger than the MTU
		}
		frame := buf[hdrLen:n]
		var whole []byte // header and super-frame, to send as MsgFrameGSO
		if e.cfg.VnetHdr {
			h, _ := ether.ParseVnetHdr(buf)
			if h.IsGSO() {
				// Members refuse super-frames that fail checkGSO: send
				// what they would refuse for its size as plain frames.
				if err := checkGSO(frame, &h, e.dev.MTU()); gsoReason(err) == "size" {
					e.counters.localSegmented.Add(1)
					e.seg, err = ether.SegmentTCP(frame, h, e.seg, func(seg []byte) error {
						e.handleLocal(seg, nil, false, nil)
						return nil
					})
					if err != nil {
						e.counters.offloadDrops.Add(1)
					}
					continue
				} else if err != nil {
					e.counters.offloadDrops.Add(1)
					e.logs.Log("local gso", "overlay: %s: super-frame dropped: %v", e.dev.Name(), err)
					continue
				}
				h.Put(buf) // with the recomputed header length
				whole = buf[:n]
			} else if err := ether.FinishChecksum(frame, h); err != nil {
				e.counters.offloadDrops.Add(1)
				continue
			}
		}
		wait = e.handleLocal(frame, whole, true, wait[:0])
	}
}

// handleLocal passes a frame from the device through the switch and
// queues the results; whole, when not nil, is the super-frame to send in
// place of frame. With canWait (and MaxWait > 0), unicast frames that do
// not fit their link's queue are appended to wait and pushed with PushWait
// (frame must then stay valid until handleLocal returns); otherwise they
// are dropped.
func (e *Engine) handleLocal(frame, whole []byte, canWait bool, wait []blocked) []blocked {
	var w *[]blocked
	if e.cfg.MaxWait > 0 && canWait {
		w = &wait
	}
	e.mu.Lock()
	for _, o := range e.sw.HandleLocal(e.cfg.Now(), frame) {
		if whole != nil && o.Input && (o.Kind == vswitch.ToPeer || o.Kind == vswitch.ToUnresolved) {
			o.Msg = vswitch.Message{Kind: vswitch.MsgFrameGSO, Payload: whole}
			e.stats.GSOSent++
		}
		e.dispatchOne(o, w)
	}
	unresolved := e.unresolved()
	e.mu.Unlock()
	for _, u := range unresolved {
		e.cfg.OnUnresolved(u)
	}
	for _, b := range wait {
		b.l.q.PushWait(b.m, e.cfg.MaxWait, b.l.done)
	}
	return wait
}

// Send queues a message (for example a MsgRecord) to member p's link and
// reports whether it was queued.
func (e *Engine) Send(p peer.ID, m vswitch.Message) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	l, ok := e.links[p]
	return ok && l.q.Push(m)
}

// SendAll queues m (for example a MsgRecord carrying a new revocation) on
// every link and returns how many queued it.
func (e *Engine) SendAll(m vswitch.Message) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, l := range e.links {
		if l.q.Push(m) {
			n++
		}
	}
	return n
}

// Close stops the engine: it closes the device (which unblocks a device
// write in progress), every link, and waits for its goroutines. It is
// idempotent.
func (e *Engine) Close() error {
	var err error
	e.closeOnce.Do(func() {
		close(e.stop)
		e.cancel()
		err = e.dev.Close()
		e.mu.Lock()
		e.closed = true
		for p, l := range e.links {
			delete(e.links, p)
			e.retire(l)
			l.close()
		}
		e.closeDraining()
		e.mu.Unlock()
		e.wg.Wait()
	})
	return err
}
