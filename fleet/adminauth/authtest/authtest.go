package authtest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/hardphone/hardphone/fleet/adminauth"
)

// Backend is what Run needs from an implementation.
type Backend struct {
	// Open returns a store on an empty database; Close closes it.
	Open func(t *testing.T) adminauth.Store
	// Replica opens a second handle on s's database (another hpfleet
	// replica); nil when one process owns the database.
	Replica func(t *testing.T, s adminauth.Store) adminauth.Store
	Close   func(s adminauth.Store) error
}

// Run runs the suite as subtests of t.
func Run(t *testing.T, b Backend) {
	if b.Open == nil || b.Close == nil {
		t.Fatalf("authtest.Run: Backend needs Open and Close")
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, b Backend)
	}{
		{"Admins", testAdmins},
		{"Sessions", testSessions},
		{"SessionBound", testSessionBound},
		{"Throttles", testThrottles},
		{"ThrottleBound", testThrottleBound},
		{"ConcurrentThrottle", testConcurrentThrottle},
		{"LoginEnrolTOTP", testLoginEnrolTOTP},
		{"TOTPReplay", testTOTPReplay},
		{"ConcurrentTOTPReplay", testConcurrentTOTPReplay},
		{"SecondFactorGuessing", testSecondFactorGuessing},
		{"Lockout", testLockout},
		{"Enumeration", testEnumeration},
		{"FixationAndLogout", testFixationAndLogout},
		{"NewNetwork", testNewNetwork},
		{"StepUp", testStepUp},
		{"Lifetimes", testLifetimes},
		{"RoleChangeEndsSessions", testRoleChange},
		{"ListAdmins", testListAdmins},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, b) })
	}
}

var ctx = context.Background()

