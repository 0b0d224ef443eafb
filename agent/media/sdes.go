package media

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/hardphone/hardphone/crypto/policy"
)

// Limits of the a=crypto grammar (RFC 4568 §9): tag is 1*9DIGIT, an MKI is
// at most 128 bytes long. We take at most a handful of key-params and
// session-params; real offers carry one of each at most.
const (
	maxCryptoTag     = 999999999
	maxMKILen        = 128
	maxKeyParams     = 4
	maxSessionParams = 8
	// minLifetime refuses a master key lifetime too short to carry a call:
	// 2^20 packets is about 5.8 hours of 20 ms audio. We never rekey mid-call,
	// so a shorter lifetime cannot be honoured.
	minLifetimeLog2 = 20
)

// cryptoAttr is one a=crypto line, parsed by the grammar of RFC 4568 §9 and
// not yet checked against the policy.
type cryptoAttr struct {
	Tag           uint32
	Suite         string
	Keys          []keyParam
	SessionParams []string
}

// keyParam is one "inline:" key-param of an SRTP crypto line.
type keyParam struct {
	// KeySalt is master key || master salt, decoded.
	KeySalt []byte
	// Lifetime is the lifetime field as written ("2^31", "1048576"), or "".
	Lifetime string
	// MKI and MKILen are the master key identifier value and its length in
	// bytes; MKILen is 0 when the key-param has no MKI.
	MKI    uint64
	MKILen int
}

// LogValue keeps key material out of logs.
func (cryptoAttr) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// LogValue keeps key material out of logs.
func (keyParam) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// parseCrypto parses the value of an a=crypto attribute:
//
//	crypto-attr = tag 1*WSP crypto-suite 1*WSP key-params *(1*WSP session-param)
//	key-params  = key-param *(";" key-param)
//	key-param   = "inline:" key-salt ["|" lifetime] ["|" mki-value ":" mki-length]
//
// (RFC 4568 §9). Only the inline key method exists for SRTP.
func parseCrypto(v string) (cryptoAttr, error) {
	f := strings.Fields(v)
	if len(f) < 3 {
		return cryptoAttr{}, fmt.Errorf("a=crypto has %d fields, want at least 3: %w", len(f), errSDPSyntax)
	}
	tag, err := parseDecimal(f[0], maxCryptoTag)
	if err != nil {
		return cryptoAttr{}, fmt.Errorf("a=crypto tag %q: %w", f[0], errSDPSyntax)
	}
	c := cryptoAttr{Tag: uint32(tag), Suite: f[1]}
	for i := 0; i < len(c.Suite); i++ {
		ch := c.Suite[i]
		if !(ch == '_' || ch >= '0' && ch <= '9' || ch >= 'A' && ch <= 'Z' || ch >= 'a' && ch <= 'z') {
			return cryptoAttr{}, fmt.Errorf("a=crypto suite %q: %w", c.Suite, errSDPSyntax)
		}
	}
	kps := strings.Split(f[2], ";")
	if len(kps) > maxKeyParams {
		return cryptoAttr{}, fmt.Errorf("a=crypto has %d key-params, limit %d: %w", len(kps), maxKeyParams, errSDPSyntax)
	}
	for _, kp := range kps {
		k, err := parseKeyParam(kp)
		if err != nil {
			return cryptoAttr{}, err
		}
		c.Keys = append(c.Keys, k)
	}
	if len(f)-3 > maxSessionParams {
		return cryptoAttr{}, fmt.Errorf("a=crypto has %d session-params, limit %d: %w", len(f)-3, maxSessionParams, errSDPSyntax)
	}
	c.SessionParams = append([]string(nil), f[3:]...)
	return c, nil
}

