package console

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/audit"
)

// attempt is one login try as the brute-forcer sees it.
type attempt struct {
	status     int
	retryAfter string
	body       string
}

// guess posts the login form as a browser would (Origin, the form's CSRF
// cookie and field).
func guess(t *testing.T, e *env, hc *http.Client, name, password string) attempt {
	t.Helper()
	const loginToken = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" // 43 characters, as the form's
	req, err := http.NewRequest(http.MethodPost, e.origin+"/console/login",
		stringsReader(url.Values{"login_token": {loginToken}, "name": {name}, "password": {password}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", e.origin)
	req.Header.Set("User-Agent", testUA)
	req.AddCookie(&http.Cookie{Name: cookieLogin, Value: loginToken})
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("POST /console/login: %v", err)
	}
	defer resp.Body.Close()
	b := make([]byte, 1<<20)
	n, _ := readFull(resp.Body, b)
	return attempt{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), body: string(b[:n])}
}

// bruteForce runs the same sequence of guesses against name in a fresh
// console: 5 free failures, then locks of 1 s, 2 s, 4 s, with the clock
// moved past each lock.
func bruteForce(t *testing.T, name string, create bool) ([]attempt, *env) {
	t.Helper()
	lock := adminauth.LockoutPolicy{Free: 5, Base: time.Second, Max: time.Minute, Forget: time.Hour, MaxEntries: 1000}
	e := newEnv(t, envOptions{lockout: &lock})
	if create {
		e.admin(t, name, adminauth.RoleSecurityAdmin)
		e.enrolTOTP(t, name)
	}
	hc := e.client(t, nil)
	var out []attempt
	for i := range 6 {
		out = append(out, guess(t, e, hc, name, "wrong password "+strconv.Itoa(i)))
	}
	// Locked now (the 6th failure locked for 1 s): even a right
	// password is refused, with Retry-After.
	out = append(out, guess(t, e, hc, name, "correct horse "+name))
	e.clock.Advance(time.Second)
	out = append(out, guess(t, e, hc, name, "wrong again")) // fails, locks for 2 s
	out = append(out, guess(t, e, hc, name, "wrong again")) // locked: Retry-After 2
	e.clock.Advance(2 * time.Second)
	out = append(out, guess(t, e, hc, name, "wrong again")) // fails, locks for 4 s
	out = append(out, guess(t, e, hc, name, "wrong again")) // locked: Retry-After 4
	return out, e
}

// TestBruteForceLogin: a guesser meets exponential backoff with
// Retry-After, a right password does not get through a lock, and an
// unknown name gets exactly the same answers (status, Retry-After, page)
// as a real one: nothing tells them apart.
func TestBruteForceLogin(t *testing.T) {
	known, e := bruteForce(t, "alice", true)
	unknown, _ := bruteForce(t, "mallory", false)
	want := []struct {
		status int
		retry  string
	}{
		{401, ""}, {401, ""}, {401, ""}, {401, ""}, {401, ""}, {401, ""},
		{429, "1"}, {401, ""}, {429, "2"}, {401, ""}, {429, "4"},
	}
	if len(known) != len(want) || len(unknown) != len(want) {
		t.Fatalf("ran %d and %d attempts, want %d", len(known), len(unknown), len(want))
	}
	for i, w := range want {
		k, u := known[i], unknown[i]
		if k.status != w.status || k.retryAfter != w.retry {
			t.Errorf("attempt %d on a real admin = %d Retry-After %q, want %d %q", i+1, k.status, k.retryAfter, w.status, w.retry)
		}
		if u.status != k.status || u.retryAfter != k.retryAfter || u.body != k.body {
			t.Errorf("attempt %d: unknown name answered %d %q (%d bytes), real admin %d %q (%d bytes): they must be the same",
				i+1, u.status, u.retryAfter, len(u.body), k.status, k.retryAfter, len(k.body))
		}
	}
	es := e.entries(t)
	if got := len(find(es, audit.ActionLogin, "alice", audit.OutcomeFailure)); got != 8 {
		t.Errorf("%d admin.login failures recorded for alice, want 8", got)
	}
	locks := find(es, audit.ActionLockout, "alice", audit.OutcomeDenied)
	if len(locks) != 3 || locks[0].Details["retry_after"] != "1" || locks[2].Details["retry_after"] != "4" {
		t.Errorf("admin.lockout entries %v, want 3 with retry_after 1, 2, 4", locks)
	}
	if got := len(find(es, audit.ActionLogin, "alice", audit.OutcomePending)); got != 0 {
		t.Errorf("a password got through the lock: %d pending logins", got)
	}
	// Once the lock has passed, the right password works.
	e.clock.Advance(5 * time.Second)
	if a := guess(t, e, e.client(t, nil), "alice", "correct horse alice"); a.status != http.StatusOK {
		t.Errorf("right password after the lock = %d, want 200 (the second factor page)", a.status)
	}
}
