package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hardphone/hardphone/fleet/director"
	"github.com/hardphone/hardphone/fleet/registrar"
	"github.com/hardphone/hardphone/fleet/store"
	"github.com/hardphone/hardphone/fleet/tufrepo"
)

// directorFlags configure the director: its repository and online keys,
// the image repository it takes firmware from, and the registrar.
type directorFlags struct {
	repo                          string
	targetsKeys, snapKeys, tsKeys multiFlag
	imageURL, imageRoot, imageCA  string
	regDB, regRPC, regDigest      string
	regDomains                    multiFlag
	rotation, interval            time.Duration
}

func (d *directorFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&d.repo, "director", "", "director root repository (hpctl repo init; its root keys stay offline): enables the director")
	fs.Var(&d.targetsKeys, "director-targets-key", "online targets key of the director (PKCS#8 PEM, mode 0600; repeatable)")
	fs.Var(&d.snapKeys, "director-snapshot-key", "online snapshot key of the director (repeatable)")
	fs.Var(&d.tsKeys, "director-timestamp-key", "online timestamp key of the director (repeatable)")
	fs.StringVar(&d.imageURL, "image-url", "", "base URL of the image repository (any static HTTP(S) server)")
	fs.StringVar(&d.imageRoot, "image-root", "", "pinned root.json of the image repository (required with --image-url)")
	fs.StringVar(&d.imageCA, "image-ca", "", "CA of an https image repository server (PEM; default: the system's)")
	fs.StringVar(&d.regDB, "registrar-db", "", "PostgreSQL DSN of the registrar's auth_db (Kamailio subscriber table), or @FILE")
	fs.Var(&d.regDomains, "registrar-domain", "SIP domain whose accounts the fleet manages (repeatable; required with --registrar-db)")
	fs.StringVar(&d.regDigest, "registrar-digest", registrar.AlgSHA256, "digest algorithm of the registrar: SHA-256 or MD5")
	fs.StringVar(&d.regRPC, "registrar-rpc", "", "URL of the registrar's JSON-RPC (Kamailio jsonrpcs over xhttp), for check-sync NOTIFYs")
	fs.DurationVar(&d.rotation, "password-rotation", director.DefaultRotation, "how long a generated SIP password lives (0: never rotate)")
	fs.DurationVar(&d.interval, "director-interval", 30*time.Second, "how often the director worker looks for due devices")
}

func readSecretArg(v string) (string, error) {
	if rest, ok := strings.CutPrefix(v, "@"); ok {
		b, err := os.ReadFile(rest)
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
	return v, nil
}

func loadKeys(files []string) ([]*tufrepo.Key, error) {
	var out []*tufrepo.Key
	for _, f := range files {
		k, err := tufrepo.LoadKey(f)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// build makes the director, nil when --director is not given.
func (d *directorFlags) build(st store.Store, log *slog.Logger, extra ...director.Option) (*director.Service, func(), error) {
	nothing := func() {}
	if d.repo == "" {
		if d.imageURL != "" || d.regDB != "" || d.regRPC != "" {
			return nil, nothing, usagef("serve: --image-url and --registrar-* need --director")
		}
		return nil, nothing, nil
	}
	var keys tufrepo.OnlineKeys
	var err error
	if keys.Targets, err = loadKeys(d.targetsKeys); err != nil {
		return nil, nothing, fmt.Errorf("director: %w", err)
	}
	if keys.Snapshot, err = loadKeys(d.snapKeys); err != nil {
		return nil, nothing, fmt.Errorf("director: %w", err)
	}
	if keys.Timestamp, err = loadKeys(d.tsKeys); err != nil {
		return nil, nothing, fmt.Errorf("director: %w", err)
	}
	tdir, err := tufrepo.OpenDirector(d.repo, keys)
	if err != nil {
		return nil, nothing, err
	}
	cfg := director.Config{Store: st, Director: tdir, Domains: d.regDomains}
	if d.imageURL != "" {
		if d.imageRoot == "" {
			return nil, nothing, usagef("serve: --image-url needs --image-root")
		}
		root, err := os.ReadFile(d.imageRoot)
		if err != nil {
			return nil, nothing, fmt.Errorf("image root: %w", err)
		}
		client := &http.Client{Timeout: 30 * time.Second}
		if d.imageCA != "" {
			b, err := os.ReadFile(d.imageCA)
			if err != nil {
				return nil, nothing, fmt.Errorf("image CA: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(b) {
				return nil, nothing, fmt.Errorf("image CA %s: no certificate", d.imageCA)
			}
			client.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
		}
		img, err := director.NewImageRepo(d.imageURL, root, client, log, nil)
		if err != nil {
			return nil, nothing, err
		}
		cfg.Image = img
	}
	closers := []func(){}
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	if d.regDB != "" {
		if len(d.regDomains) == 0 {
			return nil, nothing, usagef("serve: --registrar-db needs --registrar-domain")
		}
		dsn, err := readSecretArg(d.regDB)
		if err != nil {
			return nil, nothing, fmt.Errorf("--registrar-db: %w", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		subs, err := registrar.OpenSubscribers(ctx, dsn, registrar.WithAlgorithm(d.regDigest), registrar.WithLogger(log))
		cancel()
		if err != nil {
			return nil, nothing, err
		}
		closers = append(closers, subs.Close)
		cfg.Registrar = subs
	}
	if d.regRPC != "" {
		rpc, err := registrar.NewRPC(d.regRPC, registrar.WithRPCLogger(log))
		if err != nil {
			closeAll()
			return nil, nothing, err
		}
		cfg.Notifier = rpc
	}
	svc, err := director.New(cfg, append([]director.Option{director.WithLogger(log), director.WithRotation(d.rotation)}, extra...)...)
	if err != nil {
		closeAll()
		return nil, nothing, err
	}
	if d.interval < time.Second {
		closeAll()
		return nil, nothing, usagef("serve: --director-interval %v: want at least 1s", d.interval)
	}
	log.Info("director configured", "repository", d.repo, "image", d.imageURL, "registrar", d.regDB != "",
		"check_sync", d.regRPC != "", "rotation", d.rotation.String())
	return svc, closeAll, nil
}
