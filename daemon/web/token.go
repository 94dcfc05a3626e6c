package web

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/kadlan/kadlan/internal/atomicfile"
)

// TokenFile is the name of the page's token inside the state dir.
const TokenFile = "web-token.secret"

// tokenBytes is the token's length before hex encoding.
const tokenBytes = 32

// LoadOrCreateToken returns the token kept in path, creating it (32 random
// bytes, hex, mode 0600, written atomically) if the file is missing. The
// token survives restarts, so a bookmarked address keeps working; delete
// the file to change it. A file other users may read is narrowed to 0600.
func LoadOrCreateToken(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		tok := strings.TrimSpace(string(b))
		if !validToken(tok) {
			return "", fmt.Errorf("web token %s is damaged (want %d hex digits): delete it and a new one is made", path, 2*tokenBytes)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return "", fmt.Errorf("web token: %w", err)
			}
		}
		return tok, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("web token: %w", err)
	}
	var raw [tokenBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("web token: %w", err)
	}
	tok := hex.EncodeToString(raw[:])
	if err := atomicfile.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("web token: %w", err)
	}
	return tok, nil
}

func validToken(s string) bool {
	if len(s) != 2*tokenBytes {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}
