package consoleclient

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hardphone/hardphone/crypto/policy"
	"github.com/hardphone/hardphone/fleet/console/consoleapi"
)

// DefaultTimeout bounds one request, connection included.
const DefaultTimeout = 30 * time.Second

// UserAgent is what the client sends: the server binds the session to it
// (and to the client's network).
const UserAgent = "hpctl-console/1"

// ErrNotLoggedIn: a call that needs a session before Login and a second
// factor.
var ErrNotLoggedIn = errors.New("console: not logged in")

// Config says which server to talk to and who we are.
type Config struct {
	// URL is the server's base, "https://NAME[:PORT]"; required.
	URL string
	// ServerName is the name the server's certificate must carry; ""
	// means the URL's host.
	ServerName string
	// Roots are the server CA(s); required.
	Roots *x509.CertPool
	// Certificate is the admin's client certificate (an admin CA's, its
	// common name the admin's login name); required.
	Certificate *tls.Certificate
	// DialAddr, when set ("HOST:PORT"), is where connections go instead
	// of the URL's host. It changes nothing about what the server must
	// prove.
	DialAddr string
	// Timeout bounds one request; zero means DefaultTimeout.
	Timeout time.Duration
}

// Client talks to one console as one admin. It is safe for concurrent
// use.
type Client struct {
	base *url.URL
	hc   *http.Client

	mu sync.Mutex
	// token is the session token (pending or full); guarded by mu.
	token token
}

// token is a session token; it never prints.
type token string

func (token) LogValue() slog.Value { return slog.StringValue("REDACTED") }
func (token) String() string       { return "REDACTED" }
func (token) GoString() string     { return "REDACTED" }

// New builds a client. The URL must be https.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("console client: URL: %w", err)
	}
	if u.Scheme != "https" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("console client: URL %q: want https://HOST[:PORT] and nothing else", cfg.URL)
	}
	if cfg.Certificate == nil {
		return nil, errors.New("console client: no admin client certificate")
	}
	name := cfg.ServerName
	if name == "" {
		name = u.Hostname()
	}
	tc, err := policy.ClientConfig(policy.ClientTLS{Roots: cfg.Roots, ServerName: name, Certificate: cfg.Certificate})
	if err != nil {
		return nil, fmt.Errorf("console client: %w", err)
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, TLSHandshakeTimeout: timeout,
		ResponseHeaderTimeout: timeout, IdleConnTimeout: 90 * time.Second, MaxIdleConnsPerHost: 2,
		MaxResponseHeaderBytes: 64 << 10, DialContext: d.DialContext, Proxy: nil}
	if cfg.DialAddr != "" {
		if _, _, err := net.SplitHostPort(cfg.DialAddr); err != nil {
			return nil, fmt.Errorf("console client: dial address %q: %w", cfg.DialAddr, err)
		}
		addr := cfg.DialAddr
		tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}
	}
	return &Client{base: &url.URL{Scheme: "https", Host: u.Host}, hc: &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}, nil
}

func (c *Client) getToken() token {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

func (c *Client) setToken(t string) {
	c.mu.Lock()
	c.token = token(t)
	c.mu.Unlock()
}

// do sends a request and decodes a 2xx JSON answer into out (nil: none).
func (c *Client) do(ctx context.Context, method, path string, query url.Values, in, out any) error {
	u := *c.base
	u.Path = path
	u.RawQuery = query.Encode()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("User-Agent", UserAgent)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if t := c.getToken(); t != "" {
		req.Header.Set("Authorization", "Bearer "+string(t))
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, consoleapi.MaxResponse+1))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if len(b) > consoleapi.MaxResponse {
		return fmt.Errorf("%s %s: answer over %d bytes", method, path, consoleapi.MaxResponse)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s %s: %w", method, path, apiError(resp, b))
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: answer: %w", method, path, err)
	}
	return nil
}

// maxErrorMessage bounds an error message kept from the server.
const maxErrorMessage = 512

