package tpm

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/google/go-tpm/tpm2"
)

// EKType is an endorsement key type: a key algorithm together with the TCG
// default template the TPM derives the EK from and the NV index where the
// manufacturer stored its certificate (TCG EK Credential Profile for TPM
// Family 2.0, "EK Credential NV Indices" and Annex B "EK Templates").
type EKType uint8

const (
	// EKRSA2048 is the RSA-2048 EK of template L-1 (SHA-256 name,
	// AES-128-CFB, PolicySecret(TPM_RH_ENDORSEMENT) only), certificate at
	// NV 0x01c00002 (low range).
	EKRSA2048 EKType = 1
	// EKECCP256 is the ECC NIST P-256 EK of template L-2 (SHA-256 name,
	// AES-128-CFB, PolicySecret(TPM_RH_ENDORSEMENT) only), certificate at
	// NV 0x01c0000a (low range).
	EKECCP256 EKType = 2
	// EKECCP384 is the ECC NIST P-384 EK of template H-3 (SHA-384 name,
	// AES-256-CFB, userWithAuth with an empty authValue), certificate at
	// NV 0x01c00016 (high range). swtpm_setup makes this one.
	EKECCP384 EKType = 3
)

// EKTypes lists the EK types this package can use, in the order a caller
// with no preference should try them: ECC first, since deriving an ECC
// primary is fast where an RSA one can take seconds on a real chip.
func EKTypes() []EKType { return []EKType{EKECCP256, EKECCP384, EKRSA2048} }

// String returns "rsa2048", "ecc-p256" or "ecc-p384".
func (k EKType) String() string {
	switch k {
	case EKRSA2048:
		return "rsa2048"
	case EKECCP256:
		return "ecc-p256"
	case EKECCP384:
		return "ecc-p384"
	}
	return fmt.Sprintf("ektype(%d)", uint8(k))
}

// ekSpec is what the TPM needs to know about an EK type.
type ekSpec struct {
	certIndex tpm2.TPMHandle
	// persistent is where provisioning commonly leaves the EK: 0x81010001
	// for the RSA EK (TCG TPM v2.0 Provisioning Guidance), 0x81010002 for
	// an ECC P-256 one by the same tools' habit, 0x81010016 for P-384 (where
	// swtpm_setup puts it). An object there is used only when its public
	// area is exactly the template's with the certificate's key, so a
	// wrong guess costs one TPM2_ReadPublic and the EK is derived again.
	persistent tpm2.TPMHandle
	template   tpm2.TPMTPublic
}

// eccEKP384Template is template H-3 of the TCG EK Credential Profile
// (ECC NIST P-384, high range): the attributes 0x000300f2 (fixedTPM,
// fixedParent, sensitiveDataOrigin, userWithAuth, adminWithPolicy,
// restricted, decrypt), PolicyB for SHA-384 as authPolicy, AES-256-CFB and
// an empty unique field. go-tpm carries only the low-range templates.
var eccEKP384Template = tpm2.TPMTPublic{
	Type:    tpm2.TPMAlgECC,
	NameAlg: tpm2.TPMAlgSHA384,
	ObjectAttributes: tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        true,
		AdminWithPolicy:     true,
		Restricted:          true,
		Decrypt:             true,
	},
	AuthPolicy: tpm2.TPM2BDigest{Buffer: []byte{
		0xb2, 0x6e, 0x7d, 0x28, 0xd1, 0x1a, 0x50, 0xbc, 0x53, 0xd8, 0x82, 0xbc,
		0xf5, 0xfd, 0x3a, 0x1a, 0x07, 0x41, 0x48, 0xbb, 0x35, 0xd3, 0xb4, 0xe4,
		0xcb, 0x1c, 0x0a, 0xd9, 0xbd, 0xe4, 0x19, 0xca, 0xcb, 0x47, 0xba, 0x09,
		0x69, 0x96, 0x46, 0x15, 0x0f, 0x9f, 0xc0, 0x00, 0xf3, 0xf8, 0x0e, 0x12,
	}},
	Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
		Symmetric: tpm2.TPMTSymDefObject{
			Algorithm: tpm2.TPMAlgAES,
			KeyBits:   tpm2.NewTPMUSymKeyBits(tpm2.TPMAlgAES, tpm2.TPMKeyBits(256)),
			Mode:      tpm2.NewTPMUSymMode(tpm2.TPMAlgAES, tpm2.TPMAlgCFB),
		},
		Scheme:  tpm2.TPMTECCScheme{Scheme: tpm2.TPMAlgNull},
		CurveID: tpm2.TPMECCNistP384,
		KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
	}),
	Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{}),
}

