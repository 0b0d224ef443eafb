package provision

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/hardphone/hardphone/crypto/credstore"
	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/hal/tpm"
)

// Credentials is what provisioning needs of the credential store; a
// *credstore.Store has it. Attestation and activation need the TPM
// protector.
type Credentials interface {
	IdentityAttestation(prefer ...tpm.EKType) (*credstore.Attestation, error)
	ActivateCredential(ek tpm.EKType, credentialBlob, encryptedSecret []byte) (credstore.Secret, error)
	CreateIdentity(replace bool) error
	CreateCSR(tmpl *x509.CertificateRequest) ([]byte, error)
	ImportCertificate(chain [][]byte) error
	Identity() (*tls.Certificate, error)
	Signer() (crypto.Signer, error)
}

// Config is what the phone's image pins and what it is handed.
type Config struct {
	// Credentials is the credential store; required.
	Credentials Credentials
	// ServerURL is the fleet server, "https://NAME[:PORT]", from the
	// phone's configuration; required.
	ServerURL string
	// ServerName is the name the server's certificate must carry; "" is
	// the URL's host. Pinned by the image.
	ServerName string
	// ServerRoots is the fleet server's CA; required. Pinned by the image.
	ServerRoots *x509.CertPool
	// DeviceCA, when set, is the CA the phone's certificates must chain
	// to; an issued certificate that does not is refused.
	DeviceCA *x509.Certificate
	// AddressHint ("HOST:PORT") is where to connect when DHCP (option
	// 43/66) said so; the server must still prove ServerName.
	AddressHint string
	// Wipe destroys the phone's credentials when the fleet retires it;
	// nil leaves them (and CheckIn still returns ErrRetired).
	Wipe func() error
}

// Option adjusts a Client.
type Option func(*options) error

type options struct {
	log        *slog.Logger
	now        func() time.Time
	minBackoff time.Duration
	maxBackoff time.Duration
	interval   time.Duration
	ekTypes    []tpm.EKType
	onCert     func() // nil: nobody
}

// WithLogger sets the logger; the default discards. Adds
// component=provision.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.log = l
		return nil
	}
}

// WithClock sets the clock.
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("nil clock")
		}
		o.now = now
		return nil
	}
}

// WithBackoff sets the retry delays after a failure: from min, doubling
// up to max, each with full jitter (defaults 5 s and 15 min).
func WithBackoff(min, max time.Duration) Option {
	return func(o *options) error {
		if min <= 0 || max < min {
			return fmt.Errorf("backoff %v..%v: want 0 < min <= max", min, max)
		}
		o.minBackoff, o.maxBackoff = min, max
		return nil
	}
}

// WithInterval sets the check-in interval until the server names one
// (default 15 min).
func WithInterval(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("interval %v: want > 0", d)
		}
		o.interval = d
		return nil
	}
}

// WithEKTypes sets the EK types to offer, in order (default
// tpm.EKTypes()).
func WithEKTypes(k ...tpm.EKType) Option {
	return func(o *options) error {
		if len(k) == 0 {
			return errors.New("no EK types")
		}
		o.ekTypes = append([]tpm.EKType(nil), k...)
		return nil
	}
}

// WithOnCertificate makes the client call f after every certificate it
// stores (enrolment or renewal), so whoever presents the identity picks up
// the new one at once.
func WithOnCertificate(f func()) Option {
	return func(o *options) error {
		if f == nil {
			return errors.New("nil certificate callback")
		}
		o.onCert = f
		return nil
	}
}

// Client provisions one phone. Its methods may be called concurrently,
// but Run is meant to be the only caller once started.
type Client struct {
	cfg    Config
	o      options
	log    *slog.Logger
	enrol  *client.Client // no client certificate
	device *client.Client // the identity certificate, fetched at each handshake
}