func apiError(resp *http.Response, b []byte) *consoleapi.Error {
	var eb consoleapi.ErrorBody
	if err := json.Unmarshal(b, &eb); err == nil && eb.Error != nil && eb.Error.Code != "" {
		e := eb.Error
		e.Status = resp.StatusCode
		if len(e.Message) > maxErrorMessage {
			e.Message = e.Message[:maxErrorMessage]
		}
		if e.RetryAfter == 0 {
			e.RetryAfter, _ = strconv.Atoi(resp.Header.Get("Retry-After")) // absent or malformed: 0
		}
		return e
	}
	return &consoleapi.Error{Code: consoleapi.CodeInternal, Status: resp.StatusCode,
		Message: "HTTP " + strconv.Itoa(resp.StatusCode) + " without an error body"}
}

// Login sends the name and password (the name must be the client
// certificate's common name). The answer says what comes next: a TOTP
// code (ProveTOTP) or, for an admin without a second factor, TOTP
// enrolment (EnrolTOTP).
func (c *Client) Login(ctx context.Context, name, password string) (consoleapi.LoginResponse, error) {
	c.setToken("")
	var out consoleapi.LoginResponse
	if err := c.do(ctx, http.MethodPost, consoleapi.PathLogin, nil, consoleapi.LoginRequest{Name: name, Password: password}, &out); err != nil {
		return out, err
	}
	c.setToken(out.Token)
	out.Token = ""
	return out, nil
}

// SessionToken returns the session token after a full login (Login and a
// second factor): a secret, for a file only its owner reads (hpctl's
// --session), never for a log. "" before.
func (c *Client) SessionToken() string {
	return string(c.getToken())
}

// ProveTOTP finishes a login with a TOTP code.
func (c *Client) ProveTOTP(ctx context.Context, code string) error {
	return c.code(ctx, consoleapi.PathLoginTOTP, code)
}

// StepUp proves a fresh TOTP code on the session: before a privileged
// call (CodeStepUp), or after moving to another network
// (CodeSecondFactor).
func (c *Client) StepUp(ctx context.Context, code string) error {
	return c.code(ctx, consoleapi.PathStepUp, code)
}

func (c *Client) code(ctx context.Context, path, code string) error {
	if c.getToken() == "" {
		return ErrNotLoggedIn
	}
	var out consoleapi.TokenResponse
	if err := c.do(ctx, http.MethodPost, path, nil, consoleapi.CodeRequest{Code: code}, &out); err != nil {
		return err
	}
	c.setToken(out.Token)
	return nil
}

// EnrolTOTP starts TOTP enrolment: the secret for the admin's app.
func (c *Client) EnrolTOTP(ctx context.Context) (consoleapi.TOTPEnrolment, error) {
	var out consoleapi.TOTPEnrolment
	if c.getToken() == "" {
		return out, ErrNotLoggedIn
	}
	err := c.do(ctx, http.MethodPost, consoleapi.PathEnrolTOTP, nil, struct{}{}, &out)
	return out, err
}

// ConfirmTOTP finishes enrolment with a code from the new secret; the
// session is then a full one.
func (c *Client) ConfirmTOTP(ctx context.Context, code string) error {
	return c.code(ctx, consoleapi.PathEnrolTOTPFinish, code)
}

// Logout ends the session.
func (c *Client) Logout(ctx context.Context) error {
	if c.getToken() == "" {
		return nil
	}
	err := c.do(ctx, http.MethodPost, consoleapi.PathLogout, nil, struct{}{}, nil)
	c.setToken("")
	return err
}

// Session says who the session is and what it may do.
func (c *Client) Session(ctx context.Context) (consoleapi.Session, error) {
	var out consoleapi.Session
	err := c.do(ctx, http.MethodGet, consoleapi.PathSession, nil, nil, &out)
	return out, err
}

// Devices returns one page of the inventory; after is the previous page's
// Next ("" for the first).
func (c *Client) Devices(ctx context.Context, after string) (consoleapi.DevicePage, error) {
	var out consoleapi.DevicePage
	q := url.Values{}
	if after != "" {
		q.Set("after", after)
	}
	err := c.do(ctx, http.MethodGet, consoleapi.PathDevices, q, nil, &out)
	return out, err
}

// DeviceEvents returns a device's security events, newest first.
func (c *Client) DeviceEvents(ctx context.Context, id string) ([]consoleapi.Event, error) {
	var out []consoleapi.Event
	err := c.do(ctx, http.MethodGet, withID(consoleapi.PathDeviceEvents, id), nil, nil, &out)
	return out, err
}

