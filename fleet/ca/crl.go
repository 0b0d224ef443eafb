package ca

import (
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// MaxCRLEntries bounds the entries of one CRL.
const MaxCRLEntries = 1_000_000

// Revoked is one CRL entry.
type Revoked struct {
	Serial    *big.Int
	RevokedAt time.Time
	// Reason is the RFC 5280 §5.3.1 reason code; 0 (unspecified) is left
	// out of the entry, as §5.3.1 asks.
	Reason int
}

// CRL signs a version 2 CRL (RFC 5280 §5) of entries with CRL number
// number (§5.2.3: monotonically increasing; the caller takes it from the
// store, shared by every replica), valid from thisUpdate to nextUpdate.
// It returns the DER.
func (c *CA) CRL(number uint64, entries []Revoked, thisUpdate, nextUpdate time.Time) ([]byte, error) {
	if number == 0 {
		return nil, errors.New("sign CRL: number 0")
	}
	if !nextUpdate.After(thisUpdate) {
		return nil, fmt.Errorf("sign CRL: nextUpdate %v not after thisUpdate %v", nextUpdate, thisUpdate)
	}
	if len(entries) > MaxCRLEntries {
		return nil, fmt.Errorf("sign CRL: %d entries, want at most %d", len(entries), MaxCRLEntries)
	}
	if c.cert.KeyUsage&x509.KeyUsageCRLSign == 0 {
		return nil, fmt.Errorf("sign CRL: CA %q lacks the cRLSign key usage", c.cert.Subject)
	}
	list := make([]x509.RevocationListEntry, 0, len(entries))
	for _, e := range entries {
		if e.Serial == nil || e.Serial.Sign() <= 0 {
			return nil, fmt.Errorf("sign CRL: entry serial %v", e.Serial)
		}
		if e.Reason < 0 || e.Reason > 10 || e.Reason == 7 {
			return nil, fmt.Errorf("sign CRL: entry %x: reason %d", e.Serial, e.Reason)
		}
		list = append(list, x509.RevocationListEntry{SerialNumber: e.Serial, RevocationTime: e.RevokedAt.UTC(), ReasonCode: e.Reason})
	}
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    new(big.Int).SetUint64(number),
		ThisUpdate:                thisUpdate.UTC(),
		NextUpdate:                nextUpdate.UTC(),
		RevokedCertificateEntries: list,
	}, c.cert, c.key)
	if err != nil {
		return nil, fmt.Errorf("sign CRL: %w", err)
	}
	return der, nil
}
