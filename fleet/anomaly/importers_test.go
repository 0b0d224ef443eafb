package anomaly

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const modulePath = "github.com/hardphone/hardphone"

// TestImporters enforces the doc comment: outside tests, only fleet/...
// and cmd/hpfleet import the detector (the phone never links server
// code), and nothing imports the simulator (evaluation code).
func TestImporters(t *testing.T) {
	root := moduleRoot(t)
	fset := token.NewFileSet()
	self := modulePath + "/fleet/anomaly"
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
		rel, err := filepath.Rel(root, filepath.Dir(path))
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			// The parser only accepts well-quoted import paths.
			p, _ := strconv.Unquote(imp.Path.Value)
			switch {
			case p == self+"/sim":
				t.Errorf("%s imports %s; only tests may", filepath.Join(rel, filepath.Base(path)), p)
			case p == self || strings.HasPrefix(p, self+"/"):
				if rel != "fleet" && !strings.HasPrefix(rel, "fleet/") && rel != "cmd/hpfleet" {
					t.Errorf("%s imports %s; only fleet/... and cmd/hpfleet may", filepath.Join(rel, filepath.Base(path)), p)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
}

// moduleRoot finds the directory of go.mod above the working directory,
// which go test sets to the package directory.
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
			t.Fatalf("no go.mod above %s", dir)
		}
		dir = parent
	}
}
