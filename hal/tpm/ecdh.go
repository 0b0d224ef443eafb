package tpm

import (
	"crypto/ecdh"
	"fmt"
	"slices"

	"github.com/google/go-tpm/tpm2"
)

// ecdhTemplate is an ECC P-256 key-agreement key that can never leave the
// TPM: FixedTPM, FixedParent and SensitiveDataOrigin as for the signing
// key (TPM 2.0 Part 2 §8.3.2 TPMA_OBJECT). Decrypt SET and SignEncrypt
// CLEAR make it usable for TPM2_ECDH_ZGen only (Part 3 §14.5: "keyHandle
// ... shall have the decrypt attribute SET and the sign attribute CLEAR"),
// with the ECDH scheme; it is not Restricted, so it multiplies any point a
// sender hands it. It is what a fleet seals a phone's secrets to.
var ecdhTemplate = tpm2.TPMTPublic{
	Type:    tpm2.TPMAlgECC,
	NameAlg: tpm2.TPMAlgSHA256,
	ObjectAttributes: tpm2.TPMAObject{
		FixedTPM:            true,
		FixedParent:         true,
		SensitiveDataOrigin: true,
		UserWithAuth:        true,
		NoDA:                true,
		Decrypt:             true,
	},
	Parameters: tpm2.NewTPMUPublicParms(tpm2.TPMAlgECC, &tpm2.TPMSECCParms{
		Symmetric: tpm2.TPMTSymDefObject{Algorithm: tpm2.TPMAlgNull},
		Scheme: tpm2.TPMTECCScheme{
			Scheme:  tpm2.TPMAlgECDH,
			Details: tpm2.NewTPMUAsymScheme(tpm2.TPMAlgECDH, &tpm2.TPMSKeySchemeECDH{HashAlg: tpm2.TPMAlgSHA256}),
		},
		CurveID: tpm2.TPMECCNistP256,
		KDF:     tpm2.TPMTKDFScheme{Scheme: tpm2.TPMAlgNull},
	}),
	Unique: tpm2.NewTPMUPublicID(tpm2.TPMAlgECC, &tpm2.TPMSECCPoint{
		X: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
		Y: tpm2.TPM2BECCParameter{Buffer: make([]byte, 32)},
	}),
}

// CreateECDHKey makes a new ECC P-256 key-agreement key under the SRK and
// returns its blob. The TPM generates the private key and only ever
// releases it encrypted under the SRK.
func (t *TPM) CreateECDHKey() (Blob, error) {
	var blob Blob
	err := t.do("create ECDH key", func(srk *object) error {
		// Nothing secret crosses the bus: a password session is enough.
		rsp, err := tpm2.Create{
			ParentHandle: tpm2.AuthHandle{Handle: srk.handle, Name: srk.name, Auth: tpm2.PasswordAuth(nil)},
			InPublic:     tpm2.New2B(ecdhTemplate),
		}.Execute(t.tr)
		if err != nil {
			return err
		}
		blob = Blob{Public: slices.Clone(rsp.OutPublic.Bytes()), Private: slices.Clone(rsp.OutPrivate.Buffer)}
		return nil
	})
	return blob, err
}

// ECDHKeyInfo describes a key-agreement blob without loading it.
type ECDHKeyInfo struct {
	Public *ecdh.PublicKey
	// NonExportable is FixedTPM && FixedParent && SensitiveDataOrigin.
	NonExportable bool
}

