package attest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-tpm/tpm2"
	"github.com/google/go-tpm/tpm2/transport"

	"github.com/hardphone/hardphone/hal/tpm"
	"github.com/hardphone/hardphone/test"
)

// These tests play both sides against real swtpms: the phone with hal/tpm,
// the fleet with this package, and an attacker with raw TPM commands.

var regenVectors = flag.Bool("attest.regen", false, "rewrite "+vectorFile+" from swtpm's TPM2_MakeCredential")

// phone is a swtpm with EK certificates and an identity key made the way
// the credential store makes it.
type phone struct {
	sw  *test.SWTPM
	tpm *tpm.TPM
	key tpm.Blob
	// pub is the identity key's TPMT_PUBLIC, tlsKey the key its TLS
	// certificate would carry.
	pub    []byte
	tlsKey *ecdsa.PublicKey
}

func newPhone(t testing.TB, ca *test.ManufacturerCA) *phone {
	t.Helper()
	var opts []test.SWTPMOption
	if ca != nil {
		opts = append(opts, test.SWTPMWithEK(ca))
	}
	sw := test.StartSWTPM(t, opts...)
	tp, err := tpm.Open(sw.Spec)
	if err != nil {
		t.Fatalf("tpm.Open = %v", err)
	}
	t.Cleanup(func() {
		if err := tp.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	})
	key, err := tp.CreateSigningKey()
	if err != nil {
		t.Fatalf("CreateSigningKey = %v", err)
	}
	info, err := tpm.SigningKeyInfo(key)
	if err != nil {
		t.Fatalf("SigningKeyInfo = %v", err)
	}
	pub, _, err := tpm.PublicArea(key)
	if err != nil {
		t.Fatalf("PublicArea = %v", err)
	}
	return &phone{sw: sw, tpm: tp, key: key, pub: pub, tlsKey: info.Public}
}

func newCA(t testing.TB, name string) *test.ManufacturerCA {
	t.Helper()
	return test.NewManufacturerCA(t, filepath.Join(t.TempDir(), name))
}

// swtpmEKTypes are the EK types test.SWTPMWithEK certifies.
var swtpmEKTypes = []tpm.EKType{tpm.EKRSA2048, tpm.EKECCP256, tpm.EKECCP384}

// enrol is the fleet's side: verify the EK certificate and the identity
// key, make a credential. It returns the EK key and the secret to expect.
func enrol(t testing.TB, roots *x509.CertPool, ekCert, identityPub []byte, tlsKey any) (blob, enc, secret []byte) {
	t.Helper()
	cert, err := VerifyEK(ekCert, roots, time.Now())
	if err != nil {
		t.Fatalf("VerifyEK = %v", err)
	}
	id, err := CheckIdentityKey(identityPub, tlsKey)
	if err != nil {
		t.Fatalf("CheckIdentityKey = %v", err)
	}
	secret = make([]byte, MaxSecret)
	if _, err := rand.Read(secret); err != nil {
		t.Fatalf("rand = %v", err)
	}
	blob, enc, err = MakeCredential(cert.PublicKey, id.Name, secret)
	if err != nil {
		t.Fatalf("MakeCredential = %v", err)
	}
	return blob, enc, secret
}

// TestAttestationRound is the whole round, for each EK type: the phone
// reads its EK certificate from NV and sends it with the identity key's
// public area; the fleet verifies both and makes a credential; the phone's
// TPM activates it; the secrets match.
func TestAttestationRound(t *testing.T) {
	ca := newCA(t, "mfg")
	p := newPhone(t, ca)
	for _, k := range swtpmEKTypes {
		t.Run(k.String(), func(t *testing.T) {
			ek, err := p.tpm.ReadEK(k)
			if err != nil {
				t.Fatalf("ReadEK = %v", err)
			}
			if got, err := EKType(ek.Public); err != nil || got != k.String() {
				t.Fatalf("EKType = %q, %v, want %q (hal/tpm's name)", got, err, k)
			}
			blob, enc, secret := enrol(t, ca.Pool(), ek.Certificate, p.pub, p.tlsKey)
			got, err := p.tpm.ActivateCredential(k, p.key, blob, enc)
			if err != nil {
				t.Fatalf("ActivateCredential = %v", err)
			}
			if !bytes.Equal(got, secret) {
				t.Fatalf("ActivateCredential = %x, want %x", got, secret)
			}
			info, err := TPMDescription(mustVerify(t, ek.Certificate, ca))
			if err != nil || info.Model != "swtpm" {
				t.Fatalf("TPMDescription = %+v, %v, want model swtpm", info, err)
			}
		})
	}
}