// Audit returns up to 100 audit entries below index before (0: the end),
// newest first, and the log's verification state.
func (c *Client) Audit(ctx context.Context, before int64) (consoleapi.AuditPage, error) {
	var out consoleapi.AuditPage
	q := url.Values{}
	if before > 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	err := c.do(ctx, http.MethodGet, consoleapi.PathAudit, q, nil, &out)
	return out, err
}

// MaxExport bounds the audit export AuditExport copies.
const MaxExport = 1 << 30

// AuditExport streams the whole audit log in fleet/audit's export format
// to w (for audit.Verify), at most MaxExport bytes.
func (c *Client) AuditExport(ctx context.Context, w io.Writer) (int64, error) {
	u := *c.base
	u.Path = consoleapi.PathAuditExport
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return 0, fmt.Errorf("audit export: %w", err)
	}
	req.Header.Set("User-Agent", UserAgent)
	if t := c.getToken(); t != "" {
		req.Header.Set("Authorization", "Bearer "+string(t))
	}
	// The export may take longer than one request's timeout: the
	// caller's context bounds it.
	hc := *c.hc
	hc.Timeout = 0
	resp, err := hc.Do(req)
	if err != nil {
		return 0, fmt.Errorf("audit export: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10)) // best effort: the status says enough
		return 0, fmt.Errorf("audit export: %w", apiError(resp, b))
	}
	n, err := io.Copy(w, io.LimitReader(resp.Body, MaxExport+1))
	if err != nil {
		return n, fmt.Errorf("audit export: %w", err)
	}
	if n > MaxExport {
		return n, fmt.Errorf("audit export: over %d bytes", MaxExport)
	}
	return n, nil
}

// Admins lists the admins.
func (c *Client) Admins(ctx context.Context) ([]consoleapi.Admin, error) {
	var out []consoleapi.Admin
	err := c.do(ctx, http.MethodGet, consoleapi.PathAdmins, nil, nil, &out)
	return out, err
}

// ProposeAdmin proposes a new admin; it exists once a second admin
// approves.
func (c *Client) ProposeAdmin(ctx context.Context, name, role, password string) (consoleapi.Change, error) {
	var out consoleapi.Change
	err := c.do(ctx, http.MethodPost, consoleapi.PathAdmins, nil, consoleapi.ProposeAdmin{Name: name, Role: role, Password: password}, &out)
	return out, err
}

// ProposeRole proposes a role change of admin id.
func (c *Client) ProposeRole(ctx context.Context, id, role string) (consoleapi.Change, error) {
	var out consoleapi.Change
	err := c.do(ctx, http.MethodPost, withID(consoleapi.PathAdminRole, id), nil, consoleapi.ProposeRole{Role: role}, &out)
	return out, err
}

// ProposeDisable proposes disabling admin id.
func (c *Client) ProposeDisable(ctx context.Context, id string) (consoleapi.Change, error) {
	var out consoleapi.Change
	err := c.do(ctx, http.MethodPost, withID(consoleapi.PathAdminDisable, id), nil, struct{}{}, &out)
	return out, err
}

// Approvals lists pending changes, then decided ones.
func (c *Client) Approvals(ctx context.Context) ([]consoleapi.Change, error) {
	var out []consoleapi.Change
	err := c.do(ctx, http.MethodGet, consoleapi.PathApprovals, nil, nil, &out)
	return out, err
}

// Approve approves change id (not one's own, not one about oneself).
func (c *Client) Approve(ctx context.Context, id string) (consoleapi.Change, error) {
	var out consoleapi.Change
	err := c.do(ctx, http.MethodPost, withID(consoleapi.PathApprove, id), nil, struct{}{}, &out)
	return out, err
}

// Refuse refuses (or withdraws one's own) change id.
func (c *Client) Refuse(ctx context.Context, id, reason string) (consoleapi.Change, error) {
	var out consoleapi.Change
	err := c.do(ctx, http.MethodPost, withID(consoleapi.PathRefuse, id), nil, consoleapi.Refusal{Reason: reason}, &out)
	return out, err
}

// withID fills a path's {id}; the URL escapes it when sent.
func withID(path, id string) string {
	return strings.Replace(path, "{id}", id, 1)
}
