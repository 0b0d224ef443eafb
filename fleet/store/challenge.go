package store

import (
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"time"
)

// Bounds on challenges.
const (
	// MaxChallengesPerEK bounds the outstanding challenges of one TPM, so
	// a device (or someone replaying its EK certificate) cannot grow the
	// table: with the allow-list gate, the table holds at most
	// MaxChallengesPerEK times the allow-list.
	MaxChallengesPerEK = 4
	// MaxChallengeLifetime bounds ExpiresAt - CreatedAt: a credential
	// activation round takes seconds.
	MaxChallengeLifetime = 10 * time.Minute
	// MaxAKNameLen bounds a TPM2B_NAME: a 2-byte hash algorithm and a
	// digest of up to 64 bytes (TPM 2.0 Part 1 §16).
	MaxAKNameLen = 2 + 64
	// MaxPublicKeyLen bounds a DER SubjectPublicKeyInfo (an RSA-4096 key
	// takes 550 bytes).
	MaxPublicKeyLen = 2048
)

// ChallengeID names one credential-activation round: 128 random bits, so
// it cannot be guessed to consume someone else's round.
type ChallengeID [16]byte

// NewChallengeID returns a random ID from crypto/rand.
func NewChallengeID() ChallengeID {
	var id ChallengeID
	// crypto/rand.Read never returns an error (it crashes the program if
	// the kernel's generator fails).
	_, _ = rand.Read(id[:])
	return id
}

// String is the lowercase hex form.
func (id ChallengeID) String() string { return hex.EncodeToString(id[:]) }

// IsZero reports whether id is all zeros, which no valid record holds.
func (id ChallengeID) IsZero() bool { return id == ChallengeID{} }

// ParseChallengeID parses 32 hex digits.
func ParseChallengeID(s string) (ChallengeID, error) {
	var id ChallengeID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("%w: challenge ID of %d characters, want %d hex digits", ErrInvalid, len(s), 2*len(id))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return ChallengeID{}, fmt.Errorf("%w: challenge ID: %v", ErrInvalid, err)
	}
	return id, nil
}

// Challenge is the server's half of a credential-activation round
// (TPM2_MakeCredential on the server, TPM2_ActivateCredential on the
// phone): everything another replica needs to finish the enrolment.
type Challenge struct {
	// ID is the handle the phone answers with.
	ID ChallengeID
	// EK is the hash of the EK certificate the credential was made for.
	EK EKHash
	// AKName is the TPM name of the identity key the credential is bound
	// to (TPM2B_NAME contents: hash algorithm, digest), 3..MaxAKNameLen
	// bytes.
	AKName []byte
	// IdentityPublicKey is the identity key as DER SubjectPublicKeyInfo,
	// the key the device certificate will carry.
	IdentityPublicKey []byte
	// SecretHash is the SHA-256 of the credential secret; the phone proves
	// the TPM activated the credential by returning the secret.
	SecretHash [32]byte
	// CreatedAt and ExpiresAt bound the round; ExpiresAt - CreatedAt is at
	// most MaxChallengeLifetime.
	CreatedAt, ExpiresAt time.Time
	// SealingPublicKey is the phone's sealing key (DER
	// SubjectPublicKeyInfo) when it sent one, with SealingSecretHash the
	// SHA-256 of the second credential's secret, made for that key's Name;
	// both empty otherwise.
	SealingPublicKey  []byte
	SealingSecretHash [32]byte
}

// Validate checks every field.
func (c Challenge) Validate() error {
	if c.ID.IsZero() {
		return fmt.Errorf("%w: challenge: zero ID", ErrInvalid)
	}
	if c.EK.IsZero() {
		return fmt.Errorf("%w: challenge %s: zero EK hash", ErrInvalid, c.ID)
	}
	if n := len(c.AKName); n < 3 || n > MaxAKNameLen {
		return fmt.Errorf("%w: challenge %s: AK name of %d bytes, want 3..%d", ErrInvalid, c.ID, n, MaxAKNameLen)
	}
	if err := checkPublicKey(c.IdentityPublicKey); err != nil {
		return fmt.Errorf("challenge %s: %w", c.ID, err)
	}
	if c.SecretHash == [32]byte{} {
		return fmt.Errorf("%w: challenge %s: zero secret hash", ErrInvalid, c.ID)
	}
	if err := checkTime("created_at", c.CreatedAt); err != nil {
		return fmt.Errorf("challenge %s: %w", c.ID, err)
	}
	if err := checkTime("expires_at", c.ExpiresAt); err != nil {
		return fmt.Errorf("challenge %s: %w", c.ID, err)
	}
	if life := c.ExpiresAt.Sub(c.CreatedAt); life <= 0 || life > MaxChallengeLifetime {
		return fmt.Errorf("%w: challenge %s: lifetime %v, want (0, %v]", ErrInvalid, c.ID, life, MaxChallengeLifetime)
	}
	if (c.SealingPublicKey == nil) != (c.SealingSecretHash == [32]byte{}) {
		return fmt.Errorf("%w: challenge %s: a sealing key needs its secret hash and the other way round", ErrInvalid, c.ID)
	}
	if c.SealingPublicKey != nil {
		if err := CheckSealingKey(c.SealingPublicKey); err != nil {
			return fmt.Errorf("challenge %s: %w", c.ID, err)
		}
	}
	return nil
}

// LogValue keeps the secret hash out of logs: it is all an attacker with
// the logs would need to check a guessed secret offline.
func (c Challenge) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("id", c.ID.String()),
		slog.String("ek", c.EK.String()),
		slog.String("secret_hash", "REDACTED"),
		slog.String("sealing_secret_hash", "REDACTED"),
		slog.Time("expires_at", c.ExpiresAt),
	)
}

func checkPublicKey(der []byte) error {
	if len(der) == 0 || len(der) > MaxPublicKeyLen {
		return fmt.Errorf("%w: identity public key of %d bytes, want 1..%d", ErrInvalid, len(der), MaxPublicKeyLen)
	}
	if _, err := x509.ParsePKIXPublicKey(der); err != nil {
		return fmt.Errorf("%w: identity public key: %v", ErrInvalid, err)
	}
	return nil
}
