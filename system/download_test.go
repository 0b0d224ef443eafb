package system

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/test"
)

// TestDownloadBounded: a server that sends more than a slot can take,
// announced or not, is cut off at the bound and leaves no file behind.
func TestDownloadBounded(t *testing.T) {
	pki := test.NewPKI(t, filepath.Join(t.TempDir(), "pki"))
	certFile, keyFile := pki.Server("127.0.0.1", net.ParseIP("127.0.0.1"))
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/announced.raucb":
			w.Header().Set("Content-Length", "1073741824")
			w.WriteHeader(http.StatusOK)
		case "/endless.raucb":
			for i := 0; i < 64; i++ { // 4 MiB, far past the 1 MiB bound
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		case "/small.raucb":
			_, _ = w.Write(chunk[:1000]) // the client's verdict is what is tested
		}
	})}
	go func() { _ = srv.Serve(ln) }() // ends when the test closes it
	t.Cleanup(func() { srv.Close() })
	dir := t.TempDir()
	base := "https://" + ln.Addr().String()
	for _, tt := range []struct {
		path, want string
	}{
		{"/announced.raucb", "1073741824 bytes announced"},
		{"/endless.raucb", "more than the 1048576 bytes"},
	} {
		_, err := DownloadBundle(context.Background(), DownloadSpec{URL: base + tt.path, CAFile: pki.CAFile, Dir: dir, MaxBytes: 1 << 20}, nil)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("DownloadBundle(%s) = %v, want %q", tt.path, err, tt.want)
		}
	}
	path, err := DownloadBundle(context.Background(), DownloadSpec{URL: base + "/small.raucb", CAFile: pki.CAFile, Dir: dir, MaxBytes: 1 << 20}, nil)
	if err != nil {
		t.Fatalf("DownloadBundle(small) = %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() != 1000 {
		t.Fatalf("downloaded file = %v, %v; want 1000 bytes", fi, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("download dir holds %d files, want only the good download (refused ones removed)", len(entries))
	}
	if _, err := DownloadBundle(context.Background(), DownloadSpec{URL: "http://" + ln.Addr().String() + "/small.raucb", Dir: dir}, nil); err == nil {
		t.Errorf("DownloadBundle(http://) = nil error, want https only")
	}
}
