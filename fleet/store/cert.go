package store

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/big"
	"time"
)

// MaxCertDER bounds a stored certificate.
const MaxCertDER = 16 << 10

// MaxLiveCertsPerDevice bounds the certificates of one device that are
// neither revoked nor expired at a new one's NotBefore: a phone renewing
// in a loop cannot grow the table (AddCert returns ErrLimit). A server that
// renews at two-thirds of the life has two live at a time.
const MaxLiveCertsPerDevice = 4

// CertSerial is a certificate serial number as NextCertSerial makes it:
// 16 bytes big-endian, a database sequence number (>= 1, below 2^63) in the
// first 8 and 64 bits from crypto/rand in the last 8. The sequence makes it
// unique across replicas; the random half makes it unpredictable, as
// CA/Browser Forum BR §7.1 asks of serials. It is positive and at most 20
// octets (RFC 5280 §4.1.2.2).
type CertSerial [16]byte

// NewCertSerial builds the serial for sequence number seq (>= 1).
func NewCertSerial(seq uint64) (CertSerial, error) {
	var s CertSerial
	if seq == 0 || seq >= 1<<63 {
		return s, fmt.Errorf("%w: certificate serial sequence %d, want 1..2^63-1", ErrInvalid, seq)
	}
	binary.BigEndian.PutUint64(s[:8], seq)
	// crypto/rand.Read never returns an error (it crashes the program if
	// the kernel's generator fails).
	_, _ = rand.Read(s[8:])
	return s, nil
}

// IsZero reports whether s is all zeros, which no valid record holds.
func (s CertSerial) IsZero() bool { return s == CertSerial{} }

// String is the lowercase hex form (32 digits).
func (s CertSerial) String() string { return hex.EncodeToString(s[:]) }

// BigInt is the serial as x509.Certificate.SerialNumber wants it.
func (s CertSerial) BigInt() *big.Int { return new(big.Int).SetBytes(s[:]) }

// Validate checks the sequence half is in range.
func (s CertSerial) Validate() error {
	if seq := binary.BigEndian.Uint64(s[:8]); seq == 0 || seq >= 1<<63 {
		return fmt.Errorf("%w: certificate serial %s: sequence half %d, want 1..2^63-1", ErrInvalid, s, seq)
	}
	return nil
}

// ParseCertSerial parses 32 hex digits.
func ParseCertSerial(str string) (CertSerial, error) {
	var s CertSerial
	if len(str) != 2*len(s) {
		return s, fmt.Errorf("%w: certificate serial of %d characters, want %d hex digits", ErrInvalid, len(str), 2*len(s))
	}
	if _, err := hex.Decode(s[:], []byte(str)); err != nil {
		return CertSerial{}, fmt.Errorf("%w: certificate serial: %v", ErrInvalid, err)
	}
	if err := s.Validate(); err != nil {
		return CertSerial{}, err
	}
	return s, nil
}

// CertSerialFromBigInt converts an x509 serial back; only serials made by
// NewCertSerial convert.
func CertSerialFromBigInt(n *big.Int) (CertSerial, error) {
	var s CertSerial
	if n == nil || n.Sign() <= 0 || n.BitLen() > 8*len(s) {
		return s, fmt.Errorf("%w: certificate serial %v is not a 16-byte positive serial", ErrInvalid, n)
	}
	n.FillBytes(s[:])
	if err := s.Validate(); err != nil {
		return CertSerial{}, err
	}
	return s, nil
}

// ParseCertCursor parses a ListRevoked cursor; "" is the start.
func ParseCertCursor(after string) (s CertSerial, start bool, err error) {
	if after == "" {
		return CertSerial{}, true, nil
	}
	s, err = ParseCertSerial(after)
	if err != nil {
		return CertSerial{}, false, fmt.Errorf("page cursor: %w", err)
	}
	return s, false, nil
}

// RevocationReason is a CRL entry's reason code (RFC 5280 §5.3.1).
type RevocationReason uint8

