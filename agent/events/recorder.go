package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Defaults of a Recorder.
const (
	DefaultQueue = 1024
	DefaultTick  = 10 * time.Second
	// recorderBatch is the most events one journal commit takes from the
	// queue.
	recorderBatch = 64
)

type recorderOptions struct {
	limits Limits
	queue  int
	tick   time.Duration
	now    func() time.Time
	log    *slog.Logger
}

// RecorderOption configures NewRecorder.
type RecorderOption func(*recorderOptions) error

// WithLimits sets the rate limits; the default is DefaultLimits.
func WithLimits(l Limits) RecorderOption {
	return func(o *recorderOptions) error {
		if err := l.check(); err != nil {
			return err
		}
		o.limits = l
		return nil
	}
}

// WithQueue bounds the events waiting for the journal; past it events are
// counted as suppressed.
func WithQueue(n int) RecorderOption {
	return func(o *recorderOptions) error {
		if n < 2 || n > 1<<16 {
			return fmt.Errorf("queue of %d events: want 2..%d", n, 1<<16)
		}
		o.queue = n
		return nil
	}
}

// WithTick sets how often Run writes due suppression summaries and time
// checkpoints.
func WithTick(d time.Duration) RecorderOption {
	return func(o *recorderOptions) error {
		if d <= 0 {
			return fmt.Errorf("tick %v: want > 0", d)
		}
		o.tick = d
		return nil
	}
}

// WithRecorderClock sets the clock of event times and rate limits.
func WithRecorderClock(now func() time.Time) RecorderOption {
	return func(o *recorderOptions) error {
		if now == nil {
			return errors.New("nil clock")
		}
		o.now = now
		return nil
	}
}

// WithRecorderLogger sets the logger; the default discards.
func WithRecorderLogger(l *slog.Logger) RecorderOption {
	return func(o *recorderOptions) error {
		if l == nil {
			return errors.New("nil logger")
		}
		o.log = l
		return nil
	}
}

// RecorderStats counts what a Recorder did with the events it was given.
type RecorderStats struct {
	// Queued counts events accepted for the journal, summaries included;
	// Written those the journal committed; Lost those a failed commit
	// lost (each failure is logged).
	Queued, Written, Lost uint64
	// Suppressed counts events held back by the limits or a full queue;
	// each is in a suppression summary written or still to come.
	Suppressed uint64
}

// Recorder is what the agent's parts emit events through: Record never
// blocks on the disk. It cleans and rate limits each event, queues it in a
// bounded queue, and Run writes the queue to the journal in batches (one
// fsynced commit per batch). Record returns before the event is on disk:
// a crash loses at most what is queued (the queue bound). Flush waits
// until what was recorded is committed, for callers that need that.
type Recorder struct {
	j    *Journal
	o    recorderOptions
	log  *slog.Logger
	wake chan struct{} // capacity 1: Run has work

	// mu guards everything below.
	mu       sync.Mutex
	lim      *limiter
	queue    []Event
	st       RecorderStats
	progress chan struct{} // closed (and replaced) when Written or Lost move
	stopped  bool
}

// NewRecorder makes a Recorder writing to j. Call Run to start writing.
func NewRecorder(j *Journal, opts ...RecorderOption) (*Recorder, error) {
	o := recorderOptions{limits: DefaultLimits, queue: DefaultQueue, tick: DefaultTick, now: time.Now, log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, fmt.Errorf("new recorder: %w", err)
		}
	}
	if j == nil {
		return nil, errors.New("new recorder: nil journal")
	}
	return &Recorder{j: j, o: o, log: o.log.With("component", "events"), wake: make(chan struct{}, 1),
		lim: newLimiter(o.limits), progress: make(chan struct{})}, nil
}

// Record takes an event. It fails only for an event the model refuses
// (ErrInvalidEvent: a bug in the caller, not an attack) or after Run has
// stopped (ErrClosed); an event held back by the rate limit is counted,
// summarised later, and not an error.
func (r *Recorder) Record(ev Event) error {
	c, err := sanitize(ev)
	if err != nil {
		return fmt.Errorf("record event: %w", err)
	}
	now := r.o.now()
	if c.Time.IsZero() {
		c.Time = now
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return fmt.Errorf("record event: %w", ErrClosed)
	}
	ok, sum := r.lim.allow(&c, now)
	switch {
	case !ok:
		r.st.Suppressed++
		return nil
	case len(r.queue)+1+btoi(sum != nil) > r.o.queue:
		r.st.Suppressed++
		r.lim.drop(&c, now)
		if sum != nil {
			r.lim.requeue(sum)
		}
		return nil
	}
	if sum != nil {
		r.push(*sum)
	}
	r.push(c)
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// push queues an event and wakes Run. Callers hold mu.
func (r *Recorder) push(ev Event) {
	r.queue = append(r.queue, ev)
	r.st.Queued++
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Run writes queued events to the journal until ctx is done. On a tick it
// writes the suppression summaries whose limit let up and a checkpoint when
// one is due. When ctx ends it writes what is queued and every summary
// still owed, so no suppressed event goes uncounted, and returns nil.
func (r *Recorder) Run(ctx context.Context) error {
	t := time.NewTicker(r.o.tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.summaries(true)
			r.drain()
			r.mu.Lock()
			r.stopped = true
			r.mu.Unlock()
			return nil
		case <-r.wake:
			r.drain()
		case <-t.C:
			r.summaries(false)
			r.drain()
			if err := r.j.CheckpointIfDue(); err != nil {
				r.log.Warn("time checkpoint", "err", err)
			}
		}
	}
}

// summaries queues the due suppression summaries (all of them with force).
func (r *Recorder) summaries(force bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.lim.due(r.o.now(), force) {
		if !force && len(r.queue) >= r.o.queue {
			r.lim.requeue(s)
			continue
		}
		r.push(*s)
	}
}

// drain writes the queue to the journal in batches.
func (r *Recorder) drain() {
	for {
		r.mu.Lock()
		n := min(len(r.queue), recorderBatch)
		if n == 0 {
			r.mu.Unlock()
			return
		}
		batch := make([]Event, n)
		copy(batch, r.queue)
		r.queue = append(r.queue[:0], r.queue[n:]...)
		r.mu.Unlock()
		_, err := r.j.Append(batch...)
		r.mu.Lock()
		if err != nil {
			r.st.Lost += uint64(n)
			r.log.Error("events lost: journal append failed", "events", n, "err", err)
		} else {
			r.st.Written += uint64(n)
		}
		close(r.progress)
		r.progress = make(chan struct{})
		r.mu.Unlock()
	}
}

// Flush waits until every event queued before the call is written (or
// lost), or ctx is done. Run must be running.
func (r *Recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	target := r.st.Queued
	r.mu.Unlock()
	for {
		r.mu.Lock()
		done := r.st.Written+r.st.Lost >= target
		p := r.progress
		r.mu.Unlock()
		if done {
			return nil
		}
		select {
		case r.wake <- struct{}{}:
		default:
		}
		select {
		case <-p:
		case <-ctx.Done():
			return fmt.Errorf("flush events: %w", ctx.Err())
		}
	}
}

// Stats returns the counters.
func (r *Recorder) Stats() RecorderStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}
