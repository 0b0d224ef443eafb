package main

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/hardphone/hardphone/internal/cli"
	"github.com/hardphone/hardphone/system"
)

// maxCertInput bounds a certificate chain read from a file or stdin.
const maxCertInput = 256 << 10

func identityUsage(w io.Writer) {
	fmt.Fprintln(w, `usage: hardphone identity <command> [flags] [args]

commands:
  create [--force]                    make the device identity key: ECC P-256,
                                      generated inside the TPM, never exportable
                                      (--force replaces a key and drops its cert)
  csr --subject "CN=..,O=.." [--dns NAME,..] [--out FILE]
                                      write a PEM CSR signed by the identity key
  import-cert FILE                    store the certificate chain (PEM, leaf
                                      first; - for stdin) issued for the key
  show                                print key and certificate facts
  attest [--create]                   print the attestation the fleet checks
                                      (JSON: EK type and certificate, the key's
                                      TPMT_PUBLIC, a CSR); --create makes the
                                      key first if there is none
  activate                            read a fleet credential (JSON on stdin),
                                      have the TPM open it, print the secret
                                      (JSON): for a factory station (hpctl enrol)

flags (every command): --state-dir DIR | --config FILE, --tpm SPEC, --pcrs LIST
(see hardphone creds help)`)
}

// cmdIdentity implements `hardphone identity`.
func cmdIdentity(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		identityUsage(stderr)
		return usagef("missing command")
	}
	sub, rest := args[0], args[1:]
	lines := map[string]string{
		"create":      "hardphone identity create [--force] [flags]",
		"csr":         `hardphone identity csr --subject "CN=..,O=.." [--dns NAME,..] [--out FILE] [flags]`,
		"import-cert": "hardphone identity import-cert FILE|- [flags]",
		"show":        "hardphone identity show [flags]",
		"attest":      "hardphone identity attest [--create] [flags]",
		"activate":    "hardphone identity activate [flags] < credential.json",
	}
	switch sub {
	case "-h", "--help", "-help", "help":
		identityUsage(stdout)
		return nil
	}
	line, ok := lines[sub]
	if !ok {
		identityUsage(stderr)
		return usagef("unknown command %q", sub)
	}
	fs := cli.NewFlagSet("identity "+sub, line, stderr)
	var cf credFlags
	cf.register(fs)
	var (
		force        bool
		subject, dns string
		out          string
		wantArgs     int
	)
	switch sub {
	case "create":
		fs.BoolVar(&force, "force", false, "replace an existing identity key (its certificate is dropped)")
	case "csr":
		fs.StringVar(&subject, "subject", "", `subject, e.g. "CN=phone-0042,O=Acme,C=DE" (no escaped commas)`)
		fs.StringVar(&dns, "dns", "", "comma-separated DNS subject alternative names")
		fs.StringVar(&out, "out", "", "write the CSR here instead of stdout")
	case "import-cert":
		wantArgs = 1
	case "attest":
		fs.BoolVar(&force, "create", false, "create the identity key first when there is none")
	}
	pos, err := parse(fs, rest, stdout, wantArgs, wantArgs)
	if err != nil {
		return err
	}
	// Parse input before touching the store.
	var (
		tmpl  *x509.CertificateRequest
		chain [][]byte
		cred  *credential
	)
	switch sub {
	case "csr":
		if tmpl, err = csrTemplate(subject, dns); err != nil {
			return err
		}
	case "import-cert":
		if chain, err = readChain(pos[0]); err != nil {
			return err
		}
	case "activate":
		if cred, err = readCredential(os.Stdin); err != nil {
			return err
		}
	}
	creds, err := cf.open(stderr)
	if err != nil {
		return err
	}
	defer creds.Close()
	switch sub {
	case "create":
		if err := creds.CreateIdentity(force); err != nil {
			if errors.Is(err, system.ErrIdentityExists) {
				return fmt.Errorf("%w; add --force to replace it (its certificate is dropped)", err)
			}
			return err
		}
		fmt.Fprintf(stdout, "identity key created (%s)\n", creds.Protection())
		return identityShow(creds, stdout)
	case "csr":
		return identityCSR(creds, tmpl, out, stdout)
	case "import-cert":
		if err := creds.ImportCertificate(chain); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "certificate imported")
		return identityShow(creds, stdout)
	case "attest":
		return identityAttest(creds, force, stdout)
	case "activate":
		return identityActivate(creds, cred, stdout)
	default:
		return identityShow(creds, stdout)
	}
}

