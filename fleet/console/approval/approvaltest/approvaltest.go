package approvaltest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/console/approval"
)

// Backend is what Run needs from an implementation.
type Backend struct {
	// Open returns a store on an empty database; Close closes it.
	Open func(t *testing.T) approval.Store
	// Replica opens a second handle on s's database (another hpfleet
	// replica); nil when one process owns the database.
	Replica func(t *testing.T, s approval.Store) approval.Store
	Close   func(s approval.Store) error
}

// Run runs the suite as subtests of t.
func Run(t *testing.T, b Backend) {
	if b.Open == nil || b.Close == nil {
		t.Fatalf("approvaltest.Run: Backend needs Open and Close")
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"CreateGetList", testCreateGetList},
		{"Refusals", testRefusals},
		{"PendingBounds", testPendingBounds},
		{"ExpireOnCreate", testExpireOnCreate},
		{"Update", testUpdate},
		{"ConcurrentApprove", testConcurrentApprove},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, b) })
	}
}

var ctx = context.Background()

var t0 = time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)

// party makes admin n of the suite.
func party(n int) approval.Party {
	return approval.Party{AdminID: fmt.Sprintf("%032x", n+1), Name: fmt.Sprintf("admin-%d", n)}
}

// roleChange is admin by's proposal to make admin target an operator,
// proposed at at.
func roleChange(by, target int, at time.Time) approval.Change {
	c := approval.NewChange(approval.KindAdminRole, party(by), party(target), at, approval.DefaultLifetime)
	c.FromRole, c.ToRole = "viewer", "operator"
	return c
}

func createChange(by, target int, at time.Time) approval.Change {
	c := approval.NewChange(approval.KindAdminCreate, party(by), party(target), at, approval.DefaultLifetime)
	c.ToRole, c.PasswordHash = "viewer", "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
	return c
}

func mustCreate(t *testing.T, s approval.Store, c approval.Change) {
	t.Helper()
	if err := s.Create(ctx, c); err != nil {
		t.Fatalf("Create(%s) error %v", c.ID, err)
	}
}

func equal(a, b approval.Change) bool {
	return a.ID == b.ID && a.Kind == b.Kind && a.ProposedBy == b.ProposedBy && a.ProposedAt.Equal(b.ProposedAt) &&
		a.Expires.Equal(b.Expires) && a.Target == b.Target && a.FromRole == b.FromRole && a.ToRole == b.ToRole &&
		a.PasswordHash == b.PasswordHash && a.State == b.State && a.DecidedBy == b.DecidedBy &&
		a.DecidedAt.Equal(b.DecidedAt) && a.Reason == b.Reason && a.RequestEntry == b.RequestEntry
}

