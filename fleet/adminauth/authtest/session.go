package authtest

import (
	"context"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/adminauth"
)

// Session creates admin name with role in auth, with a password and a
// TOTP second factor, and returns a full session token bound to client c
// (its network and user agent): what an end-to-end test hands to
// fleet/client's WithSession before hpfleet starts on the same store.
func Session(t testing.TB, auth *adminauth.Authenticator, name string, role adminauth.Role, c adminauth.Client) string {
	t.Helper()
	ctx := context.Background()
	pw := "correct horse battery " + name
	if _, err := auth.CreateAdmin(ctx, name, pw, role); err != nil {
		t.Fatalf("CreateAdmin(%s): %v", name, err)
	}
	res, err := auth.Login(ctx, name, pw, c)
	if err != nil {
		t.Fatalf("Login(%s): %v", name, err)
	}
	en, err := auth.BeginTOTPEnrolment(ctx, res.Token, c)
	if err != nil {
		t.Fatalf("BeginTOTPEnrolment(%s): %v", name, err)
	}
	tok, err := auth.FinishTOTPEnrolment(ctx, res.Token, Code(t, en.Secret, time.Now()), c)
	if err != nil {
		t.Fatalf("FinishTOTPEnrolment(%s): %v", name, err)
	}
	return tok
}
