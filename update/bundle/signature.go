package bundle

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/smallstep/pkcs7"
)

// Purpose is the rule a signer certificate chain must satisfy, as RAUC's
// [keyring] check-purpose selects it.
type Purpose int

const (
	// PurposeCodeSign is RAUC's check-purpose=codesign: the signer has
	// extended key usage codeSigning (and, if it has key usage,
	// digitalSignature); every issuer that has an extended key usage lists
	// codeSigning and is a CA. The default here.
	PurposeCodeSign Purpose = iota + 1
	// PurposeSMIME is RAUC's default (OpenSSL's S/MIME signing purpose), for
	// bundles from existing pipelines: every certificate that has an
	// extended key usage lists emailProtection; the signer's key usage, if
	// present, has digitalSignature or nonRepudiation.
	PurposeSMIME
)

func (p Purpose) String() string {
	switch p {
	case PurposeCodeSign:
		return "codesign"
	case PurposeSMIME:
		return "smimesign"
	}
	return fmt.Sprintf("Purpose(%d)", int(p))
}

// ParsePurpose maps RAUC's check-purpose names to a Purpose; "" is the
// default, codesign.
func ParsePurpose(s string) (Purpose, error) {
	switch s {
	case "", "codesign":
		return PurposeCodeSign, nil
	case "smimesign", "default":
		return PurposeSMIME, nil
	}
	return 0, fmt.Errorf("check-purpose %q, want codesign or smimesign", s)
}

// Keyring is a set of trust anchors for bundle signatures, as RAUC's
// --keyring file. Only self-signed certificates are anchors (OpenSSL
// without partial chains trusts nothing else); other certificates in the
// keyring may serve as intermediates.
type Keyring struct {
	anchors []*x509.Certificate
	others  []*x509.Certificate
}

// ParseKeyring reads PEM certificates. A keyring without a self-signed
// certificate is refused: it could never verify anything.
func ParseKeyring(pemData []byte) (*Keyring, error) {
	kr := &Keyring{}
	rest := pemData
	for {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("keyring: PEM block %q: only CERTIFICATE blocks are supported (no CRLs)", blk.Type)
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("keyring: %w", err)
		}
		if selfSigned(c) {
			kr.anchors = append(kr.anchors, c)
		} else {
			kr.others = append(kr.others, c)
		}
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, errors.New("keyring: trailing data that is not PEM")
	}
	if len(kr.anchors) == 0 {
		return nil, fmt.Errorf("keyring: %d certificates, none self-signed: partial chains are not supported", len(kr.others))
	}
	return kr, nil
}

// LoadKeyring reads a PEM keyring file.
func LoadKeyring(path string) (*Keyring, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	kr, err := ParseKeyring(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return kr, nil
}

// Anchors returns the keyring's trust anchors.
func (kr *Keyring) Anchors() []*x509.Certificate {
	return append([]*x509.Certificate(nil), kr.anchors...)
}

func selfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil
}

// Bundle digests accepted in a CMS SignerInfo. TODO(#4): move into
// crypto/policy beside the TLS and SIP digest rules.
var digestOIDs = map[string]crypto.Hash{
	pkcs7.OIDDigestAlgorithmSHA256.String(): crypto.SHA256,
	pkcs7.OIDDigestAlgorithmSHA384.String(): crypto.SHA384,
	pkcs7.OIDDigestAlgorithmSHA512.String(): crypto.SHA512,
}

// Signature is what a verified CMS proves.
type Signature struct {
	// Signer is the certificate that signed; Chain runs from it to the
	// keyring anchor.
	Signer *x509.Certificate
	Chain  []*x509.Certificate
	// SigningTime is the signed signingTime attribute; zero when absent.
	SigningTime time.Time
	// Digest is the hash the signer used over the content.
	Digest crypto.Hash
}

// cms is a parsed CMS SignedData whose chain and purpose were checked but
// whose signature over the content not yet.
type cms struct {
	p7     *pkcs7.PKCS7
	sig    Signature
	signed bool // has signed attributes
}

