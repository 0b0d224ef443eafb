package system

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/hardphone/hardphone/agent"
	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/agent/fleetconfig"
	"github.com/hardphone/hardphone/agent/uptane"
	"github.com/hardphone/hardphone/crypto/policy"
)

// The fleet's repositories, as the phone follows them: the director over
// mutual TLS with the device certificate (the fleet server's CA and name,
// pinned by the image), the image repository from any HTTP(S) server (the
// transport is untrusted: TUF verifies every byte), the trusted metadata
// in the state file's bucket "uptane", the configuration documents in
// bucket "fleetconfig", and the director's signed time raising the time
// floor.

// Timeouts of the metadata fetches: small files, so a server that stalls
// is a failed refresh, retried at the next one.
const (
	metadataTimeout = 60 * time.Second
	// maxRedirects bounds the image repository's redirects (a mirror
	// network); the director is not followed anywhere.
	maxRedirects = 5
)

// fleetDoc is what OpenDaemon merged into the phone's config.
type fleetDoc struct {
	store   *fleetconfig.Store
	running uint64 // the document version in cfg, 0 for none
	trial   bool   // that document is on trial
	err     string // why the current document is not in cfg
}

// OpenDaemon opens the phone `hardphone run` runs: Open on the image's
// config (read from its file), and, when the phone follows the fleet's
// repositories and the state file holds a configuration document, the
// config with that document merged over it (config.ParseWithDocument).
// skip, when not nil, says the current document did not build an agent
// last time: it is left out. A document on trial that is left out (or does
// not merge) gives way to the previous good one, and the agent reverts it
// with the reason when it starts; a good document that is left out leaves
// the image's config alone, the reason reported.
func OpenDaemon(image *config.Config, log *slog.Logger, skip error) (*Phone, error) {
	p, err := Open(image, log)
	if err != nil {
		return nil, err
	}
	if !image.Provision.Uptane() {
		return p, nil
	}
	if image.Path == "" {
		return nil, errors.Join(errors.New("system: the fleet's configuration documents merge over a config file, and this config has none"), p.Close())
	}
	st, err := p.State()
	if err != nil {
		return nil, errors.Join(err, p.Close())
	}
	store, err := fleetconfig.Open(st.DB())
	if err != nil {
		return nil, errors.Join(err, p.Close())
	}
	rec, err := store.State()
	if err != nil {
		return nil, errors.Join(err, p.Close())
	}
	p.fleet = &fleetDoc{store: store}
	doc := rec.Current
	if doc != nil && skip != nil {
		p.fleet.err = "the agent does not start with it: " + skip.Error()
		doc = nil
	}
	if doc != nil {
		merged, err := config.LoadWithDocument(image.Path, doc.Data)
		if err == nil {
			p.cfg, p.fleet.running, p.fleet.trial = merged, doc.Version, rec.Trial
			p.log.Info("running the fleet configuration", "version", doc.Version, "trial", rec.Trial)
			return p, nil
		}
		p.fleet.err = err.Error()
	}
	if rec.Current != nil && rec.Trial && rec.Previous != nil {
		if merged, err := config.LoadWithDocument(image.Path, rec.Previous.Data); err == nil {
			p.cfg, p.fleet.running = merged, rec.Previous.Version
		}
	}
	if p.fleet.err != "" {
		p.log.Error("fleet configuration left out", "version", rec.Version(), "reason", p.fleet.err, "running", p.fleet.running)
	}
	return p, nil
}

// FleetTrial reports whether the phone's config includes a fleet document
// on trial (an agent that does not build with it reverts it).
func (p *Phone) FleetTrial() bool { return p.fleet != nil && p.fleet.trial }

// FleetRunning is the version of the fleet document in the phone's
// config, 0 for none.
func (p *Phone) FleetRunning() uint64 {
	if p.fleet == nil {
		return 0
	}
	return p.fleet.running
}

