package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWriteFileReplacesAtomicallyWithMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "sub")
	p := filepath.Join(dir, "f")
	if err := WriteFile(p, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(p, []byte("two"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil || string(b) != "two" {
		t.Fatalf("read %q, %v; want two", b, err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("leftover temp files: %v", ents)
	}
}

func TestRemoveStale(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "identity.key")
	if err := WriteFile(keep, []byte("k"), 0o600); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * staleAfter)
	for _, n := range []string{".identity.key.tmp-123", ".peers.json.tmp-9"} {
		os.WriteFile(filepath.Join(dir, n), []byte("partial"), 0o600)
		os.Chtimes(filepath.Join(dir, n), old, old)
	}
	// A write in progress (a fresh temporary file) is left alone.
	os.WriteFile(filepath.Join(dir, ".networks.json.tmp-5"), []byte("writing"), 0o600)
	os.WriteFile(filepath.Join(dir, "tmp-not-ours"), nil, 0o600)
	if n := RemoveStale(dir); n != 2 {
		t.Fatalf("removed %d, want 2", n)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 3 {
		t.Fatalf("left %v", ents)
	}
	if RemoveStale(filepath.Join(dir, "missing")) != 0 {
		t.Fatal("missing dir")
	}
}