// The reasons a fleet uses. certificateHold (6) is left out on purpose:
// a device revocation here is final.
const (
	ReasonUnspecified          RevocationReason = 0
	ReasonKeyCompromise        RevocationReason = 1
	ReasonAffiliationChanged   RevocationReason = 3
	ReasonSuperseded           RevocationReason = 4
	ReasonCessationOfOperation RevocationReason = 5
	ReasonPrivilegeWithdrawn   RevocationReason = 9
)

// Validate checks r is one of the reasons above.
func (r RevocationReason) Validate() error {
	switch r {
	case ReasonUnspecified, ReasonKeyCompromise, ReasonAffiliationChanged, ReasonSuperseded,
		ReasonCessationOfOperation, ReasonPrivilegeWithdrawn:
		return nil
	}
	return fmt.Errorf("%w: revocation reason %d", ErrInvalid, r)
}

// Cert is a device certificate the fleet CA issued.
type Cert struct {
	// Serial is the certificate's serial (NextCertSerial).
	Serial CertSerial
	// DeviceID is the device it was issued to.
	DeviceID DeviceID
	// NotBefore and NotAfter are its validity.
	NotBefore, NotAfter time.Time
	// RevokedAt is when it was revoked; nil while it is not.
	RevokedAt *time.Time
	// Reason is the revocation reason; ReasonUnspecified while not
	// revoked.
	Reason RevocationReason
	// DER is the certificate itself, at most MaxCertDER bytes; may be
	// empty. Public data: a phone that lost the enrolment response can be
	// sent it again.
	DER []byte
}

// Validate checks a certificate to be recorded (CreateDevice, AddCert).
func (c Cert) Validate() error {
	if err := c.Serial.Validate(); err != nil {
		return err
	}
	if err := c.DeviceID.Validate(); err != nil {
		return fmt.Errorf("certificate %s: %w", c.Serial, err)
	}
	if err := checkTime("not_before", c.NotBefore); err != nil {
		return fmt.Errorf("certificate %s: %w", c.Serial, err)
	}
	if err := checkTime("not_after", c.NotAfter); err != nil {
		return fmt.Errorf("certificate %s: %w", c.Serial, err)
	}
	if !c.NotAfter.After(c.NotBefore) {
		return fmt.Errorf("%w: certificate %s: not_after %v is not after not_before %v", ErrInvalid, c.Serial, c.NotAfter, c.NotBefore)
	}
	if c.RevokedAt != nil {
		return fmt.Errorf("%w: certificate %s: a new certificate cannot be revoked", ErrInvalid, c.Serial)
	}
	if c.Reason != ReasonUnspecified {
		return fmt.Errorf("%w: certificate %s: reason %d on a certificate not revoked", ErrInvalid, c.Serial, c.Reason)
	}
	if len(c.DER) > MaxCertDER {
		return fmt.Errorf("%w: certificate %s: DER of %d bytes, want at most %d", ErrInvalid, c.Serial, len(c.DER), MaxCertDER)
	}
	return nil
}

// ValidateNewCert checks an AddCert call and returns the certificate as it
// is to be stored.
func ValidateNewCert(c Cert) (Cert, error) {
	if err := c.Validate(); err != nil {
		return Cert{}, err
	}
	return c.norm(), nil
}

// norm copies DER and normalises the times.
func (c Cert) norm() Cert {
	c.NotBefore, c.NotAfter = NormTime(c.NotBefore), NormTime(c.NotAfter)
	if len(c.DER) == 0 {
		c.DER = nil
	} else {
		c.DER = append([]byte(nil), c.DER...)
	}
	return c
}

// ValidateRevocation checks the reason and time of a revocation and
// returns the time normalised.
func ValidateRevocation(reason RevocationReason, at time.Time) (time.Time, error) {
	if err := reason.Validate(); err != nil {
		return time.Time{}, err
	}
	if err := checkTime("revoked_at", at); err != nil {
		return time.Time{}, err
	}
	return NormTime(at), nil
}
