package authtest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/adminauth"
)

func testLoginEnrolTOTP(t *testing.T, b Backend) {
	e := newEnv(t, b)
	ad, secret, tok := e.enrolled(t, "alice", adminauth.RoleOperator)
	info, err := e.auth.Authenticate(ctx, tok, Office)
	if err != nil || info.AdminID != ad.ID || info.Role != adminauth.RoleOperator || info.Kind != adminauth.SessionFull {
		t.Fatalf("Authenticate = %+v, %v; want alice the operator", info, err)
	}
	// Same network, another desk: the same session.
	if _, err := e.auth.Authenticate(ctx, tok, Desk2); err != nil {
		t.Fatalf("Authenticate(same /24) error %v", err)
	}
	// From now on a login needs the password and the code.
	tok2 := e.login(t, "alice", secret, Office)
	if tok2 == tok {
		t.Fatalf("second login returned the first session's token")
	}
	res, err := e.auth.Login(ctx, "alice", "wrong", Office)
	if !errors.Is(err, adminauth.ErrBadCredentials) || res.Token != "" {
		t.Fatalf("Login(wrong password) = %+v, %v; want ErrBadCredentials and no token", res, err)
	}
	// A wrong code fails and counts.
	res, _ = e.auth.Login(ctx, "alice", "correct horse alice", Office)
	if _, err := e.auth.ProveTOTP(ctx, res.Token, "000000", Office); !errors.Is(err, adminauth.ErrBadCredentials) {
		t.Fatalf("ProveTOTP(wrong code) error %v, want ErrBadCredentials", err)
	}
	if _, err := e.auth.ProveTOTP(ctx, res.Token, "12345", Office); !errors.Is(err, adminauth.ErrBadCredentials) {
		t.Fatalf("ProveTOTP(5 digits) error %v, want ErrBadCredentials", err)
	}
	// A pending login is bound to its client.
	if _, err := e.auth.ProveTOTP(ctx, res.Token, Code(t, secret, e.clock.Now()), Cafe); !errors.Is(err, adminauth.ErrSessionInvalid) {
		t.Fatalf("ProveTOTP(pending from another network) error %v, want ErrSessionInvalid", err)
	}
}

func testTOTPReplay(t *testing.T, b Backend) {
	e := newEnv(t, b)
	_, secret, _ := e.enrolled(t, "alice", adminauth.RoleViewer)
	code := Code(t, secret, e.clock.Now())
	r1, _ := e.auth.Login(ctx, "alice", "correct horse alice", Office)
	if _, err := e.auth.ProveTOTP(ctx, r1.Token, code, Office); err != nil {
		t.Fatalf("ProveTOTP error %v", err)
	}
	// The same code, seconds later, on a new login: refused.
	e.clock.Advance(5 * time.Second)
	r2, _ := e.auth.Login(ctx, "alice", "correct horse alice", Office)
	if _, err := e.auth.ProveTOTP(ctx, r2.Token, code, Office); !errors.Is(err, adminauth.ErrReplay) {
		t.Fatalf("ProveTOTP(replayed code) error %v, want ErrReplay", err)
	}
	// The previous step's code (within the skew, but before the used
	// step) is refused too.
	prev := Code(t, secret, e.clock.Now().Add(-30*time.Second))
	if _, err := e.auth.ProveTOTP(ctx, r2.Token, prev, Office); !errors.Is(err, adminauth.ErrReplay) {
		t.Fatalf("ProveTOTP(older step) error %v, want ErrReplay", err)
	}
	// The next step's code is accepted (skew +1).
	next := Code(t, secret, e.clock.Now().Add(30*time.Second))
	if _, err := e.auth.ProveTOTP(ctx, r2.Token, next, Office); err != nil {
		t.Fatalf("ProveTOTP(next step) error %v", err)
	}
	// Two steps ahead is outside the skew.
	e.clock.Advance(30 * time.Second)
	r3, _ := e.auth.Login(ctx, "alice", "correct horse alice", Office)
	far := Code(t, secret, e.clock.Now().Add(90*time.Second))
	if _, err := e.auth.ProveTOTP(ctx, r3.Token, far, Office); !errors.Is(err, adminauth.ErrBadCredentials) {
		t.Fatalf("ProveTOTP(3 steps ahead) error %v, want ErrBadCredentials", err)
	}
}

