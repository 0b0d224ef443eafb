package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// maxEKCert bounds an EK certificate a phone may send; real ones are 1-1.5
// KiB and TPM NV indices hold at most a few.
const maxEKCert = 8 << 10

// Object identifiers of the TCG EK Credential Profile for TPM Family 2.0
// and of RFC 5280.
var (
	// tcg-kp-EKCertificate, the extended key usage of an EK certificate.
	oidEKCertificate = asn1.ObjectIdentifier{2, 23, 133, 8, 1}
	// tcg-at-tpmManufacturer, tcg-at-tpmModel, tcg-at-tpmVersion: the
	// attributes of the directoryName in the subject alternative name.
	oidTPMManufacturer = asn1.ObjectIdentifier{2, 23, 133, 2, 1}
	oidTPMModel        = asn1.ObjectIdentifier{2, 23, 133, 2, 2}
	oidTPMVersion      = asn1.ObjectIdentifier{2, 23, 133, 2, 3}
	// id-ce-subjectAltName (RFC 5280 §4.2.1.6).
	oidSubjectAltName = asn1.ObjectIdentifier{2, 5, 29, 17}
)

// VerifyOption adjusts VerifyEK.
type VerifyOption func(*verifyOptions)

type verifyOptions struct {
	intermediates *x509.CertPool // nil: none
}

// WithIntermediates lets the chain pass through these manufacturer
// intermediate CAs (TPM vendors issue EK certificates from per-product
// intermediates under an offline root). They are not trusted by
// themselves: the chain must still end at one of the roots.
func WithIntermediates(certs ...*x509.Certificate) VerifyOption {
	return func(o *verifyOptions) {
		if o.intermediates == nil {
			o.intermediates = x509.NewCertPool()
		}
		for _, c := range certs {
			if c != nil {
				o.intermediates.AddCert(c)
			}
		}
	}
}

// TPMInfo is the TPM an EK certificate describes, from its subject
// alternative name (TCG EK Credential Profile, "Subject Alternative
// Name"): strings as the manufacturer wrote them, e.g. "id:49465800"
// (the TCG vendor ID of Infineon, hex), "SLB9670", "id:000f0015".
type TPMInfo struct {
	Manufacturer, Model, Version string
}

