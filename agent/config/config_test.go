package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardphone/hardphone/crypto/policy"
)

const good = `
state_dir = "state"
control_socket = "run/ctl.sock"

[tls]
ca_file = "ca.pem"
cert_file = "alice.pem"
key_file = "alice.key"

[media]
local_ip = "127.0.0.1"
rtp_port_min = 20000
rtp_port_max = 20099

[[account]]
user = "alice"
registrar = "127.0.0.1:5061"
password_file = "alice.pass"
`

func TestParseDefaults(t *testing.T) {
	c, err := Parse([]byte(good), "/etc/hp")
	if err != nil {
		t.Fatalf("Parse(good) = %v", err)
	}
	a := c.Accounts[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"name", a.Name, "alice"},
		{"domain", a.Domain, "127.0.0.1"},
		{"server_name", a.ServerName, "127.0.0.1"},
		{"digest_min", a.DigestMin, policy.DigestSHA256},
		{"media_security", a.MediaSecurity, MediaSDES},
		{"answer", a.Answer, AnswerAuto},
		{"expires", a.Expires, 600 * time.Second},
		{"allow_refer", a.AllowRefer, false},
		{"ca_file", c.TLS.CAFile, "/etc/hp/ca.pem"},
		{"password_file", a.PasswordFile, "/etc/hp/alice.pass"},
		{"rtp_port_min", c.Media.PortMin, uint16(20000)},
		{"listen", len(c.Listen), 0},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("Parse(good).%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(string) string
		wantKey string
	}{
		{"unknown key", func(s string) string { return s + "insecure_skip_verify = true\n" }, "account.insecure_skip_verify"},
		{"no ca", func(s string) string { return strings.Replace(s, `ca_file = "ca.pem"`, "", 1) }, "tls.ca_file"},
		{"weak digest name", func(s string) string { return s + `digest_min = "SHA-1"` + "\n" }, "account[0].digest_min"},
		{"plain media", func(s string) string { return s + `media_security = "none"` + "\n" }, "account[0].media_security"},
		{"udp registration", func(s string) string { return s + `transport = "udp"` + "\n" }, "account[0].transport"},
		{"bad registrar", func(s string) string {
			return strings.Replace(s, `"127.0.0.1:5061"`, `"127.0.0.1"`, 1)
		}, "account[0].registrar"},
		{"bad port range", func(s string) string { return strings.Replace(s, "20099", "19000", 1) }, "media.rtp_port_max"},
		{"bad answer", func(s string) string { return s + `answer = "always"` + "\n" }, "account[0].answer"},
		{"bad listener", func(s string) string {
			return strings.Replace(s, "[tls]", "listen = [\"sctp:127.0.0.1:5060\"]\n[tls]", 1)
		}, "listen[0]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.edit(good)), "/etc/hp")
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("Parse = %v, want a KeyError", err)
			}
			if ke.Key != tt.wantKey {
				t.Errorf("Parse error key = %s, want %s (%v)", ke.Key, tt.wantKey, err)
			}
		})
	}
}

func TestParseSyntaxErrorNamesLine(t *testing.T) {
	_, err := Parse([]byte("[tls]\nca_file = \n"), "/")
	if err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("Parse(bad toml) = %v, want an error naming line 2", err)
	}
}

func TestMD5OnlyWhenExplicit(t *testing.T) {
	c, err := Parse([]byte(good+`digest_min = "MD5"`+"\n"), "/")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if c.Accounts[0].DigestMin != policy.DigestMD5 {
		t.Errorf("digest_min = %v, want MD5", c.Accounts[0].DigestMin)
	}
}

func TestPasswordFileMode(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "pw")
	if err := os.WriteFile(p, []byte("s3cret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	a := Account{Name: "a", PasswordFile: p}
	if _, err := a.Password(); err == nil {
		t.Fatalf("Password() with mode 0644 = nil error, want refusal")
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	pw, err := a.Password()
	if err != nil || pw != "s3cret" {
		t.Fatalf("Password() = %q, %v, want s3cret", pw, err)
	}
}

// TestDialingPolicy: the toll-fraud guard's defaults and its keys.
func TestDialingPolicy(t *testing.T) {
	base := "[tls]\nca_file = \"ca.pem\"\n[[account]]\nuser = \"alice\"\nregistrar = \"127.0.0.1:5061\"\npassword_file = \"pw\"\n"
	c, err := Parse([]byte(base), "/x")
	if err != nil {
		t.Fatal(err)
	}
	d := c.Accounts[0].Dialing
	if d.International || d.MaxPerHour != 30 || d.MaxPerDay != 200 || len(d.Premium) == 0 {
		t.Errorf("default dialling policy = %+v, want international and premium refused, 30/h, 200/day", d)
	}
	c, err = Parse([]byte(base+"[account.dialing]\nhome_country = \"+49\"\ninternational = true\nmax_per_hour = 5\nhours = [\"Mon-Fri 08:00-18:00\"]\n"), "/x")
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Accounts[0].Dialing; d.Home != "+49" || !d.International || d.MaxPerHour != 5 || len(d.Hours) != 1 {
		t.Errorf("dialling policy = %+v", d)
	}
	for _, bad := range []string{"home_country = \"49\"\n", "hours = [\"nights\"]\n", "max_per_hour = -1\n", "premium_prefixes = [\"0900\"]\n", "bogus = 1\n"} {
		if _, err := Parse([]byte(base+"[account.dialing]\n"+bad), "/x"); err == nil {
			t.Errorf("Parse(dialing %q) = nil error", bad)
		}
	}
}