// parseCMS parses der and checks everything that does not need the content:
// one signer, its embedded certificate, an accepted digest and key, a chain
// to a keyring anchor valid at now, and the purpose rule on that chain. It
// is cheap, so a bundle from a foreign signer is refused before its payload
// is read.
func parseCMS(der []byte, kr *Keyring, purpose Purpose, now time.Time) (*cms, error) {
	if kr == nil {
		return nil, fmt.Errorf("no keyring configured: %w", ErrBadSignature)
	}
	p7, err := pkcs7.Parse(der)
	if err != nil {
		return nil, fmt.Errorf("parse CMS: %v: %w", err, ErrBadSignature)
	}
	// RAUC requires exactly one signer with its certificate embedded; the
	// pkcs7 package returns signers identified by key id as no signer.
	if len(p7.Signers) != 1 {
		return nil, fmt.Errorf("CMS has %d signers by issuer and serial, want exactly 1: %w", len(p7.Signers), ErrBadSignature)
	}
	signer := p7.GetOnlySigner()
	if signer == nil {
		return nil, fmt.Errorf("CMS signer certificate is not embedded: %w", ErrBadSignature)
	}
	si := p7.Signers[0]
	digest, ok := digestOIDs[si.DigestAlgorithm.Algorithm.String()]
	if !ok {
		return nil, fmt.Errorf("CMS digest %s, want SHA-256, SHA-384 or SHA-512: %w", si.DigestAlgorithm.Algorithm, ErrBadSignature)
	}
	if err := checkKey(signer); err != nil {
		return nil, err
	}
	c := &cms{p7: p7, signed: len(si.AuthenticatedAttributes) > 0, sig: Signature{Signer: signer, Digest: digest}}
	if c.signed {
		var ct asn1.ObjectIdentifier
		if err := p7.UnmarshalSignedAttribute(pkcs7.OIDAttributeContentType, &ct); err != nil || !ct.Equal(pkcs7.OIDData) {
			return nil, fmt.Errorf("CMS signed contentType is %v, want id-data: %w", ct, ErrBadSignature)
		}
		var st time.Time
		if err := p7.UnmarshalSignedAttribute(pkcs7.OIDAttributeSigningTime, &st); err == nil {
			c.sig.SigningTime = st
		}
	}

	roots := x509.NewCertPool()
	for _, a := range kr.anchors {
		roots.AddCert(a)
	}
	inter := x509.NewCertPool()
	for _, ic := range p7.Certificates {
		if ic != signer {
			inter.AddCert(ic)
		}
	}
	for _, ic := range kr.others {
		inter.AddCert(ic)
	}
	// ExtKeyUsageAny: crypto/x509 treats a missing EKU as "any" and ignores
	// key usage, so RAUC's purpose rules are applied below, explicitly.
	chains, err := signer.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	if err != nil {
		return nil, fmt.Errorf("signer %q: %s: %w", signer.Subject, chainReason(err, signer, now), ErrBadSignature)
	}
	var purposeErr error
	for _, chain := range chains {
		if purposeErr = checkPurpose(chain, purpose); purposeErr == nil {
			c.sig.Chain = chain
			return c, nil
		}
	}
	return nil, fmt.Errorf("signer %q: purpose %s: %w: %w", signer.Subject, purpose, purposeErr, ErrBadSignature)
}