func mustVerify(t testing.TB, der []byte, ca *test.ManufacturerCA) *x509.Certificate {
	t.Helper()
	c, err := VerifyEK(der, ca.Pool(), time.Now())
	if err != nil {
		t.Fatalf("VerifyEK = %v", err)
	}
	return c
}

// isRefused accepts the TPM's refusal of a credential: ErrActivation, or,
// for an RSA secret that does not decrypt, the TPM_RC_FAILURE libtpms
// before 0.9.7 answers (fixed upstream in libtpms commit 1b0b4129).
func isRefused(err error, k tpm.EKType) bool {
	return errors.Is(err, tpm.ErrActivation) || (k == tpm.EKRSA2048 && errors.Is(err, tpm2.TPMRCFailure))
}

// TestUntrustedManufacturer: an EK certificate from a CA the fleet does not
// trust is refused, however genuine the TPM.
func TestUntrustedManufacturer(t *testing.T) {
	trusted, other := newCA(t, "trusted"), newCA(t, "other")
	p := newPhone(t, other)
	for _, k := range swtpmEKTypes {
		cert, err := p.tpm.EKCertificate(k)
		if err != nil {
			t.Fatalf("EKCertificate = %v", err)
		}
		if _, err := VerifyEK(cert, trusted.Pool(), time.Now()); !errors.Is(err, ErrUntrustedEK) {
			t.Fatalf("VerifyEK(%v certificate of another manufacturer) = %v, want ErrUntrustedEK", k, err)
		}
		// The same certificate passes with its own root: the refusal is
		// the trust decision, nothing else.
		mustVerify(t, cert, other)
	}
}

// TestKeyInAnotherTPM: a key of TPM #2 presented with TPM #1's EK. The fleet
// makes the credential for key 2's Name to EK 1; no way of activating it
// works: TPM #1 will not load key 2, TPM #1's own key has another Name,
// TPM #2 has another EK.
func TestKeyInAnotherTPM(t *testing.T) {
	ca := newCA(t, "mfg")
	one, two := newPhone(t, ca), newPhone(t, ca)
	for _, k := range swtpmEKTypes {
		t.Run(k.String(), func(t *testing.T) {
			ek1, err := one.tpm.EKCertificate(k)
			if err != nil {
				t.Fatalf("EKCertificate = %v", err)
			}
			blob, enc, secret := enrol(t, ca.Pool(), ek1, two.pub, two.tlsKey)
			if got, err := one.tpm.ActivateCredential(k, two.key, blob, enc); !errors.Is(err, tpm.ErrBadBlob) {
				t.Fatalf("TPM 1 ActivateCredential(key 2) = %x, %v, want ErrBadBlob (key 2 does not load)", got, err)
			}
			if got, err := one.tpm.ActivateCredential(k, one.key, blob, enc); !isRefused(err, k) {
				t.Fatalf("TPM 1 ActivateCredential(key 1) = %x, %v, want refused", got, err)
			}
			if got, err := two.tpm.ActivateCredential(k, two.key, blob, enc); !isRefused(err, k) {
				t.Fatalf("TPM 2 ActivateCredential(key 2) = %x, %v, want refused", got, err)
			}
			// The honest round on TPM 2 still works.
			blob, enc, secret = enrol(t, ca.Pool(), mustEKCert(t, two, k), two.pub, two.tlsKey)
			if got, err := two.tpm.ActivateCredential(k, two.key, blob, enc); err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("TPM 2 honest round = %x, %v, want %x", got, err, secret)
			}
		})
	}
}

func mustEKCert(t testing.TB, p *phone, k tpm.EKType) []byte {
	t.Helper()
	c, err := p.tpm.EKCertificate(k)
	if err != nil {
		t.Fatalf("EKCertificate = %v", err)
	}
	return c
}