// New checks cfg and builds a client. Nothing is sent yet.
func New(cfg Config, opts ...Option) (*Client, error) {
	o := options{log: slog.New(slog.DiscardHandler), now: time.Now, minBackoff: 5 * time.Second,
		maxBackoff: 15 * time.Minute, interval: 15 * time.Minute, ekTypes: tpm.EKTypes()}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("provision: %w", err)
		}
	}
	if cfg.Credentials == nil {
		return nil, errors.New("provision: no credential store")
	}
	base := client.Config{URL: cfg.ServerURL, ServerName: cfg.ServerName, Roots: cfg.ServerRoots, DialAddr: cfg.AddressHint}
	enrol, err := client.New(base)
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	dev := base
	dev.GetCertificate = cfg.Credentials.Identity
	device, err := client.New(dev)
	if err != nil {
		return nil, fmt.Errorf("provision: %w", err)
	}
	return &Client{cfg: cfg, o: o, log: o.log.With("component", "provision"), enrol: enrol, device: device}, nil
}

// Device is the phone's client of the fleet over mutual TLS with its
// current fleet certificate (read at each handshake): what the event
// export ships the journal through. Before enrolment it has no
// certificate to present and the server refuses it.
func (c *Client) Device() *client.Client { return c.device }

// Status is the phone's standing with the fleet.
type Status struct {
	// DeviceID is the fleet's name for the phone.
	DeviceID string
	// Serial is the device serial the fleet certified.
	Serial string
	// NotAfter is the certificate's expiry, RenewAt two-thirds into its
	// life.
	NotAfter, RenewAt time.Time
}

// Status returns the current certificate's facts, or ErrNotEnrolled when
// there is none from the device CA, or it expired.
func (c *Client) Status() (*Status, error) {
	id, err := c.cfg.Credentials.Identity()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotEnrolled, err)
	}
	leaf := id.Leaf
	if c.cfg.DeviceCA != nil {
		roots := x509.NewCertPool()
		roots.AddCert(c.cfg.DeviceCA)
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: c.o.now(),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
			return nil, fmt.Errorf("%w: the certificate held does not verify under the fleet's device CA: %w", ErrNotEnrolled, err)
		}
	} else if !c.o.now().Before(leaf.NotAfter) {
		return nil, fmt.Errorf("%w: the certificate expired at %v", ErrNotEnrolled, leaf.NotAfter)
	}
	if !api.ValidDeviceID(leaf.Subject.CommonName) {
		return nil, fmt.Errorf("%w: the certificate held (%q) is not a fleet device certificate", ErrNotEnrolled, leaf.Subject)
	}
	return &Status{DeviceID: leaf.Subject.CommonName, Serial: leaf.Subject.SerialNumber, NotAfter: leaf.NotAfter,
		RenewAt: leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3)}, nil
}

// EnrolOnce runs one enrolment round, creating the identity key first if
// there is none, and imports the certificate. A failure changes nothing
// the phone holds.
func (c *Client) EnrolOnce(ctx context.Context) (*Status, error) {
	if _, err := c.cfg.Credentials.IdentityAttestation(c.o.ekTypes...); errors.Is(err, credstore.ErrNoIdentity) {
		if err := c.cfg.Credentials.CreateIdentity(false); err != nil && !errors.Is(err, credstore.ErrExists) {
			return nil, fmt.Errorf("enrol: %w", err)
		}
		c.log.Info("identity key created for enrolment")
	}
	sg, err := c.cfg.Credentials.Signer()
	if err != nil {
		return nil, fmt.Errorf("enrol: %w", err)
	}
	resp, err := c.enrol.Enrol(ctx, attester{c}, sg.Public(), c.cfg.DeviceCA)
	if err != nil {
		return nil, err
	}
	if err := c.cfg.Credentials.ImportCertificate(resp.Chain); err != nil {
		return nil, fmt.Errorf("enrol: %w", err)
	}
	c.certStored()
	c.device.CloseIdleConnections()
	st, err := c.Status()
	if err != nil {
		return nil, fmt.Errorf("enrol: %w", err)
	}
	c.log.Info("enrolled", "device", st.DeviceID, "serial", st.Serial, "not_after", st.NotAfter)
	return st, nil
}

