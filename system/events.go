package system

import (
	"context"
	"crypto"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/hardphone/hardphone/agent/events"
	"github.com/hardphone/hardphone/agent/provision"
	"github.com/hardphone/hardphone/crypto/credstore"
	"github.com/hardphone/hardphone/crypto/policy"
)

// ErrNoEventSigner: the phone has no identity key to sign its journal's
// checkpoints with (no credential store identity, no key file).
var ErrNoEventSigner = errors.New("no identity key to sign the event journal")

// Events is the phone's security-event pipeline: the hash-chained journal
// in the state file, the recorder the agent's parts emit through, and the
// exporter to a syslog collector when the config names one.
type Events struct {
	Journal  *events.Journal
	Recorder *events.Recorder
	Exporter *events.Exporter // nil: no collector configured
	// Fleet ships the journal to the fleet server; nil unless the agent
	// runs as a fleet member with events.fleet (Phone.Agent sets it).
	Fleet *events.FleetExporter
	// enrolled reports whether the phone holds a fleet certificate yet:
	// the fleet export waits for it.
	enrolled func() bool
	// Public is the identity key the journal's checkpoints verify with.
	Public crypto.PublicKey
}

// Loops are what the agent runs for the pipeline: the journal writer and
// the exporter.
func (e *Events) Loops() []func(context.Context) error {
	loops := []func(context.Context) error{e.Recorder.Run}
	if e.Exporter != nil {
		loops = append(loops, e.Exporter.Run)
	}
	if e.Fleet != nil {
		loops = append(loops, e.runFleet)
	}
	return loops
}

// fleetEnrolWait is how often the fleet export looks whether the phone
// has enrolled yet.
const fleetEnrolWait = 2 * time.Second

// runFleet waits for the phone's fleet certificate (before enrolment the
// server could not tell whose journal it is), then ships the journal.
func (e *Events) runFleet(ctx context.Context) error {
	t := time.NewTicker(fleetEnrolWait)
	defer t.Stop()
	for e.enrolled != nil && !e.enrolled() {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
	return e.Fleet.Run(ctx)
}

// withFleet adds the export to the fleet through prov's mutual-TLS
// client; calls, when not nil, is the call history it sends along.
func (e *Events) withFleet(prov *provision.Client, calls events.CallSource, log *slog.Logger) error {
	if e.Fleet != nil {
		return nil
	}
	opts := []events.FleetOption{events.WithFleetLogger(log)}
	if calls != nil {
		opts = append(opts, events.WithFleetCalls(calls))
	}
	fe, err := events.NewFleetExporter(e.Journal, prov.Device(), opts...)
	if err != nil {
		return fmt.Errorf("event export to the fleet: %w", err)
	}
	e.Fleet = fe
	e.enrolled = func() bool { _, err := prov.Status(); return err == nil }
	return nil
}

// identity is the phone's TLS identity and the key that signs: the
// credential store's (in the TPM), else the configured key file.
func (p *Phone) identity() (*tls.Certificate, crypto.Signer, error) {
	switch {
	case p.cfg.TLS.CertFile != "":
		c, err := loadIdentity(p.cfg.TLS.CertFile, p.cfg.TLS.KeyFile)
		if err != nil {
			return nil, nil, err
		}
		return c, c.PrivateKey.(crypto.Signer), nil
	case p.cfg.CredentialStore != "":
		creds, err := p.Credentials()
		if err != nil {
			return nil, nil, err
		}
		if p.cfg.Provision.Server != "" {
			// A fleet member: the key is made before enrolment (so the
			// journal is signed from the first boot), the certificate
			// comes and goes with the fleet (liveIdentity).
			if err := creds.CreateIdentity(false); err != nil && !errors.Is(err, credstore.ErrExists) {
				return nil, nil, fmt.Errorf("identity key for enrolment: %w", err)
			}
			s, err := creds.Signer()
			if err != nil {
				return nil, nil, err
			}
			return nil, s, nil
		}
		c, err := creds.Identity()
		if err != nil {
			return nil, nil, fmt.Errorf("tls identity from the credential store: %w", err)
		}
		s, err := creds.Signer()
		if err != nil {
			return nil, nil, err
		}
		return c, s, nil
	}
	return nil, nil, nil
}

// Events opens the security-event pipeline (once). It needs the state file
// and an identity key; ErrNoEventSigner when the phone has none.
func (p *Phone) Events() (*Events, error) {
	if p.events != nil {
		return p.events, nil
	}
	if p.cfg.StateDir == "" {
		return nil, errors.New("security events need a state_dir (the journal lives in the state file)")
	}
	cert, signer, err := p.identity()
	if err != nil {
		return nil, err
	}
	if signer == nil {
		return nil, ErrNoEventSigner
	}
	st, err := p.State()
	if err != nil {
		return nil, err
	}
	floor, err := p.TimeFloor()
	if err != nil {
		return nil, err
	}
	j, err := events.Open(st.DB(), signer, events.WithClock(floor.Now), events.WithLogger(p.log))
	if err != nil {
		return nil, fmt.Errorf("event journal: %w", err)
	}
	rec, err := events.NewRecorder(j, events.WithRecorderClock(floor.Now), events.WithRecorderLogger(p.log))
	if err != nil {
		return nil, errors.Join(err, j.Close())
	}
	ev := &Events{Journal: j, Recorder: rec, Public: signer.Public()}
	if e := p.cfg.Events; e.Syslog != "" {
		roots, err := loadRoots(e.SyslogCA)
		if err != nil {
			return nil, errors.Join(fmt.Errorf("events.syslog_ca: %w", err), j.Close())
		}
		host := e.Hostname
		if host == "" {
			if host, err = os.Hostname(); err != nil {
				host = "-"
			}
		}
		tlsc := policy.ClientTLS{Roots: roots, ServerName: e.SyslogServerName, Certificate: cert, Time: floor.Now}
		if cert == nil && p.ident != nil {
			tlsc.GetCertificate = p.ident.get
		}
		ev.Exporter, err = events.NewExporter(j, events.ExportConfig{Addr: e.Syslog, Hostname: host,
			TLS: tlsc},
			events.WithExportLogger(p.log))
		if err != nil {
			return nil, errors.Join(fmt.Errorf("event export: %w", err), j.Close())
		}
	}
	p.events = ev
	return ev, nil
}

// Verify proves the journal's chain and signatures with the identity key.
func (e *Events) Verify() (*events.Report, error) {
	return events.Verify(e.Journal.DB(), e.Public)
}

// List lists journal records.
func (e *Events) List(from uint64, limit int) ([]events.Record, error) {
	return e.Journal.List(from, limit)
}
