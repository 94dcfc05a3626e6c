package vswitch

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/kadlan/kadlan/overlay/netrec"
	"github.com/kadlan/kadlan/overlay/social"
	"github.com/kadlan/kadlan/tap/ether"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

type verifiedBroadcast struct {
	digest [sha256.Size]byte
	sig    [social.SocialSigLen]byte
}

func (s *Switch) originate(now time.Time, h ether.Header, frame []byte) {
	if s.cfg.Key == nil {
		s.counters.DropNoKey++
		return
	}
	var sends []social.SocialSend[peer.ID]
	if h.Dst.IsBroadcast() {
		_, sends = s.social.Originate(now)
	} else {
		_, sends = s.social.OriginateGroup(GroupOf(h.Dst), now)
	}
	s.counters.BroadcastOrigin++
	if len(sends) == 0 {
		return
	}
	// Every copy carries the same ID, time, group and frame: one signature.
	sh := sends[0].SocialHeader
	s.replay.Check(sh.ID.Origin, sh.ID.Seq, sh.Time, now) // its replays come back as seen
	digest := BroadcastDigest(s.cfg.Network, sh, frame)
	sig, err := s.cfg.Key.Sign(digest[:])
	if err != nil || len(sig) != social.SocialSigLen {
		s.counters.DropNoKey++ // not an Ed25519 key
		return
	}
	for i := range sends {
		copy(sends[i].SocialHeader.Sig[:], sig)
	}
	s.rememberVerified(sh.ID, verifiedBroadcast{digest, sends[0].SocialHeader.Sig})
	s.sendCopies(sends, frame)
}

// BroadcastDigest is what the origin of a broadcast signs: SHA-256 of a
// domain string, the network ID, h's broadcast ID, time and group, and the
// frame. The fields forwarders change (TTL, Budget, Visited) are left out.
func BroadcastDigest(network netrec.NetworkID, h social.SocialHeader, frame []byte) [sha256.Size]byte {
	var b [len(broadcastDomain) + len(network) + 8 + 4 + 8 + 1 + 8]byte
	n := copy(b[:], broadcastDomain)
	n += copy(b[n:], network[:])
	binary.BigEndian.PutUint64(b[n:], h.ID.Origin)
	binary.BigEndian.PutUint32(b[n+8:], h.ID.Seq)
	binary.BigEndian.PutUint64(b[n+12:], uint64(h.Time))
	if h.HasGroup {
		b[n+20] = 1
		binary.BigEndian.PutUint64(b[n+21:], h.Group)
	}
	d := sha256.New()
	d.Write(b[:])
	d.Write(frame)
	var out [sha256.Size]byte
	d.Sum(out[:0])
	return out
}

// SignBroadcast sets h.Sig to key's signature of h and frame on network.
func SignBroadcast(key crypto.PrivKey, network netrec.NetworkID, h *social.SocialHeader, frame []byte) error {
	digest := BroadcastDigest(network, *h, frame)
	sig, err := key.Sign(digest[:])
	if err != nil {
		return fmt.Errorf("overlay: signing broadcast: %w", err)
	}
	if len(sig) != social.SocialSigLen {
		return fmt.Errorf("overlay: signing broadcast: %d-byte signature, want an Ed25519 key", len(sig))
	}
	copy(h.Sig[:], sig)
	return nil
}

// VerifyBroadcast reports whether h.Sig is pub's signature of h and frame on network.
func VerifyBroadcast(pub crypto.PubKey, network netrec.NetworkID, h social.SocialHeader, frame []byte) bool {
	digest := BroadcastDigest(network, h, frame)
	ok, err := pub.Verify(digest[:], h.Sig[:])
	return err == nil && ok
}

// verifyOrigin checks that h.Sig is origin's signature of frame, sent by
// member from at now, consulting and filling the cache of verified
// broadcasts.
func (s *Switch) verifyOrigin(now time.Time, from, origin peer.ID, h social.SocialHeader, frame []byte) bool {
	digest := BroadcastDigest(s.cfg.Network, h, frame)
	v, cached := s.verified[h.ID]
	if cached && v.digest == digest && v.sig == h.Sig {
		return true
	}
	fromHash := netrec.PeerHash(from)
	if !s.badSig.Peek(fromHash, now) {
		return false // a forger: not worth a verification
	}
	// Not cached, or a different frame or signature under a known ID: a
	// tampered copy, or the origin reusing sequence numbers after a restart.
	var pub crypto.PubKey
	if origin == s.cfg.Self {
		if s.cfg.Key == nil {
			return false
		}
		pub = s.cfg.Key.GetPublic()
	} else {
		pub = s.pubs[origin]
	}
	if pub == nil {
		return false
	}
	s.verifications++
	if ok, err := pub.Verify(digest[:], h.Sig[:]); err != nil || !ok {
		s.badSig.Take(fromHash, now)
		return false
	}
	if !cached {
		s.rememberVerified(h.ID, verifiedBroadcast{digest, h.Sig})
	}
	return true
}

