package console

import (
	"context"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/hardphone/hardphone/fleet/audit"
	"github.com/hardphone/hardphone/fleet/console/consoleapi"
)

// auditTimeout bounds one append, also when the request's client is gone:
// an entry is written even for a request the client abandoned.
const auditTimeout = 10 * time.Second

// recorder appends the console's audit entries.
type recorder struct {
	log    *audit.Log
	logger *slog.Logger
	now    func() time.Time
	// lim bounds the entries of clients that are not logged-in admins.
	lim *rate.Limiter

	mu sync.Mutex
	// suppressed counts entries dropped by lim since the last one
	// written; guarded by mu.
	suppressed int64
}

func newRecorder(l *audit.Log, logger *slog.Logger, now func() time.Time, r rate.Limit, burst int) *recorder {
	return &recorder{log: l, logger: logger, now: now, lim: rate.NewLimiter(r, burst)}
}

// record appends e and returns its index. An action whose entry cannot be
// written must not take effect (or must be undone): the caller checks the
// error.
func (r *recorder) record(ctx context.Context, e audit.Entry) (int64, error) {
	if e.Time.IsZero() {
		e.Time = r.now()
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	idx, err := r.log.Append(ctx, e)
	if err != nil {
		r.logger.Error("audit entry not written", "action", string(e.Action), "err", err)
		return 0, err
	}
	return idx, nil
}

// recordLimited appends e unless the rate for unauthenticated clients is
// spent; dropped entries are counted into the next one written
// (details.suppressed_before). A failure is logged, not returned: the
// refusal it records stands either way.
func (r *recorder) recordLimited(ctx context.Context, e audit.Entry) {
	r.mu.Lock()
	if !r.lim.AllowN(r.now(), 1) {
		r.suppressed++
		n := r.suppressed
		r.mu.Unlock()
		if n == 1 || n%1000 == 0 {
			r.logger.Warn("audit entries of unauthenticated clients suppressed (rate)", "suppressed", n)
		}
		return
	}
	n := r.suppressed
	r.suppressed = 0
	r.mu.Unlock()
	if n > 0 {
		if e.Details == nil {
			e.Details = map[string]string{}
		}
		e.Details["suppressed_before"] = strconv.FormatInt(n, 10)
	}
	if _, err := r.record(ctx, e); err != nil && n > 0 {
		r.mu.Lock()
		r.suppressed += n
		r.mu.Unlock()
	}
}

// entry is the common part of the console's entries for request q.
func entry(q *req, a audit.Action, o audit.Outcome, target string, details map[string]string) audit.Entry {
	if details == nil {
		details = map[string]string{}
	}
	details["channel"] = channel(q)
	return audit.Entry{Actor: actor(q), Action: a, Target: target, Outcome: o, Source: q.client.Addr, Details: details}
}

func channel(q *req) string {
	if q.rt.api {
		return "api"
	}
	return "web"
}

// add records e for q: without limit for a logged-in admin, limited for
// anyone else.
func (c *Console) add(q *req, e audit.Entry) {
	if e.Actor.Kind == audit.ActorAdmin {
		if _, err := c.rec.record(q.ctx, e); err != nil {
			c.logger.Error("audit entry lost", "action", string(e.Action), "err", err)
		}
		return
	}
	c.rec.recordLimited(q.ctx, e)
}

// recordRefusal records a refusal as access.denied, unless the handler
// recorded it already. A browser that is merely not logged in (a GET
// without a session) and unknown pages are not refusals of anything.
func (c *Console) recordRefusal(q *req, rf *refusal) {
	if rf.audited || rf.code == consoleapi.CodeNotFound ||
		(rf.reason == "no_session" && !stateChanging(q.r.Method) && !q.rt.api) {
		return
	}
	out := audit.OutcomeDenied
	if rf.code.Status() >= 500 {
		out = audit.OutcomeFailure
	}
	d := map[string]string{"reason": rf.reason}
	if q.rt.perm != "" {
		d["permission"] = string(q.rt.perm)
	}
	c.add(q, entry(q, audit.ActionAccessDenied, out, q.r.Method+" "+q.r.URL.Path, d))
}