func (k EKType) spec() (ekSpec, error) {
	switch k {
	case EKRSA2048:
		return ekSpec{certIndex: 0x01c00002, persistent: 0x81010001, template: tpm2.RSAEKTemplate}, nil
	case EKECCP256:
		return ekSpec{certIndex: 0x01c0000a, persistent: 0x81010002, template: tpm2.ECCEKTemplate}, nil
	case EKECCP384:
		return ekSpec{certIndex: 0x01c00016, persistent: 0x81010016, template: eccEKP384Template}, nil
	}
	return ekSpec{}, fmt.Errorf("%w: %v", errEKType, k)
}

// CertIndex returns the NV index holding the EK certificate of type k, or
// 0 for an unknown type.
func (k EKType) CertIndex() uint32 {
	s, err := k.spec()
	if err != nil {
		return 0
	}
	return uint32(s.certIndex)
}

// maxEKCert bounds an EK certificate read from NV. Real ones are 1-1.5 KiB
// and NV indices on the chips we know hold at most 2 KiB.
const maxEKCert = 4096

// EK is an endorsement key this TPM holds, vouched for by its manufacturer.
type EK struct {
	Type EKType
	// Certificate is the DER EK certificate read from NV (a TCG PC Client
	// header or padding after it removed). Nothing here verified its
	// signature: that is the fleet's job.
	Certificate []byte
	// Public is the EK's public key, *rsa.PublicKey or *ecdsa.PublicKey,
	// as the TPM derived it; ReadEK checked it equals the certificate's.
	Public crypto.PublicKey
}

// EKCertificate reads the EK certificate of type k from NV. It wraps
// ErrNoEKCert when the manufacturer stored none there.
func (t *TPM) EKCertificate(k EKType) ([]byte, error) {
	spec, err := k.spec()
	if err != nil {
		return nil, fmt.Errorf("read EK certificate: %w", err)
	}
	var der []byte
	err = t.locked(fmt.Sprintf("read %v EK certificate", k), func() error {
		raw, err := t.readNVLocked(spec.certIndex, maxEKCert)
		if err != nil {
			return err
		}
		der, err = trimCertificate(raw)
		return err
	})
	return der, err
}

// ReadEK reads the EK certificate of type k, derives the EK from the TCG
// default template (or finds it at its persistent handle) and checks that
// the TPM's EK is the key the certificate certifies: a TPM whose
// manufacturer used another template, or whose certificate was swapped,
// fails here with ErrEKMismatch rather than later at activation.
func (t *TPM) ReadEK(k EKType) (*EK, error) {
	der, err := t.EKCertificate(k)
	if err != nil {
		return nil, err
	}
	certKey, err := certificateKey(der)
	if err != nil {
		return nil, fmt.Errorf("read %v EK: %w", k, err)
	}
	ek := &EK{Type: k, Certificate: der}
	err = t.do(fmt.Sprintf("read %v EK", k), func(srk *object) error {
		t.unloadSignersLocked()
		obj, flush, err := t.ekLocked(srk, k, certKey)
		if err != nil {
			return err
		}
		// The key is already read; a failed flush cannot change it.
		defer func() { _ = flush() }()
		ek.Public, err = tpm2.Pub(obj.public)
		return err
	})
	if err != nil {
		return nil, err
	}
	return ek, nil
}

