package authtest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/adminauth"
)

// Lister is the admin console's listing, which boltauth and pgauth
// implement beside adminauth.Store.
type Lister interface {
	ListAdmins(ctx context.Context, limit int) ([]adminauth.Admin, error)
}

// testListAdmins: admins come back in name order, bounded by the limit,
// with the records as stored; a limit out of bounds is refused.
func testListAdmins(t *testing.T, b Backend) {
	s := b.Open(t)
	defer b.Close(s)
	l, ok := s.(Lister)
	if !ok {
		t.Fatalf("store %T has no ListAdmins", s)
	}
	if got, err := l.ListAdmins(ctx, 10); err != nil || len(got) != 0 {
		t.Fatalf("ListAdmins(empty) = %d admins, %v; want none", len(got), err)
	}
	hash := mustHash(t)
	names := []string{"carol", "alice", "bob@example.org", "dave"}
	for i, n := range names {
		a := adminauth.Admin{ID: adminauth.NewAdminID(), Name: n, Role: adminauth.Roles()[i%len(adminauth.Roles())],
			PasswordHash: hash, CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
		if err := s.CreateAdmin(ctx, a); err != nil {
			t.Fatalf("CreateAdmin(%s) error %v", n, err)
		}
	}
	tests := []struct {
		limit int
		want  []string
	}{
		{1, []string{"alice"}},
		{3, []string{"alice", "bob@example.org", "carol"}},
		{adminauth.MaxListAdmins, []string{"alice", "bob@example.org", "carol", "dave"}},
	}
	for _, tt := range tests {
		got, err := l.ListAdmins(ctx, tt.limit)
		if err != nil {
			t.Fatalf("ListAdmins(%d) error %v", tt.limit, err)
		}
		if g := adminNames(got); fmt.Sprint(g) != fmt.Sprint(tt.want) {
			t.Errorf("ListAdmins(%d) = %v, want %v", tt.limit, g, tt.want)
		}
		for _, a := range got {
			if a.PasswordHash != hash || !a.Role.Valid() {
				t.Errorf("ListAdmins(%d): %s comes back with hash %q role %q", tt.limit, a.Name, a.PasswordHash, a.Role)
			}
		}
	}
	for _, bad := range []int{0, -1, adminauth.MaxListAdmins + 1} {
		if _, err := l.ListAdmins(ctx, bad); !errors.Is(err, adminauth.ErrInvalid) {
			t.Errorf("ListAdmins(%d) error %v, want ErrInvalid", bad, err)
		}
	}
}

func adminNames(as []adminauth.Admin) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Name)
	}
	return out
}

func mustHash(t *testing.T) string {
	t.Helper()
	h, err := FastHasher(t).Hash(ctx, "correct horse")
	if err != nil {
		t.Fatalf("Hash error %v", err)
	}
	return h
}
