package overlay

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// pureDirs are overlay's pure packages: the logic that the daemon, the
// tests and the simulator share. They do no I/O and keep no time of their
// own, so they run the same anywhere: callers pass the time and do the I/O.
var pureDirs = []string{"bounds", "netrec", "relaychoice", "social", "vswitch"}

// forbiddenImports would give a pure package I/O, locks or goroutine
// plumbing (net/netip is fine: it is only address arithmetic).
var forbiddenImports = map[string]bool{
	"os": true, "os/exec": true, "os/signal": true, "net": true, "net/http": true,
	"sync": true, "sync/atomic": true, "syscall": true, "io/ioutil": true,
	"golang.org/x/sys/unix": true, "github.com/libp2p/go-libp2p/core/host": true,
	"github.com/libp2p/go-libp2p/core/network": true,
}

// TestPurePackages reads the pure packages' source, as tailscale's deptest
// does, and fails on a forbidden import, a go statement or a call of
// time.Now, time.Since, time.Sleep, time.After or a timer.
func TestPurePackages(t *testing.T) {
	for _, dir := range pureDirs {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("%s: no Go files (%v)", dir, err)
		}
		fs := token.NewFileSet()
		for _, name := range files {
			if strings.HasSuffix(name, "_test.go") {
				continue
			}
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			f, err := parser.ParseFile(fs, name, src, 0)
			if err != nil {
				t.Fatal(err)
			}
			timeName := ""
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				if forbiddenImports[path] {
					t.Errorf("%s imports %s", name, path)
				}
				if path == "time" {
					timeName = "time"
					if imp.Name != nil {
						timeName = imp.Name.Name
					}
				}
			}
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.GoStmt:
					t.Errorf("%s: go statement", fs.Position(n.Pos()))
				case *ast.SelectorExpr:
					if id, ok := n.X.(*ast.Ident); ok && timeName != "" && id.Name == timeName {
						switch n.Sel.Name {
						case "Now", "Since", "Until", "Sleep", "After", "AfterFunc", "NewTimer", "NewTicker", "Tick":
							t.Errorf("%s: time.%s (callers pass the time)", fs.Position(n.Pos()), n.Sel.Name)
						}
					}
				}
				return true
			})
		}
	}
}
