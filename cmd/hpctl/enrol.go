package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/hardphone/hardphone/fleet/api"
	"github.com/hardphone/hardphone/fleet/ca"
	"github.com/hardphone/hardphone/fleet/client"
	"github.com/hardphone/hardphone/internal/cli"
)

// phoneStepTimeout bounds one step run on the phone's TPM (an RSA EK
// derivation can take seconds on a real chip).
const phoneStepTimeout = 2 * time.Minute

// maxPhoneOutput bounds what the phone's tool may print.
const maxPhoneOutput = 64 << 10

// cmdEnrol is the factory station: it enrols a phone in the fleet before
// it ships, through the same attested round as zero-touch enrolment (so
// the fleet keeps the same records), with the station driving the phone's
// TPM and credential store by the phone's own tool (`hardphone identity
// attest|activate|import-cert`, given --tpm and --state-dir). The station
// holds no admin certificate: the attestation is what the fleet trusts.
func cmdEnrol(args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("enrol", "hpctl enrol --server URL --server-ca FILE --tpm SPEC --state-dir DIR [--hardphone PATH] [--device-ca FILE]", stderr)
	server := fs.String("server", "", "fleet server, https://NAME[:PORT] (required)")
	serverName := fs.String("server-name", "", "name the server's certificate must carry (default: the URL's host)")
	serverCA := fs.String("server-ca", "", "the fleet server's CA (PEM; required)")
	deviceCA := fs.String("device-ca", "", "the fleet's device CA (PEM): the issued certificate must chain to it")
	tpmSpec := fs.String("tpm", "", "the phone's TPM: /dev/tpmrm0, swtpm:unix:PATH or swtpm:tcp:HOST:PORT (required)")
	stateDir := fs.String("state-dir", "", "the phone's state directory, holding its credential store (required)")
	hardphone := fs.String("hardphone", "hardphone", "the phone's hardphone binary, which drives its TPM")
	pos, err := cli.Parse(fs, args, stdout)
	if err != nil {
		return err
	}
	switch {
	case len(pos) != 0:
		return usagef("enrol: unexpected arguments %q", pos)
	case *server == "" || *serverCA == "" || *tpmSpec == "" || *stateDir == "":
		return usagef("enrol: --server, --server-ca, --tpm and --state-dir are required")
	case strings.HasPrefix(*tpmSpec, "software:"):
		return usagef("enrol: --tpm %q: attested enrolment needs a TPM", *tpmSpec)
	}
	roots, err := ca.LoadPool(*serverCA)
	if err != nil {
		return fmt.Errorf("server CA: %w", err)
	}
	var dca *x509.Certificate
	if *deviceCA != "" {
		if dca, err = ca.LoadCertificate(*deviceCA); err != nil {
			return fmt.Errorf("device CA: %w", err)
		}
	}
	c, err := client.New(client.Config{URL: *server, ServerName: *serverName, Roots: roots})
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	ph := &stationPhone{bin: *hardphone, flags: []string{"--tpm", *tpmSpec, "--state-dir", *stateDir}, stderr: stderr}
	resp, err := c.Enrol(ctx, ph, nil, dca)
	if err != nil {
		return err
	}
	// The certificate is for the key the phone's CSR carried.
	leaf, err := x509.ParseCertificate(resp.Chain[0])
	if err != nil {
		return fmt.Errorf("issued certificate: %w", err)
	}
	if !ph.csrKeyEqual(leaf) {
		return fmt.Errorf("issued certificate %q is not for the phone's identity key", leaf.Subject)
	}
	var chain bytes.Buffer
	for _, der := range resp.Chain {
		chain.Write(pemBlock("CERTIFICATE", der))
	}
	if _, err := ph.run(ctx, chain.Bytes(), "import-cert", "-"); err != nil {
		return fmt.Errorf("import the certificate on the phone: %w", err)
	}
	fmt.Fprintf(stdout, "enrolled: device %s serial %s, certificate valid until %s\n", resp.DeviceID, leaf.Subject.SerialNumber,
		resp.NotAfter.UTC().Format(time.RFC3339))
	return nil
}

// stationPhone drives a phone's TPM through its hardphone tool; it is
// fleet/client's Attester.
type stationPhone struct {
	bin    string
	flags  []string
	stderr io.Writer
	csr    *x509.CertificateRequest // from the last Attest
}

func (p *stationPhone) run(ctx context.Context, stdin []byte, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, phoneStepTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, append(append([]string{"identity"}, args...), p.flags...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errOut limitedBuffer
	out.max, errOut.max = maxPhoneOutput, maxPhoneOutput
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s identity %s: %w: %s", p.bin, args[0], err, strings.TrimSpace(errOut.String()))
	}
	if out.over {
		return nil, fmt.Errorf("%s identity %s: more than %d bytes of output", p.bin, args[0], maxPhoneOutput)
	}
	return out.Bytes(), nil
}

func (p *stationPhone) Attest(ctx context.Context) (*client.Attestation, error) {
	out, err := p.run(ctx, nil, "attest", "--create")
	if err != nil {
		return nil, err
	}
	var a api.EnrolStartRequest
	if err := json.Unmarshal(out, &a); err != nil {
		return nil, fmt.Errorf("phone attestation: %w", err)
	}
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("phone attestation: %w", err)
	}
	if p.csr, err = x509.ParseCertificateRequest(a.CSR); err != nil {
		return nil, fmt.Errorf("phone CSR: %w", err)
	}
	return &client.Attestation{EKType: a.EKType, EKCert: a.EKCert, IdentityPublic: a.IdentityPublic, CSR: a.CSR}, nil
}

func (p *stationPhone) Activate(ctx context.Context, ekType string, blob, enc []byte) (api.Secret, error) {
	in, err := json.Marshal(struct {
		EKType          string `json:"ek_type"`
		CredentialBlob  []byte `json:"credential_blob"`
		EncryptedSecret []byte `json:"encrypted_secret"`
	}{ekType, blob, enc})
	if err != nil {
		return nil, err
	}
	out, err := p.run(ctx, in, "activate")
	if err != nil {
		return nil, err
	}
	defer clear(out)
	var s struct {
		Secret []byte `json:"secret"`
	}
	if err := json.Unmarshal(out, &s); err != nil {
		return nil, fmt.Errorf("phone activation: answer does not parse")
	}
	return api.Secret(s.Secret), nil
}

func (p *stationPhone) csrKeyEqual(leaf *x509.Certificate) bool {
	eq, ok := leaf.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	return p.csr != nil && ok && eq.Equal(p.csr.PublicKey)
}

// limitedBuffer keeps at most max bytes and notes an overflow.
type limitedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.over = true
		if room > 0 {
			b.Buffer.Write(p[:room])
		}
		return len(p), nil
	}
	return b.Buffer.Write(p)
}
