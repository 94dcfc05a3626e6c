// Package atomicfile writes files so that a crash never leaves a partial file:
// write a temporary file in the same directory, fsync it, rename it over the
// target and fsync the directory.
package atomicfile

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// WriteFile atomically replaces path with data and gives it mode perm.
// The parent directory is created with mode 0700 if missing.
func WriteFile(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+tempMarker+"*")
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("atomicfile: chmod %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("atomicfile: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("atomicfile: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("atomicfile: close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("atomicfile: rename to %s: %w", path, err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// tempMarker is in the name of every temporary file WriteFile creates.
const tempMarker = ".tmp-"

// staleAfter: a temporary file older than this is no write in progress
// (WriteFile holds one for milliseconds) but a crash's leftover.
const staleAfter = time.Minute

// RemoveStale deletes the temporary files that WriteFile calls cut short
// by a crash left in dir (a missing dir is fine), and reports how many it
// removed. Files younger than a minute are left alone: another process
// (kadlan id, say) may be writing one right now.
func RemoveStale(dir string) int { return removeStale(dir, ".") }

// RemoveStaleOf is RemoveStale for the temporary files of path only.
func RemoveStaleOf(path string) int {
	return removeStale(filepath.Dir(path), "."+filepath.Base(path)+tempMarker)
}

// removeStale removes dir's temporary files (".<name>.tmp-<digits>") whose
// name starts with prefix and that are older than staleAfter.
func removeStale(dir, prefix string) int {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		name := e.Name()
		i := strings.LastIndex(name, tempMarker)
		if !e.Type().IsRegular() || !strings.HasPrefix(name, ".") || !strings.HasPrefix(name, prefix) || i < 0 {
			continue
		}
		if suffix := name[i+len(tempMarker):]; suffix == "" || strings.Trim(suffix, "0123456789") != "" {
			continue
		}
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > staleAfter {
			if os.Remove(filepath.Join(dir, name)) == nil {
				n++
			}
		}
	}
	return n
}
