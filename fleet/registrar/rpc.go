package registrar

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"
)

// maxRPCAnswer bounds a JSON-RPC answer read from the registrar.
const maxRPCAnswer = 1 << 20

// maxContacts bounds the registrations of one account that get a NOTIFY.
const maxContacts = 8

// RPC talks to Kamailio's JSON-RPC (jsonrpcs over xhttp): it finds an
// account's registrations (ul.lookup) and has Kamailio send each a NOTIFY
// with Event: check-sync (tm.t_uac_start) through the connection the phone
// registered over: the next hop is the address the REGISTER came from, so
// Kamailio reuses the phone's own TLS connection and never dials the
// phone.
type RPC struct {
	url      string
	client   *http.Client
	location string // usrloc table
	from     string // From user of the NOTIFYs
	log      *slog.Logger
	id       atomic.Uint64
}

// RPCOption configures NewRPC.
type RPCOption func(*RPC) error

// WithHTTPClient sets the HTTP client (for https with the registrar's CA
// and a client certificate); the default has a 10 s timeout.
func WithHTTPClient(c *http.Client) RPCOption {
	return func(r *RPC) error {
		if c == nil {
			return errors.New("nil HTTP client")
		}
		r.client = c
		return nil
	}
}

// WithRPCLogger sets the logger.
func WithRPCLogger(l *slog.Logger) RPCOption {
	return func(r *RPC) error {
		if l == nil {
			return errors.New("nil logger")
		}
		r.log = l
		return nil
	}
}

// NewRPC makes a client for the JSON-RPC endpoint at rawURL (http or
// https).
func NewRPC(rawURL string, opts ...RPCOption) (*RPC, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return nil, fmt.Errorf("registrar RPC URL %q: want http(s)://HOST:PORT/PATH without credentials", rawURL)
	}
	r := &RPC{url: u.String(), client: &http.Client{Timeout: 10 * time.Second}, location: "location", from: "hpfleet",
		log: slog.New(slog.DiscardHandler)}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, fmt.Errorf("registrar RPC: %w", err)
		}
	}
	r.log = r.log.With("component", "registrar")
	return r, nil
}

// rpcError is a JSON-RPC error object.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

func (e *rpcError) Error() string { return fmt.Sprintf("JSON-RPC error %d: %.200s", e.Code, e.Message) }

// call runs one method and decodes its result into out.
func (r *RPC) call(ctx context.Context, method string, params []any, out any) error {
	body, err := json.Marshal(map[string]any{"jsonrpc": "2.0", "method": method, "params": params, "id": r.id.Add(1)})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRPCAnswer+1))
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	if len(b) > maxRPCAnswer {
		return fmt.Errorf("%s: answer over %d bytes", method, maxRPCAnswer)
	}
	var a struct {
		Result json.RawMessage `json:"result"`
		Error  *rpcError       `json:"error"`
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return fmt.Errorf("%s: HTTP %d, answer does not parse: %w", method, resp.StatusCode, err)
	}
	if a.Error != nil {
		return fmt.Errorf("%s: %w", method, a.Error)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d", method, resp.StatusCode)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(a.Result, out); err != nil {
		return fmt.Errorf("%s: result: %w", method, err)
	}
	return nil
}

// Registration is one contact binding of an account.
type Registration struct {
	// Contact is the registered Contact URI, Received where the REGISTER
	// came from (empty when the same), Socket Kamailio's listener
	// ("tls:IP:PORT").
	Contact, Received, Socket string
}

// Lookup returns the account's registrations (ErrNotRegistered for none).
func (r *RPC) Lookup(ctx context.Context, user, domain string) ([]Registration, error) {
	if err := checkAccount(user, domain); err != nil {
		return nil, err
	}
	var res struct {
		Contacts []struct {
			Contact struct {
				Address  string `json:"Address"`
				Received string `json:"Received"`
				Socket   string `json:"Socket"`
			} `json:"Contact"`
		} `json:"Contacts"`
	}
	err := r.call(ctx, "ul.lookup", []any{r.location, user + "@" + domain}, &res)
	var re *rpcError
	if errors.As(err, &re) && strings.Contains(re.Message, "not found") {
		return nil, fmt.Errorf("%w: %s@%s", ErrNotRegistered, user, domain)
	}
	if err != nil {
		return nil, fmt.Errorf("registrar: look up %s@%s: %w", user, domain, err)
	}
	var out []Registration
	for _, c := range res.Contacts {
		if len(out) == maxContacts {
			break
		}
		reg := Registration{Contact: c.Contact.Address, Received: c.Contact.Received, Socket: c.Contact.Socket}
		if reg.Received == "[not set]" {
			reg.Received = ""
		}
		if err := checkURI(reg.Contact); err != nil {
			return nil, fmt.Errorf("registrar: %s@%s: contact: %w", user, domain, err)
		}
		if reg.Received != "" {
			if err := checkURI(reg.Received); err != nil {
				return nil, fmt.Errorf("registrar: %s@%s: received: %w", user, domain, err)
			}
		}
		if reg.Socket != "" && strings.ContainsAny(reg.Socket, " \r\n\"") {
			return nil, fmt.Errorf("registrar: %s@%s: socket %.80q", user, domain, reg.Socket)
		}
		out = append(out, reg)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: %s@%s", ErrNotRegistered, user, domain)
	}
	return out, nil
}

// checkURI accepts a sip: or sips: URI without whitespace, quotes or
// angle brackets (it goes into a request line and an RPC parameter).
func checkURI(s string) error {
	if len(s) == 0 || len(s) > 512 || !(strings.HasPrefix(s, "sip:") || strings.HasPrefix(s, "sips:")) ||
		strings.ContainsAny(s, " \t\r\n\"<>") {
		return fmt.Errorf("%.80q is not a plain SIP URI", s)
	}
	return nil
}

// CheckSync has the registrar send `NOTIFY` with `Event: check-sync` to
// each registration of the account (at most a few), through the
// connection each registered over, and returns how many were sent.
// ErrNotRegistered when the account has none. Kamailio sends
// asynchronously; the phone's answer is not waited for.
func (r *RPC) CheckSync(ctx context.Context, user, domain string) (int, error) {
	regs, err := r.Lookup(ctx, user, domain)
	if err != nil {
		return 0, err
	}
	sent := 0
	var errs []error
	for _, reg := range regs {
		next := reg.Received
		if next == "" {
			next = "."
		}
		sock := reg.Socket
		if sock == "" {
			sock = "."
		}
		var tag [8]byte
		// crypto/rand.Read never returns an error.
		_, _ = rand.Read(tag[:])
		// RFC 6665 §4.2.2: a NOTIFY carries Subscription-State; an
		// unsolicited check-sync has no subscription behind it.
		hdrs := "From: <sip:" + r.from + "@" + domain + ">;tag=" + hex.EncodeToString(tag[:]) + "\r\n" +
			"To: <sip:" + user + "@" + domain + ">\r\n" +
			"Event: check-sync\r\n" +
			"Subscription-State: terminated;reason=noresource\r\n"
		if err := r.call(ctx, "tm.t_uac_start", []any{"NOTIFY", reg.Contact, next, sock, hdrs}, nil); err != nil {
			errs = append(errs, err)
			continue
		}
		sent++
	}
	if sent == 0 {
		return 0, fmt.Errorf("registrar: check-sync to %s@%s: %w", user, domain, errors.Join(errs...))
	}
	r.log.Info("check-sync sent", "user", user, "domain", domain, "contacts", sent)
	return sent, nil
}