// attestation is the JSON `identity attest` prints: the fields of the
// fleet's enrolment start request (fleet/api.EnrolStartRequest).
type attestation struct {
	EKType         string `json:"ek_type"`
	EKCert         []byte `json:"ek_cert"`
	IdentityPublic []byte `json:"identity_public"`
	CSR            []byte `json:"csr"`
}

func identityAttest(creds *system.Credentials, create bool, stdout io.Writer) error {
	if create {
		if err := creds.CreateIdentity(false); err != nil && !errors.Is(err, system.ErrIdentityExists) {
			return err
		}
	}
	a, err := creds.IdentityAttestation()
	if err != nil {
		return err
	}
	// The fleet takes only the CSR's key and signature; the certificate's
	// subject comes from its records.
	csr, err := creds.CreateCSR(&x509.CertificateRequest{})
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(attestation{EKType: a.EKType.String(), EKCert: a.EKCertificate,
		IdentityPublic: a.IdentityPublic, CSR: csr})
}

// credential is what `identity activate` reads: the fields of the
// fleet's enrolment start answer.
type credential struct {
	EKType          string `json:"ek_type"`
	CredentialBlob  []byte `json:"credential_blob"`
	EncryptedSecret []byte `json:"encrypted_secret"`
}

// maxCredentialInput bounds the JSON read by activate.
const maxCredentialInput = 16 << 10

func readCredential(r io.Reader) (*credential, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxCredentialInput+1))
	if err != nil {
		return nil, fmt.Errorf("credential: %w", err)
	}
	if len(b) > maxCredentialInput {
		return nil, fmt.Errorf("credential: more than %d bytes on stdin", maxCredentialInput)
	}
	var c credential
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("credential: %w", err)
	}
	if c.EKType == "" || len(c.CredentialBlob) == 0 || len(c.EncryptedSecret) == 0 {
		return nil, errors.New("credential: ek_type, credential_blob and encrypted_secret are required")
	}
	return &c, nil
}

// identityActivate has the TPM open the credential and prints the secret
// as JSON {"secret": base64}: it proves, once, to the fleet that made the
// credential that the identity key is in this TPM. The caller (a factory
// station) sends it to that fleet only.
func identityActivate(creds *system.Credentials, c *credential, stdout io.Writer) error {
	// The EK type is the one attest offered: the first the TPM has
	// a certificate for.
	a, err := creds.IdentityAttestation()
	if err != nil {
		return err
	}
	if a.EKType.String() != c.EKType {
		return fmt.Errorf("credential for a %s EK; this TPM's attestation offers %s", c.EKType, a.EKType)
	}
	secret, err := creds.ActivateCredential(a.EKType, c.CredentialBlob, c.EncryptedSecret)
	if err != nil {
		return err
	}
	defer secret.Zero()
	out, err := json.Marshal(struct {
		Secret []byte `json:"secret"`
	}{secret})
	if err != nil {
		return err
	}
	defer clear(out)
	_, err = stdout.Write(append(out, '\n'))
	return err
}