func parseKeyParam(kp string) (keyParam, error) {
	info, ok := strings.CutPrefix(kp, "inline:")
	if !ok {
		method, _, _ := strings.Cut(kp, ":")
		if len(method) > 16 {
			method = method[:16]
		}
		return keyParam{}, fmt.Errorf("a=crypto key method %q is not inline: %w", method, errSDPSyntax)
	}
	parts := strings.Split(info, "|")
	if len(parts) > 3 {
		return keyParam{}, fmt.Errorf("a=crypto key-param has %d '|' fields, want at most 3: %w", len(parts), errSDPSyntax)
	}
	ks, err := decodeKeySalt(parts[0])
	if err != nil {
		return keyParam{}, err
	}
	k := keyParam{KeySalt: ks}
	for _, p := range parts[1:] {
		// The lifetime may be absent while an MKI is present: the MKI is the
		// field with a colon (RFC 4568 §9, srtp-key-info).
		if v, l, isMKI := strings.Cut(p, ":"); isMKI {
			if k.MKILen != 0 {
				return keyParam{}, fmt.Errorf("a=crypto key-param has two MKIs: %w", errSDPSyntax)
			}
			mki, err1 := strconv.ParseUint(v, 10, 64)
			n, err2 := parseDecimal(l, maxMKILen)
			if err1 != nil || err2 != nil || len(l) > 3 || n < 1 || v == "" || v[0] == '+' {
				return keyParam{}, fmt.Errorf("a=crypto MKI %q: %w", p, errSDPSyntax)
			}
			if n < 8 && mki>>(8*n) != 0 {
				return keyParam{}, fmt.Errorf("a=crypto MKI value %d does not fit %d bytes: %w", mki, n, errSDPSyntax)
			}
			k.MKI, k.MKILen = mki, n
			continue
		}
		if k.Lifetime != "" || k.MKILen != 0 {
			return keyParam{}, fmt.Errorf("a=crypto lifetime %q misplaced: %w", p, errSDPSyntax)
		}
		if _, err := lifetimeLog2(p); err != nil {
			return keyParam{}, err
		}
		k.Lifetime = p
	}
	return k, nil
}

// decodeKeySalt decodes base64 key||salt. RFC 4568 uses padded base64
// (RFC 4648 §4); some stacks drop the padding of 28- and 44-byte GCM keys,
// so unpadded input is taken too. Strict decoding refuses non-zero trailing
// bits, so every accepted key has exactly one encoding per padding style.
func decodeKeySalt(s string) ([]byte, error) {
	if s == "" || len(s) > 128 {
		return nil, fmt.Errorf("a=crypto key of %d base64 chars: %w", len(s), errSDPSyntax)
	}
	enc := base64.StdEncoding.Strict()
	if len(s)%4 != 0 {
		enc = base64.RawStdEncoding.Strict()
	}
	b, err := enc.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("a=crypto key is not base64: %w", errSDPSyntax)
	}
	return b, nil
}

// lifetimeLog2 returns floor(log2(lifetime)) for "2^n" or a decimal count.
func lifetimeLog2(s string) (int, error) {
	if n, ok := strings.CutPrefix(s, "2^"); ok {
		e, err := parseDecimal(n, 64)
		if err != nil || n[0] == '0' && len(n) > 1 {
			return 0, fmt.Errorf("a=crypto lifetime %q: %w", s, errSDPSyntax)
		}
		return e, nil
	}
	if s == "" || len(s) > 20 || s[0] == '+' {
		return 0, fmt.Errorf("a=crypto lifetime %q: %w", s, errSDPSyntax)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("a=crypto lifetime %q: %w", s, errSDPSyntax)
	}
	e := 0
	for v > 1 {
		v >>= 1
		e++
	}
	return e, nil
}

// format writes the value of the a=crypto attribute.
func (c cryptoAttr) format() string {
	var b strings.Builder
	b.WriteString(strconv.FormatUint(uint64(c.Tag), 10))
	b.WriteByte(' ')
	b.WriteString(c.Suite)
	b.WriteByte(' ')
	for i, k := range c.Keys {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString("inline:")
		b.WriteString(base64.StdEncoding.EncodeToString(k.KeySalt))
		if k.Lifetime != "" {
			b.WriteByte('|')
			b.WriteString(k.Lifetime)
		}
		if k.MKILen > 0 {
			b.WriteByte('|')
			b.WriteString(strconv.FormatUint(k.MKI, 10))
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(k.MKILen))
		}
	}
	for _, p := range c.SessionParams {
		b.WriteByte(' ')
		b.WriteString(p)
	}
	return b.String()
}

// sdesKey is one side's SRTP master key and salt for a suite, with the MKI
// the sender puts in each packet (nil: no MKI).
type sdesKey struct {
	Suite   policy.SRTPSuite
	Key     []byte
	Salt    []byte
	MKI     []byte
	keySalt []byte
}

// LogValue keeps key material out of logs.
func (sdesKey) LogValue() slog.Value { return slog.StringValue("REDACTED") }

