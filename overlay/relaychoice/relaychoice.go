// Package relaychoice is the rule by which a private node picks its relays:
// among the publicly reachable peers it knows (its DHT neighbours), the
// ones nearest its own Kademlia key by XOR distance, Count of them. The
// daemon (dht) and the simulator (sim) both call Choose, so the simulated
// relay choice is the node's, not a copy of it.
//
// The package is pure: no I/O, no locks, no clock.
package relaychoice

import "slices"

// Count is the number of relays a private node keeps reservations on.
const Count = 3

// Key is a point in Kademlia's 256-bit XOR space: the SHA-256 digest of a
// peer ID (kad-dht's kbucket.ConvertPeerID).
type Key = [32]byte

// Candidate is a peer a node knows of that might serve as its relay.
type Candidate[ID comparable] struct {
	ID  ID
	Key Key // the peer's Kademlia key
	// Usable reports that the peer can serve: it is publicly reachable
	// (a DHT server or a relay) and has a direct, non-relayed address.
	Usable bool
}

// Compare orders a and b by XOR distance to self: negative when a is
// nearer, zero when they are equal.
func Compare(self, a, b Key) int {
	for i := range self {
		da, db := a[i]^self[i], b[i]^self[i]
		if da != db {
			if da < db {
				return -1
			}
			return 1
		}
	}
	return 0
}

// Choose returns the IDs of the usable candidates, nearest to self first,
// each once, leaving out any whose key is self's, at most n of them (all
// when n < 0). cands is not modified.
func Choose[ID comparable](self Key, cands []Candidate[ID], n int) []ID {
	seen := make(map[ID]bool, len(cands))
	keep := make([]Candidate[ID], 0, len(cands))
	for _, c := range cands {
		if !c.Usable || c.Key == self || seen[c.ID] {
			continue
		}
		seen[c.ID] = true
		keep = append(keep, c)
	}
	slices.SortStableFunc(keep, func(a, b Candidate[ID]) int { return Compare(self, a.Key, b.Key) })
	if n >= 0 && len(keep) > n {
		keep = keep[:n]
	}
	out := make([]ID, len(keep))
	for i, c := range keep {
		out[i] = c.ID
	}
	return out
}
