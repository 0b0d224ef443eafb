package console

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

// TestImporters enforces the doc comments: outside tests, the console and
// its stores are imported by fleet/... and cmd/hpfleet only; its wire
// format and client also by cmd/hpctl. The phone never links any of it.
func TestImporters(t *testing.T) {
	root := moduleRoot(t)
	fset := token.NewFileSet()
	self := modulePath + "/fleet/console"
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == root {
				return nil
			}
			if name := d.Name(); strings.HasPrefix(name, ".") || name == "testdata" || name == "vendor" || name == "out" {
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
		if rel == "fleet" || strings.HasPrefix(rel, "fleet/") || rel == "cmd/hpfleet" {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		for _, imp := range f.Imports {
			// The parser only accepts well-quoted import paths.
			p, _ := strconv.Unquote(imp.Path.Value)
			if p != self && !strings.HasPrefix(p, self+"/") {
				continue
			}
			client := p == self+"/consoleapi" || p == self+"/consoleclient"
			if !client || rel != "cmd/hpctl" {
				t.Errorf("%s imports %s; only fleet/... and cmd/hpfleet may (cmd/hpctl the wire format and client)",
					filepath.Join(rel, filepath.Base(path)), p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walk %s: %v", root, err)
	}
}
