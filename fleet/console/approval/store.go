package approval

import (
	"context"
	"time"
)

// Bounds every Store keeps.
const (
	// MaxPendingPerAdmin bounds the pending changes one admin proposed.
	MaxPendingPerAdmin = 32
	// MaxPending bounds the pending changes in all.
	MaxPending = 1000
	// MaxHistory bounds the decided changes kept; Create drops the
	// oldest beyond it (the audit log keeps every decision for good).
	MaxHistory = 10000
	// MaxList bounds one List answer.
	MaxList = 1000
)

// Store keeps changes. Every method is safe for concurrent use, across
// replicas for pgapproval; an error changes nothing.
type Store interface {
	// Create stores a new pending change. Pending changes expired at
	// c.ProposedAt are marked expired first; then more than
	// MaxPendingPerAdmin pending of c's proposer, or MaxPending in all,
	// is ErrLimit. Decided changes beyond MaxHistory are dropped, oldest
	// first. A taken ID is ErrExists.
	Create(ctx context.Context, c Change) error
	// Get returns a change, or ErrNotFound.
	Get(ctx context.Context, id ID) (Change, error)
	// List returns up to limit (1..MaxList) changes, newest proposal
	// first: only those in state when state is not "".
	List(ctx context.Context, state State, limit int) ([]Change, error)
	// Update runs fn on the stored change and stores the result,
	// atomically against every other Update of it (on any replica);
	// fn's error, or a result that does not Validate or changes the ID,
	// kind, proposer, target or proposal time, aborts with nothing
	// written. ErrNotFound when there is no such change.
	Update(ctx context.Context, id ID, fn func(*Change) error) error
}

// NewChange fills the fields every proposal has: a new ID, the proposal
// and expiry times, state pending, no audit entry yet.
func NewChange(kind Kind, by, target Party, now time.Time, lifetime time.Duration) Change {
	now = now.UTC().Round(0)
	return Change{ID: NewID(), Kind: kind, ProposedBy: by, ProposedAt: now, Expires: now.Add(lifetime),
		Target: target, State: StatePending, RequestEntry: -1}
}

// Immutable reports whether u keeps what an Update may not change of c.
func Immutable(c, u *Change) bool {
	return c.ID == u.ID && c.Kind == u.Kind && c.ProposedBy == u.ProposedBy && c.Target == u.Target &&
		c.ProposedAt.Equal(u.ProposedAt)
}