// testConcurrentTOTPReplay: the same code presented on two pending
// logins at once, through two replicas: exactly one wins.
func testConcurrentTOTPReplay(t *testing.T, b Backend) {
	// Every replay counts as a failure: a policy with room for them all.
	e := newEnv(t, b, adminauth.WithLockout(adminauth.LockoutPolicy{Free: 1000, Base: time.Second, Max: time.Minute, Forget: time.Hour, MaxEntries: 100}))
	_, secret, _ := e.enrolled(t, "alice", adminauth.RoleViewer)
	hs := handles(t, b, e.st)
	auths := []*adminauth.Authenticator{e.auth}
	if len(hs) > 1 {
		auths = append(auths, e.authenticator(t, hs[1], adminauth.WithLockout(adminauth.LockoutPolicy{Free: 1000, Base: time.Second, Max: time.Minute, Forget: time.Hour, MaxEntries: 100})))
	}
	for round := 0; round < 5; round++ {
		code := Code(t, secret, e.clock.Now())
		const n = 4
		var toks []string
		for i := 0; i < n; i++ {
			r, err := e.auth.Login(ctx, "alice", "correct horse alice", Office)
			if err != nil {
				t.Fatalf("Login error %v", err)
			}
			toks = append(toks, r.Token)
		}
		var wg sync.WaitGroup
		results := make(chan error, n)
		for i, tok := range toks {
			wg.Add(1)
			go func(a *adminauth.Authenticator, tok string) {
				defer wg.Done()
				_, err := a.ProveTOTP(ctx, tok, code, Office)
				results <- err
			}(auths[i%len(auths)], tok)
		}
		wg.Wait()
		close(results)
		ok, replays := 0, 0
		for err := range results {
			switch {
			case err == nil:
				ok++
			case errors.Is(err, adminauth.ErrReplay):
				replays++
			default:
				t.Fatalf("ProveTOTP error %v", err)
			}
		}
		if ok != 1 || replays != n-1 {
			t.Fatalf("round %d: %d accepted, %d replays; want 1 and %d", round, ok, replays, n-1)
		}
		e.clock.Advance(30 * time.Second)
	}
}