func chainReason(err error, signer *x509.Certificate, now time.Time) string {
	var inv x509.CertificateInvalidError
	var ua x509.UnknownAuthorityError
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		if now.After(signer.NotAfter) {
			return fmt.Sprintf("certificate expired at %s (now %s)", signer.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		if now.Before(signer.NotBefore) {
			return fmt.Sprintf("certificate not valid before %s (now %s)", signer.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
		}
		return fmt.Sprintf("an issuer certificate is outside its validity: %v", err)
	case errors.As(err, &ua):
		return "not issued by a keyring certificate"
	}
	return err.Error()
}

// checkKey refuses signer keys below the strength we accept for firmware.
func checkKey(c *x509.Certificate) error {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return fmt.Errorf("signer RSA key of %d bits, want at least 2048: %w", k.N.BitLen(), ErrBadSignature)
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() && k.Curve != elliptic.P521() {
			return fmt.Errorf("signer ECDSA curve %s not accepted: %w", k.Curve.Params().Name, ErrBadSignature)
		}
	default:
		return fmt.Errorf("signer key type %T not accepted: %w", c.PublicKey, ErrBadSignature)
	}
	return nil
}

func hasEKU(c *x509.Certificate) bool { return len(c.ExtKeyUsage)+len(c.UnknownExtKeyUsage) > 0 }

// ekuAllows mirrors OpenSSL's xku_reject: an EKU extension that does not
// list u rejects, and anyExtendedKeyUsage does not stand in for u.
func ekuAllows(c *x509.Certificate, u x509.ExtKeyUsage) bool {
	for _, e := range c.ExtKeyUsage {
		if e == u {
			return true
		}
	}
	return false
}

// isCA mirrors OpenSSL's X509_check_ca: basic constraints CA, or a v1
// self-signed certificate, or key usage keyCertSign without basic
// constraints.
func isCA(c *x509.Certificate) bool {
	switch {
	case c.BasicConstraintsValid:
		return c.IsCA
	case c.Version == 1 && selfSigned(c):
		return true
	case c.KeyUsage&x509.KeyUsageCertSign != 0:
		return true
	}
	return false
}

// checkPurpose applies RAUC's purpose rules to chain[0] (the signer) and
// every issuer up to and including the anchor, as OpenSSL's
// check_chain_purpose does for a store without trust settings.
func checkPurpose(chain []*x509.Certificate, p Purpose) error {
	leaf := chain[0]
	switch p {
	case PurposeCodeSign:
		// RAUC signature.c check_purpose_code_sign.
		if leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
			return errors.New("signer key usage lacks digitalSignature")
		}
		if !ekuAllows(leaf, x509.ExtKeyUsageCodeSigning) {
			return errors.New("signer has no extended key usage codeSigning")
		}
		for _, c := range chain[1:] {
			if hasEKU(c) && !ekuAllows(c, x509.ExtKeyUsageCodeSigning) {
				return fmt.Errorf("issuer %q extended key usage does not allow code signing", c.Subject)
			}
			if !isCA(c) {
				return fmt.Errorf("issuer %q is not a CA", c.Subject)
			}
		}
	case PurposeSMIME:
		// OpenSSL v3_purp.c check_purpose_smime_sign / purpose_smime.
		if hasEKU(leaf) && !ekuAllows(leaf, x509.ExtKeyUsageEmailProtection) {
			return errors.New("signer extended key usage lacks emailProtection")
		}
		if leaf.KeyUsage != 0 && leaf.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
			return errors.New("signer key usage lacks digitalSignature and nonRepudiation")
		}
		for _, c := range chain[1:] {
			if hasEKU(c) && !ekuAllows(c, x509.ExtKeyUsageEmailProtection) {
				return fmt.Errorf("issuer %q extended key usage lacks emailProtection", c.Subject)
			}
			if !isCA(c) {
				return fmt.Errorf("issuer %q is not a CA", c.Subject)
			}
		}
	default:
		return fmt.Errorf("unknown purpose %d", int(p))
	}
	return nil
}

