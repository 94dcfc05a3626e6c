package sim

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
	"slices"
	"sort"
)

// Key is a point in the 256-bit XOR space, most significant word first.
type Key [4]uint64

// KeyOf returns the SHA-256 digest of b as a Key.
func KeyOf(b []byte) Key {
	d := sha256.Sum256(b)
	var k Key
	for i := range k {
		k[i] = binary.BigEndian.Uint64(d[8*i:])
	}
	return k
}

// Bytes returns k as 32 big-endian bytes, the form of a SHA-256 digest.
func (k Key) Bytes() [32]byte {
	var b [32]byte
	for i, w := range k {
		binary.BigEndian.PutUint64(b[8*i:], w)
	}
	return b
}

// Xor returns the XOR distance of a and b.
func (a Key) Xor(b Key) Key { return Key{a[0] ^ b[0], a[1] ^ b[1], a[2] ^ b[2], a[3] ^ b[3]} }

// Cmp orders keys as 256-bit big-endian integers.
func (a Key) Cmp(b Key) int {
	for i := range a {
		if c := cmp.Compare(a[i], b[i]); c != 0 {
			return c
		}
	}
	return 0
}

// CPL is the length of the common prefix of a and b (256 when equal).
func CPL(a, b Key) int {
	for i := range a {
		if x := a[i] ^ b[i]; x != 0 {
			return 64*i + bits.LeadingZeros64(x)
		}
	}
	return 256
}

// Bit returns bit i of k (0 is the most significant).
func (k Key) Bit(i int) uint64 { return k[i/64] >> (63 - i%64) & 1 }

// prefixBounds returns the smallest and largest keys sharing the first p
// bits of k.
func prefixBounds(k Key, p int) (lo, hi Key) {
	for i := range k {
		switch n := p - 64*i; {
		case n >= 64:
			lo[i], hi[i] = k[i], k[i]
		case n <= 0:
			lo[i], hi[i] = 0, ^uint64(0)
		default:
			mask := ^uint64(0) << (64 - n)
			lo[i], hi[i] = k[i]&mask, k[i]&mask|^mask
		}
	}
	return lo, hi
}

// Space is a set of keys in ascending order; node i has key Keys[i].
type Space struct {
	Keys []Key
}

// NewSpace draws n keys as SHA-256(seed, i) and sorts them.
func NewSpace(n int, seed uint64) *Space {
	keys := make([]Key, n)
	var buf [16]byte
	binary.BigEndian.PutUint64(buf[:], seed)
	for i := range keys {
		binary.BigEndian.PutUint64(buf[8:], uint64(i))
		keys[i] = KeyOf(buf[:])
	}
	slices.SortFunc(keys, Key.Cmp)
	return &Space{Keys: keys}
}

// N is the number of keys.
func (s *Space) N() int { return len(s.Keys) }

// Subtree returns the index range [lo, hi) of keys sharing the first p bits
// of k.
func (s *Space) Subtree(k Key, p int) (int, int) {
	if p <= 0 {
		return 0, len(s.Keys)
	}
	lk, hk := prefixBounds(k, p)
	lo := sort.Search(len(s.Keys), func(i int) bool { return s.Keys[i].Cmp(lk) >= 0 })
	hi := lo + sort.Search(len(s.Keys)-lo, func(i int) bool { return s.Keys[lo+i].Cmp(hk) > 0 })
	return lo, hi
}

// Bucket returns the index range of bucket i of key k: the keys sharing
// exactly i leading bits with k.
func (s *Space) Bucket(k Key, i int) (int, int) {
	sib := k
	sib[i/64] ^= 1 << (63 - i%64)
	return s.Subtree(sib, i+1)
}

// Closest returns up to n indices of keys closest to target in XOR distance,
// nearest first, among those accepted by ok (nil accepts all). It finds the
// smallest subtree around target holding at least n accepted keys (all of
// which are closer than any key outside it) and sorts that range.
func (s *Space) Closest(target Key, n int, ok func(int32) bool) []int32 {
	lo, hi, p := 0, len(s.Keys), 0
	for p < 256 {
		l2, h2 := s.Subtree(target, p+1)
		if h2-l2 < n {
			break
		}
		lo, hi, p = l2, h2, p+1
	}
	for p > 0 && countOK(lo, hi, ok) < n {
		p--
		lo, hi = s.Subtree(target, p)
	}
	out := make([]int32, 0, min(n, hi-lo))
	for i := lo; i < hi; i++ {
		if ok == nil || ok(int32(i)) {
			out = append(out, int32(i))
		}
	}
	SortByDistance(s, out, target)
	return out[:min(n, len(out))]
}

func countOK(lo, hi int, ok func(int32) bool) int {
	if ok == nil {
		return hi - lo
	}
	c := 0
	for i := lo; i < hi; i++ {
		if ok(int32(i)) {
			c++
		}
	}
	return c
}

// SortByDistance sorts node indices by XOR distance of their keys to target.
func SortByDistance(s *Space, nodes []int32, target Key) {
	slices.SortFunc(nodes, func(a, b int32) int {
		return s.Keys[a].Xor(target).Cmp(s.Keys[b].Xor(target))
	})
}
