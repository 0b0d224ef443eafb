package approval

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind is what a change does.
type Kind string

// Kinds of change.
const (
	// KindAdminCreate creates the admin Target (its ID chosen at
	// proposal) with role ToRole and the password PasswordHash.
	KindAdminCreate Kind = "admin.create"
	// KindAdminRole changes Target's role from FromRole to ToRole.
	KindAdminRole Kind = "admin.role"
	// KindAdminDisable disables Target (ends its sessions).
	KindAdminDisable Kind = "admin.disable"
)

// Kinds lists the kinds.
func Kinds() []Kind { return []Kind{KindAdminCreate, KindAdminRole, KindAdminDisable} }

// State is where a change is in its life: pending, then approved (being
// applied) and applied or failed; or refused; or expired.
type State string

// States.
const (
	StatePending  State = "pending"
	StateApproved State = "approved"
	StateApplied  State = "applied"
	StateFailed   State = "failed"
	StateRefused  State = "refused"
	StateExpired  State = "expired"
)

var states = []State{StatePending, StateApproved, StateApplied, StateFailed, StateRefused, StateExpired}

// DefaultLifetime is how long a change waits for its approval.
const DefaultLifetime = 72 * time.Hour

// Bounds of a change's fields.
const (
	maxName   = 64
	maxRole   = 32
	maxHash   = 512
	maxReason = 256
)

// ID names a change: "chg-" and 32 lowercase hex digits.
type ID string

const idPrefix = "chg-"

// NewID makes a random change ID.
func NewID() ID {
	b := make([]byte, 16)
	rand.Read(b) // crypto/rand.Read never fails
	return ID(idPrefix + hex.EncodeToString(b))
}

// ParseID checks the form NewID makes.
func ParseID(s string) (ID, error) {
	h, ok := strings.CutPrefix(s, idPrefix)
	if !ok || len(h) != 32 || strings.Trim(h, "0123456789abcdef") != "" {
		return "", fmt.Errorf("change ID %.80q: want %q and 32 hex digits: %w", s, idPrefix, ErrInvalid)
	}
	return ID(s), nil
}

// Party is an admin taking part in a change.
type Party struct {
	AdminID string `json:"admin_id"`
	Name    string `json:"name"`
}

func (p Party) check(what string) error {
	if len(p.AdminID) != 32 || strings.Trim(p.AdminID, "0123456789abcdef") != "" {
		return fmt.Errorf("%s admin ID %.80q: want 32 hex digits: %w", what, p.AdminID, ErrInvalid)
	}
	if !cleanText(p.Name, maxName) || p.Name == "" {
		return fmt.Errorf("%s name %.80q: %w", what, p.Name, ErrInvalid)
	}
	return nil
}

// Change is a proposed change and what became of it. JSON field names are
// the stored format.
type Change struct {
	ID         ID        `json:"id"`
	Kind       Kind      `json:"kind"`
	ProposedBy Party     `json:"proposed_by"`
	ProposedAt time.Time `json:"proposed_at"`
	// Expires: a change still pending then can no longer be approved.
	Expires time.Time `json:"expires"`
	// Target is the admin the change is about.
	Target Party `json:"target"`
	// FromRole is the target's role when proposed (admin.role), so an
	// approval of a stale proposal is refused; ToRole the role it gets
	// (admin.create, admin.role).
	FromRole string `json:"from_role,omitempty"`
	ToRole   string `json:"to_role,omitempty"`
	// PasswordHash is the new admin's argon2id hash (admin.create),
	// cleared once the change is decided.
	PasswordHash string `json:"password_hash,omitempty"`
	State        State  `json:"state"`
	// DecidedBy and DecidedAt say who approved or refused it and when
	// (zero while pending and for an expired change).
	DecidedBy Party     `json:"decided_by,omitzero"`
	DecidedAt time.Time `json:"decided_at,omitzero"`
	// Reason is a refusal's or a failure's reason.
	Reason string `json:"reason,omitempty"`
	// RequestEntry is the audit log index of the change's
	// approval.request entry; -1 when not recorded (yet).
	RequestEntry int64 `json:"request_entry"`
}

// LogValue implements slog.LogValuer: never the password hash.
func (c Change) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", string(c.ID)), slog.String("kind", string(c.Kind)),
		slog.String("state", string(c.State)), slog.String("proposed_by", c.ProposedBy.Name),
		slog.String("target", c.Target.Name))
}

// Pending reports whether the change still waits for a decision at now.
func (c *Change) Pending(now time.Time) bool { return c.State == StatePending && now.Before(c.Expires) }