// ekLocked returns the EK of type k, which must carry key: the persistent
// object when one matches the template exactly, else a fresh primary under
// the endorsement hierarchy. flush unloads what was loaded (nothing for a
// persistent EK). Callers hold mu.
func (t *TPM) ekLocked(srk *object, k EKType, key crypto.PublicKey) (*object, func() error, error) {
	spec, err := k.spec()
	if err != nil {
		return nil, nil, err
	}
	noop := func() error { return nil }
	if rsp, err := (tpm2.ReadPublic{ObjectHandle: spec.persistent}).Execute(t.tr); err == nil {
		if pub, err := rsp.OutPublic.Contents(); err == nil && sameEK(pub, &spec.template, key) == nil {
			return &object{handle: spec.persistent, name: rsp.Name, public: *pub}, noop, nil
		}
	}
	rsp, err := tpm2.CreatePrimary{
		// The endorsement authValue is empty on every phone; the salted
		// session keeps one set later off the bus all the same.
		PrimaryHandle: tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: saltedHMAC(srk, nil)},
		InPublic:      tpm2.New2B(spec.template),
	}.Execute(t.tr)
	if err != nil {
		return nil, nil, fmt.Errorf("create %v EK: %w", k, err)
	}
	flush := func() error { return t.flush(rsp.ObjectHandle) }
	pub, err := rsp.OutPublic.Contents()
	if err != nil {
		// The parse error is the one that matters.
		_ = flush()
		return nil, nil, fmt.Errorf("parse %v EK public area: %w", k, err)
	}
	if err := sameEK(pub, &spec.template, key); err != nil {
		_ = flush()
		return nil, nil, fmt.Errorf("%v EK: %w", k, err)
	}
	return &object{handle: rsp.ObjectHandle, name: rsp.Name, public: *pub}, flush, nil
}

// sameEK checks that pub is the template with key as its unique field.
func sameEK(pub, template *tpm2.TPMTPublic, key crypto.PublicKey) error {
	got, err := tpm2.Pub(*pub)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrEKMismatch, err)
	}
	eq, ok := got.(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !eq.Equal(key) {
		return fmt.Errorf("%w: the TPM's EK is not the certified key", ErrEKMismatch)
	}
	// Everything but the unique field must be the template's: type,
	// nameAlg, attributes, authPolicy and parameters.
	a := *pub
	a.Unique = template.Unique
	if !bytes.Equal(tpm2.Marshal(a), tpm2.Marshal(*template)) {
		return fmt.Errorf("%w: EK public area differs from the TCG template", ErrEKMismatch)
	}
	return nil
}

// certificateKey parses the public key out of an EK certificate. Only the
// key is needed here; the fleet verifies the rest.
func certificateKey(der []byte) (crypto.PublicKey, error) {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parse EK certificate: %w", err)
	}
	if c.PublicKey == nil {
		return nil, fmt.Errorf("parse EK certificate: public key algorithm %v unsupported", c.PublicKeyAlgorithm)
	}
	return c.PublicKey, nil
}

// trimCertificate returns the DER certificate inside what an EK NV index
// holds. Some manufacturers prefix it with the TCG PC Client header of TPM
// 1.2 days, and some pad the index after it:
//
//	| 0x10 0x01 (tag) | 0x00 | u16 BE length | DER certificate | padding |
func trimCertificate(raw []byte) ([]byte, error) {
	if len(raw) > 5 && raw[0] == 0x10 && raw[1] == 0x01 && raw[2] == 0x00 {
		n := int(binary.BigEndian.Uint16(raw[3:5]))
		if n > len(raw)-5 {
			return nil, fmt.Errorf("%w: header says %d bytes, index holds %d", errEKCert, n, len(raw)-5)
		}
		raw = raw[5 : 5+n]
	}
	var seq asn1.RawValue
	if _, err := asn1.Unmarshal(raw, &seq); err != nil {
		return nil, fmt.Errorf("%w: %v", errEKCert, err)
	}
	if seq.Class != asn1.ClassUniversal || seq.Tag != asn1.TagSequence {
		return nil, fmt.Errorf("%w: not a DER SEQUENCE", errEKCert)
	}
	return slices.Clone(seq.FullBytes), nil
}