// verifyContent checks the signature over the content: attached content as
// parsed, or, for a detached CMS, digest (computed by the caller over the
// payload with c.sig.Digest). pkcs7 also refuses a signingTime outside the
// signer's validity, which holds even on a device whose clock is wrong.
func (c *cms) verifyContent(detachedDigest []byte) error {
	if detachedDigest != nil {
		if !c.signed {
			// Without signed attributes the signature is over the content
			// itself, which would have to be held in memory whole.
			return fmt.Errorf("detached CMS without signed attributes: %w", ErrUnsupported)
		}
		c.p7.Hasher = fixedHasher{h: c.sig.Digest, sum: detachedDigest}
	}
	if err := c.p7.VerifyWithChain(nil); err != nil {
		var mm *pkcs7.MessageDigestMismatchError
		if errors.As(err, &mm) && detachedDigest != nil {
			return fmt.Errorf("payload digest does not match the signed messageDigest: %w", ErrCorrupt)
		}
		if errors.As(err, &mm) {
			return fmt.Errorf("signed manifest does not match the signed messageDigest: %w", ErrBadSignature)
		}
		return fmt.Errorf("CMS signature: %v: %w", err, ErrBadSignature)
	}
	return nil
}

// fixedHasher hands pkcs7 a digest computed while the payload was streamed,
// so a detached signature over a large payload never needs it in memory.
type fixedHasher struct {
	h   crypto.Hash
	sum []byte
}

func (f fixedHasher) Hash(h crypto.Hash, _ io.Reader) ([]byte, error) {
	if h != f.h {
		return nil, fmt.Errorf("digest %v requested, %v computed", h, f.h)
	}
	return f.sum, nil
}

// Signer makes bundle signatures: a certificate and its key, and the
// intermediates to embed (not the anchor).
type Signer struct {
	Cert          *x509.Certificate
	Key           crypto.Signer
	Intermediates []*x509.Certificate
}

// signAttached makes the CMS RAUC makes for verity bundles: SignedData with
// content embedded as id-data, SHA-256, one SignerInfo by issuer and serial
// with contentType, signingTime and messageDigest, the signer and
// intermediate certificates embedded.
func (s Signer) signAttached(content []byte) ([]byte, error) {
	if s.Cert == nil || s.Key == nil {
		return nil, errors.New("sign: certificate and key are required")
	}
	sd, err := pkcs7.NewSignedData(content)
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	// pkcs7 defaults to SHA-1.
	sd.SetDigestAlgorithm(pkcs7.OIDDigestAlgorithmSHA256)
	if err := sd.AddSignerChain(s.Cert, s.Key, s.Intermediates, pkcs7.SignerInfoConfig{}); err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	der, err := sd.Finish()
	if err != nil {
		return nil, fmt.Errorf("sign: %w", err)
	}
	return der, nil
}

// LoadSigner reads a PEM certificate, a PEM private key (PKCS#8, PKCS#1 or
// SEC 1) and optional PEM intermediates.
func LoadSigner(certPath, keyPath string, intermediatePaths ...string) (Signer, error) {
	certs, err := readCerts(certPath)
	if err != nil {
		return Signer{}, err
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return Signer{}, fmt.Errorf("signing key: %w", err)
	}
	blk, _ := pem.Decode(keyPEM)
	if blk == nil {
		return Signer{}, fmt.Errorf("signing key %s: no PEM block", keyPath)
	}
	key, err := parseKey(blk.Bytes)
	if err != nil {
		return Signer{}, fmt.Errorf("signing key %s: %w", keyPath, err)
	}
	s := Signer{Cert: certs[0], Key: key, Intermediates: certs[1:]}
	for _, p := range intermediatePaths {
		ic, err := readCerts(p)
		if err != nil {
			return Signer{}, err
		}
		s.Intermediates = append(s.Intermediates, ic...)
	}
	if err := checkKey(s.Cert); err != nil {
		return Signer{}, err
	}
	return s, nil
}

func readCerts(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("certificate %s: no CERTIFICATE block", path)
	}
	return out, nil
}

func parseKey(der []byte) (crypto.Signer, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("key type %T cannot sign", k)
		}
		return s, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k, nil
	}
	return nil, errors.New("not a PKCS#8, SEC 1 or PKCS#1 private key")
}