// Validate checks a change before it is stored.
func (c *Change) Validate() error {
	if _, err := ParseID(string(c.ID)); err != nil {
		return err
	}
	if err := c.ProposedBy.check("proposer"); err != nil {
		return err
	}
	if err := c.Target.check("target"); err != nil {
		return err
	}
	if c.ProposedAt.IsZero() || !c.Expires.After(c.ProposedAt) {
		return fmt.Errorf("change %s: proposed %v, expires %v: %w", c.ID, c.ProposedAt, c.Expires, ErrInvalid)
	}
	validState := false
	for _, s := range states {
		validState = validState || c.State == s
	}
	if !validState {
		return fmt.Errorf("change %s: state %.32q: %w", c.ID, c.State, ErrInvalid)
	}
	if !cleanText(c.FromRole, maxRole) || !cleanText(c.ToRole, maxRole) || len(c.PasswordHash) > maxHash ||
		!cleanText(c.Reason, maxReason) {
		return fmt.Errorf("change %s: a field is too long or holds control characters: %w", c.ID, ErrInvalid)
	}
	switch c.Kind {
	case KindAdminCreate:
		if c.ToRole == "" || c.FromRole != "" || (c.State == StatePending && c.PasswordHash == "") {
			return fmt.Errorf("change %s: admin.create wants a role and (while pending) a password hash: %w", c.ID, ErrInvalid)
		}
	case KindAdminRole:
		if c.ToRole == "" || c.FromRole == "" || c.FromRole == c.ToRole || c.PasswordHash != "" {
			return fmt.Errorf("change %s: admin.role wants two different roles: %w", c.ID, ErrInvalid)
		}
	case KindAdminDisable:
		if c.ToRole != "" || c.FromRole != "" || c.PasswordHash != "" {
			return fmt.Errorf("change %s: admin.disable carries no role or password: %w", c.ID, ErrInvalid)
		}
	default:
		return fmt.Errorf("change %s: kind %.32q: %w", c.ID, c.Kind, ErrInvalid)
	}
	if c.State != StatePending && c.State != StateApproved && c.PasswordHash != "" {
		return fmt.Errorf("change %s: a decided change keeps no password hash: %w", c.ID, ErrInvalid)
	}
	if c.ProposedBy.AdminID == c.Target.AdminID {
		return fmt.Errorf("change %s: an admin cannot propose a change to its own account: %w", c.ID, ErrSamePerson)
	}
	return nil
}

// Approve is the two-person rule: it moves a pending change to approved
// by approver at now, or says why not. The approver must be neither the
// proposer nor the target (ErrSamePerson); the change must be pending
// (ErrDecided) and unexpired (ErrExpired: the change is marked expired).
// Whether the approver's role may approve is the caller's check (RBAC).
// Run it inside Store.Update so the check and the decision are one atomic
// step.
func Approve(c *Change, approver Party, now time.Time) error {
	if err := approver.check("approver"); err != nil {
		return err
	}
	if err := decidable(c, now); err != nil {
		return err
	}
	if approver.AdminID == c.ProposedBy.AdminID {
		return fmt.Errorf("change %s was proposed by %s: %w", c.ID, approver.Name, ErrSamePerson)
	}
	if approver.AdminID == c.Target.AdminID {
		return fmt.Errorf("change %s is about %s: %w", c.ID, approver.Name, ErrSamePerson)
	}
	c.State, c.DecidedBy, c.DecidedAt = StateApproved, approver, now.UTC()
	return nil
}

// Refuse moves a pending change to refused by admin (the proposer may
// withdraw its own proposal) and clears its password hash.
func Refuse(c *Change, admin Party, reason string, now time.Time) error {
	if err := admin.check("refuser"); err != nil {
		return err
	}
	if err := decidable(c, now); err != nil {
		return err
	}
	c.State, c.DecidedBy, c.DecidedAt, c.Reason, c.PasswordHash = StateRefused, admin, now.UTC(), clip(reason, maxReason), ""
	return nil
}

// Finish records the outcome of applying an approved change: applied, or
// failed with the reason. The password hash is cleared either way.
func Finish(c *Change, err error) error {
	if c.State != StateApproved {
		return fmt.Errorf("change %s is %s, not approved: %w", c.ID, c.State, ErrDecided)
	}
	c.PasswordHash = ""
	if err != nil {
		c.State, c.Reason = StateFailed, clip(err.Error(), maxReason)
		return nil
	}
	c.State = StateApplied
	return nil
}

// Expire marks a pending change whose time ran out as expired (and clears
// its password hash); it reports whether it did.
func Expire(c *Change, now time.Time) bool {
	if c.State != StatePending || now.Before(c.Expires) {
		return false
	}
	c.State, c.PasswordHash = StateExpired, ""
	return true
}

func decidable(c *Change, now time.Time) error {
	if Expire(c, now) {
		return fmt.Errorf("change %s expired at %v: %w", c.ID, c.Expires, ErrExpired)
	}
	if c.State != StatePending {
		return fmt.Errorf("change %s is %s: %w", c.ID, c.State, ErrDecided)
	}
	return nil
}

// cleanText accepts printable text without control characters within max
// bytes.
func cleanText(s string, max int) bool {
	if len(s) > max {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == 0xfffd || (r >= 0x80 && r < 0xa0) {
			return false
		}
	}
	return true
}

// clip cuts s to max bytes of clean text, at a rune boundary.
func clip(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	for len(s) > max {
		_, size := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-size]
	}
	return s
}
