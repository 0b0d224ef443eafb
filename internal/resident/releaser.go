package resident

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// releaseFaults is how many page faults since the last release make
// another worth it: a few hundred KiB newly resident at the least.
const releaseFaults = 64

// Releaser calls ReleaseCode when its process has been quiet. It looks
// every quiet period and releases when nothing its owner reported (Active)
// happened in the whole period before, the owner is not busy (a call is
// up, an update installs), and the process faulted pages in since the last
// release (a keepalive, a collection or a timer ran code again): an idle
// process is released once, not every period. The first release also
// drops start-up's pages from the page cache (ReleaseCode's dropCache);
// if it fails, the next one tries again.
type Releaser struct {
	quiet   time.Duration
	busy    func() bool
	log     *slog.Logger
	release func(dropCache bool) (Released, error)
	faults  func() (int64, error)
	kick    chan struct{} // buffered 1: activity since the last look
	base    int64         // page faults just after the last release; -1: none yet; owned by Run
	dropped bool          // a release dropped the page cache; owned by Run

	mu     sync.Mutex // guards the fields below
	count  int
	last   time.Time
	result Released
	err    error
}

// NewReleaser returns a Releaser that looks every quiet period; busy (nil:
// never) says when the owner must not be disturbed.
func NewReleaser(quiet time.Duration, busy func() bool, log *slog.Logger) (*Releaser, error) {
	if quiet <= 0 {
		return nil, errors.New("resident: a release needs a positive quiet time")
	}
	if busy == nil {
		busy = func() bool { return false }
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Releaser{quiet: quiet, busy: busy, log: log, release: ReleaseCode, faults: Faults,
		kick: make(chan struct{}, 1), base: -1}, nil
}

// Active tells the releaser that something ran: the period it falls in
// is not quiet.
func (r *Releaser) Active() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run looks every quiet period until ctx ends. Start-up counts as
// activity.
func (r *Releaser) Run(ctx context.Context) {
	t := time.NewTicker(r.quiet)
	defer t.Stop()
	r.Active()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.step()
		}
	}
}

// step is one look, at the end of a quiet period.
func (r *Releaser) step() {
	select {
	case <-r.kick:
		return // something ran in this period: look again after the next
	default:
	}
	if r.busy() {
		return // its end is activity: the period after it is looked at
	}
	if r.base >= 0 {
		if n, err := r.faults(); err == nil && n-r.base < releaseFaults {
			return // nothing new resident since the last release
		}
	}
	res, err := r.release(!r.dropped)
	r.mu.Lock()
	r.count++
	r.last, r.result, r.err = time.Now(), res, err
	r.mu.Unlock()
	if err != nil {
		r.log.Warn("releasing idle code pages", "error", err)
		return
	}
	r.dropped = true
	if n, err := r.faults(); err == nil {
		r.base = n
	}
	r.log.Debug("released idle code pages", "before_kib", res.BeforeKiB, "after_kib", res.AfterKiB, "kept_mappings", res.Kept)
}

// Status is what the releaser did so far.
type Status struct {
	Quiet time.Duration
	// Count is how many releases ran, Last when the last did, Result what
	// it did and Err why it failed (nil: it did not).
	Count  int
	Last   time.Time
	Result Released
	Err    error
}

// Status reports the releases so far.
func (r *Releaser) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Status{Quiet: r.quiet, Count: r.count, Last: r.last, Result: r.result, Err: r.err}
}