// TestIdentityPublicTampered: the phone's real public area with an
// attribute cleared, or presented with another TLS key, is refused before
// any credential is made.
func TestIdentityPublicTampered(t *testing.T) {
	p := newPhone(t, nil)
	noFixedTPM := bytes.Clone(p.pub)
	// objectAttributes is the u32 at offset 4; fixedTPM is bit 1.
	binary.BigEndian.PutUint32(noFixedTPM[4:], binary.BigEndian.Uint32(noFixedTPM[4:])&^(1<<1))
	other, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey = %v", err)
	}
	if _, err := CheckIdentityKey(p.pub, p.tlsKey); err != nil {
		t.Fatalf("CheckIdentityKey(real) = %v", err)
	}
	if _, err := CheckIdentityKey(noFixedTPM, p.tlsKey); !errors.Is(err, ErrIdentityKey) {
		t.Fatalf("CheckIdentityKey(fixedTPM cleared) = %v, want ErrIdentityKey", err)
	}
	if _, err := CheckIdentityKey(p.pub, &other.PublicKey); !errors.Is(err, ErrIdentityKey) {
		t.Fatalf("CheckIdentityKey(another TLS key) = %v, want ErrIdentityKey", err)
	}
}

// TestCredentialTampered: a credential altered on the way is refused by the
// TPM, for every byte region.
func TestCredentialTampered(t *testing.T) {
	ca := newCA(t, "mfg")
	p := newPhone(t, ca)
	for _, k := range swtpmEKTypes {
		t.Run(k.String(), func(t *testing.T) {
			blob, enc, secret := enrol(t, ca.Pool(), mustEKCert(t, p, k), p.pub, p.tlsKey)
			flip := func(b []byte, i int) []byte {
				c := bytes.Clone(b)
				c[i] ^= 0x01
				return c
			}
			cases := []struct {
				name      string
				blob, enc []byte
			}{
				{"hmac", flip(blob, 2), enc},
				{"encrypted identity", flip(blob, len(blob)-1), enc},
				{"secret first byte", blob, flip(enc, 2)},
				{"secret last byte", blob, flip(enc, len(enc)-1)},
				{"secret of another credential", blob, func() []byte { _, e, _ := enrol(t, ca.Pool(), mustEKCert(t, p, k), p.pub, p.tlsKey); return e }()},
			}
			for _, c := range cases {
				if got, err := p.tpm.ActivateCredential(k, p.key, c.blob, c.enc); !isRefused(err, k) {
					t.Fatalf("ActivateCredential(%s altered) = %x, %v, want refused", c.name, got, err)
				}
			}
			if got, err := p.tpm.ActivateCredential(k, p.key, blob, enc); err != nil || !bytes.Equal(got, secret) {
				t.Fatalf("ActivateCredential(intact) = %x, %v, want %x", got, err, secret)
			}
		})
	}
}

// TestForgedSoftwareKey: an attacker with a genuine TPM and a software key
// forges a public area claiming the TPM attributes. CheckIdentityKey cannot
// tell (the attributes are only a claim), the credential is made, and then
// nothing opens it:
//   - the phone's own TPM key has another Name;
//   - the forged public area loaded public-only (TPM2_LoadExternal) has no
//     authValue, so the TPM refuses to authorize it for activation;
//   - the software key loaded with its private half must have fixedTPM
//     clear, which the TPM enforces; and that key, which can be activated
//     (the attack CheckIdentityKey exists for), is refused by it.
func TestForgedSoftwareKey(t *testing.T) {
	ca := newCA(t, "mfg")
	p := newPhone(t, ca)
	raw := rawTPM{path: p.sw.Socket}
	const k = tpm.EKRSA2048
	soft, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey = %v", err)
	}
	forged := tpm2.Marshal(identityTemplate(&soft.PublicKey))
	blob, enc, _ := enrol(t, ca.Pool(), mustEKCert(t, p, k), forged, &soft.PublicKey)

	if got, err := p.tpm.ActivateCredential(k, p.key, blob, enc); !isRefused(err, k) {
		t.Fatalf("ActivateCredential(phone's key) = %x, %v, want refused", got, err)
	}

	h, name := raw.loadExternal(t, forged, nil)
	_, err = raw.activate(t, h, name, blob, enc)
	if !errors.Is(err, tpm2.TPMRCAuthUnavailable) {
		t.Fatalf("ActivateCredential(forged public area, public only) = %v, want TPM_RC_AUTH_UNAVAILABLE", err)
	}
	raw.flush(t, h)

	if _, _, err := raw.tryLoadExternal(forged, soft); !errors.Is(err, tpm2.TPMRCAttributes) {
		t.Fatalf("LoadExternal(software key claiming fixedTPM) = %v, want TPM_RC_ATTRIBUTES", err)
	}

	loadable := identityTemplate(&soft.PublicKey)
	loadable.ObjectAttributes.FixedTPM, loadable.ObjectAttributes.FixedParent = false, false
	loadablePub := tpm2.Marshal(loadable)
	if _, err := CheckIdentityKey(loadablePub, &soft.PublicKey); !errors.Is(err, ErrIdentityKey) {
		t.Fatalf("CheckIdentityKey(software key as loadable) = %v, want ErrIdentityKey", err)
	}
	// Without that refusal the attack works: the loaded software key
	// activates a credential made for it.
	h, name = raw.loadExternal(t, loadablePub, soft)
	defer raw.flush(t, h)
	secret := bytes.Repeat([]byte{0x5a}, MaxSecret)
	ekCert := mustVerify(t, mustEKCert(t, p, k), ca)
	b2, e2, err := MakeCredential(ekCert.PublicKey, name, secret)
	if err != nil {
		t.Fatalf("MakeCredential = %v", err)
	}
	got, err := raw.activate(t, h, name, b2, e2)
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("ActivateCredential(loaded software key) = %x, %v: the attack CheckIdentityKey refuses should work at the TPM", got, err)
	}
}