// fleetRepos builds what the agent follows the fleet's repositories with.
// Provisioner must have run (the director is reached as the enrolled
// device, with its live certificate).
func (p *Phone) fleetRepos() (agent.FleetRepos, error) {
	pc := p.cfg.Provision
	if p.ident == nil {
		return agent.FleetRepos{}, errors.New("system: the fleet's repositories need the provisioning client")
	}
	st, err := p.State()
	if err != nil {
		return agent.FleetRepos{}, err
	}
	if p.fleet == nil {
		store, err := fleetconfig.Open(st.DB())
		if err != nil {
			return agent.FleetRepos{}, err
		}
		p.fleet = &fleetDoc{store: store}
	}
	imageRoot, err := readRoot(pc.ImageRoot)
	if err != nil {
		return agent.FleetRepos{}, fmt.Errorf("provision.image_root: %w", err)
	}
	directorRoot, err := readRoot(pc.DirectorRoot)
	if err != nil {
		return agent.FleetRepos{}, fmt.Errorf("provision.director_root: %w", err)
	}
	floor, err := p.TimeFloor()
	if err != nil {
		return agent.FleetRepos{}, err
	}
	dirHTTP, err := p.directorHTTP(floor.Now)
	if err != nil {
		return agent.FleetRepos{}, err
	}
	imgHTTP, err := p.imageHTTP(floor.Now)
	if err != nil {
		return agent.FleetRepos{}, err
	}
	imgFetcher, err := uptane.NewHTTPFetcher(imgHTTP, pc.ImageRepo)
	if err != nil {
		return agent.FleetRepos{}, fmt.Errorf("provision.image_repo: %w", err)
	}
	opts := []uptane.Option{uptane.WithLogger(p.log)}
	if p.board != nil && p.board.Compatible != "" {
		opts = append(opts, uptane.WithCompatible(p.board.Compatible))
	}
	db := st.DB()
	client := func(deviceID string) (*uptane.Client, error) {
		dirFetcher, err := uptane.NewHTTPFetcher(dirHTTP, pc.DirectorURL(deviceID))
		if err != nil {
			return nil, fmt.Errorf("director: %w", err)
		}
		return uptane.New(db, deviceID, floor.Now, uptane.RepoConfig{Root: imageRoot, Fetcher: imgFetcher},
			uptane.RepoConfig{Root: directorRoot, Fetcher: dirFetcher}, opts...)
	}
	imagePath := p.cfg.Path
	r := agent.FleetRepos{
		Client:  client,
		Configs: p.fleet.store,
		Check: func(doc []byte) (*config.Config, error) {
			return config.LoadWithDocument(imagePath, doc)
		},
		Running:      p.fleet.running,
		RunningError: p.fleet.err,
	}
	if p.cfg.Update.Keyring != "" {
		dl, err := p.imageDownloadHTTP(floor.Now)
		if err != nil {
			return agent.FleetRepos{}, err
		}
		dir := filepath.Dir(st.Path())
		limit := MaxBundleBytes(p.board)
		r.Firmware = func(ctx context.Context, fw uptane.Firmware) (string, error) {
			return downloadTarget(ctx, dl, pc.ImageRepo, fw.Target, dir, limit, p.log)
		}
	}
	return r, nil
}

// readRoot reads a pinned root metadata file, bounded.
func readRoot(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, uptane.MaxRootSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > uptane.MaxRootSize {
		return nil, fmt.Errorf("%s: more than %d bytes", path, uptane.MaxRootSize)
	}
	return b, nil
}

// directorHTTP is the HTTP client for the director: mutual TLS with the
// device certificate as the fleet renews it, the fleet server's CA and
// name as the image pins them, checked against the time floor; no
// redirects (the certificate is presented to the pinned server only).
func (p *Phone) directorHTTP(now func() time.Time) (*http.Client, error) {
	pc := p.cfg.Provision
	roots, err := loadRoots(pc.ServerCA)
	if err != nil {
		return nil, fmt.Errorf("provision.server_ca: %w", err)
	}
	tlsCfg, err := policy.ClientConfig(policy.ClientTLS{Roots: roots, ServerName: pc.ServerName, Time: now, GetCertificate: p.ident.get})
	if err != nil {
		return nil, err
	}
	dial := (&net.Dialer{Timeout: dialTimeout}).DialContext
	// The DHCP hint says where the fleet server is; the director on the
	// same host is dialled there too (its certificate still proves the
	// pinned name).
	hint, err := readHint(pc.HintFile)
	if err != nil {
		hint = ""
	}
	server, _ := url.Parse(pc.Server)
	director, _ := url.Parse(pc.Director)
	if hint != "" && server != nil && director != nil && server.Host == director.Host {
		dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{Timeout: dialTimeout}).DialContext(ctx, network, hint)
		}
	}
	return &http.Client{Timeout: metadataTimeout,
		Transport: &http.Transport{TLSClientConfig: tlsCfg, DialContext: dial, TLSHandshakeTimeout: dialTimeout,
			ResponseHeaderTimeout: headerTimeout, MaxResponseHeaderBytes: 64 << 10, ForceAttemptHTTP2: true},
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			return fmt.Errorf("redirect to %s refused: the director is the pinned server", req.URL.Redacted())
		}}, nil
}

