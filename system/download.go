package system

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/hardphone/hardphone/board"
	"github.com/hardphone/hardphone/crypto/policy"
	"github.com/hardphone/hardphone/hal/blockdev"
)

// DefaultMaxBundle bounds a download when no slot size is known.
const DefaultMaxBundle = 2 << 30

// Download timeouts: to connect and shake hands, and to wait for the
// server's answer; DownloadTimeout bounds the whole transfer.
const (
	dialTimeout     = 15 * time.Second
	headerTimeout   = 30 * time.Second
	DownloadTimeout = 30 * time.Minute
)

// MaxBundleBytes is the largest bundle worth downloading for b: a bundle is
// a slot image plus its verity tree (1/128 of it) and a signature, so a
// bundle over 1.25 × the larger slot cannot install. DefaultMaxBundle when
// the board or its slots' sizes are unknown.
func MaxBundleBytes(b *board.Board) int64 {
	if b == nil || len(b.Slots) == 0 {
		return DefaultMaxBundle
	}
	var slot int64
	for _, s := range b.Slots {
		n := int64(0)
		if b.Disk != nil {
			if p, ok := b.Disk.Partition(s.Partition); ok {
				n = int64(p.SizeMiB) * board.MiB
			}
		} else if size, err := blockdev.Size(s.Device); err == nil {
			n = size
		}
		slot = max(slot, n)
	}
	if slot == 0 {
		return DefaultMaxBundle
	}
	return slot + slot/4
}

// DownloadSpec says what to download and within which bounds.
type DownloadSpec struct {
	// URL is the https address of the bundle.
	URL string
	// CAFile holds the trust anchors (PEM) for the server; "" uses the
	// system's.
	CAFile string
	// Dir receives the file (the data partition: it has room for a slot).
	Dir string
	// MaxBytes bounds the download (MaxBundleBytes); 0 means
	// DefaultMaxBundle.
	MaxBytes int64
	// Now is the clock the server's certificate is checked against (the
	// time floor); nil: time.Now.
	Now func() time.Time
}

// DownloadBundle fetches an https bundle into a private file in Dir, with
// the crypto policy's TLS settings and certificate verification, never more
// than MaxBytes and within DownloadTimeout, and returns the file's path
// (the caller removes it). A download that breaks a bound leaves nothing.
func DownloadBundle(ctx context.Context, spec DownloadSpec, log *slog.Logger) (string, error) {
	log = logOrDiscard(log)
	raw, caFile, dir, limit := spec.URL, spec.CAFile, spec.Dir, spec.MaxBytes
	if limit <= 0 {
		limit = DefaultMaxBundle
	}
	ctx, cancel := context.WithTimeout(ctx, DownloadTimeout)
	defer cancel()
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("bundle URL: %w", err)
	}
	if u.Scheme != "https" {
		return "", fmt.Errorf("bundle URL scheme %q: only https is allowed", u.Scheme)
	}
	roots, err := x509.SystemCertPool()
	if err != nil || caFile != "" {
		roots = x509.NewCertPool()
	}
	if caFile != "" {
		pemData, err := os.ReadFile(caFile)
		if err != nil {
			return "", fmt.Errorf("--ca: %w", err)
		}
		if !roots.AppendCertsFromPEM(pemData) {
			return "", fmt.Errorf("--ca %s: no certificates", caFile)
		}
	}
	tlsCfg, err := policy.ClientConfig(policy.ClientTLS{Roots: roots, ServerName: u.Hostname(), Time: spec.Now})
	if err != nil {
		return "", err
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{Timeout: dialTimeout}).DialContext, TLSHandshakeTimeout: dialTimeout,
		ResponseHeaderTimeout: headerTimeout, MaxResponseHeaderBytes: 64 << 10},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != "https" || req.URL.Hostname() != u.Hostname() || len(via) > 5 {
				return fmt.Errorf("redirect to %s refused: only https on %s", req.URL.Redacted(), u.Hostname())
			}
			return nil
		}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("download bundle: %w", err)
	}
	defer resp.Body.Close()
	if resp.TLS == nil {
		return "", errors.New("download bundle: not a TLS connection")
	}
	if err := policy.CheckTLSState(*resp.TLS); err != nil {
		return "", fmt.Errorf("download bundle: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("download bundle: %s", resp.Status)
	}
	if resp.ContentLength > limit {
		return "", fmt.Errorf("download bundle: %d bytes announced, more than the %d a slot of this board can take", resp.ContentLength, limit)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "download-*.raucb")
	if err != nil {
		return "", err
	}
	n, err := io.Copy(f, io.LimitReader(resp.Body, limit+1))
	if err == nil && n > limit {
		err = fmt.Errorf("more than the %d bytes a slot of this board can take", limit)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("download bundle: %w", err)
	}
	log.Info("bundle downloaded", "component", "update", "url", u.Redacted(), "bytes", n)
	return f.Name(), nil
}