// rawTPM sends TPM commands to a swtpm socket directly: what an attacker
// with the phone's TPM (and no hardphone code) can do.
type rawTPM struct{ path string }

func (r rawTPM) Send(cmd []byte) ([]byte, error) {
	c, err := net.DialTimeout("unix", r.path, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		return nil, err
	}
	if _, err := c.Write(cmd); err != nil {
		return nil, err
	}
	hdr := make([]byte, 10)
	if _, err := io.ReadFull(c, hdr); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[2:6])
	if n < 10 || n > 1<<16 {
		return nil, fmt.Errorf("response size %d", n)
	}
	rsp := make([]byte, n)
	copy(rsp, hdr)
	_, err = io.ReadFull(c, rsp[10:])
	return rsp, err
}

var _ transport.TPM = rawTPM{}

func (r rawTPM) tryLoadExternal(pub []byte, priv *ecdsa.PrivateKey) (tpm2.TPMHandle, []byte, error) {
	cmd := tpm2.LoadExternal{
		InPublic:  tpm2.BytesAs2B[tpm2.TPMTPublic](pub),
		Hierarchy: tpm2.TPMRHNull,
	}
	if priv != nil {
		d, err := priv.Bytes()
		if err != nil {
			return 0, nil, err
		}
		cmd.InPrivate = tpm2.New2B(tpm2.TPMTSensitive{
			SensitiveType: tpm2.TPMAlgECC,
			Sensitive:     tpm2.NewTPMUSensitiveComposite(tpm2.TPMAlgECC, &tpm2.TPM2BECCParameter{Buffer: d}),
		})
	}
	rsp, err := cmd.Execute(r)
	if err != nil {
		return 0, nil, err
	}
	return rsp.ObjectHandle, rsp.Name.Buffer, nil
}

func (r rawTPM) loadExternal(t testing.TB, pub []byte, priv *ecdsa.PrivateKey) (tpm2.TPMHandle, []byte) {
	t.Helper()
	h, name, err := r.tryLoadExternal(pub, priv)
	if err != nil {
		t.Fatalf("LoadExternal = %v", err)
	}
	return h, name
}

func (r rawTPM) flush(t testing.TB, h tpm2.TPMHandle) {
	t.Helper()
	if _, err := (tpm2.FlushContext{FlushHandle: h}).Execute(r); err != nil {
		t.Fatalf("FlushContext = %v", err)
	}
}

