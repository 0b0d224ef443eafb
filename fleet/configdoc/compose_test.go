package configdoc

import (
	"errors"
	"strings"
	"testing"
)

const groupDoc = `
[media]
rtp_port_min = 20000
rtp_port_max = 20099

[[account]]
name = "line1"
registrar = "sip.example.test:5061"
password_cred = "sip/line1"
media_security = "dtls"
`

const deviceDoc = `
[media]
rtp_port_max = 20199

[[account]]
name = "line1"
user = "1001"

[[account]]
name = "line2"
user = "2001"
registrar = "other.example.test:5061"
password_cred = "sip/line2"
`

func mustParse(t *testing.T, s string) *Doc {
	t.Helper()
	d, err := Parse([]byte(s))
	if err != nil {
		t.Fatalf("Parse error %v", err)
	}
	return d
}

func TestCompose(t *testing.T) {
	d, err := Compose(mustParse(t, groupDoc), mustParse(t, deviceDoc))
	if err != nil {
		t.Fatalf("Compose error %v", err)
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("Validate(composed) = %v", err)
	}
	accts, err := d.Accounts()
	if err != nil || len(accts) != 2 {
		t.Fatalf("Accounts = %+v, %v; want two", accts, err)
	}
	want := []Account{
		{Index: 0, Name: "line1", User: "1001", Domain: "sip.example.test", Credential: "sip/line1"},
		{Index: 1, Name: "line2", User: "2001", Domain: "other.example.test", Credential: "sip/line2"},
	}
	for i := range want {
		if accts[i] != want[i] {
			t.Fatalf("Accounts[%d] = %+v, want %+v", i, accts[i], want[i])
		}
	}
	b, _ := d.Encode()
	for _, s := range []string{"rtp_port_min = 20000", "rtp_port_max = 20199", `user = "1001"`, `media_security = "dtls"`} {
		if !strings.Contains(string(b), s) {
			t.Fatalf("composed document lacks %q:\n%s", s, b)
		}
	}
	// Encoding is stable: the same inputs give the same bytes.
	d2, _ := Compose(mustParse(t, groupDoc), mustParse(t, deviceDoc))
	b2, _ := d2.Encode()
	if string(b) != string(b2) {
		t.Fatalf("two compositions of the same documents differ:\n%s\n---\n%s", b, b2)
	}
	// Compose left its inputs alone.
	g := mustParse(t, groupDoc)
	if _, err := Compose(g, mustParse(t, deviceDoc)); err != nil {
		t.Fatalf("Compose: %v", err)
	}
	ga, _ := g.Accounts()
	if len(ga) != 1 || ga[0].User != "" {
		t.Fatalf("Compose changed the group document: %+v", ga)
	}

	if err := d.SetSealed(map[int]string{0: "hps1.AAAA"}); err != nil {
		t.Fatalf("SetSealed: %v", err)
	}
	b, _ = d.Encode()
	if !strings.Contains(string(b), `password_sealed = "hps1.AAAA"`) {
		t.Fatalf("sealed value missing:\n%s", b)
	}
	// The sealed value does not get in the way of validation.
	if err := d.Validate(); err != nil {
		t.Fatalf("Validate(with sealed value) = %v", err)
	}
}

func TestRefusals(t *testing.T) {
	tests := []struct {
		name          string
		group, device string
		want          string
	}{
		{"not TOML", groupDoc, "[media\n", "line"},
		{"unknown key", groupDoc, "srtp_off = true\n", "unknown key"},
		{"account without user", groupDoc, "", "account[0].user"},
		{"image-only key", groupDoc + "credential_store = \"software:/k\"\n", deviceDoc, "credential_store"},
		{"sealed from an admin", groupDoc, "[[account]]\nname = \"line1\"\nuser = \"1\"\npassword_sealed = \"hps1.x\"\n", "fleet's to write"},
		{"plain transport", groupDoc, "[[account]]\nname = \"line1\"\nuser = \"1\"\ntransport = \"udp\"\n", "TLS only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := func() error {
				g, err := Parse([]byte(tt.group))
				if err != nil {
					return err
				}
				d, err := Parse([]byte(tt.device))
				if err != nil {
					return err
				}
				c, err := Compose(g, d)
				if err != nil {
					return err
				}
				return c.Validate()
			}()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("compose and validate(%s) = %v, want ErrInvalid saying %q", tt.name, err, tt.want)
			}
		})
	}
	if _, err := Parse(make([]byte, MaxDocument+1)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("Parse(oversize) = %v, want ErrInvalid", err)
	}
}