func (k sdesKey) equal(o sdesKey) bool {
	return k.Suite.SDESName == o.Suite.SDESName &&
		subtle.ConstantTimeCompare(k.keySalt, o.keySalt) == 1 &&
		subtle.ConstantTimeCompare(k.MKI, o.MKI) == 1 && len(k.MKI) == len(o.MKI)
}

// newSDESKey draws a fresh master key and salt for suite from crypto/rand.
func newSDESKey(suite policy.SRTPSuite) (sdesKey, error) {
	ks := make([]byte, suite.KeyLen+suite.SaltLen)
	if _, err := rand.Read(ks); err != nil {
		return sdesKey{}, fmt.Errorf("generate %s key: %w", suite.SDESName, err)
	}
	return sdesKey{Suite: suite, Key: ks[:suite.KeyLen], Salt: ks[suite.KeyLen:], keySalt: ks}, nil
}

// cryptoLine is our a=crypto line for key under tag.
func (k sdesKey) cryptoLine(tag uint32) string {
	return cryptoAttr{Tag: tag, Suite: k.Suite.SDESName, Keys: []keyParam{{KeySalt: k.keySalt}}}.format()
}

// acceptCrypto checks a parsed line against the policy and returns the
// peer's key. Refused: suites crypto/policy does not accept (NULL, F8,
// unknown), more than one master key, a key||salt of the wrong length for
// the suite (30 bytes for the AES_CM_128 suites; RFC 7714 §14.2: 28 for
// AEAD_AES_128_GCM, 44 for AEAD_AES_256_GCM), lifetimes below 2^20, and
// session parameters that weaken or change SRTP (UNENCRYPTED_SRTP,
// UNENCRYPTED_SRTCP, UNAUTHENTICATED_SRTP, a non-zero KDR, FEC_KEY, FEC
// before SRTP). A session parameter we do not know is refused too: it may
// change how the peer protects its packets, and guessing is a downgrade.
func acceptCrypto(c cryptoAttr) (sdesKey, error) {
	suite, err := policy.SRTPSuiteBySDESName(c.Suite)
	if err != nil {
		return sdesKey{}, fmt.Errorf("tag %d: %w", c.Tag, err)
	}
	if len(c.Keys) != 1 {
		return sdesKey{}, fmt.Errorf("tag %d: %d master keys, want 1", c.Tag, len(c.Keys))
	}
	k := c.Keys[0]
	if want := suite.KeyLen + suite.SaltLen; len(k.KeySalt) != want {
		return sdesKey{}, fmt.Errorf("tag %d %s: key||salt is %d bytes, want %d", c.Tag, suite.SDESName, len(k.KeySalt), want)
	}
	if k.Lifetime != "" {
		if e, err := lifetimeLog2(k.Lifetime); err != nil || e < minLifetimeLog2 {
			return sdesKey{}, fmt.Errorf("tag %d: key lifetime %s below 2^%d", c.Tag, k.Lifetime, minLifetimeLog2)
		}
	}
	for _, p := range c.SessionParams {
		name, val, _ := strings.Cut(p, "=")
		switch name {
		case "WSH":
			// RFC 4568 §6.3.6: a window size hint; ours is policy.SRTPReplayWindow.
			if n, err := parseDecimal(val, 1<<20); err != nil || n < 64 {
				return sdesKey{}, fmt.Errorf("tag %d: session parameter %q", c.Tag, p)
			}
		case "KDR":
			if val != "0" {
				return sdesKey{}, fmt.Errorf("tag %d: session parameter %q (key derivation rate) not supported", c.Tag, p)
			}
		case "FEC_ORDER":
			if val != "FEC_SRTP" {
				return sdesKey{}, fmt.Errorf("tag %d: session parameter %q not supported", c.Tag, p)
			}
		default:
			return sdesKey{}, fmt.Errorf("tag %d: session parameter %q refused", c.Tag, p)
		}
	}
	out := sdesKey{
		Suite:   suite,
		keySalt: append([]byte(nil), k.KeySalt...),
	}
	out.Key, out.Salt = out.keySalt[:suite.KeyLen], out.keySalt[suite.KeyLen:]
	if k.MKILen > 0 {
		out.MKI = make([]byte, k.MKILen)
		v := k.MKI
		for i := k.MKILen - 1; i >= 0 && v != 0; i-- {
			out.MKI[i] = byte(v)
			v >>= 8
		}
	}
	return out, nil
}