func ids(cs []approval.Change) []approval.ID {
	var out []approval.ID
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func testCreateGetList(t *testing.T, b Backend) {
	s := b.Open(t)
	defer b.Close(s)
	var made []approval.Change
	for i := range 5 {
		c := roleChange(1, 10+i, t0.Add(time.Duration(i)*time.Minute))
		if i == 2 {
			c = createChange(1, 10+i, t0.Add(time.Duration(i)*time.Minute))
		}
		mustCreate(t, s, c)
		made = append(made, c)
	}
	for _, c := range made {
		got, err := s.Get(ctx, c.ID)
		if err != nil || !equal(got, c) {
			t.Errorf("Get(%s) = %+v, %v; want %+v", c.ID, got, err, c)
		}
	}
	if _, err := s.Get(ctx, approval.NewID()); !errors.Is(err, approval.ErrNotFound) {
		t.Errorf("Get(unknown) error %v, want ErrNotFound", err)
	}
	// Decide one so that the state filter has something to filter.
	err := s.Update(ctx, made[1].ID, func(c *approval.Change) error {
		return approval.Refuse(c, party(2), "no", t0.Add(time.Hour))
	})
	if err != nil {
		t.Fatalf("Update(refuse) error %v", err)
	}
	tests := []struct {
		state approval.State
		limit int
		want  []approval.ID
	}{
		{"", 10, []approval.ID{made[4].ID, made[3].ID, made[2].ID, made[1].ID, made[0].ID}},
		{"", 2, []approval.ID{made[4].ID, made[3].ID}},
		{approval.StatePending, 10, []approval.ID{made[4].ID, made[3].ID, made[2].ID, made[0].ID}},
		{approval.StateRefused, 10, []approval.ID{made[1].ID}},
		{approval.StateApplied, 10, nil},
	}
	for _, tt := range tests {
		got, err := s.List(ctx, tt.state, tt.limit)
		if err != nil {
			t.Fatalf("List(%q, %d) error %v", tt.state, tt.limit, err)
		}
		if fmt.Sprint(ids(got)) != fmt.Sprint(tt.want) {
			t.Errorf("List(%q, %d) = %v, want %v", tt.state, tt.limit, ids(got), tt.want)
		}
	}
}

func testRefusals(t *testing.T, b Backend) {
	s := b.Open(t)
	defer b.Close(s)
	c := roleChange(1, 2, t0)
	mustCreate(t, s, c)
	if err := s.Create(ctx, c); !errors.Is(err, approval.ErrExists) {
		t.Errorf("Create(same ID) error %v, want ErrExists", err)
	}
	bad := roleChange(1, 1, t0)
	if err := s.Create(ctx, bad); !errors.Is(err, approval.ErrSamePerson) {
		t.Errorf("Create(self) error %v, want ErrSamePerson", err)
	}
	notPending := roleChange(1, 3, t0)
	notPending.State = approval.StateApplied
	if err := s.Create(ctx, notPending); !errors.Is(err, approval.ErrInvalid) {
		t.Errorf("Create(applied) error %v, want ErrInvalid", err)
	}
	for _, limit := range []int{0, approval.MaxList + 1} {
		if _, err := s.List(ctx, "", limit); !errors.Is(err, approval.ErrInvalid) {
			t.Errorf("List(limit %d) error %v, want ErrInvalid", limit, err)
		}
	}
	if _, err := s.List(ctx, "maybe", 1); !errors.Is(err, approval.ErrInvalid) {
		t.Errorf("List(state maybe) error %v, want ErrInvalid", err)
	}
	if err := s.Update(ctx, approval.NewID(), func(*approval.Change) error { return nil }); !errors.Is(err, approval.ErrNotFound) {
		t.Errorf("Update(unknown) error %v, want ErrNotFound", err)
	}
	if got, _ := s.List(ctx, "", 10); len(got) != 1 {
		t.Errorf("after refusals List = %v, want only %s", ids(got), c.ID)
	}
}

func testPendingBounds(t *testing.T, b Backend) {
	s := b.Open(t)
	defer b.Close(s)
	for i := range approval.MaxPendingPerAdmin {
		mustCreate(t, s, roleChange(1, 100+i, t0.Add(time.Duration(i)*time.Second)))
	}
	over := roleChange(1, 99, t0.Add(time.Minute))
	if err := s.Create(ctx, over); !errors.Is(err, approval.ErrLimit) {
		t.Fatalf("Create(%d+1 pending of one admin) error %v, want ErrLimit", approval.MaxPendingPerAdmin, err)
	}
	if _, err := s.Get(ctx, over.ID); !errors.Is(err, approval.ErrNotFound) {
		t.Errorf("refused Create stored the change: Get error %v", err)
	}
	// Another admin is not held by the first one's bound.
	mustCreate(t, s, roleChange(2, 99, t0.Add(time.Minute)))
	// Deciding one frees a place.
	got, err := s.List(ctx, approval.StatePending, 1)
	if err != nil || len(got) != 1 {
		t.Fatalf("List(pending, 1) = %v, %v", ids(got), err)
	}
	first, _ := s.List(ctx, approval.StatePending, approval.MaxList)
	var mine approval.ID
	for _, c := range first {
		if c.ProposedBy == party(1) {
			mine = c.ID
			break
		}
	}
	if err := s.Update(ctx, mine, func(c *approval.Change) error {
		return approval.Refuse(c, party(1), "withdrawn", t0.Add(2*time.Minute))
	}); err != nil {
		t.Fatalf("Update(withdraw) error %v", err)
	}
	mustCreate(t, s, over)
}

func testExpireOnCreate(t *testing.T, b Backend) {
	s := b.Open(t)
	defer b.Close(s)
	for i := range approval.MaxPendingPerAdmin {
		mustCreate(t, s, roleChange(1, 100+i, t0))
	}
	// After the lifetime, the old proposals no longer hold places.
	later := roleChange(1, 99, t0.Add(approval.DefaultLifetime))
	mustCreate(t, s, later)
	expired, err := s.List(ctx, approval.StateExpired, approval.MaxList)
	if err != nil || len(expired) != approval.MaxPendingPerAdmin {
		t.Fatalf("List(expired) = %d changes, %v; want %d", len(expired), err, approval.MaxPendingPerAdmin)
	}
	for _, c := range expired {
		if c.PasswordHash != "" {
			t.Errorf("expired change %s keeps its password hash", c.ID)
		}
	}
}

func testUpdate(t *testing.T, b Backend) {
	s := b.Open(t)
	defer b.Close(s)
	c := createChange(1, 2, t0)
	mustCreate(t, s, c)
	// An error from fn changes nothing.
	boom := errors.New("boom")
	err := s.Update(ctx, c.ID, func(x *approval.Change) error { x.RequestEntry = 7; return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("Update(fn error) = %v, want boom", err)
	}
	if got, _ := s.Get(ctx, c.ID); got.RequestEntry != -1 {
		t.Errorf("Update(fn error) stored request entry %d", got.RequestEntry)
	}
	// Identity fields cannot change, nor can an invalid record be stored.
	for name, edit := range map[string]func(*approval.Change){
		"target":   func(x *approval.Change) { x.Target = party(3) },
		"proposer": func(x *approval.Change) { x.ProposedBy = party(3) },
		"kind":     func(x *approval.Change) { x.Kind = approval.KindAdminDisable; x.ToRole, x.PasswordHash = "", "" },
		"invalid":  func(x *approval.Change) { x.State = "maybe" },
	} {
		if err := s.Update(ctx, c.ID, func(x *approval.Change) error { edit(x); return nil }); !errors.Is(err, approval.ErrInvalid) {
			t.Errorf("Update(%s) error %v, want ErrInvalid", name, err)
		}
	}
	if got, _ := s.Get(ctx, c.ID); !equal(got, c) {
		t.Errorf("refused Updates changed the change: %+v, want %+v", got, c)
	}
	// The approval, then its outcome.
	if err := s.Update(ctx, c.ID, func(x *approval.Change) error {
		x.RequestEntry = 41
		return approval.Approve(x, party(3), t0.Add(time.Minute))
	}); err != nil {
		t.Fatalf("Update(approve) error %v", err)
	}
	if err := s.Update(ctx, c.ID, func(x *approval.Change) error { return approval.Finish(x, nil) }); err != nil {
		t.Fatalf("Update(finish) error %v", err)
	}
	got, err := s.Get(ctx, c.ID)
	if err != nil || got.State != approval.StateApplied || got.DecidedBy != party(3) || got.PasswordHash != "" || got.RequestEntry != 41 {
		t.Errorf("after approve and finish: %+v, %v; want applied by %v, no hash, request entry 41", got, err, party(3))
	}
}

// testConcurrentApprove: many admins approve one change at once, half of
// them through a second handle: exactly one decides.
func testConcurrentApprove(t *testing.T, b Backend) {
	s := b.Open(t)
	defer b.Close(s)
	other := s
	if b.Replica != nil {
		other = b.Replica(t, s)
		defer b.Close(other)
	}
	c := roleChange(1, 2, t0)
	mustCreate(t, s, c)
	const approvers = 8
	var wg sync.WaitGroup
	errs := make([]error, approvers)
	for i := range approvers {
		h := s
		if i%2 == 1 {
			h = other
		}
		wg.Go(func() {
			errs[i] = h.Update(ctx, c.ID, func(x *approval.Change) error {
				return approval.Approve(x, party(10+i), t0.Add(time.Minute))
			})
		})
	}
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, approval.ErrDecided):
			t.Errorf("approver %d: Update error %v, want nil or ErrDecided", i, err)
		}
	}
	if won != 1 {
		t.Errorf("%d approvers decided the change, want exactly 1", won)
	}
}