// ECDHKey parses the public area of a blob made by CreateECDHKey: an ECC
// P-256 key with Decrypt set and SignEncrypt and Restricted clear.
func ECDHKey(b Blob) (ECDHKeyInfo, error) {
	pub, err := tpm2.Unmarshal[tpm2.TPMTPublic](b.Public)
	if err != nil {
		return ECDHKeyInfo{}, fmt.Errorf("%w: parse public area: %v", errNotECDHKey, err)
	}
	a := pub.ObjectAttributes
	if pub.Type != tpm2.TPMAlgECC || !a.Decrypt || a.SignEncrypt || a.Restricted {
		return ECDHKeyInfo{}, fmt.Errorf("%w: type 0x%04x sign=%t decrypt=%t restricted=%t",
			errNotECDHKey, uint16(pub.Type), a.SignEncrypt, a.Decrypt, a.Restricted)
	}
	parms, err := pub.Parameters.ECCDetail()
	if err != nil {
		return ECDHKeyInfo{}, fmt.Errorf("%w: %v", errNotECDHKey, err)
	}
	if parms.CurveID != tpm2.TPMECCNistP256 {
		return ECDHKeyInfo{}, fmt.Errorf("%w: curve 0x%04x, want NIST P-256", errNotECDHKey, uint16(parms.CurveID))
	}
	point, err := pub.Unique.ECC()
	if err != nil {
		return ECDHKeyInfo{}, fmt.Errorf("%w: %v", errNotECDHKey, err)
	}
	k, err := ecdh.P256().NewPublicKey(uncompressed(point.X.Buffer, point.Y.Buffer))
	if err != nil {
		return ECDHKeyInfo{}, fmt.Errorf("%w: %v", errNotECDHKey, err)
	}
	return ECDHKeyInfo{Public: k, NonExportable: a.FixedTPM && a.FixedParent && a.SensitiveDataOrigin}, nil
}

// uncompressed is the SEC 1 §2.3.3 encoding 0x04 || X || Y of a P-256
// point whose coordinates the TPM may have sent shorter than 32 bytes;
// longer ones make an invalid encoding the caller refuses.
func uncompressed(x, y []byte) []byte {
	if len(x) > 32 || len(y) > 32 {
		return nil
	}
	enc := make([]byte, 65)
	enc[0] = 4
	copy(enc[1+32-len(x):33], x)
	copy(enc[33+32-len(y):], y)
	return enc
}

// ECDHZGen runs TPM2_ECDH_ZGen (TPM 2.0 Part 3 §14.5) with the key of
// blob: the TPM multiplies peer by the key's private scalar and returns Z,
// the x-coordinate of the product (32 bytes), the shared secret of
// ECDH (SEC 1 §3.3.1). The product travels back in a session salted to
// the SRK that encrypts it, so Z never crosses the bus in clear. A blob of
// another TPM is refused with ErrBadBlob. The caller zeroes Z when done.
func (t *TPM) ECDHZGen(b Blob, peer *ecdh.PublicKey) ([]byte, error) {
	if _, err := ECDHKey(b); err != nil {
		return nil, fmt.Errorf("ECDH ZGen: %w", err)
	}
	if peer == nil || peer.Curve() != ecdh.P256() {
		return nil, fmt.Errorf("ECDH ZGen: peer key: want P-256")
	}
	pb := peer.Bytes() // 0x04 || X || Y, checked on the curve by crypto/ecdh
	var z []byte
	err := t.do("ECDH ZGen", func(srk *object) error {
		// SRK and the key: two of the three slots a TPM without a
		// resource manager has.
		t.unloadSignersLocked()
		obj, err := t.loadLocked(srk, b)
		if err != nil {
			return err
		}
		// The outcome is ZGen's; a failed flush cannot change it.
		defer func() { _ = t.flush(obj.handle) }()
		rsp, err := tpm2.ECDHZGen{
			KeyHandle: tpm2.AuthHandle{Handle: obj.handle, Name: obj.name,
				Auth: saltedHMAC(srk, nil, tpm2.AESEncryption(128, tpm2.EncryptOut))},
			InPoint: tpm2.New2B(tpm2.TPMSECCPoint{
				X: tpm2.TPM2BECCParameter{Buffer: pb[1:33]},
				Y: tpm2.TPM2BECCParameter{Buffer: pb[33:]},
			}),
		}.Execute(t.tr)
		if err != nil {
			return err
		}
		out, err := rsp.OutPoint.Contents()
		if err != nil {
			return fmt.Errorf("ZGen answer: %w", err)
		}
		x := out.X.Buffer
		if len(x) == 0 || len(x) > 32 {
			return fmt.Errorf("ZGen answer: x-coordinate of %d bytes", len(x))
		}
		z = make([]byte, 32)
		copy(z[32-len(x):], x)
		clear(out.X.Buffer)
		clear(out.Y.Buffer)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return z, nil
}
