package director

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"

	"github.com/hardphone/hardphone/fleet/tufrepo"
)

// Bounds on what the image repository follower downloads.
const (
	maxImageRoot      = 512 << 10
	maxImageTimestamp = 64 << 10
	maxImageMeta      = 16 << 20
	maxRootRotations  = 64
	// imageCacheAge is how long a verified targets list answers without
	// a new refresh (firmware assignment always refreshes).
	imageCacheAge = time.Minute
)

// ImageRepo follows the vendor's image repository over HTTP(S) from a
// pinned root, as a TUF client (go-tuf's trustedmetadata): the root chain,
// timestamp (no rollback of the last one seen), snapshot and targets, none
// expired. The director takes firmware targets only from it, so an
// assignment names exactly what the offline targets keys listed.
type ImageRepo struct {
	base   *url.URL
	client *http.Client
	now    func() time.Time
	log    *slog.Logger

	mu      sync.Mutex // guards the fields below
	root    []byte     // newest trusted root
	ts      []byte     // last trusted timestamp (rollback reference)
	targets map[string]tufrepo.Firmware
	fetched time.Time
}

// NewImageRepo follows the repository served under baseURL (http or
// https; the transport is not trusted) from pinnedRoot (a root.json of
// the repository, version 1 or later).
func NewImageRepo(baseURL string, pinnedRoot []byte, client *http.Client, log *slog.Logger, now func() time.Time) (*ImageRepo, error) {
	if !strings.HasSuffix(baseURL, "/") {
		baseURL += "/"
	}
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("image repository URL %q: want http(s)://HOST/PATH/", baseURL)
	}
	if _, err := trustedmetadata.New(pinnedRoot); err != nil {
		return nil, fmt.Errorf("image repository pinned root: %w", err)
	}
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	return &ImageRepo{base: u, client: client, now: now, log: log.With("component", "director"), root: pinnedRoot}, nil
}

// Targets returns the image repository's firmware targets: the list
// verified within the last minute, or a new verification (always with
// refresh).
func (r *ImageRepo) Targets(ctx context.Context, refresh bool) (map[string]tufrepo.Firmware, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if !refresh && r.targets != nil && now.Sub(r.fetched) < imageCacheAge && !now.Before(r.fetched) {
		return r.targets, nil
	}
	t, err := r.refreshLocked(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("image repository: %w", err)
	}
	r.targets, r.fetched = t, now
	return t, nil
}

func (r *ImageRepo) refreshLocked(ctx context.Context, now time.Time) (map[string]tufrepo.Firmware, error) {
	tm, err := trustedmetadata.New(r.root)
	if err != nil {
		return nil, err
	}
	tm.RefTime = now
	root := r.root
	for i := 0; i < maxRootRotations; i++ {
		next := tm.Root.Signed.Version + 1
		b, err := r.fetch(ctx, strconv.FormatInt(next, 10)+".root.json", maxImageRoot)
		if errors.Is(err, errNotFound) {
			break
		}
		if err != nil {
			return nil, err
		}
		if _, err := tm.UpdateRoot(b); err != nil {
			return nil, fmt.Errorf("root v%d: %w", next, err)
		}
		root = b
	}
	if tm.Root.Signed.IsExpired(now) {
		return nil, fmt.Errorf("root v%d expired at %v", tm.Root.Signed.Version, tm.Root.Signed.Expires)
	}
	tsb, err := r.fetch(ctx, "timestamp.json", maxImageTimestamp)
	if err != nil {
		return nil, err
	}
	if r.ts != nil && !bytes.Equal(r.ts, tsb) {
		// The last timestamp is the rollback reference only: it may have
		// expired or been signed by keys a new root rotated out.
		if _, err := tm.UpdateTimestamp(r.ts); err != nil &&
			!errors.Is(err, &metadata.ErrExpiredMetadata{}) && !errors.Is(err, &metadata.ErrUnsignedMetadata{}) {
			return nil, fmt.Errorf("previous timestamp: %w", err)
		}
	}
	ts, err := tm.UpdateTimestamp(tsb)
	if err != nil {
		return nil, fmt.Errorf("timestamp: %w", err)
	}
	sm := ts.Signed.Meta["snapshot.json"]
	snapName := "snapshot.json"
	if tm.Root.Signed.ConsistentSnapshot {
		snapName = strconv.FormatInt(sm.Version, 10) + ".snapshot.json"
	}
	snapb, err := r.fetch(ctx, snapName, metaLimit(sm.Length))
	if err != nil {
		return nil, err
	}
	snap, err := tm.UpdateSnapshot(snapb, false)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	tmf := snap.Signed.Meta["targets.json"]
	if tmf == nil {
		return nil, errors.New("snapshot names no targets.json")
	}
	tgtName := "targets.json"
	if tm.Root.Signed.ConsistentSnapshot {
		tgtName = strconv.FormatInt(tmf.Version, 10) + ".targets.json"
	}
	tb, err := r.fetch(ctx, tgtName, metaLimit(tmf.Length))
	if err != nil {
		return nil, err
	}
	if _, err := tm.UpdateTargets(tb); err != nil {
		return nil, fmt.Errorf("targets: %w", err)
	}
	fw, err := tufrepo.ParseImageTargets(tb)
	if err != nil {
		return nil, err
	}
	r.root, r.ts = root, tsb
	r.log.Debug("image repository verified", "root", tm.Root.Signed.Version, "targets", len(fw))
	return fw, nil
}

func metaLimit(n int64) int64 {
	if n <= 0 || n > maxImageMeta {
		return maxImageMeta
	}
	return n
}

var errNotFound = errors.New("not found")

// fetch gets one file of at most max bytes.
func (r *ImageRepo) fetch(ctx context.Context, name string, max int64) ([]byte, error) {
	u := r.base.JoinPath(name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", name, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("fetch %s: %w", name, errNotFound)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("fetch %s: HTTP %d", name, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", name, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("fetch %s: more than %d bytes", name, max)
	}
	return b, nil
}