// BroadcastCheck is the signature check HandleRemote would do for a
// broadcast copy, prepared (PendingVerify) so that the Engine can run it
// without holding its lock and report a good result (AddVerified) before
// calling HandleRemote, which then finds it in the cache.
type BroadcastCheck struct {
	id  social.BroadcastID
	pub crypto.PubKey
	v   verifiedBroadcast
}

// Needed reports whether the check has a signature to verify.
func (c *BroadcastCheck) Needed() bool { return c.pub != nil }

// Verify runs the Ed25519 verification; it needs no lock.
func (c *BroadcastCheck) Verify() bool {
	if c.pub == nil {
		return false
	}
	ok, err := c.pub.Verify(c.v.digest[:], c.v.sig[:])
	return err == nil && ok
}

// PendingVerify reports the Ed25519 verification that HandleRemote(now,
// from, m) would do, if any: none for messages that are not broadcasts,
// that the cheap checks (member, header, time, rate) drop first, or whose
// signature is already in the cache.
func (s *Switch) PendingVerify(now time.Time, from peer.ID, m Message) (BroadcastCheck, bool) {
	if m.Kind != MsgBroadcast {
		return BroadcastCheck{}, false
	}
	if _, ok := s.members[from]; !ok {
		return BroadcastCheck{}, false
	}
	sh, _, err := social.DecodeSocialHeader(m.Social)
	if err != nil || !s.replay.Fresh(sh.Time, now) || !s.social.Seen(sh.ID) && !s.limit.Peek(sh.ID.Origin, now) {
		return BroadcastCheck{}, false
	}
	origin, ok := s.byHash[sh.ID.Origin]
	if !ok {
		return BroadcastCheck{}, false
	}
	pub := s.pubs[origin]
	if pub == nil {
		return BroadcastCheck{}, false
	}
	v := verifiedBroadcast{BroadcastDigest(s.cfg.Network, sh, m.Payload), sh.Sig}
	if c, cached := s.verified[sh.ID]; cached && c == v || !s.badSig.Peek(netrec.PeerHash(from), now) {
		return BroadcastCheck{}, false
	}
	return BroadcastCheck{sh.ID, pub, v}, true
}

// FailedVerify records that the check PendingVerify prepared for a copy
// from member from failed: the copy is dropped as HandleRemote would have.
func (s *Switch) FailedVerify(from peer.ID, now time.Time) {
	s.counters.RemoteIn++
	s.counters.DropBadOrigin++
	s.verifications++
	s.badSig.Take(netrec.PeerHash(from), now)
}

// AddVerified caches a check that verify found good.
func (s *Switch) AddVerified(c BroadcastCheck) {
	if _, cached := s.verified[c.id]; !cached {
		s.rememberVerified(c.id, c.v)
	}
}

func (s *Switch) rememberVerified(id social.BroadcastID, v verifiedBroadcast) {
	size := s.social.Params().DedupSize
	if len(s.verifiedRing) < size {
		s.verifiedRing = append(s.verifiedRing, id)
	} else {
		delete(s.verified, s.verifiedRing[s.verifiedNext])
		s.verifiedRing[s.verifiedNext] = id
	}
	s.verifiedNext = (s.verifiedNext + 1) % size
	s.verified[id] = v
}

func (s *Switch) sendCopies(sends []social.SocialSend[peer.ID], frame []byte) {
	for _, snd := range sends {
		if _, ok := s.members[snd.To]; !ok {
			continue
		}
		n := len(s.scratch)
		var err error
		s.scratch, err = snd.SocialHeader.AppendBinary(s.scratch)
		if err != nil {
			continue
		}
		hdr := s.scratch[n:len(s.scratch):len(s.scratch)]
		s.counters.BroadcastSent++
		s.emitPeer(snd.To, Message{Kind: MsgBroadcast, Social: hdr, Payload: frame})
	}
}
