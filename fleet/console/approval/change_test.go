package approval

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	t0    = time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)
	alice = Party{AdminID: strings.Repeat("a", 32), Name: "alice"}
	bob   = Party{AdminID: strings.Repeat("b", 32), Name: "bob"}
	carol = Party{AdminID: strings.Repeat("c", 32), Name: "carol"}
)

func roleChange() Change {
	c := NewChange(KindAdminRole, alice, carol, t0, DefaultLifetime)
	c.FromRole, c.ToRole = "viewer", "operator"
	return c
}

func TestApprove(t *testing.T) {
	tests := []struct {
		name     string
		change   func() Change
		approver Party
		at       time.Time
		want     error
		state    State
	}{
		{"second admin", roleChange, bob, t0.Add(time.Hour), nil, StateApproved},
		{"proposer", roleChange, alice, t0.Add(time.Hour), ErrSamePerson, StatePending},
		{"target", roleChange, carol, t0.Add(time.Hour), ErrSamePerson, StatePending},
		{"expired", roleChange, bob, t0.Add(DefaultLifetime), ErrExpired, StateExpired},
		{"decided", func() Change { c := roleChange(); c.State = StateRefused; return c }, bob, t0, ErrDecided, StateRefused},
		{"bad approver", roleChange, Party{AdminID: "x", Name: "bob"}, t0, ErrInvalid, StatePending},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.change()
			err := Approve(&c, tt.approver, tt.at)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("Approve(%s by %s) = %v, want %v", c.ID, tt.approver.Name, err, tt.want)
			}
			if c.State != tt.state {
				t.Errorf("Approve(%s by %s): state %s, want %s", c.ID, tt.approver.Name, c.State, tt.state)
			}
			if err == nil && (c.DecidedBy != tt.approver || !c.DecidedAt.Equal(tt.at)) {
				t.Errorf("Approve: decided by %v at %v, want %v at %v", c.DecidedBy, c.DecidedAt, tt.approver, tt.at)
			}
			if err != nil && !c.DecidedBy.isZero() {
				t.Errorf("Approve refused but recorded decider %v", c.DecidedBy)
			}
			if verr := c.Validate(); verr != nil {
				t.Errorf("Validate after Approve = %v, want nil", verr)
			}
		})
	}
}

func (p Party) isZero() bool { return p == Party{} }

func TestRefuseAndFinish(t *testing.T) {
	c := NewChange(KindAdminCreate, alice, carol, t0, time.Hour)
	c.ToRole, c.PasswordHash = "viewer", "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
	// The proposer may withdraw its own proposal.
	if err := Refuse(&c, alice, "typo\x00 in the name", t0.Add(time.Minute)); err != nil {
		t.Fatalf("Refuse(by proposer) = %v, want nil", err)
	}
	if c.State != StateRefused || c.PasswordHash != "" || c.Reason != "typo? in the name" {
		t.Errorf("Refuse: state %s, hash %q, reason %q; want refused, no hash, cleaned reason", c.State, c.PasswordHash, c.Reason)
	}
	if err := Approve(&c, bob, t0.Add(2*time.Minute)); !errors.Is(err, ErrDecided) {
		t.Errorf("Approve(refused) = %v, want ErrDecided", err)
	}
	if err := Finish(&c, nil); !errors.Is(err, ErrDecided) {
		t.Errorf("Finish(refused) = %v, want ErrDecided", err)
	}

	for _, tt := range []struct {
		name  string
		err   error
		state State
	}{{"applied", nil, StateApplied}, {"failed", errors.New("name taken"), StateFailed}} {
		c := NewChange(KindAdminCreate, alice, carol, t0, time.Hour)
		c.ToRole, c.PasswordHash = "viewer", "hash"
		if err := Approve(&c, bob, t0); err != nil {
			t.Fatalf("Approve = %v", err)
		}
		if err := Finish(&c, tt.err); err != nil || c.State != tt.state || c.PasswordHash != "" {
			t.Errorf("Finish(%v) = %v: state %s, hash %q; want %s and no hash", tt.err, err, c.State, c.PasswordHash, tt.state)
		}
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Change)
		want error
	}{
		{"ok", func(*Change) {}, nil},
		{"bad ID", func(c *Change) { c.ID = "chg-XYZ" }, ErrInvalid},
		{"self", func(c *Change) { c.Target = c.ProposedBy }, ErrSamePerson},
		{"same roles", func(c *Change) { c.ToRole = c.FromRole }, ErrInvalid},
		{"unknown kind", func(c *Change) { c.Kind = "admin.delete" }, ErrInvalid},
		{"unknown state", func(c *Change) { c.State = "maybe" }, ErrInvalid},
		{"control in name", func(c *Change) { c.Target.Name = "car\nol" }, ErrInvalid},
		{"role change with password", func(c *Change) { c.PasswordHash = "x" }, ErrInvalid},
		{"decided create keeps hash", func(c *Change) {
			c.Kind, c.FromRole, c.PasswordHash, c.State = KindAdminCreate, "", "x", StateApplied
		}, ErrInvalid},
		{"pending create without hash", func(c *Change) { c.Kind, c.FromRole = KindAdminCreate, "" }, ErrInvalid},
		{"disable with role", func(c *Change) { c.Kind = KindAdminDisable }, ErrInvalid},
		{"expires before proposal", func(c *Change) { c.Expires = c.ProposedAt }, ErrInvalid},
		{"long reason", func(c *Change) { c.Reason = strings.Repeat("x", maxReason+1) }, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := roleChange()
			tt.edit(&c)
			err := c.Validate()
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("Validate(%s) = %v, want %v", tt.name, err, tt.want)
			}
		})
	}
}

func TestLogValueHidesHash(t *testing.T) {
	c := NewChange(KindAdminCreate, alice, carol, t0, time.Hour)
	c.ToRole, c.PasswordHash = "viewer", "$argon2id$secret-ish"
	if s := c.LogValue().String(); strings.Contains(s, "argon2id") {
		t.Errorf("LogValue() = %s, shows the password hash", s)
	}
}