// testLockout: exponential backoff per account and per source, checked
// with the injected clock.
func testLockout(t *testing.T, b Backend) {
	pol := adminauth.LockoutPolicy{Free: 3, Base: time.Second, Max: 8 * time.Second, Forget: time.Hour, MaxEntries: 1000}
	e := newEnv(t, b, adminauth.WithLockout(pol))
	_, secret, _ := e.enrolled(t, "alice", adminauth.RoleViewer)
	wrong := func(c adminauth.Client) error {
		_, err := e.auth.Login(ctx, "alice", "wrong", c)
		return err
	}
	for i := 0; i < 3; i++ {
		if err := wrong(Office); !errors.Is(err, adminauth.ErrBadCredentials) {
			t.Fatalf("free failure %d error %v, want ErrBadCredentials", i+1, err)
		}
	}
	// Failure 4 locks for 1 s, 5 for 2 s, 6 for 4 s, 7 and on for 8 s.
	for i, lock := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		if err := wrong(Office); !errors.Is(err, adminauth.ErrBadCredentials) {
			t.Fatalf("failure %d error %v, want ErrBadCredentials", 4+i, err)
		}
		err := wrong(Office)
		var le *adminauth.LockoutError
		if !errors.As(err, &le) || le.RetryAfter != lock {
			t.Fatalf("attempt after failure %d: error %v, want a lockout of %v", 4+i, err, lock)
		}
		// Even the right password is refused while locked.
		if _, err := e.auth.Login(ctx, "alice", "correct horse alice", Office); !errors.Is(err, adminauth.ErrLockedOut) {
			t.Fatalf("right password while locked: error %v, want ErrLockedOut", err)
		}
		e.clock.Advance(lock - time.Millisecond)
		if err := wrong(Office); !errors.Is(err, adminauth.ErrLockedOut) {
			t.Fatalf("1 ms before the lock of %v ends: error %v, want ErrLockedOut", lock, err)
		}
		e.clock.Advance(time.Millisecond)
	}
	// The account lock holds from another network too.
	if err := wrong(Cafe); !errors.Is(err, adminauth.ErrBadCredentials) {
		t.Fatalf("after the last lock ended: error %v, want ErrBadCredentials", err)
	}
	if _, err := e.auth.Login(ctx, "alice", "correct horse alice", Other); !errors.Is(err, adminauth.ErrLockedOut) {
		t.Fatalf("account locked, login from another network: error %v, want ErrLockedOut", err)
	}
	// A success clears the account.
	e.clock.Advance(8 * time.Second)
	if tok := e.login(t, "alice", secret, Other); tok == "" {
		t.Fatalf("no token")
	}
	if err := wrong(Other); !errors.Is(err, adminauth.ErrBadCredentials) {
		t.Fatalf("after a success: error %v, want ErrBadCredentials (count cleared)", err)
	}

	// Per source: one address spraying many names is locked out
	// whatever name it tries next, existing or not.
	e.clock.Advance(time.Hour + time.Second)
	spray := adminauth.Client{Addr: Cafe.Addr, UserAgent: "spray"}
	for i := 0; i < 3; i++ {
		if _, err := e.auth.Login(ctx, "user"+string(rune('a'+i)), "x", spray); !errors.Is(err, adminauth.ErrBadCredentials) {
			t.Fatalf("spray %d error %v, want ErrBadCredentials", i, err)
		}
	}
	if _, err := e.auth.Login(ctx, "userd", "x", spray); !errors.Is(err, adminauth.ErrBadCredentials) {
		t.Fatalf("spray 4 error %v, want ErrBadCredentials", err)
	}
	for _, name := range []string{"alice", "nobody", "usere"} {
		if _, err := e.auth.Login(ctx, name, "x", spray); !errors.Is(err, adminauth.ErrLockedOut) {
			t.Fatalf("source locked, Login(%s) error %v, want ErrLockedOut", name, err)
		}
	}
	// A success elsewhere does not clear the source.
	e.clock.Advance(time.Second)
	e.login(t, "alice", secret, spray) // alice from the spraying address, once its lock ended
	if _, err := e.auth.Login(ctx, "usere", "x", spray); !errors.Is(err, adminauth.ErrBadCredentials) {
		t.Fatalf("spray 5 error %v", err)
	}
	if _, err := e.auth.Login(ctx, "usere", "x", spray); !errors.Is(err, adminauth.ErrLockedOut) {
		t.Fatalf("after spray 5 the source locks again despite the success: error %v, want ErrLockedOut", err)
	}
	// Failures are forgotten after a quiet hour.
	e.clock.Advance(time.Hour + time.Minute)
	for i := 0; i < 3; i++ {
		if _, err := e.auth.Login(ctx, "nobody", "x", spray); !errors.Is(err, adminauth.ErrBadCredentials) {
			t.Fatalf("after an hour, failure %d error %v, want ErrBadCredentials", i+1, err)
		}
	}
}

// testEnumeration: a login for a name that does not exist answers like
// one for a wrong password, after the same store calls and one hash (the
// counting wrapper passes every call to the real store).
func testEnumeration(t *testing.T, b Backend) {
	st := b.Open(t)
	t.Cleanup(func() { b.Close(st) })
	cs := &CountingStore{Store: st}
	e := &env{st: cs, clock: NewClock()}
	e.auth = e.authenticator(t, cs)
	e.enrolled(t, "alice", adminauth.RoleViewer)
	e.auth.CreateAdmin(ctx, "dora", "pw-dora", adminauth.RoleViewer)
	if err := e.auth.SetDisabled(ctx, mustAdmin(t, st, "dora").ID, true); err != nil {
		t.Fatal(err)
	}
	type run struct {
		calls  []string
		hashes int64
		err    string
	}
	attempt := func(name, pw string, c adminauth.Client) run {
		cs.Reset()
		h0 := e.auth.Stats().PasswordChecks
		_, err := e.auth.Login(ctx, name, pw, c)
		return run{cs.Calls(), e.auth.Stats().PasswordChecks - h0, err.Error()}
	}
	src := func(i byte) adminauth.Client {
		return adminauth.Client{Addr: Office.Addr.Next(), UserAgent: string('a' + i)}
	}
	known := attempt("alice", "wrong", src(0))
	for _, tt := range []struct{ name, user string }{
		{"unknown name", "mallory"},
		{"invalid name", "Robert'); DROP TABLE admins;--"},
		{"overlong name", string(make([]byte, 300))},
		{"disabled admin", "dora"},
	} {
		got := attempt(tt.user, "wrong", src(1))
		if got.err != known.err || got.hashes != 1 || known.hashes != 1 {
			t.Errorf("%s: error %q after %d hashes; a wrong password for alice: %q after %d", tt.name, got.err, got.hashes, known.err, known.hashes)
		}
		if len(got.calls) != len(known.calls) {
			t.Errorf("%s: store calls %v; a wrong password for alice: %v", tt.name, got.calls, known.calls)
			continue
		}
		for i := range got.calls {
			if got.calls[i] != known.calls[i] {
				t.Errorf("%s: store calls %v; a wrong password for alice: %v", tt.name, got.calls, known.calls)
				break
			}
		}
	}
}

