package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/hardphone/hardphone/crypto/policy"
	"github.com/hardphone/hardphone/fleet/api"
)

// DefaultTimeout bounds one request, connection included.
const DefaultTimeout = 30 * time.Second

// Config says which server to talk to and how to prove who we are.
type Config struct {
	// URL is the server's base, "https://NAME[:PORT]"; required.
	URL string
	// ServerName is the name the server's certificate must carry; ""
	// means the URL's host. Pinned by the phone's image or the admin's
	// config, never taken from the network.
	ServerName string
	// Roots are the server CA(s); required.
	Roots *x509.CertPool
	// Certificate, or GetCertificate for one that changes (a phone after
	// renewal), is presented when the server asks; nil for enrolment.
	Certificate    *tls.Certificate
	GetCertificate func() (*tls.Certificate, error)
	// DialAddr, when set ("HOST:PORT"), is where connections go instead
	// of the URL's host: an address hint (DHCP option 43/66). It changes
	// nothing about what the server must prove.
	DialAddr string
	// Timeout bounds one request; zero means DefaultTimeout.
	Timeout time.Duration
}

// Client talks to one fleet server. It is safe for concurrent use.
type Client struct {
	base *url.URL
	hc   *http.Client
	tr   *http.Transport
	// session is an admin session token sent as a bearer token, with
	// agent as the User-Agent it is bound to; "" for none (WithSession).
	session, agent string
}

// New builds a client. The URL must be https.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("fleet client: URL: %w", err)
	}
	if u.Scheme != "https" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return nil, fmt.Errorf("fleet client: URL %q: want https://HOST[:PORT] and nothing else", cfg.URL)
	}
	name := cfg.ServerName
	if name == "" {
		name = u.Hostname()
	}
	tc, err := policy.ClientConfig(policy.ClientTLS{Roots: cfg.Roots, ServerName: name,
		Certificate: cfg.Certificate, GetCertificate: cfg.GetCertificate})
	if err != nil {
		return nil, fmt.Errorf("fleet client: %w", err)
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		TLSClientConfig:        tc,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		IdleConnTimeout:        90 * time.Second,
		MaxIdleConnsPerHost:    4,
		MaxResponseHeaderBytes: 64 << 10,
		// No proxy from the environment: the phone talks to its fleet.
		Proxy: nil,
	}
	if cfg.DialAddr != "" {
		if _, _, err := net.SplitHostPort(cfg.DialAddr); err != nil {
			return nil, fmt.Errorf("fleet client: dial address %q: %w", cfg.DialAddr, err)
		}
		addr := cfg.DialAddr
		tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}
	} else {
		tr.DialContext = d.DialContext
	}
	return &Client{base: &url.URL{Scheme: "https", Host: u.Host}, hc: &http.Client{Transport: tr, Timeout: timeout,
		// A fleet server never redirects; following one would send the
		// request somewhere the caller did not choose.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, tr: tr}, nil
}

// CloseIdleConnections closes pooled connections (after a renewal, so the
// next request handshakes with the new certificate).
func (c *Client) CloseIdleConnections() { c.tr.CloseIdleConnections() }

// do sends a request and decodes a 2xx JSON answer into out (nil: none
// expected). A non-2xx answer is an *api.Error.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body []byte, hdr http.Header, out any) error {
	u := *c.base
	u.Path = path
	u.RawQuery = query.Encode()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if c.session != "" {
		req.Header.Set("Authorization", "Bearer "+c.session)
		req.Header.Set("User-Agent", c.agent)
	}
	if body != nil {
		req.Header.Set("Content-Type", api.ContentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, api.MaxResponseBody+1))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if len(b) > api.MaxResponseBody {
		return fmt.Errorf("%s %s: answer over %d bytes", method, path, api.MaxResponseBody)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("%s %s: %w", method, path, apiError(resp.StatusCode, b))
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = b
		return nil
	}
	// Answers may grow fields in a later server: not strict here.
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: answer: %w", method, path, err)
	}
	return nil
}

// apiError decodes an error body, or makes one of the status.
func apiError(status int, b []byte) *api.Error {
	var eb api.ErrorBody
	if err := json.Unmarshal(b, &eb); err == nil && eb.Error != nil && eb.Error.Code != "" {
		e := eb.Error
		e.Status = status
		if len(e.Message) > api.MaxErrorMessage {
			e.Message = e.Message[:api.MaxErrorMessage]
		}
		return e
	}
	code := api.CodeInternal
	switch {
	case status == http.StatusServiceUnavailable || status == http.StatusBadGateway || status == http.StatusGatewayTimeout:
		code = api.CodeUnavailable
	case status == http.StatusTooManyRequests:
		code = api.CodeLimit
	case status >= 400 && status < 500:
		code = api.CodeBadRequest
	}
	return &api.Error{Code: code, Status: status, Message: "HTTP " + strconv.Itoa(status) + " without an error body"}
}

func (c *Client) postJSON(ctx context.Context, path string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("POST %s: %w", path, err)
	}
	return c.do(ctx, http.MethodPost, path, nil, b, nil, out)
}

// Retryable reports whether err is worth trying again later unchanged: a
// network failure or a server-side refusal marked retryable.
func Retryable(err error) bool {
	var e *api.Error
	if errors.As(err, &e) {
		return e.Code.Retryable()
	}
	return err != nil && !errors.Is(err, context.Canceled)
}
