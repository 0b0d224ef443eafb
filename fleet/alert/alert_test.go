package alert

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/anomaly"
)

func finding() anomaly.Finding {
	return anomaly.Finding{ID: 7, Rule: anomaly.RuleFleetProbe, Severity: anomaly.SeverityWarning,
		Time:    time.Date(2025, 3, 4, 2, 0, 0, 0, time.UTC),
		Devices: []string{"dev-0123456789abcdef0123456789abcdef", "dev-fedcba9876543210fedcba9876543210"},
		Source:  netip.MustParsePrefix("203.0.113.0/24"), Summary: `203.0.113.0/24 probed 5 devices "x]\y"` + "\n",
		Responses: []anomaly.Response{{Kind: anomaly.ResponseAlert, Rule: anomaly.RuleFleetProbe, Finding: 7}}}
}

// TestFormatSyslog: the message is RFC 5424 with the finding in
// structured data, §6.3.3's characters escaped, no control character in
// MSG.
func TestFormatSyslog(t *testing.T) {
	at := time.Date(2025, 3, 4, 2, 0, 1, 123456000, time.UTC)
	msg, err := FormatSyslog(finding(), "hp fleet\x01", at)
	if err != nil {
		t.Fatalf("FormatSyslog = %v", err)
	}
	s := string(msg)
	tests := []struct{ name, want string }{
		{"PRI: log alert, warning", "<116>1 "},
		{"timestamp", " 2025-03-04T02:00:01.123456Z "},
		{"host without spaces or controls", " hpfleet hpfleet - anomaly.fleet.probe "},
		{"source", `source="203.0.113.0/24"`},
		{"devices", `devices="dev-0123456789abcdef0123456789abcdef,dev-fedcba9876543210fedcba9876543210"`},
		{"id and response", `[finding@32473 id="7" rule="fleet.probe" severity="warning"`},
		{"response", `response="alert"`},
	}
	for _, tt := range tests {
		if !strings.Contains(s, tt.want) {
			t.Errorf("FormatSyslog() = %q, want %s %q", s, tt.name, tt.want)
		}
	}
	if strings.ContainsAny(s, "\n\x01") {
		t.Errorf("FormatSyslog() = %q has a control character", s)
	}
	f := finding()
	f.Severity = 9
	if _, err := FormatSyslog(f, "h", at); err == nil {
		t.Errorf("FormatSyslog(severity 9) = nil error")
	}
	f = finding()
	f.Rule = strings.Repeat("r", 40)
	if msg, _ := FormatSyslog(f, "h", at); !strings.Contains(string(msg), " anomaly."+strings.Repeat("r", 24)+" ") {
		t.Errorf("FormatSyslog(long rule) = %q, want the MSGID cut to 32", msg)
	}
}

// receiver is a real HTTPS server standing for the webhook's.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	bodies [][]byte
	sigs   []string
	status int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{status: http.StatusNoContent}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body) // a short read fails the test's checks
		r.mu.Lock()
		r.bodies, r.sigs = append(r.bodies, b), append(r.sigs, req.Header.Get(HeaderSignature))
		status := r.status
		r.mu.Unlock()
		if req.URL.Path == "/moved" {
			http.Redirect(w, req, "/elsewhere", http.StatusFound)
			return
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) roots() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(r.srv.Certificate())
	return p
}

// TestWebhook: a finding is POSTed as JSON with its HMAC; a refusal, a
// redirect and an untrusted server are errors.
func TestWebhook(t *testing.T) {
	r := newReceiver(t)
	secret := []byte("0123456789abcdef0123")
	w, err := NewWebhook(WebhookConfig{URL: r.srv.URL + "/findings", Roots: r.roots(), Secret: secret}, nil)
	if err != nil {
		t.Fatalf("NewWebhook = %v", err)
	}
	if err := w.Alert(context.Background(), finding()); err != nil {
		t.Fatalf("Alert = %v", err)
	}
	var got anomaly.Finding
	if err := json.Unmarshal(r.bodies[0], &got); err != nil || got.ID != 7 || got.Source != finding().Source {
		t.Fatalf("received %s (%v), want finding 7", r.bodies[0], err)
	}
	if r.sigs[0] != Sign(secret, r.bodies[0]) {
		t.Fatalf("signature %q, want %q", r.sigs[0], Sign(secret, r.bodies[0]))
	}
	r.mu.Lock()
	r.status = http.StatusInternalServerError
	r.mu.Unlock()
	if err := w.Alert(context.Background(), finding()); !errors.Is(err, ErrRefused) {
		t.Fatalf("Alert(500) = %v, want ErrRefused", err)
	}
	moved, err := NewWebhook(WebhookConfig{URL: r.srv.URL + "/moved", Roots: r.roots()}, nil)
	if err != nil {
		t.Fatalf("NewWebhook = %v", err)
	}
	if err := moved.Alert(context.Background(), finding()); !errors.Is(err, ErrRefused) {
		t.Fatalf("Alert(redirect) = %v, want ErrRefused (not followed)", err)
	}
	stranger, err := NewWebhook(WebhookConfig{URL: r.srv.URL + "/findings", Roots: x509.NewCertPool()}, nil)
	if err != nil {
		t.Fatalf("NewWebhook = %v", err)
	}
	if err := stranger.Alert(context.Background(), finding()); err == nil {
		t.Fatalf("Alert(untrusted server) = nil")
	}
	for _, c := range []WebhookConfig{{URL: "http://127.0.0.1/x"}, {URL: "https://u:p@127.0.0.1/x"}, {URL: "https://127.0.0.1/x", Secret: []byte("short")}} {
		if _, err := NewWebhook(c, nil); err == nil {
			t.Errorf("NewWebhook(%+v) = nil error", c)
		}
	}
}

// TestWebhookLogValue: a logged webhook shows no secret.
func TestWebhookLogValue(t *testing.T) {
	w, err := NewWebhook(WebhookConfig{URL: "https://127.0.0.1/x", Roots: x509.NewCertPool(), Secret: []byte("0123456789abcdef-secret")}, nil)
	if err != nil {
		t.Fatalf("NewWebhook = %v", err)
	}
	if got := w.LogValue().String(); got != "REDACTED" {
		t.Fatalf("LogValue() = %q, want REDACTED", got)
	}
}
