package server

import (
	"crypto/x509"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/store/boltstore"
	"github.com/hardphone/hardphone/test"
)

// TestConsoleMount: the console's handler gets exactly the console's
// prefixes; without one they answer like any unknown path.
func TestConsoleMount(t *testing.T) {
	dir := initPKI(t)
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatalf("boltstore.Open error %v", err)
	}
	t.Cleanup(func() { st.Close() })
	dca, err := ca.Load(filepath.Join(dir, ca.DeviceCACertFile), filepath.Join(dir, ca.DeviceCAKeyFile))
	if err != nil {
		t.Fatalf("load device CA: %v", err)
	}
	adminCA, err := ca.LoadCertificate(filepath.Join(dir, ca.AdminCACertFile))
	if err != nil {
		t.Fatalf("load admin CA: %v", err)
	}
	mfg := test.NewManufacturerCA(t, filepath.Join(t.TempDir(), "mfg"))
	var got []string
	console := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.URL.Path)
		w.WriteHeader(http.StatusTeapot)
	})
	build := func(h http.Handler) *Server {
		s, err := New(Config{Store: st, DeviceCA: dca, ManufacturerRoots: []*x509.Certificate{mfg.Cert},
			AdminCAs: []*x509.Certificate{adminCA}, Console: h})
		if err != nil {
			t.Fatalf("New error %v", err)
		}
		return s
	}
	with, without := build(console), build(nil)
	tests := []struct {
		path          string
		with, without int
	}{
		{"/console/", http.StatusTeapot, http.StatusNotFound},
		{"/console/login", http.StatusTeapot, http.StatusNotFound},
		{"/v1/console/session", http.StatusTeapot, http.StatusNotFound},
		{"/consolex", http.StatusNotFound, http.StatusNotFound},
		{"/v1/health", http.StatusOK, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			for _, c := range []struct {
				s    *Server
				want int
			}{{with, tt.with}, {without, tt.without}} {
				w := httptest.NewRecorder()
				c.s.Handler().ServeHTTP(w, httptest.NewRequest("GET", tt.path, nil))
				if w.Code != c.want {
					t.Errorf("GET %s (console %v) = %d, want %d", tt.path, c.s.console != nil, w.Code, c.want)
				}
			}
		})
	}
	if len(got) != 3 {
		t.Errorf("console handler saw %q, want the 3 console paths", got)
	}
}
