package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/hardphone/hardphone/fleet/alert"
	"github.com/hardphone/hardphone/fleet/anomaly"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/server"
)

// anomalyFlags configure the anomaly detector, its alert sinks and the
// event export limits.
type anomalyFlags struct {
	on                                bool
	config                            string
	stateInterval, pollInterval       time.Duration
	syslog, syslogCA, syslogName      string
	syslogCert, syslogKey, alertHost  string
	webhook, webhookCA, webhookSecret string
	eventBatchRate, eventRecordRate   float64
	eventBatchBurst                   int
}

func (a *anomalyFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&a.on, "anomaly", true, "run the anomaly detector (on the replica that holds its lease) and log observations for it")
	fs.StringVar(&a.config, "anomaly-config", "", "anomaly rules and responses (JSON, fleet/anomaly's form; default: every rule on, alerts only)")
	fs.DurationVar(&a.stateInterval, "anomaly-state-interval", server.DefaultAnomalyStateInterval, "how often the detector's state is saved to the store")
	fs.DurationVar(&a.pollInterval, "anomaly-poll-interval", server.DefaultAnomalyPollInterval, "how often the detector looks for observations other replicas logged")
	fs.StringVar(&a.syslog, "alert-syslog", "", "syslog collector for findings, HOST:PORT (RFC 5425, mutual TLS)")
	fs.StringVar(&a.syslogCA, "alert-syslog-ca", "", "CA of the collector's certificate (PEM; required with --alert-syslog)")
	fs.StringVar(&a.syslogName, "alert-syslog-name", "", "name the collector's certificate carries (default: its host)")
	fs.StringVar(&a.syslogCert, "alert-syslog-cert", "", "client certificate hpfleet presents to the collector (PEM chain)")
	fs.StringVar(&a.syslogKey, "alert-syslog-key", "", "its key (PEM, mode 0600)")
	fs.StringVar(&a.alertHost, "alert-hostname", "", "HOSTNAME of the syslog messages (default: the machine's)")
	fs.StringVar(&a.webhook, "alert-webhook", "", "https URL findings are POSTed to (JSON)")
	fs.StringVar(&a.webhookCA, "alert-webhook-ca", "", "CA of the webhook's certificate (PEM; default: the system's)")
	fs.StringVar(&a.webhookSecret, "alert-webhook-secret", "", "HMAC-SHA256 key signing each POST (Hardphone-Signature), or @FILE")
	fs.Float64Var(&a.eventBatchRate, "event-batch-rate", 1, "event batches a phone may send per second (sustained)")
	fs.IntVar(&a.eventBatchBurst, "event-batch-burst", 20, "event batches a phone may send at once")
	fs.Float64Var(&a.eventRecordRate, "event-record-rate", 50, "journal records a phone may send per second (sustained; bursts of 4 full batches)")
}

// eventLimits is the server option of the export limits.
func (a *anomalyFlags) eventLimits() server.Option {
	return server.WithEventLimits(server.EventLimits{BatchRate: a.eventBatchRate, BatchBurst: a.eventBatchBurst,
		RecordRate: a.eventRecordRate, RecordBurst: 4 * 512})
}

// build returns the server option that runs the detector (nil when off)
// and a function that closes the alert sinks.
func (a *anomalyFlags) build(log *slog.Logger) (server.Option, func(), error) {
	nothing := func() {}
	if !a.on {
		if a.config != "" || a.syslog != "" || a.webhook != "" {
			return nil, nothing, usagef("serve: --anomaly-config and --alert-* need --anomaly")
		}
		return nil, nothing, nil
	}
	cfg := anomaly.DefaultConfig()
	if a.config != "" {
		b, err := os.ReadFile(a.config)
		if err != nil {
			return nil, nothing, fmt.Errorf("--anomaly-config: %w", err)
		}
		if cfg, err = anomaly.ParseConfig(b, time.LoadLocation); err != nil {
			return nil, nothing, fmt.Errorf("--anomaly-config %s: %w", a.config, err)
		}
	}
	ac := server.AnomalyConfig{Detector: cfg, StateInterval: a.stateInterval, PollInterval: a.pollInterval,
		Alerters: map[string]anomaly.Alerter{}}
	closeAll := nothing
	if a.syslog != "" {
		s, err := a.syslogAlerter(log)
		if err != nil {
			return nil, nothing, err
		}
		ac.Alerters["syslog"] = s
		closeAll = func() { s.Close() }
	}
	if a.webhook != "" {
		c := alert.WebhookConfig{URL: a.webhook}
		if a.webhookCA != "" {
			pool, err := ca.LoadPool(a.webhookCA)
			if err != nil {
				return nil, nothing, fmt.Errorf("--alert-webhook-ca: %w", err)
			}
			c.Roots = pool
		}
		if a.webhookSecret != "" {
			secret, err := readSecretArg(a.webhookSecret)
			if err != nil {
				return nil, nothing, fmt.Errorf("--alert-webhook-secret: %w", err)
			}
			c.Secret = []byte(secret)
		}
		w, err := alert.NewWebhook(c, log)
		if err != nil {
			return nil, nothing, err
		}
		ac.Alerters["webhook"] = w
	}
	log.Info("anomaly detector configured", "config", a.config, "alert_syslog", a.syslog, "alert_webhook", a.webhook != "",
		"state_interval", a.stateInterval.String())
	return server.WithAnomaly(ac), closeAll, nil
}

func (a *anomalyFlags) syslogAlerter(log *slog.Logger) (*alert.Syslog, error) {
	if a.syslogCA == "" || a.syslogCert == "" || a.syslogKey == "" {
		return nil, usagef("serve: --alert-syslog needs --alert-syslog-ca, --alert-syslog-cert and --alert-syslog-key")
	}
	host, _, err := net.SplitHostPort(a.syslog)
	if err != nil {
		return nil, usagef("serve: --alert-syslog %q: %v", a.syslog, err)
	}
	name := a.syslogName
	if name == "" {
		name = host
	}
	roots, err := ca.LoadPool(a.syslogCA)
	if err != nil {
		return nil, fmt.Errorf("--alert-syslog-ca: %w", err)
	}
	if _, err := ca.LoadKey(a.syslogKey); err != nil {
		return nil, fmt.Errorf("--alert-syslog-key: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(a.syslogCert, a.syslogKey)
	if err != nil {
		return nil, fmt.Errorf("--alert-syslog-cert: %w", err)
	}
	hostname := a.alertHost
	if hostname == "" {
		hostname, _ = os.Hostname() // "" becomes "-" in the message
	}
	return alert.NewSyslog(alert.SyslogConfig{Addr: a.syslog, Hostname: hostname,
		Roots: roots, ServerName: name, Certificate: &cert}, log)
}