// imageTransport reaches the image repository: plain HTTP, or HTTPS
// verified against the system's roots and the fleet server's CA. Neither
// is trusted for what it serves.
func (p *Phone) imageTransport(now func() time.Time) (*http.Transport, error) {
	u, err := url.Parse(p.cfg.Provision.ImageRepo)
	if err != nil {
		return nil, fmt.Errorf("provision.image_repo: %w", err)
	}
	t := &http.Transport{DialContext: (&net.Dialer{Timeout: dialTimeout}).DialContext, TLSHandshakeTimeout: dialTimeout,
		ResponseHeaderTimeout: headerTimeout, MaxResponseHeaderBytes: 64 << 10, Proxy: http.ProxyFromEnvironment}
	if u.Scheme == "https" {
		roots, err := x509.SystemCertPool()
		if err != nil {
			roots = x509.NewCertPool()
		}
		if b, err := os.ReadFile(p.cfg.Provision.ServerCA); err == nil {
			roots.AppendCertsFromPEM(b)
		}
		cfg, err := policy.ClientConfig(policy.ClientTLS{Roots: roots, ServerName: u.Hostname(), Time: now})
		if err != nil {
			return nil, err
		}
		t.TLSClientConfig = cfg
	}
	return t, nil
}

func imageRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("more than %d redirects", maxRedirects)
	}
	if req.URL.Scheme != "https" && req.URL.Scheme != "http" {
		return fmt.Errorf("redirect to %q refused", req.URL.Scheme)
	}
	return nil
}

func (p *Phone) imageHTTP(now func() time.Time) (*http.Client, error) {
	t, err := p.imageTransport(now)
	if err != nil {
		return nil, err
	}
	return &http.Client{Timeout: metadataTimeout, Transport: t, CheckRedirect: imageRedirects}, nil
}

// imageDownloadHTTP is imageHTTP for bundles: bounded by DownloadTimeout
// through the context, not by the metadata timeout.
func (p *Phone) imageDownloadHTTP(now func() time.Time) (*http.Client, error) {
	t, err := p.imageTransport(now)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: t, CheckRedirect: imageRedirects}, nil
}

// downloadTarget fetches a target of the image repository into a private
// file in dir, checked against its signed length and SHA-256 while it
// streams (uptane.NewTargetReader), never more than limit bytes, within
// DownloadTimeout, and returns its path (the caller removes it). A
// download that breaks a bound or does not match leaves nothing.
func downloadTarget(ctx context.Context, client *http.Client, base string, t uptane.Target, dir string, limit int64, log *slog.Logger) (string, error) {
	if t.Length <= 0 || t.Length > limit {
		return "", fmt.Errorf("bundle %s of %d bytes: a slot of this board takes at most %d", t.Name, t.Length, limit)
	}
	bu, err := url.Parse(base)
	if err != nil {
		return "", err
	}
	u := bu.JoinPath(t.Path)
	ctx, cancel := context.WithTimeout(ctx, DownloadTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("download %s: %w", t.Name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("download %s: %s", t.Name, resp.Status)
	}
	if resp.ContentLength > t.Length {
		return "", fmt.Errorf("download %s: %d bytes announced, the metadata says %d: %w", t.Name, resp.ContentLength, t.Length, uptane.ErrTargetMismatch)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, "fleet-*.raucb")
	if err != nil {
		return "", err
	}
	n, err := io.Copy(f, uptane.NewTargetReader(resp.Body, t))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("download %s: %w", t.Name, err)
	}
	log.Info("bundle downloaded", "component", "update", "target", t.Name, "url", u.Redacted(), "bytes", n)
	return f.Name(), nil
}
