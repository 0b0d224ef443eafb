package server

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/store"
)

// settingCRLToken changes (to a fresh random value) after every
// revocation, on whichever replica made it; a replica whose CRL was made
// under another token makes a new one. Read before listing, so a CRL
// never claims a token whose revocations it lacks.
const settingCRLToken store.SettingKey = "crl.token"

// crlCache is this replica's current CRL.
type crlCache struct {
	mu     sync.Mutex // guards the fields below; held while a CRL is made
	der    []byte
	token  string
	issued time.Time
	number uint64
	// checked is when token was last compared with the store's.
	checked time.Time
}

// crlTokenCheck is how often a replica asks the store whether another
// replica revoked something since its CRL was made.
const crlTokenCheck = time.Second

// getCRL serves the device CA's CRL (DER).
func (s *Server) getCRL(w http.ResponseWriter, r *http.Request) error {
	der, err := s.currentCRL(r, false)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", api.CRLContentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(der)))
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	// The client gone is not our error to report.
	_, _ = w.Write(der)
	return nil
}

// currentCRL returns a CRL made after the last revocation the store knows
// of and within half its period, making one if needed.
func (s *Server) currentCRL(r *http.Request, force bool) ([]byte, error) {
	now := s.o.now()
	s.crl.mu.Lock()
	defer s.crl.mu.Unlock()
	fresh := s.crl.der != nil && now.Before(s.crl.issued.Add(s.o.crlPeriod/2))
	// The token is read at most once a second: a flood of CRL requests
	// costs the store one read a second per replica.
	if fresh && !force && now.Sub(s.crl.checked) < crlTokenCheck && !now.Before(s.crl.checked) {
		return s.crl.der, nil
	}
	token, err := s.st.Setting(r.Context(), settingCRLToken)
	if errors.Is(err, store.ErrNotFound) {
		token = ""
	} else if err != nil {
		return nil, storeError("CRL token", err)
	}
	s.crl.checked = now
	if fresh && s.crl.token == token {
		return s.crl.der, nil
	}
	der, number, err := s.makeCRL(r, now)
	if err != nil {
		return nil, err
	}
	s.crl.der, s.crl.token, s.crl.issued, s.crl.number = der, token, now, number
	s.log.Info("CRL issued", "number", number, "bytes", len(der))
	return der, nil
}

// makeCRL lists every revoked certificate not expired a CRL period ago
// (RFC 5280 §3.3: an entry stays on at least one CRL after the
// certificate expires) and signs them under a new CRL number.
func (s *Server) makeCRL(r *http.Request, now time.Time) ([]byte, uint64, error) {
	var entries []ca.Revoked
	p := store.PageRequest{Limit: store.MaxPageSize}
	for {
		page, err := s.st.ListRevoked(r.Context(), now.Add(-s.o.crlPeriod), p)
		if err != nil {
			return nil, 0, storeError("list revoked", err)
		}
		for _, c := range page.Items {
			if c.RevokedAt == nil {
				continue
			}
			entries = append(entries, ca.Revoked{Serial: c.Serial.BigInt(), RevokedAt: *c.RevokedAt, Reason: int(c.Reason)})
		}
		if len(entries) > ca.MaxCRLEntries {
			return nil, 0, &refusal{code: api.CodeInternal, msg: "CRL: internal error", cause: fmt.Errorf("more than %d revoked certificates", ca.MaxCRLEntries)}
		}
		if page.Next == "" {
			break
		}
		p.After = page.Next
	}
	number, err := s.st.NextCRLNumber(r.Context())
	if err != nil {
		return nil, 0, storeError("CRL number", err)
	}
	der, err := s.deviceCA.CRL(number, entries, now.Add(-ca.Backdate), now.Add(s.o.crlPeriod))
	if err != nil {
		return nil, 0, &refusal{code: api.CodeInternal, msg: "CRL: internal error", cause: err}
	}
	return der, number, nil
}

// revoked records that a revocation happened, so every replica reissues
// its CRL, and reissues this replica's now.
func (s *Server) revoked(r *http.Request) error {
	var b [16]byte
	// crypto/rand.Read never returns an error.
	_, _ = rand.Read(b[:])
	if err := s.st.SetSetting(r.Context(), settingCRLToken, hex.EncodeToString(b[:])); err != nil {
		return storeError("CRL token", err)
	}
	_, err := s.currentCRL(r, true)
	return err
}