func mustAdmin(t *testing.T, st adminauth.Store, name string) adminauth.Admin {
	t.Helper()
	a, err := st.AdminByName(ctx, name)
	if err != nil {
		t.Fatalf("AdminByName(%s) error %v", name, err)
	}
	return a
}

// testFixationAndLogout: only the token minted after the last factor is a
// session; tokens before it, and after logout, are nothing.
func testFixationAndLogout(t *testing.T, b Backend) {
	e := newEnv(t, b)
	_, secret, _ := e.enrolled(t, "alice", adminauth.RoleViewer)
	r, err := e.auth.Login(ctx, "alice", "correct horse alice", Office)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.auth.Authenticate(ctx, r.Token, Office); !errors.Is(err, adminauth.ErrSessionInvalid) {
		t.Fatalf("Authenticate(pending token) error %v, want ErrSessionInvalid", err)
	}
	if _, err := e.auth.Authorize(ctx, r.Token, Office, adminauth.PermInventoryRead); !errors.Is(err, adminauth.ErrSessionInvalid) {
		t.Fatalf("Authorize(pending token) error %v, want ErrSessionInvalid", err)
	}
	full, err := e.auth.ProveTOTP(ctx, r.Token, Code(t, secret, e.clock.Now()), Office)
	if err != nil {
		t.Fatal(err)
	}
	if full == r.Token {
		t.Fatalf("the session kept the pending token (fixation)")
	}
	// The session token with its last character changed (to another that
	// decodes: the last of 43 base64url characters carries 4 bits, so
	// writing a fixed "A" left it unchanged one time in 16).
	other := "A"
	if full[42:] == "A" {
		other = "E"
	}
	for _, tok := range []string{r.Token, "", "short", "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", full[:42] + other} {
		if _, err := e.auth.Authenticate(ctx, tok, Office); !errors.Is(err, adminauth.ErrSessionInvalid) {
			t.Errorf("Authenticate(%q) error %v, want ErrSessionInvalid", tok, err)
		}
	}
	if _, err := e.auth.Authenticate(ctx, full, Office); err != nil {
		t.Fatalf("Authenticate(full) error %v", err)
	}
	if err := e.auth.Logout(ctx, full); err != nil {
		t.Fatalf("Logout error %v", err)
	}
	if _, err := e.auth.Authenticate(ctx, full, Office); !errors.Is(err, adminauth.ErrSessionInvalid) {
		t.Fatalf("Authenticate after logout error %v, want ErrSessionInvalid", err)
	}
	if _, err := e.auth.ProveTOTP(ctx, full, Code(t, secret, e.clock.Now().Add(30*time.Second)), Office); !errors.Is(err, adminauth.ErrSessionInvalid) {
		t.Fatalf("ProveTOTP on a logged-out token error %v, want ErrSessionInvalid", err)
	}
	if err := e.auth.Logout(ctx, full); !errors.Is(err, adminauth.ErrSessionInvalid) {
		t.Fatalf("second Logout error %v, want ErrSessionInvalid", err)
	}
}

