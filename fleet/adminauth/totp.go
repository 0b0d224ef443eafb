package adminauth

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// TOTP follows RFC 6238 with the parameters every authenticator app
// takes: HMAC-SHA-1, 6 digits, 30-second steps (RFC 6238 §4: T0 = 0,
// X = 30), a 160-bit secret (RFC 4226 §4 R6 recommends 160 bits).
const (
	totpPeriod = 30
	totpDigits = otp.DigitsSix
	totpSecret = 20
	// totpSkew is the number of steps accepted on either side of the
	// current one (RFC 6238 §5.2: at most one step backward is
	// recommended for network delay; one forward covers a slow server
	// clock).
	totpSkew = 1
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Skew: 0, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1}

// TOTPSecret is a base32 TOTP secret. It never prints.
type TOTPSecret string

// LogValue implements slog.LogValuer.
func (TOTPSecret) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// String keeps fmt from printing the secret.
func (TOTPSecret) String() string { return "REDACTED" }

// GoString keeps %#v from printing the secret.
func (TOTPSecret) GoString() string { return "REDACTED" }

// TOTPEnrolment is what an admin's authenticator app needs: the secret
// and the otpauth:// URI (for a QR code) carrying it.
type TOTPEnrolment struct {
	Secret TOTPSecret
	// URI is the otpauth://totp/ URI; it holds the secret.
	URI string
}

// LogValue implements slog.LogValuer.
func (TOTPEnrolment) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// NewTOTP makes a new secret for account (the admin's name) at issuer
// (the fleet's name shown in the app).
func NewTOTP(issuer, account string) (TOTPEnrolment, error) {
	if issuer == "" || account == "" || len(issuer) > 64 || len(account) > MaxNameLen {
		return TOTPEnrolment{}, fmt.Errorf("new TOTP: issuer %q, account %q: %w", issuer, account, ErrInvalid)
	}
	k, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: account, Period: totpPeriod,
		SecretSize: totpSecret, Digits: totpDigits, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		return TOTPEnrolment{}, fmt.Errorf("new TOTP: %w", err)
	}
	return TOTPEnrolment{Secret: TOTPSecret(k.Secret()), URI: k.URL()}, nil
}

// totpStep is the RFC 6238 §4.2 time step T of t: floor(unix time / X).
func totpStep(t time.Time) int64 { return t.Unix() / totpPeriod }

// matchTOTP returns the time step whose code is code, among the steps
// within totpSkew of now, checking every candidate (no early exit) with
// a constant-time compare. It returns -1 when none matches.
func matchTOTP(secret TOTPSecret, code string, now time.Time) (int64, error) {
	if len(code) != totpDigits.Length() {
		return -1, nil
	}
	found := int64(-1)
	cur := totpStep(now)
	for s := cur - totpSkew; s <= cur+totpSkew; s++ {
		want, err := totp.GenerateCodeCustom(string(secret), time.Unix(s*totpPeriod, 0), totpOpts)
		if err != nil {
			return -1, fmt.Errorf("totp: %w", ErrInvalid) // the error may quote the secret
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && found < 0 {
			found = s
		}
	}
	return found, nil
}

// CheckTOTP checks code against secret at now, refusing a step not after
// lastStep (the last one accepted for this admin): RFC 6238 §5.2 "the
// verifier MUST NOT accept the second attempt of the OTP after the
// successful validation has been issued for the first OTP". It returns
// the step to record as the new lastStep. ErrBadCredentials when no step
// matches, ErrReplay when the matching step was used.
func CheckTOTP(secret TOTPSecret, code string, now time.Time, lastStep int64) (int64, error) {
	s, err := matchTOTP(secret, code, now)
	if err != nil {
		return 0, err
	}
	if s < 0 {
		return 0, ErrBadCredentials
	}
	if s <= lastStep {
		return 0, ErrReplay
	}
	return s, nil
}
