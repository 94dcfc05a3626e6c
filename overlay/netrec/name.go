package netrec

import (
	"errors"
	"fmt"
	"strings"
)

// MaxMemberNameLen is the longest member name: one DNS label.
const MaxMemberNameLen = 63

// ErrBadName is wrapped by every error of ValidName.
var ErrBadName = errors.New("overlay: bad name")

// ValidName checks that s is a member name: one DNS label of 1 to 63
// characters from a-z, 0-9 and '-', neither starting nor ending with '-'.
// Names are lowercase; ValidName does not fold case (see SanitizeName).
func ValidName(s string) error {
	if s == "" || len(s) > MaxMemberNameLen {
		return fmt.Errorf("%w: %d characters, want 1 to %d", ErrBadName, len(s), MaxMemberNameLen)
	}
	if s[0] == '-' || s[len(s)-1] == '-' {
		return fmt.Errorf("%w: %q starts or ends with '-'", ErrBadName, s)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%w: %q has %q (want a-z, 0-9 and '-')", ErrBadName, s, c)
		}
	}
	return nil
}

// SanitizeName turns s (a host name, a network's name) into a valid name:
// lowercase, its first DNS label only (a host name "pi.home" gives "pi"),
// every run of other characters replaced by one '-', trimmed of '-' and
// cut to MaxMemberNameLen. It returns "" when nothing usable is left.
func SanitizeName(s string) string {
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s = s[:i]
	}
	var b strings.Builder
	dash := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c >= 'a' && c <= 'z' || c >= '0' && c <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteByte(c)
			continue
		}
		dash = true
	}
	out := b.String()
	if len(out) > MaxMemberNameLen {
		out = strings.TrimRight(out[:MaxMemberNameLen], "-")
	}
	return out
}

// appendName appends the optional trailing name field: nothing for no
// name, so that a record without a name is encoded exactly as before
// names existed (and nodes that predate them still accept it).
func appendName(b []byte, name string) []byte {
	if name == "" {
		return b
	}
	return appendBytes(b, []byte(name))
}

// decodeName reads the optional trailing name field: present when bytes
// are left, then a valid, non-empty name.
func decodeName(d *decoder) string {
	if d.err != nil || len(d.b) == 0 {
		return ""
	}
	raw := d.bytes(MaxMemberNameLen, "name")
	if d.err != nil {
		return ""
	}
	if err := ValidName(string(raw)); err != nil {
		d.fail("name: %v", err)
		return ""
	}
	return string(raw)
}
