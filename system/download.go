package system

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"

	"github.com/hardphone/hardphone/crypto/policy"
)

// DownloadBundle fetches an https bundle into a private file in dir, with
// the crypto policy's TLS settings and certificate verification, and
// returns the file's path (the caller removes it).
func DownloadBundle(ctx context.Context, raw, caFile, dir string, log *slog.Logger) (string, error) {
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
	tlsCfg, err := policy.ClientConfig(policy.ClientTLS{Roots: roots, ServerName: u.Hostname()})
	if err != nil {
		return "", err
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment},
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
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "download-*.raucb")
	if err != nil {
		return "", err
	}
	n, err := io.Copy(f, resp.Body)
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
