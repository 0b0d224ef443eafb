package agent

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/hardphone/hardphone/agent/events"
)

// The certificate expiry watch. A phone whose identity certificate lapses
// can no longer register (mutual TLS fails) and one whose registrar's
// certificate lapses refuses the registrar: both take the phone off the
// network, so both are security events well before the day. The watch
// checks the phone's identity certificate when Run starts, each
// registrar's certificate as soon as a TLS flow verified it, and all of
// them every certCheckEvery after; a certificate within certNearExpiry of
// its NotAfter is a cert.near_expiry event, graded by the days it has
// left (events.NearExpirySeverity), at most once per certificate per
// certRepeat. Times come from the agent's certificate clock (the time
// floor), the one the TLS checks themselves use.
const (
	// certNearExpiry is how long before its NotAfter a certificate is
	// reported.
	certNearExpiry = 30 * 24 * time.Hour
	// certCheckEvery is how often the watch looks again by default.
	certCheckEvery = 24 * time.Hour
	// certRepeat is how long one certificate stays quiet after an event.
	certRepeat = 24 * time.Hour
)

// Certificate roles, the cert.near_expiry "role" detail.
const (
	certRoleIdentity  = "identity"
	certRoleRegistrar = "registrar"
)

// certWatch holds the certificates the watch knows: the identity and the
// latest verified certificate of each account's registrar. It is bounded by
// construction (one entry per role and account; a renewed certificate
// replaces the old one). The zero value is ready to use.
type certWatch struct {
	// every is the check interval; 0 means certCheckEvery. Set before Run.
	every time.Duration

	mu    sync.Mutex // guards certs
	certs map[certKey]*watchedCert
}

// certKey names a watched certificate: its role and, for a registrar,
// the account.
type certKey struct {
	role, account string
}

type watchedCert struct {
	cert *x509.Certificate
	fp   [sha256.Size]byte
	// reported is the certificate clock's time of the last event about
	// this certificate; zero when none.
	reported time.Time
}

// WithCertCheck sets how often the agent checks its identity and
// registrar certificates for expiry (default daily). Whatever the
// interval, one certificate gives at most one event a day.
func WithCertCheck(every time.Duration) Option {
	return func(a *Agent) error {
		if every <= 0 {
			return fmt.Errorf("agent: certificate check every %v, want > 0", every)
		}
		a.certs.every = every
		return nil
	}
}

// set records c as the certificate of k and reports whether it is new
// (another certificate, or none, was held before).
func (w *certWatch) set(k certKey, c *x509.Certificate) bool {
	fp := sha256.Sum256(c.Raw)
	w.mu.Lock()
	defer w.mu.Unlock()
	if old, ok := w.certs[k]; ok && old.fp == fp {
		return false
	}
	if w.certs == nil {
		w.certs = make(map[certKey]*watchedCert)
	}
	w.certs[k] = &watchedCert{cert: c, fp: fp}
	return true
}

// due returns the events the known certificates owe at now, and marks
// them reported.
func (w *certWatch) due(now time.Time) []events.Event {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []events.Event
	for k, wc := range w.certs {
		left := wc.cert.NotAfter.Sub(now)
		if left > certNearExpiry {
			continue
		}
		if !wc.reported.IsZero() && now.Sub(wc.reported) < certRepeat {
			continue
		}
		wc.reported = now
		out = append(out, nearExpiryEvent(k, wc, left))
	}
	return out
}

// nearExpiryEvent describes wc, which has left until its NotAfter.
func nearExpiryEvent(k certKey, wc *watchedCert, left time.Duration) events.Event {
	days := int(left / (24 * time.Hour))
	if left < 0 && left%(24*time.Hour) != 0 {
		days-- // floor: an hour past NotAfter is day -1
	}
	c := wc.cert
	d := events.Detail{
		"role":                k.role,
		"subject":             certSubject(c),
		"issuer":              c.Issuer.CommonName,
		"serial":              c.SerialNumber.Text(16),
		"not_after":           c.NotAfter.UTC().Format(time.RFC3339),
		events.DetailDaysLeft: strconv.Itoa(days),
		"sha256":              hex.EncodeToString(wc.fp[:]),
	}
	return events.Event{Kind: events.KindCertNearExpiry, Account: k.account, Detail: d}
}

// certSubject names a certificate: its CN, else its first DNS or IP SAN.
func certSubject(c *x509.Certificate) string {
	switch {
	case c.Subject.CommonName != "":
		return c.Subject.CommonName
	case len(c.DNSNames) > 0:
		return c.DNSNames[0]
	case len(c.IPAddresses) > 0:
		return c.IPAddresses[0].String()
	}
	return ""
}

// certNow is the certificate clock: the time floor when the agent has one.
func (a *Agent) certNow() time.Time {
	if a.certTime != nil {
		return a.certTime()
	}
	return time.Now()
}

// checkCerts records the events the known certificates owe now.
func (a *Agent) checkCerts() {
	for _, ev := range a.certs.due(a.certNow()) {
		a.record(ev)
	}
}

// registrarCert is told, by an account's TLS flow, the registrar
// certificate its handshake verified; a certificate not seen before is
// checked at once.
func (a *Agent) registrarCert(account string, c *x509.Certificate) {
	if a.events == nil || c == nil {
		return
	}
	if a.certs.set(certKey{certRoleRegistrar, account}, c) {
		a.checkCerts()
	}
}

// startCertWatch runs the watch under wg until ctx ends: the identity
// certificate is checked at once, everything known every interval after.
// Without an event recorder there is nothing to tell, and nothing runs.
func (a *Agent) startCertWatch(ctx context.Context, wg *sync.WaitGroup) {
	if a.events == nil {
		return
	}
	if a.ident != nil && len(a.ident.Certificate) > 0 {
		leaf, err := identityLeaf(a.ident.Leaf, a.ident.Certificate[0])
		if err != nil {
			a.log.Error("identity certificate expiry not watched", "error", err)
		} else {
			a.certs.set(certKey{role: certRoleIdentity}, leaf)
		}
	}
	a.checkCerts()
	every := a.certs.every
	if every == 0 {
		every = certCheckEvery
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				a.checkCerts()
			}
		}
	}()
}

// identityLeaf is the identity certificate, parsed from der unless the TLS
// certificate already holds it parsed.
func identityLeaf(leaf *x509.Certificate, der []byte) (*x509.Certificate, error) {
	if leaf != nil {
		return leaf, nil
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse identity certificate: %w", err)
	}
	return c, nil
}