// csrTemplate parses "CN=x,O=y" into a request template.
func csrTemplate(subject, dns string) (*x509.CertificateRequest, error) {
	if subject == "" {
		return nil, errors.New("--subject is required")
	}
	var name pkix.Name
	for _, part := range strings.Split(subject, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		v = strings.TrimSpace(v)
		if !ok || v == "" {
			return nil, fmt.Errorf("--subject %q: %q is not KEY=VALUE", subject, part)
		}
		switch strings.ToUpper(strings.TrimSpace(k)) {
		case "CN":
			name.CommonName = v
		case "O":
			name.Organization = append(name.Organization, v)
		case "OU":
			name.OrganizationalUnit = append(name.OrganizationalUnit, v)
		case "C":
			name.Country = append(name.Country, v)
		case "L":
			name.Locality = append(name.Locality, v)
		case "ST":
			name.Province = append(name.Province, v)
		case "SERIALNUMBER":
			name.SerialNumber = v
		default:
			return nil, fmt.Errorf("--subject %q: attribute %q not supported (CN, O, OU, C, L, ST, SERIALNUMBER)", subject, k)
		}
	}
	tmpl := &x509.CertificateRequest{Subject: name}
	if dns != "" {
		for _, d := range strings.Split(dns, ",") {
			if d = strings.TrimSpace(d); d != "" {
				tmpl.DNSNames = append(tmpl.DNSNames, d)
			}
		}
	}
	return tmpl, nil
}

func identityCSR(creds *system.Credentials, tmpl *x509.CertificateRequest, out string, stdout io.Writer) error {
	der, err := creds.CreateCSR(tmpl)
	if err != nil {
		return err
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	if out == "" {
		_, err := stdout.Write(p)
		return err
	}
	if err := os.WriteFile(out, p, 0o644); err != nil {
		return fmt.Errorf("write CSR: %w", err)
	}
	fmt.Fprintf(stdout, "CSR for %q written to %s\n", tmpl.Subject, out)
	return nil
}

// readChain reads PEM CERTIFICATE blocks (leaf first), or one DER
// certificate, from a file or "-" for stdin.
func readChain(path string) ([][]byte, error) {
	r := io.Reader(os.Stdin)
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("certificate: %w", err)
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxCertInput+1))
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	if len(b) > maxCertInput {
		return nil, fmt.Errorf("certificate file %s larger than %d bytes", path, maxCertInput)
	}
	var chain [][]byte
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type == "CERTIFICATE" {
			chain = append(chain, blk.Bytes)
		}
	}
	if len(chain) == 0 {
		if _, err := x509.ParseCertificate(b); err != nil {
			return nil, fmt.Errorf("certificate %s: no PEM CERTIFICATE block and not DER: %w", path, err)
		}
		chain = [][]byte{b}
	}
	return chain, nil
}

func identityShow(creds *system.Credentials, stdout io.Writer) error {
	info, err := creds.IdentityInfo()
	if err != nil {
		return err
	}
	prot := info.Protection.String()
	if info.Protection.Weaker() {
		prot += " (WEAKER: key encrypted under a KEK file)"
	}
	fmt.Fprintf(stdout, "key:            %s, %s\n", info.KeyType, prot)
	fmt.Fprintf(stdout, "non-exportable: %t\n", info.NonExportable)
	fmt.Fprintf(stdout, "public key:     sha256:%x\n", info.PublicKeySHA256)
	switch {
	case info.CertificateErr != nil:
		fmt.Fprintf(stdout, "certificate:    BAD: %v\n", info.CertificateErr)
	case info.Certificate == nil:
		fmt.Fprintln(stdout, "certificate:    none (identity csr, then identity import-cert)")
	default:
		c := info.Certificate
		state := "valid"
		now := time.Now()
		if now.Before(c.NotBefore) {
			state = "NOT YET VALID"
		} else if now.After(c.NotAfter) {
			state = "EXPIRED"
		}
		fmt.Fprintf(stdout, "subject:        %s\n", c.Subject)
		fmt.Fprintf(stdout, "issuer:         %s\n", c.Issuer)
		fmt.Fprintf(stdout, "serial:         %x\n", c.SerialNumber)
		fmt.Fprintf(stdout, "validity:       %s .. %s (%s)\n", c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), state)
		if len(c.DNSNames) > 0 {
			fmt.Fprintf(stdout, "dns names:      %s\n", strings.Join(c.DNSNames, ", "))
		}
		fmt.Fprintf(stdout, "fingerprint:    sha256:%x\n", sha256.Sum256(c.Raw))
		fmt.Fprintf(stdout, "chain length:   %d\n", info.ChainLength)
	}
	return nil
}