// Enrol makes sure the phone holds a live certificate from the fleet: it
// returns at once when it does, else it enrols, retrying with backoff
// until it succeeds or ctx ends (the only error it returns).
func (c *Client) Enrol(ctx context.Context) (*Status, error) {
	if st, err := c.Status(); err == nil {
		return st, nil
	}
	for attempt := 0; ; attempt++ {
		st, err := c.EnrolOnce(ctx)
		if err == nil {
			return st, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		d := c.backoff(attempt)
		c.log.Warn("enrolment failed; retrying", "err", err, "attempt", attempt+1, "retry_in", d.Round(time.Millisecond))
		if err := sleep(ctx, d); err != nil {
			return nil, err
		}
	}
}

// attester is the credential store as fleet/client's Attester.
type attester struct{ c *Client }

func (a attester) Attest(context.Context) (*client.Attestation, error) {
	att, err := a.c.cfg.Credentials.IdentityAttestation(a.c.o.ekTypes...)
	if err != nil {
		return nil, err
	}
	// The server takes only the key and signature of the CSR; the
	// certificate's subject comes from the fleet's records.
	csr, err := a.c.cfg.Credentials.CreateCSR(&x509.CertificateRequest{})
	if err != nil {
		return nil, err
	}
	return &client.Attestation{EKType: att.EKType.String(), EKCert: att.EKCertificate, IdentityPublic: att.IdentityPublic, CSR: csr}, nil
}

func ekTypeNamed(name string) (tpm.EKType, error) {
	for _, k := range tpm.EKTypes() {
		if k.String() == name {
			return k, nil
		}
	}
	return 0, fmt.Errorf("EK type %q unknown", name)
}

func (a attester) Activate(_ context.Context, ekType string, blob, enc []byte) (api.Secret, error) {
	ek, err := ekTypeNamed(ekType)
	if err != nil {
		return nil, fmt.Errorf("activate: %w", err)
	}
	s, err := a.c.cfg.Credentials.ActivateCredential(ek, blob, enc)
	if err != nil {
		return nil, err
	}
	defer s.Zero()
	return api.Secret(append([]byte(nil), s...)), nil
}

// Renew has the fleet issue a new certificate for the identity key and
// imports it. The TLS handshake with the current certificate proves
// possession of the TPM key; the CSR, signed by it, carries the same key.
// A refusal (the posture gate, revocation) leaves the current certificate
// in place.
func (c *Client) Renew(ctx context.Context) (*Status, error) {
	if _, err := c.Status(); err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	csr, err := c.cfg.Credentials.CreateCSR(&x509.CertificateRequest{})
	if err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	sg, err := c.cfg.Credentials.Signer()
	if err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	resp, err := c.device.Renew(ctx, csr)
	if err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	if err := client.CheckIssued(resp, sg.Public(), c.cfg.DeviceCA); err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	if err := c.cfg.Credentials.ImportCertificate(resp.Chain); err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	c.certStored()
	c.device.CloseIdleConnections()
	st, err := c.Status()
	if err != nil {
		return nil, fmt.Errorf("renew: %w", err)
	}
	c.log.Info("certificate renewed", "device", st.DeviceID, "not_after", st.NotAfter)
	return st, nil
}

// CheckIn signs and sends a report; the phone fills DeviceID, SentAt,
// CertNotAfter and (when empty) Serial from its certificate. An answer
// asking for a renewal is acted on here (a refused renewal is logged: the
// phone keeps its certificate); one retiring the phone wipes its
// credentials and returns ErrRetired.
func (c *Client) CheckIn(ctx context.Context, r api.Report) (*api.CheckInResponse, error) {
	st, err := c.Status()
	if err != nil {
		return nil, fmt.Errorf("check in: %w", err)
	}
	sg, err := c.cfg.Credentials.Signer()
	if err != nil {
		return nil, fmt.Errorf("check in: %w", err)
	}
	r.DeviceID, r.SentAt, r.CertNotAfter = st.DeviceID, c.o.now(), st.NotAfter
	if r.Serial == "" {
		r.Serial = st.Serial
	}
	resp, err := c.device.CheckIn(ctx, sg, r)
	if err != nil {
		return nil, fmt.Errorf("check in: %w", err)
	}
	switch resp.Action {
	case api.ActionRetire:
		c.log.Warn("the fleet retired this phone: wiping its credentials", "device", st.DeviceID)
		if c.cfg.Wipe != nil {
			if err := c.cfg.Wipe(); err != nil {
				return resp, fmt.Errorf("check in: %w: wipe: %w", ErrRetired, err)
			}
		}
		return resp, ErrRetired
	case api.ActionRenew:
		if _, err := c.Renew(ctx); err != nil {
			c.log.Warn("renewal asked for by the fleet failed; keeping the current certificate", "err", err, "posture", resp.Posture)
		}
	}
	return resp, nil
}

// Run enrols (retrying until it succeeds), then checks in every interval
// with jitter, renewing at two-thirds of the certificate's life, until ctx
// ends or the fleet retires the phone (ErrRetired). report is called for
// each check-in. Failures are logged and retried with backoff; the phone
// keeps what it has meanwhile.
func (c *Client) Run(ctx context.Context, report func(context.Context) (api.Report, error)) error {
	interval := c.o.interval
	failures := 0
	for {
		st, err := c.Enrol(ctx)
		if err != nil {
			return err
		}
		if !c.o.now().Before(st.RenewAt) {
			if _, err := c.Renew(ctx); err != nil {
				c.log.Warn("renewal failed; keeping the current certificate", "err", err, "not_after", st.NotAfter)
			}
		}
		wait := Jitter(interval)
		r, err := report(ctx)
		if err == nil {
			var resp *api.CheckInResponse
			resp, err = c.CheckIn(ctx, r)
			if errors.Is(err, ErrRetired) {
				return err
			}
			if err == nil && resp.NextCheckInSeconds > 0 {
				interval = time.Duration(resp.NextCheckInSeconds) * time.Second
				wait = Jitter(interval)
			}
		}
		if err != nil {
			wait = c.backoff(failures)
			failures++
			c.log.Warn("check-in failed", "err", err, "retry_in", wait.Round(time.Millisecond))
		} else {
			failures = 0
		}
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}

// backoff is the delay after the attempt-th failure in a row: full jitter
// over min*2^attempt, capped at max.
func (c *Client) backoff(attempt int) time.Duration {
	d := c.o.minBackoff
	for i := 0; i < attempt && d < c.o.maxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.o.maxBackoff)
	return time.Duration(randFloat() * float64(d))
}

// Jitter spreads a polling interval over [3/4, 5/4) of it, so phones that
// booted together (after a power cut) do not poll together.
func Jitter(interval time.Duration) time.Duration {
	return time.Duration(float64(interval) * (0.75 + 0.5*randFloat()))
}

func randFloat() float64 {
	var b [8]byte
	// crypto/rand.Read never returns an error.
	_, _ = rand.Read(b[:])
	return float64(binary.BigEndian.Uint64(b[:])>>11) / (1 << 53)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// certStored tells the callback a new certificate is in the store.
func (c *Client) certStored() {
	if c.o.onCert != nil {
		c.o.onCert()
	}
}

// SealingCredentials is what a phone needs to take secrets sealed to its
// TPM (*credstore.Store has it): a key-agreement key the TPM made, shown
// and proven at enrolment. Credentials without it enrol without one, and
// the fleet sends them no secrets.
type SealingCredentials interface {
	CreateSealingKey(replace bool) error
	SealingAttestation() (*credstore.SealingAttestation, error)
	ActivateSealingCredential(ek tpm.EKType, credentialBlob, encryptedSecret []byte) (credstore.Secret, error)
}

// SealingPublic makes the sealing key if there is none and returns its
// TPMT_PUBLIC for the enrolment (client.SealingAttester); nil when the
// credentials cannot hold one.
func (a attester) SealingPublic(context.Context) ([]byte, error) {
	sc, ok := a.c.cfg.Credentials.(SealingCredentials)
	if !ok {
		return nil, nil
	}
	if err := sc.CreateSealingKey(false); err != nil && !errors.Is(err, credstore.ErrExists) {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	att, err := sc.SealingAttestation()
	if err != nil {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	return att.Public, nil
}

// ActivateSealing has the TPM open the credential made for the sealing key
// (it does only with that key loaded beside the EK).
func (a attester) ActivateSealing(_ context.Context, ekType string, blob, enc []byte) (api.Secret, error) {
	sc, ok := a.c.cfg.Credentials.(SealingCredentials)
	if !ok {
		return nil, errors.New("activate sealing key: these credentials hold none")
	}
	ek, err := ekTypeNamed(ekType)
	if err != nil {
		return nil, fmt.Errorf("activate sealing key: %w", err)
	}
	s, err := sc.ActivateSealingCredential(ek, blob, enc)
	if err != nil {
		return nil, fmt.Errorf("activate sealing key: %w", err)
	}
	defer s.Zero()
	return api.Secret(append([]byte(nil), s...)), nil
}