// VerifyEK checks that ekCertDER is an EK certificate issued, directly or
// through WithIntermediates, by one of manufacturerRoots and valid at now,
// and returns it; its PublicKey is the EK (*rsa.PublicKey or
// *ecdsa.PublicKey) to make credentials for.
//
// EK certificates do things crypto/x509 does not accept by default, so
// each is handled here, explicitly:
//   - the subject alternative name holds only a directoryName with the TPM
//     manufacturer, model and version, and is critical when the subject is
//     empty (RFC 5280 §4.2.1.6); crypto/x509 leaves it unhandled. It is
//     parsed here, must name all three, and only then is it marked handled.
//     Any other unhandled critical extension refuses the certificate.
//   - the extended key usage is tcg-kp-EKCertificate (2.23.133.8.1), which
//     crypto/x509 does not know. It is required on the leaf; the chain is
//     verified with any usage allowed, so intermediates without that usage
//     do not fail it.
//
// Beyond the chain it requires what every EK certificate has: not a CA,
// keyEncipherment for an RSA EK or keyAgreement for an ECC one, and a key
// of a type with a TCG default template (RSA-2048, ECC NIST P-256 or
// P-384). It returns errors wrapping ErrUntrustedEK, ErrNotEK or
// ErrUnsupportedEK.
func VerifyEK(ekCertDER []byte, manufacturerRoots *x509.CertPool, now time.Time, opts ...VerifyOption) (*x509.Certificate, error) {
	var o verifyOptions
	for _, opt := range opts {
		opt(&o)
	}
	if manufacturerRoots == nil {
		// crypto/x509 would fall back to the system roots: any web CA.
		return nil, fmt.Errorf("verify EK: %w: no manufacturer roots configured", ErrUntrustedEK)
	}
	if len(ekCertDER) == 0 || len(ekCertDER) > maxEKCert {
		return nil, fmt.Errorf("verify EK: %w: certificate of %d bytes, want 1..%d", ErrNotEK, len(ekCertDER), maxEKCert)
	}
	cert, err := x509.ParseCertificate(ekCertDER)
	if err != nil {
		return nil, fmt.Errorf("verify EK: %w: %v", ErrNotEK, err)
	}
	if err := checkEKProfile(cert); err != nil {
		return nil, fmt.Errorf("verify EK %q: %w", cert.Subject, err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:         manufacturerRoots,
		Intermediates: o.intermediates,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, fmt.Errorf("verify EK %q from %q: %w: %v", cert.Subject, cert.Issuer, ErrUntrustedEK, err)
	}
	return cert, nil
}

// checkEKProfile checks what makes cert an EK certificate and marks its
// subject alternative name handled.
func checkEKProfile(cert *x509.Certificate) error {
	if err := checkEKKey(cert); err != nil {
		return err
	}
	if !cert.BasicConstraintsValid || cert.IsCA {
		return fmt.Errorf("%w: basic constraints missing or CA:TRUE", ErrNotEK)
	}
	if cert.KeyUsage&x509.KeyUsageCertSign != 0 {
		return fmt.Errorf("%w: key usage allows certificate signing", ErrNotEK)
	}
	if !slices.ContainsFunc(cert.UnknownExtKeyUsage, oidEKCertificate.Equal) {
		return fmt.Errorf("%w: extended key usage lacks tcg-kp-EKCertificate (%v)", ErrNotEK, oidEKCertificate)
	}
	if _, err := TPMDescription(cert); err != nil {
		return err
	}
	cert.UnhandledCriticalExtensions = slices.DeleteFunc(slices.Clone(cert.UnhandledCriticalExtensions), oidSubjectAltName.Equal)
	if len(cert.UnhandledCriticalExtensions) > 0 {
		return fmt.Errorf("%w: unhandled critical extensions %v", ErrNotEK, cert.UnhandledCriticalExtensions)
	}
	return nil
}

// checkEKKey checks the key type and the key usage an EK of that type has:
// an RSA EK decrypts a seed (keyEncipherment), an ECC EK agrees on one
// (keyAgreement).
func checkEKKey(cert *x509.Certificate) error {
	if _, err := ekPublicArea(cert.PublicKey); err != nil {
		return err
	}
	want, name := x509.KeyUsageKeyAgreement, "keyAgreement"
	if _, ok := cert.PublicKey.(*rsa.PublicKey); ok {
		want, name = x509.KeyUsageKeyEncipherment, "keyEncipherment"
	}
	if cert.KeyUsage&want == 0 {
		return fmt.Errorf("%w: key usage lacks %s", ErrNotEK, name)
	}
	return nil
}

// TPMDescription returns the TPM manufacturer, model and version of an EK
// certificate's subject alternative name, which must be one directoryName
// naming all three (and nothing else), and critical when the subject is
// empty.
func TPMDescription(cert *x509.Certificate) (TPMInfo, error) {
	var ext []byte
	critical := false
	for _, e := range cert.Extensions {
		if e.Id.Equal(oidSubjectAltName) {
			if ext != nil {
				return TPMInfo{}, fmt.Errorf("%w: two subject alternative names", ErrNotEK)
			}
			ext, critical = e.Value, e.Critical
		}
	}
	if ext == nil {
		return TPMInfo{}, fmt.Errorf("%w: no subject alternative name with the TPM description", ErrNotEK)
	}
	// RFC 5280 §4.2.1.6: "If the subject field contains an empty sequence,
	// ... the subjectAltName extension ... MUST be critical."
	if len(cert.Subject.Names) == 0 && !critical {
		return TPMInfo{}, fmt.Errorf("%w: empty subject and a non-critical subject alternative name", ErrNotEK)
	}
	return parseTPMSAN(ext)
}

// parseTPMSAN parses the subject alternative name of an EK certificate.
// GeneralNames ::= SEQUENCE SIZE (1..MAX) OF GeneralName, and here exactly
// one: directoryName [4] Name (explicit, Name being a CHOICE), whose
// relative distinguished names hold the three TPM attributes once each
// and nothing else.
func parseTPMSAN(ext []byte) (TPMInfo, error) {
	var names []asn1.RawValue
	if rest, err := asn1.Unmarshal(ext, &names); err != nil || len(rest) != 0 {
		return TPMInfo{}, fmt.Errorf("%w: subject alternative name: malformed (%v)", ErrNotEK, err)
	}
	if len(names) != 1 || names[0].Class != asn1.ClassContextSpecific || names[0].Tag != 4 || !names[0].IsCompound {
		return TPMInfo{}, fmt.Errorf("%w: subject alternative name is not one directoryName", ErrNotEK)
	}
	var rdns []attributesSET
	if rest, err := asn1.Unmarshal(names[0].Bytes, &rdns); err != nil || len(rest) != 0 {
		return TPMInfo{}, fmt.Errorf("%w: subject alternative name directoryName: malformed (%v)", ErrNotEK, err)
	}
	var info TPMInfo
	for _, rdn := range rdns {
		for _, atv := range rdn {
			var dst *string
			switch {
			case atv.Type.Equal(oidTPMManufacturer):
				dst = &info.Manufacturer
			case atv.Type.Equal(oidTPMModel):
				dst = &info.Model
			case atv.Type.Equal(oidTPMVersion):
				dst = &info.Version
			default:
				return TPMInfo{}, fmt.Errorf("%w: subject alternative name: unexpected attribute %v", ErrNotEK, atv.Type)
			}
			s, err := directoryString(atv.Value)
			if err != nil {
				return TPMInfo{}, fmt.Errorf("%w: subject alternative name %v: %v", ErrNotEK, atv.Type, err)
			}
			if *dst != "" {
				return TPMInfo{}, fmt.Errorf("%w: subject alternative name: %v twice", ErrNotEK, atv.Type)
			}
			*dst = s
		}
	}
	if info.Manufacturer == "" || info.Model == "" || info.Version == "" {
		return TPMInfo{}, fmt.Errorf("%w: subject alternative name lacks TPM manufacturer, model or version (%+v)", ErrNotEK, info)
	}
	return info, nil
}

// attributesSET is a RelativeDistinguishedName (RFC 5280 §4.1.2.4), a SET
// OF AttributeTypeAndValue; encoding/asn1 reads a SET for a type whose name
// ends in SET. The values are kept raw to check their string type.
type attributesSET []struct {
	Type  asn1.ObjectIdentifier
	Value asn1.RawValue
}

// maxTPMAttr bounds one TPM description string.
const maxTPMAttr = 128

// directoryString decodes the UTF8String or PrintableString the profile
// uses for the TPM attributes.
func directoryString(v asn1.RawValue) (string, error) {
	if v.Class != asn1.ClassUniversal || (v.Tag != asn1.TagUTF8String && v.Tag != asn1.TagPrintableString) {
		return "", fmt.Errorf("value is not a UTF8String or PrintableString (class %d tag %d)", v.Class, v.Tag)
	}
	var s string
	if _, err := asn1.Unmarshal(v.FullBytes, &s); err != nil {
		return "", err
	}
	if s == "" || len(s) > maxTPMAttr || strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return "", errors.New("empty, too long or holding control characters")
	}
	return s, nil
}

