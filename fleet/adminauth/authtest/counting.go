package authtest

import (
	"context"
	"sync"
	"time"

	"github.com/hardphone/hardphone/fleet/adminauth"
)

// CountingStore passes every call to the real Store and records the
// method names, so a test can compare the work two logins did.
type CountingStore struct {
	adminauth.Store
	mu    sync.Mutex
	calls []string
}

func (c *CountingStore) add(m string) { c.mu.Lock(); c.calls = append(c.calls, m); c.mu.Unlock() }

// Reset forgets the calls so far.
func (c *CountingStore) Reset() { c.mu.Lock(); c.calls = nil; c.mu.Unlock() }

// Calls returns the calls since Reset.
func (c *CountingStore) Calls() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.calls...)
}

func (c *CountingStore) AdminByName(ctx context.Context, n string) (adminauth.Admin, error) {
	c.add("AdminByName")
	return c.Store.AdminByName(ctx, n)
}

func (c *CountingStore) AdminByID(ctx context.Context, id string) (adminauth.Admin, error) {
	c.add("AdminByID")
	return c.Store.AdminByID(ctx, id)
}

func (c *CountingStore) UpdateAdmin(ctx context.Context, id string, fn func(*adminauth.Admin) error) error {
	c.add("UpdateAdmin")
	return c.Store.UpdateAdmin(ctx, id, fn)
}

func (c *CountingStore) CreateSession(ctx context.Context, s adminauth.Session) error {
	c.add("CreateSession")
	return c.Store.CreateSession(ctx, s)
}

func (c *CountingStore) SessionByHash(ctx context.Context, h adminauth.TokenHash) (adminauth.Session, error) {
	c.add("SessionByHash")
	return c.Store.SessionByHash(ctx, h)
}

func (c *CountingStore) Throttle(ctx context.Context, k string) (adminauth.Throttle, error) {
	c.add("Throttle")
	return c.Store.Throttle(ctx, k)
}

func (c *CountingStore) UpdateThrottle(ctx context.Context, k string, max int, fn func(*adminauth.Throttle) (bool, error)) error {
	c.add("UpdateThrottle")
	return c.Store.UpdateThrottle(ctx, k, max, fn)
}

func (c *CountingStore) PruneSessions(ctx context.Context, now time.Time) (int, error) {
	c.add("PruneSessions")
	return c.Store.PruneSessions(ctx, now)
}