// readNVLocked reads a whole NV index of at most limit bytes, in chunks the
// TPM accepts (TPM_PT_NV_BUFFER_MAX). The index authorizes the read itself
// when TPMA_NV_AUTHREAD is set, as the EK Credential Profile asks of EK
// certificate indices, else the owner does. Nothing read is secret.
// Callers hold mu.
func (t *TPM) readNVLocked(index tpm2.TPMHandle, limit int) ([]byte, error) {
	rsp, err := tpm2.NVReadPublic{NVIndex: index}.Execute(t.tr)
	if err != nil {
		if errors.Is(err, tpm2.TPMRCHandle) {
			return nil, fmt.Errorf("%w at NV 0x%08x", ErrNoEKCert, uint32(index))
		}
		return nil, fmt.Errorf("read NV public 0x%08x: %w", uint32(index), err)
	}
	pub, err := rsp.NVPublic.Contents()
	if err != nil {
		return nil, fmt.Errorf("parse NV public 0x%08x: %w", uint32(index), err)
	}
	size := int(pub.DataSize)
	if size == 0 || size > limit {
		return nil, fmt.Errorf("%w: NV 0x%08x holds %d bytes, want 1..%d", errEKCert, uint32(index), size, limit)
	}
	if !pub.Attributes.Written {
		return nil, fmt.Errorf("%w at NV 0x%08x (defined but never written)", ErrNoEKCert, uint32(index))
	}
	auth := tpm2.AuthHandle{Handle: index, Name: rsp.NVName, Auth: tpm2.PasswordAuth(nil)}
	if !pub.Attributes.AuthRead {
		auth = tpm2.AuthHandle{Handle: tpm2.TPMRHOwner, Auth: tpm2.PasswordAuth(nil)}
	}
	chunk, err := t.nvBufferMaxLocked()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, size)
	for len(out) < size {
		n := min(chunk, size-len(out))
		r, err := tpm2.NVRead{
			AuthHandle: auth,
			NVIndex:    tpm2.NamedHandle{Handle: index, Name: rsp.NVName},
			Size:       uint16(n),
			Offset:     uint16(len(out)),
		}.Execute(t.tr)
		if err != nil {
			return nil, fmt.Errorf("read NV 0x%08x at %d: %w", uint32(index), len(out), err)
		}
		if len(r.Data.Buffer) != n {
			return nil, fmt.Errorf("read NV 0x%08x at %d: got %d bytes, want %d", uint32(index), len(out), len(r.Data.Buffer), n)
		}
		out = append(out, r.Data.Buffer...)
	}
	return out, nil
}

// nvBufferMaxLocked returns TPM_PT_NV_BUFFER_MAX, the most one NV_Read may
// ask for, clamped to [64, 1024]. Callers hold mu.
func (t *TPM) nvBufferMaxLocked() (int, error) {
	rsp, err := tpm2.GetCapability{
		Capability:    tpm2.TPMCapTPMProperties,
		Property:      uint32(tpm2.TPMPTNVBufferMax),
		PropertyCount: 1,
	}.Execute(t.tr)
	if err != nil {
		return 0, fmt.Errorf("get TPM_PT_NV_BUFFER_MAX: %w", err)
	}
	props, err := rsp.CapabilityData.Data.TPMProperties()
	if err != nil {
		return 0, fmt.Errorf("get TPM_PT_NV_BUFFER_MAX: %w", err)
	}
	if len(props.TPMProperty) == 0 || props.TPMProperty[0].Property != tpm2.TPMPTNVBufferMax {
		return 0, errors.New("get TPM_PT_NV_BUFFER_MAX: not reported")
	}
	return min(max(int(props.TPMProperty[0].Value), 64), 1024), nil
}
