package alert

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hardphone/hardphone/crypto/policy"
	"github.com/hardphone/hardphone/fleet/anomaly"
)

// Webhook headers.
const (
	// HeaderFinding carries the finding's ID.
	HeaderFinding = "Hardphone-Finding"
	// HeaderSignature carries "sha256=" and the hex HMAC-SHA256 of the
	// body under the shared secret, when one is set.
	HeaderSignature = "Hardphone-Signature"
	// maxAnswer bounds what is read of the receiver's answer.
	maxAnswer = 4096
)

// WebhookConfig says where findings are POSTed.
type WebhookConfig struct {
	// URL is https://...; required.
	URL string
	// Roots verify the receiver's certificate; nil uses the system's.
	Roots *x509.CertPool
	// Secret, when set (at least 16 bytes), signs each body
	// (HeaderSignature), so the receiver can tell the fleet from anyone
	// who learnt its URL.
	Secret []byte
	// Timeout bounds one POST (default 30 s).
	Timeout time.Duration
}

// Webhook POSTs findings as JSON (fleet/anomaly's Finding).
type Webhook struct {
	url    string
	hc     *http.Client
	secret []byte
	log    *slog.Logger
}

// LogValue keeps the secret out of logs.
func (w *Webhook) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// NewWebhook checks the configuration; log may be nil (discard).
func NewWebhook(c WebhookConfig, log *slog.Logger) (*Webhook, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u, err := url.Parse(c.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("webhook: URL %.120q: want https://HOST[:PORT]/PATH without credentials", c.URL)
	}
	if c.Secret != nil && len(c.Secret) < 16 {
		return nil, errors.New("webhook: secret shorter than 16 bytes")
	}
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	roots := c.Roots
	if roots == nil {
		if roots, err = x509.SystemCertPool(); err != nil {
			return nil, fmt.Errorf("webhook: system CAs: %w", err)
		}
	}
	tc, err := policy.ClientConfig(policy.ClientTLS{Roots: roots, ServerName: u.Hostname()})
	if err != nil {
		return nil, fmt.Errorf("webhook: %w", err)
	}
	return &Webhook{url: u.String(), secret: append([]byte(nil), c.Secret...), log: log.With("component", "alert_webhook", "url", u.Redacted()),
		hc: &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: tc, Proxy: nil, MaxIdleConnsPerHost: 2,
			ResponseHeaderTimeout: timeout},
			// A redirect would send the finding somewhere the admin did
			// not choose.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

// Sign is the HeaderSignature value of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Alert implements anomaly.Alerter: delivered when the receiver answers
// 2xx.
func (w *Webhook) Alert(ctx context.Context, f anomaly.Finding) error {
	body, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("webhook: finding %d: %w", f.ID, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderFinding, strconv.FormatUint(f.ID, 10))
	if w.secret != nil {
		req.Header.Set(HeaderSignature, Sign(w.secret, body))
	}
	resp, err := w.hc.Do(req)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	// The answer is read (bounded) so the connection can be reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswer))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%w: webhook answered %s", ErrRefused, resp.Status)
	}
	return nil
}