// testNewNetwork: a session used from another network or user agent asks
// for the second factor again; proving it rebinds the session under a new
// token, and the old token is dead.
func testNewNetwork(t *testing.T, b Backend) {
	e := newEnv(t, b)
	_, secret, tok := e.enrolled(t, "alice", adminauth.RoleOperator)
	for _, c := range []adminauth.Client{Cafe, Other, {Addr: Office.Addr, UserAgent: "another browser"}} {
		if _, err := e.auth.Authenticate(ctx, tok, c); !errors.Is(err, adminauth.ErrSecondFactorRequired) {
			t.Fatalf("Authenticate from %v error %v, want ErrSecondFactorRequired", c, err)
		}
	}
	moved, err := e.auth.ProveTOTP(ctx, tok, Code(t, secret, e.clock.Now()), Cafe)
	if err != nil {
		t.Fatalf("ProveTOTP from the new network error %v", err)
	}
	if _, err := e.auth.Authenticate(ctx, moved, Cafe); err != nil {
		t.Fatalf("Authenticate(rebound, Cafe) error %v", err)
	}
	if _, err := e.auth.Authenticate(ctx, tok, Office); !errors.Is(err, adminauth.ErrSessionInvalid) {
		t.Fatalf("Authenticate(old token) error %v, want ErrSessionInvalid", err)
	}
	if _, err := e.auth.Authenticate(ctx, moved, Office); !errors.Is(err, adminauth.ErrSecondFactorRequired) {
		t.Fatalf("Authenticate(rebound token, back at Office) error %v, want ErrSecondFactorRequired", err)
	}
}

func testStepUp(t *testing.T, b Backend) {
	e := newEnv(t, b)
	_, secret, tok := e.enrolled(t, "olga", adminauth.RoleOperator)
	if _, err := e.auth.Authorize(ctx, tok, Office, adminauth.PermRolloutStart); err != nil {
		t.Fatalf("Authorize(rollout.start) right after the second factor: error %v", err)
	}
	if _, err := e.auth.Authorize(ctx, tok, Office, adminauth.PermPolicyWrite); !errors.Is(err, adminauth.ErrForbidden) {
		t.Fatalf("Authorize(operator, policy.write) error %v, want ErrForbidden", err)
	}
	e.clock.Advance(adminauth.DefaultStepUp)
	if _, err := e.auth.Authorize(ctx, tok, Office, adminauth.PermRolloutStart); !errors.Is(err, adminauth.ErrStepUpRequired) {
		t.Fatalf("Authorize(rollout.start) %v after the second factor: error %v, want ErrStepUpRequired", adminauth.DefaultStepUp+30*time.Second, err)
	}
	if _, err := e.auth.Authorize(ctx, tok, Office, adminauth.PermRolloutRead); err != nil {
		t.Fatalf("Authorize(rollout.read) needs no step-up: error %v", err)
	}
	up, err := e.auth.ProveTOTP(ctx, tok, Code(t, secret, e.clock.Now()), Office)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.auth.Authorize(ctx, up, Office, adminauth.PermRolloutStart); err != nil {
		t.Fatalf("Authorize after step-up error %v", err)
	}
	// Adding a factor from a full session also needs a recent one.
	e.clock.Advance(adminauth.DefaultStepUp + time.Second)
	if _, err := e.auth.BeginTOTPEnrolment(ctx, up, Office); !errors.Is(err, adminauth.ErrStepUpRequired) {
		t.Fatalf("BeginTOTPEnrolment without a recent factor: error %v, want ErrStepUpRequired", err)
	}
}

