package system

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/agent/fleetconfig"
	"github.com/hardphone/hardphone/agent/store"
	"github.com/hardphone/hardphone/agent/uptane"
	"github.com/hardphone/hardphone/test"
)

// TestDownloadTarget: a bundle from the image repository's server (nginx,
// untrusted) is kept only when it is exactly what the metadata says; a
// refused one leaves nothing behind, and one the board cannot take is not
// even asked for.
func TestDownloadTarget(t *testing.T) {
	ngx := test.StartStaticNginx(t)
	good := bytes.Repeat([]byte("hardphone bundle "), 4096)
	files := map[string][]byte{
		"good.raucb":  good,
		"other.raucb": bytes.Repeat([]byte("hardphone bundlE "), 4096), // same length, other bytes
		"long.raucb":  append(append([]byte(nil), good...), "trailing"...),
		"short.raucb": good[:len(good)-1],
	}
	if err := os.MkdirAll(filepath.Join(ngx.Root, "targets"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(ngx.Root, "targets", name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	target := func(name string) uptane.Target {
		return uptane.Target{Name: name, Path: "targets/" + name, Length: int64(len(good)), SHA256: sha256.Sum256(good)}
	}
	dir := t.TempDir()
	client := &http.Client{Timeout: 10 * time.Second}
	log := slog.New(slog.DiscardHandler)
	for _, tt := range []struct {
		name   string
		limit  int64
		want   string
		mismat bool
	}{
		{"other.raucb", 1 << 20, "sha256 differs", true},
		{"long.raucb", 1 << 20, "announced", true},
		{"short.raucb", 1 << 20, "bytes, want", true},
		{"missing.raucb", 1 << 20, "404", false},
		{"good.raucb", 1000, "a slot of this board takes at most 1000", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := downloadTarget(context.Background(), client, ngx.URL+"/", target(tt.name), dir, tt.limit, log)
			if err == nil || !strings.Contains(err.Error(), tt.want) || tt.mismat != errors.Is(err, uptane.ErrTargetMismatch) {
				t.Fatalf("downloadTarget(%s) = %v, want %q (mismatch %v)", tt.name, err, tt.want, tt.mismat)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("downloadTarget(%s) left %d files", tt.name, len(entries))
			}
		})
	}
	path, err := downloadTarget(context.Background(), client, ngx.URL+"/", target("good.raucb"), dir, 1<<20, log)
	if err != nil {
		t.Fatalf("downloadTarget(good) = %v", err)
	}
	if b, err := os.ReadFile(path); err != nil || !bytes.Equal(b, good) {
		t.Fatalf("downloaded %d bytes, %v; want the bundle", len(b), err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("downloaded file mode %v, %v; want private", fi.Mode(), err)
	}
}

// imageConfig is a fleet phone's image config following the repositories
// (nothing here is opened but the state file).
const imageConfig = `state_dir = "state"
credential_store = "software:kek"
[tls]
ca_file = "ca.pem"
[provision]
server = "https://fleet.example.com"
server_ca = "fleet-ca.pem"
device_ca = "device-ca.pem"
image_root = "image-root.json"
director_root = "director-root.json"
image_repo = "http://mirror.example.com/image/"
[[account]]
user = "alice"
registrar = "127.0.0.1:5061"
password_cred = "sip/alice"
`

// TestOpenDaemon: the phone runs the image's config with the current
// fleet document merged over it; a document that did not build an agent
// is left out, the previous good one taking the place of one on trial.
func TestOpenDaemon(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hardphone.toml")
	if err := os.WriteFile(path, []byte(imageConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	image, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	seed := func(f func(*fleetconfig.Store)) {
		t.Helper()
		st, err := store.Open(filepath.Join(dir, "state"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := fleetconfig.Open(st.DB())
		if err != nil {
			t.Fatal(err)
		}
		f(s)
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	open := func(skip error) *Phone {
		t.Helper()
		p, err := OpenDaemon(image, nil, skip)
		if err != nil {
			t.Fatalf("OpenDaemon = %v", err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	p := open(nil)
	if p.FleetRunning() != 0 || p.Config().MaxCalls != 8 {
		t.Fatalf("no document: running v%d, max_calls %d; want the image's config", p.FleetRunning(), p.Config().MaxCalls)
	}
	p.Close()
	seed(func(s *fleetconfig.Store) {
		for _, v := range []uint64{1, 2} {
			if _, err := s.Apply(fleetconfig.Doc{Version: v, Data: []byte("max_calls = " + string(rune('0'+v)) + "\n")}, []string{"alice"}, time.Now()); err != nil {
				t.Fatal(err)
			}
			if v == 1 {
				if _, err := s.MarkGood(); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
	for _, tt := range []struct {
		name     string
		skip     error
		running  uint64
		maxCalls int
		trial    bool
	}{
		{"v2 on trial", nil, 2, 2, true},
		{"v2 did not build: v1 in its place", errors.New("boom"), 1, 1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := open(tt.skip)
			if p.FleetRunning() != tt.running || p.Config().MaxCalls != tt.maxCalls || p.FleetTrial() != tt.trial {
				t.Fatalf("OpenDaemon(skip %v): running v%d, max_calls %d, trial %v; want v%d, %d, %v",
					tt.skip, p.FleetRunning(), p.Config().MaxCalls, p.FleetTrial(), tt.running, tt.maxCalls, tt.trial)
			}
			p.Close()
		})
	}
	// A good document that does not merge over this image (an image-only
	// key slipped into the record) leaves the image's config alone.
	seed(func(s *fleetconfig.Store) {
		if _, err := s.MarkGood(); err != nil {
			t.Fatal(err)
		}
	})
	db, err := bolt.Open(filepath.Join(dir, "state", store.FileName), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte("fleetconfig"))
		v := b.Get([]byte("state"))
		return b.Put([]byte("state"), bytes.Replace(v, []byte(`"version":2,"data":"`), []byte(`"version":2,"data":"W3Rsc10K`), 1))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	p = open(nil)
	if p.FleetRunning() != 0 || p.fleet.err == "" || p.Config().MaxCalls != 8 {
		t.Fatalf("a document that does not merge: running v%d (%q), max_calls %d; want the image's config with the reason", p.FleetRunning(), p.fleet.err, p.Config().MaxCalls)
	}
}