// ekParams are the parameters of a TCG default EK template that the
// credential depends on, by key type.
type ekParams struct {
	name    string
	nameAlg uint16 // TPM_ALG_SHA256 or TPM_ALG_SHA384
	aesBits uint16 // 128 or 256, CFB mode
	size    int    // RSA modulus or ECC coordinate bytes
}

// ekParamsOf picks the TCG EK Credential Profile template an EK of this
// key was made from: L-1 (RSA-2048), L-2 (ECC NIST P-256), H-3 (ECC NIST
// P-384). The certificate says only the key; the template is the TCG
// default for its type, and a TPM whose manufacturer used another one
// cannot activate the credential (the phone finds out first: its EK does
// not match the certificate).
func ekParamsOf(pub crypto.PublicKey) (ekParams, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() != 2048 || k.E != 65537 {
			return ekParams{}, fmt.Errorf("%w: RSA-%d with exponent %d (want RSA-2048, 65537)", ErrUnsupportedEK, k.N.BitLen(), k.E)
		}
		return ekParams{"rsa2048", algSHA256, 128, 256}, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return ekParams{"ecc-p256", algSHA256, 128, 32}, nil
		case elliptic.P384():
			return ekParams{"ecc-p384", algSHA384, 256, 48}, nil
		}
		return ekParams{}, fmt.Errorf("%w: ECC curve %s", ErrUnsupportedEK, k.Curve.Params().Name)
	}
	return ekParams{}, fmt.Errorf("%w: key %T", ErrUnsupportedEK, pub)
}

// EKType names the EK type of a verified EK certificate's key: "rsa2048",
// "ecc-p256" or "ecc-p384" (the names hal/tpm uses), for logs and the
// inventory.
func EKType(ekPub crypto.PublicKey) (string, error) {
	p, err := ekParamsOf(ekPub)
	return p.name, err
}

// leftPad returns b as exactly n big-endian bytes; ok is false when b is
// longer.
func leftPad(b []byte, n int) ([]byte, bool) {
	b = bytes.TrimLeft(b, "\x00")
	if len(b) > n {
		return nil, false
	}
	return append(make([]byte, n-len(b), n), b...), true
}
