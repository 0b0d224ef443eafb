package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/hardphone/hardphone/fleet/adminauth"
	"github.com/hardphone/hardphone/fleet/api"
)

// AdminAuthorizer authenticates an admin's session and checks one of the
// permission table's permissions (RBAC, step-up): adminauth.Authenticator
// implements it.
type AdminAuthorizer interface {
	Authorize(ctx context.Context, token string, c adminauth.Client, p adminauth.Permission) (adminauth.SessionInfo, error)
}

// principal is an admin authorized for a request.
type principal struct {
	name string
	role adminauth.Role
	addr netip.Addr
}

// roleHandler is an endpoint for an authorized admin.
type roleHandler func(w http.ResponseWriter, r *http.Request, p principal) error

// authorized requires, on top of an admin client certificate, a session
// of the admin the certificate names ("Authorization: Bearer TOKEN",
// adminauth: password and a second factor) that holds one of perms now.
// A certificate alone, a session alone, or a session of another admin is
// refused; so is a role without the permission (adminauth.Authorize).
func (s *Server) authorized(h roleHandler, perms ...adminauth.Permission) func(http.ResponseWriter, *http.Request) error {
	return s.admin(func(w http.ResponseWriter, r *http.Request, _ string) error {
		if s.auth == nil {
			return refuse(api.CodeNotConfigured, "this fleet server runs without admin sessions (adminauth)")
		}
		leaf, _ := verifiedRoot(r)
		name, err := adminauth.NormalizeName(leaf.Subject.CommonName)
		if err != nil {
			return refuse(api.CodeUnauthenticated, "the admin certificate's common name is not an admin name")
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" || len(tok) > 64 {
			return refuse(api.CodeUnauthenticated, "an admin session is required (Authorization: Bearer)")
		}
		c := clientOf(r)
		var lastErr error
		for _, p := range perms {
			info, err := s.auth.Authorize(r.Context(), tok, c, p)
			if err == nil {
				if info.Name != name {
					return refuse(api.CodeUnauthenticated, "the session is not the certificate's admin's")
				}
				return h(w, r, principal{name: info.Name, role: info.Role, addr: c.Addr})
			}
			lastErr = err
			if !errors.Is(err, adminauth.ErrForbidden) {
				break
			}
		}
		return authError(lastErr, perms)
	})
}

// authError maps adminauth's refusals.
func authError(err error, perms []adminauth.Permission) error {
	switch {
	case errors.Is(err, adminauth.ErrForbidden):
		return refuseErr(api.CodeForbidden, err, "permission %v needed", perms)
	case errors.Is(err, adminauth.ErrStepUpRequired):
		return refuse(api.CodeForbidden, "step-up required: prove the second factor again")
	case errors.Is(err, adminauth.ErrSecondFactorRequired):
		return refuse(api.CodeUnauthenticated, "second factor required again (new network or client)")
	case errors.Is(err, adminauth.ErrSessionInvalid), errors.Is(err, adminauth.ErrBadCredentials):
		return refuse(api.CodeUnauthenticated, "session not valid: log in")
	}
	return &refusal{code: api.CodeInternal, msg: "authorize: internal error", cause: err}
}

// clientOf is what adminauth binds sessions to: the peer's address
// (hpfleet terminates TLS itself) and the user agent.
func clientOf(r *http.Request) adminauth.Client {
	c := adminauth.Client{UserAgent: r.UserAgent()}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		c.Addr = ap.Addr().Unmap()
	} else if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		if a, err := netip.ParseAddr(host); err == nil {
			c.Addr = a
		}
	}
	return c
}
