package test

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/internal/deptest"
)

const harnessImportPath = "github.com/hardphone/hardphone/test"

// TestDeps: the harness drives binaries and servers; it imports nothing of
// ours. (It imports testing by design, so Imports, not Check or Only.)
func TestDeps(t *testing.T) {
	deptest.Imports(t)
}

// TestNoProductionImports enforces that only _test.go files import the
// harness: production code never links Kamailio, baresip or SIPp helpers.
func TestNoProductionImports(t *testing.T) {
	root := moduleRoot(t)
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == root {
				return nil
			}
			if name := d.Name(); strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor" {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir // another module
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			// The parser only accepts well-quoted import paths.
			if p, _ := strconv.Unquote(imp.Path.Value); p == harnessImportPath {
				// path is under root by construction.
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s imports %s, which only _test.go files may", rel, harnessImportPath)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
}

// moduleRoot finds the directory of go.mod above the working directory, which
// go test sets to the package directory.
func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("Getwd error %v", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skipf("no go.mod above the working directory; run under go test")
		}
		dir = parent
	}
}
