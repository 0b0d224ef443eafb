package integration

import (
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/system"
	"github.com/hardphone/hardphone/test"
)

// TestRegisterWithTPMIdentity: the agent registers to Kamailio over mutual
// TLS with its identity key inside a (software) TPM and its SIP password
// sealed in the credential store; the key cannot be exported, and the
// password is nowhere in the state directory in clear.
func TestRegisterWithTPMIdentity(t *testing.T) {
	e := newEnv(t)
	sw := test.StartSWTPM(t)
	path := e.writeConfig(t, phoneConf{user: "alice", certCN: "-", credStore: sw.Spec})
	stateDir := filepath.Join(filepath.Dir(path), "state")

	// Provision the phone as a factory or first boot would.
	creds, err := system.OpenCredentials(system.CredentialSpec{StateDir: stateDir, Protector: sw.Spec}, nil)
	if err != nil {
		t.Fatalf("OpenCredentials: %v", err)
	}
	e.pki.EnrolIdentity(creds, "alice")
	if err := creds.Put("sip/alice", []byte(users["alice"])); err != nil {
		t.Fatalf("Put: %v", err)
	}
	ident, err := creds.Identity()
	if err != nil {
		t.Fatalf("Identity: %v", err)
	}
	if _, err := x509.MarshalPKCS8PrivateKey(ident.PrivateKey); err == nil {
		t.Errorf("the TPM identity key marshals as PKCS#8: it must not be exportable")
	}
	if err := creds.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := os.Remove(filepath.Join(filepath.Dir(path), "password")); err != nil {
		t.Fatalf("remove password file: %v", err)
	}

	p := startPhoneFrom(t, path, nil)
	p.waitRegistered(t)
	e.k.WaitRegistered(t, "alice", 5*time.Second)
	if st := p.ag.Status(); st.Credentials != "tpm" || st.Weaker {
		t.Errorf("status credentials = %q weaker=%v, want tpm", st.Credentials, st.Weaker)
	}
	// Nothing in the state directory holds the password in clear.
	err = filepath.Walk(stateDir, func(f string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if strings.Contains(string(b), users["alice"]) {
			t.Errorf("%s holds the SIP password in clear", f)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