// activate runs TPM2_ActivateCredential for the object h with the RSA EK
// swtpm_setup persisted at 0x81010001, authorized by its L-1 policy.
func (r rawTPM) activate(t testing.TB, h tpm2.TPMHandle, name, blob, enc []byte) ([]byte, error) {
	t.Helper()
	const ekHandle = tpm2.TPMHandle(0x81010001)
	ek, err := tpm2.ReadPublic{ObjectHandle: ekHandle}.Execute(r)
	if err != nil {
		t.Fatalf("ReadPublic(EK) = %v", err)
	}
	rsp, err := tpm2.ActivateCredential{
		ActivateHandle: tpm2.AuthHandle{Handle: h, Name: tpm2.TPM2BName{Buffer: name}, Auth: tpm2.PasswordAuth(nil)},
		KeyHandle: tpm2.AuthHandle{Handle: ekHandle, Name: ek.Name, Auth: tpm2.Policy(tpm2.TPMAlgSHA256, 16,
			func(tr transport.TPM, s tpm2.TPMISHPolicy, nonce tpm2.TPM2BNonce) error {
				_, err := tpm2.PolicySecret{
					AuthHandle:    tpm2.AuthHandle{Handle: tpm2.TPMRHEndorsement, Auth: tpm2.PasswordAuth(nil)},
					PolicySession: s,
					NonceTPM:      nonce,
				}.Execute(tr)
				return err
			})},
		CredentialBlob: tpm2.TPM2BIDObject{Buffer: blob},
		Secret:         tpm2.TPM2BEncryptedSecret{Buffer: enc},
	}.Execute(r)
	if err != nil {
		return nil, err
	}
	return rsp.CertInfo.Buffer, nil
}

// TestMakeCredentialVectors has swtpm's TPM2_MakeCredential (the reference
// implementation) make a credential to a fresh EK-shaped key of each type,
// loaded public-only, and opens it with the software ActivateCredential:
// the live version of the stored vectors. With -attest.regen it rewrites
// the vector file from this run.
func TestMakeCredentialVectors(t *testing.T) {
	sw := test.StartSWTPM(t)
	raw := rawTPM{path: sw.Socket}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatalf("GenerateKey = %v", err)
	}
	keys := []any{testRSA(t, 0), newP256(t), p384}
	var vs []credentialVector
	for _, k := range keys {
		pkcs8, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatalf("MarshalPKCS8PrivateKey = %v", err)
		}
		var pub any
		switch k := k.(type) {
		case *rsa.PrivateKey:
			pub = &k.PublicKey
		case *ecdsa.PrivateKey:
			pub = &k.PublicKey
		}
		typ, err := EKType(pub)
		if err != nil {
			t.Fatalf("EKType = %v", err)
		}
		area, err := ekPublicArea(pub)
		if err != nil {
			t.Fatalf("ekPublicArea = %v", err)
		}
		h, _, err := raw.tryLoadExternal(tpm2.Marshal(area), nil)
		if err != nil {
			t.Fatalf("LoadExternal(%s EK public area) = %v", typ, err)
		}
		name := append([]byte{0, 0x0b}, bytes.Repeat([]byte{0xa5}, 32)...)
		credential := []byte("swtpm vector " + typ + " 0123456789")[:MaxSecret]
		rsp, err := tpm2.MakeCredential{
			Handle:     h,
			Credential: tpm2.TPM2BDigest{Buffer: credential},
			ObjectName: tpm2.TPM2BName{Buffer: name},
		}.Execute(raw)
		raw.flush(t, h)
		if err != nil {
			t.Fatalf("TPM2_MakeCredential(%s) = %v", typ, err)
		}
		v := credentialVector{
			Type:            typ,
			EKPrivateKey:    hex.EncodeToString(pkcs8),
			IdentityName:    hex.EncodeToString(name),
			Credential:      hex.EncodeToString(credential),
			CredentialBlob:  hex.EncodeToString(rsp.CredentialBlob.Buffer),
			EncryptedSecret: hex.EncodeToString(rsp.Secret.Buffer),
		}
		t.Run(typ, func(t *testing.T) {
			priv, _ := vectorKey(t, v)
			got, err := softActivate(priv, name, rsp.CredentialBlob.Buffer, rsp.Secret.Buffer)
			if err != nil || !bytes.Equal(got, credential) {
				t.Fatalf("softActivate(swtpm MakeCredential) = %x, %v, want %x", got, err, credential)
			}
		})
		vs = append(vs, v)
	}
	if !*regenVectors {
		return
	}
	b, err := json.MarshalIndent(vs, "", "  ")
	if err != nil {
		t.Fatalf("marshal vectors: %v", err)
	}
	if err := os.WriteFile(vectorPath(t), append(b, '\n'), 0o644); err != nil {
		t.Fatalf("write vectors: %v", err)
	}
	t.Logf("wrote %s", vectorPath(t))
}