// Clock is a settable clock for the Authenticator.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock starts at a fixed time on a whole second.
func NewClock() *Clock { return &Clock{t: time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Advance moves the clock.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// FastHasher is argon2id at its minimum cost, for tests of everything but
// the hash.
func FastHasher(t testing.TB) *adminauth.Hasher {
	h, err := adminauth.NewHasher(adminauth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		t.Fatalf("NewHasher error %v", err)
	}
	return h
}

// Code is the TOTP code of secret at t.
func Code(t testing.TB, secret adminauth.TOTPSecret, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(string(secret), at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatalf("GenerateCode error %v", err)
	}
	return c
}

// Clients the tests log in from.
var (
	Office = adminauth.Client{Addr: netip.MustParseAddr("192.0.2.10"), UserAgent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"}
	Desk2  = adminauth.Client{Addr: netip.MustParseAddr("192.0.2.77"), UserAgent: Office.UserAgent} // same /24
	Cafe   = adminauth.Client{Addr: netip.MustParseAddr("203.0.113.5"), UserAgent: Office.UserAgent}
	Other  = adminauth.Client{Addr: netip.MustParseAddr("2001:db8:1:2::9"), UserAgent: "curl/8.5"}
)

type env struct {
	st    adminauth.Store
	clock *Clock
	auth  *adminauth.Authenticator
}

func newEnv(t *testing.T, b Backend, opts ...adminauth.Option) *env {
	t.Helper()
	st := b.Open(t)
	t.Cleanup(func() { b.Close(st) })
	e := &env{st: st, clock: NewClock()}
	e.auth = e.authenticator(t, st, opts...)
	return e
}

func (e *env) authenticator(t *testing.T, st adminauth.Store, opts ...adminauth.Option) *adminauth.Authenticator {
	t.Helper()
	a, err := adminauth.New(st, append([]adminauth.Option{adminauth.WithHasher(FastHasher(t)), adminauth.WithClock(e.clock.Now)}, opts...)...)
	if err != nil {
		t.Fatalf("adminauth.New error %v", err)
	}
	return a
}

// enrolled creates an admin, enrols TOTP on its first login and returns
// it, its secret and a full session token (from Office).
func (e *env) enrolled(t *testing.T, name string, role adminauth.Role) (adminauth.Admin, adminauth.TOTPSecret, string) {
	t.Helper()
	ad, err := e.auth.CreateAdmin(ctx, name, "correct horse "+name, role)
	if err != nil {
		t.Fatalf("CreateAdmin error %v", err)
	}
	res, err := e.auth.Login(ctx, name, "correct horse "+name, Office)
	if err != nil || res.Kind != adminauth.SessionEnrol {
		t.Fatalf("first Login = %+v, %v; want an enrolment session", res.Kind, err)
	}
	en, err := e.auth.BeginTOTPEnrolment(ctx, res.Token, Office)
	if err != nil {
		t.Fatalf("BeginTOTPEnrolment error %v", err)
	}
	tok, err := e.auth.FinishTOTPEnrolment(ctx, res.Token, Code(t, en.Secret, e.clock.Now()), Office)
	if err != nil {
		t.Fatalf("FinishTOTPEnrolment error %v", err)
	}
	// The next code is a later step: move on past the one just used.
	e.clock.Advance(30 * time.Second)
	return ad, en.Secret, tok
}

// login runs password and TOTP from c and returns the full token.
func (e *env) login(t *testing.T, name string, secret adminauth.TOTPSecret, c adminauth.Client) string {
	t.Helper()
	res, err := e.auth.Login(ctx, name, "correct horse "+name, c)
	if err != nil || res.Kind != adminauth.SessionPending || !res.TOTP {
		t.Fatalf("Login(%s) = %+v, %v; want pending with TOTP", name, res.Kind, err)
	}
	tok, err := e.auth.ProveTOTP(ctx, res.Token, Code(t, secret, e.clock.Now()), c)
	if err != nil {
		t.Fatalf("ProveTOTP error %v", err)
	}
	e.clock.Advance(30 * time.Second)
	return tok
}

func sampleAdmin(name string) adminauth.Admin {
	return adminauth.Admin{ID: adminauth.NewAdminID(), Name: name, Role: adminauth.RoleViewer,
		PasswordHash: "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		CreatedAt:    time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func testAdmins(t *testing.T, b Backend) {
	e := newEnv(t, b)
	a := sampleAdmin("alice")
	if err := e.st.CreateAdmin(ctx, a); err != nil {
		t.Fatalf("CreateAdmin error %v", err)
	}
	dupName := sampleAdmin("alice")
	dupID := sampleAdmin("bob")
	dupID.ID = a.ID
	for _, d := range []adminauth.Admin{dupName, dupID} {
		if err := e.st.CreateAdmin(ctx, d); !errors.Is(err, adminauth.ErrExists) {
			t.Errorf("CreateAdmin(duplicate %s/%s) error %v, want ErrExists", d.Name, d.ID, err)
		}
	}
	bad := sampleAdmin("Alice Smith")
	if err := e.st.CreateAdmin(ctx, bad); !errors.Is(err, adminauth.ErrInvalid) {
		t.Errorf("CreateAdmin(bad name) error %v, want ErrInvalid", err)
	}
	got, err := e.st.AdminByName(ctx, "alice")
	if err != nil || got.ID != a.ID || got.PasswordHash != a.PasswordHash {
		t.Fatalf("AdminByName = %v, %v; want %v", got, err, a)
	}
	if _, err := e.st.AdminByName(ctx, "nobody"); !errors.Is(err, adminauth.ErrNotFound) {
		t.Errorf("AdminByName(nobody) error %v, want ErrNotFound", err)
	}
	if _, err := e.st.AdminByID(ctx, adminauth.NewAdminID()); !errors.Is(err, adminauth.ErrNotFound) {
		t.Errorf("AdminByID(unknown) error %v, want ErrNotFound", err)
	}
	if err := e.st.UpdateAdmin(ctx, a.ID, func(x *adminauth.Admin) error { x.Role = adminauth.RoleAuditor; return nil }); err != nil {
		t.Fatalf("UpdateAdmin error %v", err)
	}
	if got, _ := e.st.AdminByID(ctx, a.ID); got.Role != adminauth.RoleAuditor {
		t.Fatalf("after UpdateAdmin role = %s, want auditor", got.Role)
	}
	boom := errors.New("boom")
	if err := e.st.UpdateAdmin(ctx, a.ID, func(x *adminauth.Admin) error { x.Role = adminauth.RoleOperator; return boom }); !errors.Is(err, boom) {
		t.Fatalf("UpdateAdmin(failing fn) error %v, want boom", err)
	}
	for name, fn := range map[string]func(*adminauth.Admin){
		"rename":   func(x *adminauth.Admin) { x.Name = "mallory" },
		"bad role": func(x *adminauth.Admin) { x.Role = "root" },
	} {
		if err := e.st.UpdateAdmin(ctx, a.ID, func(x *adminauth.Admin) error { fn(x); return nil }); !errors.Is(err, adminauth.ErrInvalid) {
			t.Errorf("UpdateAdmin(%s) error %v, want ErrInvalid", name, err)
		}
	}
	if got, _ := e.st.AdminByID(ctx, a.ID); got.Role != adminauth.RoleAuditor || got.Name != "alice" {
		t.Fatalf("after refused updates: %v, want alice the auditor", got)
	}
}

func session(adminID string, n int, now time.Time) adminauth.Session {
	var h adminauth.TokenHash
	copy(h[:], fmt.Sprintf("%-32d", n))
	return adminauth.Session{Hash: h, AdminID: adminID, Kind: adminauth.SessionFull, Fingerprint: "fp",
		CreatedAt: now.Add(time.Duration(n) * time.Second), LastSeen: now, Expires: now.Add(time.Hour)}
}

func testSessions(t *testing.T, b Backend) {
	e := newEnv(t, b)
	a, c := sampleAdmin("alice"), sampleAdmin("carol")
	e.st.CreateAdmin(ctx, a)
	e.st.CreateAdmin(ctx, c)
	now := e.clock.Now()
	s1, s2, s3 := session(a.ID, 1, now), session(a.ID, 2, now), session(c.ID, 3, now)
	s3.Expires = now.Add(time.Minute)
	for _, s := range []adminauth.Session{s1, s2, s3} {
		if err := e.st.CreateSession(ctx, s); err != nil {
			t.Fatalf("CreateSession error %v", err)
		}
	}
	if err := e.st.CreateSession(ctx, s1); !errors.Is(err, adminauth.ErrExists) {
		t.Fatalf("CreateSession(same hash) error %v, want ErrExists", err)
	}
	got, err := e.st.SessionByHash(ctx, s1.Hash)
	if err != nil || got.AdminID != a.ID || !got.Expires.Equal(s1.Expires) || got.Kind != adminauth.SessionFull {
		t.Fatalf("SessionByHash = %+v, %v; want %+v", got, err, s1)
	}
	err = e.st.UpdateSession(ctx, s1.Hash, func(x *adminauth.Session) error {
		x.Ceremony = []byte("tdata")
		x.Failures = 2
		x.SecondFactorAt = now
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateSession error %v", err)
	}
	got, _ = e.st.SessionByHash(ctx, s1.Hash)
	if string(got.Ceremony) != "tdata" || got.Failures != 2 || !got.SecondFactorAt.Equal(now) {
		t.Fatalf("after UpdateSession: %+v", got)
	}
	if err := e.st.UpdateSession(ctx, s1.Hash, func(x *adminauth.Session) error { x.Ceremony = make([]byte, adminauth.MaxCeremony+1); return nil }); !errors.Is(err, adminauth.ErrInvalid) {
		t.Fatalf("UpdateSession(oversized ceremony) error %v, want ErrInvalid", err)
	}
	if n, err := e.st.PruneSessions(ctx, now.Add(2*time.Minute)); err != nil || n != 1 {
		t.Fatalf("PruneSessions = %d, %v; want 1 (carol's)", n, err)
	}
	if n, err := e.st.DeleteAdminSessions(ctx, a.ID); err != nil || n != 2 {
		t.Fatalf("DeleteAdminSessions = %d, %v; want 2", n, err)
	}
	if err := e.st.DeleteSession(ctx, s1.Hash); !errors.Is(err, adminauth.ErrNotFound) {
		t.Fatalf("DeleteSession(gone) error %v, want ErrNotFound", err)
	}
	if _, err := e.st.SessionByHash(ctx, s2.Hash); !errors.Is(err, adminauth.ErrNotFound) {
		t.Fatalf("SessionByHash(deleted) error %v, want ErrNotFound", err)
	}
}

func testSessionBound(t *testing.T, b Backend) {
	e := newEnv(t, b)
	a := sampleAdmin("alice")
	e.st.CreateAdmin(ctx, a)
	now := e.clock.Now()
	for i := 0; i < adminauth.MaxSessionsPerAdmin+3; i++ {
		if err := e.st.CreateSession(ctx, session(a.ID, i, now)); err != nil {
			t.Fatalf("CreateSession(%d) error %v", i, err)
		}
	}
	for i := 0; i < adminauth.MaxSessionsPerAdmin+3; i++ {
		_, err := e.st.SessionByHash(ctx, session(a.ID, i, now).Hash)
		if evicted := i < 3; evicted != errors.Is(err, adminauth.ErrNotFound) {
			t.Errorf("session %d (created %d s in): error %v, evicted want %v", i, i, err, evicted)
		}
	}
}

func testThrottles(t *testing.T, b Backend) {
	e := newEnv(t, b)
	now := e.clock.Now()
	if _, err := e.st.Throttle(ctx, "acct:x"); !errors.Is(err, adminauth.ErrNotFound) {
		t.Fatalf("Throttle(none) error %v, want ErrNotFound", err)
	}
	inc := func(t *adminauth.Throttle) (bool, error) {
		t.Failures++
		t.LastFailure, t.LockedUntil = now, now.Add(time.Duration(t.Failures)*time.Second)
		return true, nil
	}
	for i := 0; i < 3; i++ {
		if err := e.st.UpdateThrottle(ctx, "acct:x", 10, inc); err != nil {
			t.Fatalf("UpdateThrottle error %v", err)
		}
	}
	got, err := e.st.Throttle(ctx, "acct:x")
	if err != nil || got.Failures != 3 || got.Key != "acct:x" || !got.LockedUntil.Equal(now.Add(3*time.Second)) {
		t.Fatalf("Throttle = %+v, %v; want 3 failures", got, err)
	}
	if err := e.st.UpdateThrottle(ctx, "acct:x", 10, func(*adminauth.Throttle) (bool, error) { return false, nil }); err != nil {
		t.Fatalf("UpdateThrottle(delete) error %v", err)
	}
	if _, err := e.st.Throttle(ctx, "acct:x"); !errors.Is(err, adminauth.ErrNotFound) {
		t.Fatalf("Throttle(deleted) error %v, want ErrNotFound", err)
	}
	for _, k := range []string{"", string(make([]byte, adminauth.MaxThrottleKey+1))} {
		if err := e.st.UpdateThrottle(ctx, k, 10, inc); !errors.Is(err, adminauth.ErrInvalid) {
			t.Errorf("UpdateThrottle(key of %d bytes) error %v, want ErrInvalid", len(k), err)
		}
	}
}

// testThrottleBound: a full table evicts the entry whose lock ends first,
// so flooding it with fresh keys does not free a locked account.
func testThrottleBound(t *testing.T, b Backend) {
	e := newEnv(t, b)
	now := e.clock.Now()
	set := func(until time.Time) func(*adminauth.Throttle) (bool, error) {
		return func(t *adminauth.Throttle) (bool, error) {
			t.Failures++
			t.LastFailure, t.LockedUntil = now, until
			return true, nil
		}
	}
	const max = 5
	e.st.UpdateThrottle(ctx, "acct:victim", max, set(now.Add(time.Hour)))
	for i := 0; i < 20; i++ {
		if err := e.st.UpdateThrottle(ctx, fmt.Sprintf("src:198.51.100.%d", i), max, set(now.Add(time.Duration(i)*time.Second))); err != nil {
			t.Fatalf("UpdateThrottle error %v", err)
		}
	}
	if got, err := e.st.Throttle(ctx, "acct:victim"); err != nil || got.Failures != 1 {
		t.Fatalf("victim after the flood: %+v, %v; want kept", got, err)
	}
	kept := 0
	for i := 0; i < 20; i++ {
		if _, err := e.st.Throttle(ctx, fmt.Sprintf("src:198.51.100.%d", i)); err == nil {
			kept++
			if i < 20-(max-1) {
				t.Errorf("entry %d (lock ends soonest) kept, want evicted", i)
			}
		}
	}
	if kept != max-1 {
		t.Fatalf("%d flood entries kept, want %d", kept, max-1)
	}
}

func handles(t *testing.T, b Backend, st adminauth.Store) []adminauth.Store {
	hs := []adminauth.Store{st}
	if b.Replica != nil {
		r := b.Replica(t, st)
		t.Cleanup(func() { b.Close(r) })
		hs = append(hs, r)
	}
	return hs
}

func testConcurrentThrottle(t *testing.T, b Backend) {
	e := newEnv(t, b)
	hs := handles(t, b, e.st)
	const each = 20
	var wg sync.WaitGroup
	errs := make(chan error, 2*each*len(hs))
	for _, h := range hs {
		for g := 0; g < 2; g++ {
			wg.Add(1)
			go func(h adminauth.Store) {
				defer wg.Done()
				for i := 0; i < each; i++ {
					errs <- h.UpdateThrottle(ctx, "acct:shared", 100, func(t *adminauth.Throttle) (bool, error) { t.Failures++; return true, nil })
				}
			}(h)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("UpdateThrottle error %v", err)
		}
	}
	if got, _ := e.st.Throttle(ctx, "acct:shared"); got.Failures != 2*each*len(hs) {
		t.Fatalf("failures counted = %d, want %d (an update lost)", got.Failures, 2*each*len(hs))
	}
}