func testLifetimes(t *testing.T, b Backend) {
	e := newEnv(t, b)
	_, secret, tok := e.enrolled(t, "alice", adminauth.RoleViewer)
	// Used every 10 minutes, the session lives until its absolute limit.
	var last time.Time
	for e.clock.Now().Add(10 * time.Minute).Before(e.clock.Now().Add(adminauth.DefaultAbsolute)) {
		info, err := e.auth.Authenticate(ctx, tok, Office)
		if err != nil {
			break
		}
		last = e.clock.Now()
		if info.Expires.Sub(info.CreatedAt) > adminauth.DefaultAbsolute {
			t.Fatalf("session expires %v after creation, beyond the absolute %v", info.Expires.Sub(info.CreatedAt), adminauth.DefaultAbsolute)
		}
		e.clock.Advance(10 * time.Minute)
	}
	if _, err := e.auth.Authenticate(ctx, tok, Office); !errors.Is(err, adminauth.ErrSessionInvalid) {
		t.Fatalf("Authenticate past the absolute limit error %v, want ErrSessionInvalid (last good %v)", err, last)
	}
	// Idle for longer than the idle limit: gone.
	tok = e.login(t, "alice", secret, Office)
	e.clock.Advance(adminauth.DefaultIdle)
	if _, err := e.auth.Authenticate(ctx, tok, Office); !errors.Is(err, adminauth.ErrSessionInvalid) {
		t.Fatalf("Authenticate after %v idle error %v, want ErrSessionInvalid", adminauth.DefaultIdle+30*time.Second, err)
	}
	// A pending login left too long: gone.
	r, _ := e.auth.Login(ctx, "alice", "correct horse alice", Office)
	e.clock.Advance(adminauth.DefaultPending)
	if _, err := e.auth.ProveTOTP(ctx, r.Token, Code(t, secret, e.clock.Now()), Office); !errors.Is(err, adminauth.ErrSessionInvalid) {
		t.Fatalf("ProveTOTP after %v pending error %v, want ErrSessionInvalid", adminauth.DefaultPending, err)
	}
	// Expired sessions nobody presents again are pruned.
	e.auth.Login(ctx, "alice", "correct horse alice", Office)
	e.auth.Login(ctx, "alice", "correct horse alice", Office)
	e.clock.Advance(adminauth.DefaultPending)
	if n, err := e.auth.Prune(ctx); err != nil || n != 2 {
		t.Fatalf("Prune = %d, %v; want the 2 abandoned pending logins removed", n, err)
	}
}

func testRoleChange(t *testing.T, b Backend) {
	e := newEnv(t, b)
	ad, _, tok := e.enrolled(t, "alice", adminauth.RoleSecurityAdmin)
	if err := e.auth.SetRole(ctx, ad.ID, adminauth.RoleViewer); err != nil {
		t.Fatalf("SetRole error %v", err)
	}
	if _, err := e.auth.Authenticate(ctx, tok, Office); !errors.Is(err, adminauth.ErrSessionInvalid) {
		t.Fatalf("Authenticate after a role change error %v, want ErrSessionInvalid", err)
	}
	if err := e.auth.SetRole(ctx, ad.ID, "root"); !errors.Is(err, adminauth.ErrInvalid) {
		t.Fatalf("SetRole(root) error %v, want ErrInvalid", err)
	}
}

// testSecondFactorGuessing: a right password does not reset the account's
// backoff, so guessing TOTP codes over fresh logins slows down like
// guessing passwords.
func testSecondFactorGuessing(t *testing.T, b Backend) {
	pol := adminauth.LockoutPolicy{Free: 3, Base: time.Minute, Max: time.Hour, Forget: 24 * time.Hour, MaxEntries: 100}
	e := newEnv(t, b, adminauth.WithLockout(pol))
	_, secret, _ := e.enrolled(t, "alice", adminauth.RoleViewer)
	wrong := "000000"
	if wrong == Code(t, secret, e.clock.Now()) || wrong == Code(t, secret, e.clock.Now().Add(-30*time.Second)) || wrong == Code(t, secret, e.clock.Now().Add(30*time.Second)) {
		wrong = "999999"
	}
	for i := 0; i < 4; i++ {
		r, err := e.auth.Login(ctx, "alice", "correct horse alice", Office)
		if err != nil {
			t.Fatalf("login %d error %v", i+1, err)
		}
		if _, err := e.auth.ProveTOTP(ctx, r.Token, wrong, Office); !errors.Is(err, adminauth.ErrBadCredentials) {
			t.Fatalf("guess %d error %v, want ErrBadCredentials", i+1, err)
		}
	}
	// Four wrong codes: the account is locked, the right password too.
	if _, err := e.auth.Login(ctx, "alice", "correct horse alice", Office); !errors.Is(err, adminauth.ErrLockedOut) {
		t.Fatalf("login after 4 wrong codes: error %v, want ErrLockedOut", err)
	}
}
