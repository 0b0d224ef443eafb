package config

import (
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// image is a fleet phone's image config: the image-only keys and one
// account.
const image = `state_dir = "/data/hp"
credential_store = "/dev/tpmrm0"
control_socket = "/run/hp/ctl.sock"
lockdown_policy = "policy.toml"

[tls]
ca_file = "ca.pem"

[media]
rtp_port_min = 20000
rtp_port_max = 20099
allow_peers = ["127.0.0.0/8"]

[provision]
server = "https://fleet.example.com"
server_ca = "fleet-ca.pem"
device_ca = "device-ca.pem"
image_root = "image-root.json"
director_root = "director-root.json"
image_repo = "http://mirror.example.com/image/"

[[account]]
name = "desk"
user = "alice"
registrar = "127.0.0.1:5061"
password_cred = "sip/alice"
`

// TestParseWithDocument: a document sets accounts and tuning over the
// image; what the image set and the document does not stays.
func TestParseWithDocument(t *testing.T) {
	doc := `max_calls = 2
[media]
inactivity_timeout = "30s"
[events]
hostname = "desk-12"
[[account]]
name = "desk"
registrar = "pbx.example.com:5061"
digest_min = "SHA-512-256"
[[account]]
user = "bob"
registrar = "pbx.example.com:5061"
password_cred = "sip/bob"
`
	c, err := ParseWithDocument([]byte(image), "/etc/hp", []byte(doc))
	if err != nil {
		t.Fatalf("ParseWithDocument = %v", err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"max_calls", c.MaxCalls, 2},
		{"inactivity_timeout", c.Media.InactivityTimeout, 30 * time.Second},
		{"rtp_port_min (image)", c.Media.PortMin, uint16(20000)},
		{"allow_peers (image)", len(c.Media.AllowPeers), 1},
		{"events.hostname", c.Events.Hostname, "desk-12"},
		{"accounts", len(c.Accounts), 2},
		{"desk registrar (document)", c.Accounts[0].Registrar, "pbx.example.com:5061"},
		{"desk user (image)", c.Accounts[0].User, "alice"},
		{"desk password_cred (image)", c.Accounts[0].PasswordCred, "sip/alice"},
		{"bob appended", c.Accounts[1].Name, "bob"},
		{"tls.ca_file (image, resolved)", c.TLS.CAFile, "/etc/hp/ca.pem"},
		{"lockdown_policy (image, resolved)", c.LockdownPolicy, "/etc/hp/policy.toml"},
		{"provision.director_root", c.Provision.DirectorRoot, "/etc/hp/director-root.json"},
		{"provision.director_url default", c.Provision.DirectorURL("dev-1"), "https://fleet.example.com/director/dev-1/"},
		{"provision.config_trial default", c.Provision.ConfigTrial, 2 * time.Minute},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("ParseWithDocument(...).%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

// TestFleetDocumentRefused: image-only keys, sealed secrets, documents
// that do not parse and merges that do not validate are refused with the
// key named, and an account matched by name merges instead of doubling.
func TestFleetDocumentRefused(t *testing.T) {
	tests := []struct {
		name, doc, key string
		want           error
	}{
		{"state_dir", "state_dir = \"/tmp/x\"\n", "state_dir", ErrImageOnly},
		{"board", "board = \"qemu-arm64\"\n", "board", ErrImageOnly},
		{"credential_store", "credential_store = \"software:/tmp/k\"\n", "credential_store", ErrImageOnly},
		{"control_socket", "control_socket = \"/tmp/s\"\n", "control_socket", ErrImageOnly},
		{"control_uids", "control_uids = [1000]\n", "control_uids", ErrImageOnly},
		{"lockdown_policy", "lockdown_policy = \"\"\n", "lockdown_policy", ErrImageOnly},
		{"lockdown_check_interval", "lockdown_check_interval = \"1h\"\n", "lockdown_check_interval", ErrImageOnly},
		{"listen", "listen = [\"udp:0.0.0.0:5060\"]\n", "listen", ErrImageOnly},
		{"listen_peer", "listen_peer = \"1.2.3.4:5060\"\n", "listen_peer", ErrImageOnly},
		{"tls", "[tls]\nca_file = \"/tmp/evil-ca.pem\"\n", "tls", ErrImageOnly},
		{"provision", "[provision]\nconfig_trial = \"1h\"\n", "provision", ErrImageOnly},
		{"update", "[update]\nkeyring = \"/tmp/k.pem\"\n", "update", ErrImageOnly},
		{"audio", "[audio]\ndevice = \"pulse\"\nserver = \"tcp:evil:4713\"\n", "audio", ErrImageOnly},
		{"events.syslog_ca", "[events]\nsyslog_ca = \"/tmp/ca\"\n", "events.syslog_ca", ErrImageOnly},
		{"a key in another case", "stAte_diR = \"8\"\n", "stAte_diR", ErrKeyCase},
		{"a table in another case", "[provIsion]\nconfig_trial = \"1h\"\n", "provIsion", ErrKeyCase},
		{"media.allow_peers", "[media]\nallow_peers = [\"0.0.0.0/0\"]\n", "media.allow_peers", ErrImageOnly},
		{"password_file", "[[account]]\nuser = \"bob\"\nregistrar = \"r:5061\"\npassword_file = \"/etc/shadow\"\n", "account[0].password_file", ErrImageOnly},
		{"other sealed key", "[[account]]\nuser = \"bob\"\nregistrar = \"r:5061\"\npassword_cred = \"sip/bob\"\nrealm_sealed = \"hps1.x\"\n", "account[0].realm_sealed", ErrSealedUnsupported},
		{"second account image-only", "[[account]]\nuser = \"bob\"\n[[account]]\nuser = \"carol\"\npassword_file = \"x\"\n", "account[1].password_file", ErrImageOnly},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckFleetDocument([]byte(tt.doc))
			var ke *KeyError
			if !errors.Is(err, tt.want) || !errors.As(err, &ke) || ke.Key != tt.key {
				t.Fatalf("CheckFleetDocument(%q) = %v, want %v naming %s", tt.doc, err, tt.want, tt.key)
			}
			if _, err := ParseWithDocument([]byte(image), "/etc/hp", []byte(tt.doc)); !errors.Is(err, tt.want) {
				t.Fatalf("ParseWithDocument(%q) = %v, want %v", tt.doc, err, tt.want)
			}
		})
	}
	invalid := []struct {
		name, doc, want string
	}{
		{"not TOML", "max_calls = = 3\n", "line 1"},
		{"unknown key", "max_cals = 3\n", "max_cals"},
		{"bad value", "[[account]]\nname = \"desk\"\ndigest_min = \"MD4\"\n", "account[0].digest_min"},
		{"ports outside", "[media]\nrtp_port_min = 80\nrtp_port_max = 90\n", "media.rtp_port_max"},
		{"empty", "", "0 bytes"},
		{"account not a table", "account = 3\n", "account"},
	}
	for _, tt := range invalid {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseWithDocument([]byte(image), "/etc/hp", []byte(tt.doc))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("ParseWithDocument(%q) = %v, want an error naming %q", tt.doc, err, tt.want)
			}
		})
	}
	if err := CheckFleetDocument(make([]byte, MaxDocument+1)); err == nil {
		t.Fatalf("CheckFleetDocument(%d bytes) = nil, want a refusal", MaxDocument+1)
	}
}

// TestReferenceImage: the fleet validates documents against the
// reference image; a document with an account passes, one without fails
// as the phone's parser says.
func TestReferenceImage(t *testing.T) {
	doc := "[[account]]\nuser = \"bob\"\nregistrar = \"pbx:5061\"\npassword_cred = \"sip/bob\"\n"
	if _, err := ParseWithDocument([]byte(ReferenceImage), "/", []byte(doc)); err != nil {
		t.Fatalf("ParseWithDocument(ReferenceImage, account) = %v", err)
	}
	if _, err := ParseWithDocument([]byte(ReferenceImage), "/", []byte("max_calls = 2\n")); err == nil || !strings.Contains(err.Error(), "account") {
		t.Fatalf("ParseWithDocument(ReferenceImage, no account) = %v, want the account refusal", err)
	}
}

// TestProvisionUptane: the repository keys go together, URLs and windows
// are checked.
func TestProvisionUptane(t *testing.T) {
	base := "state_dir = \"st\"\ncredential_store = \"software:kek\"\n[tls]\nca_file = \"ca.pem\"\n[[account]]\nuser = \"alice\"\nregistrar = \"127.0.0.1:5061\"\npassword_file = \"pw\"\n" +
		"[provision]\nserver = \"https://fleet.example.com:8443\"\nserver_ca = \"fleet-ca.pem\"\ndevice_ca = \"device-ca.pem\"\n"
	repos := "image_root = \"i.json\"\ndirector_root = \"d.json\"\nimage_repo = \"https://cdn.example.com/image\"\n"
	c, err := Parse([]byte(base+repos+"config_trial = \"30s\"\nmaintenance = [\"Mon-Fri 02:00-04:00\", \"Sat,Sun 00:00-24:00\"]\ndirector_url = \"https://dir.example.com/d\"\n"), "/etc/hp")
	if err != nil {
		t.Fatalf("Parse = %v", err)
	}
	p := c.Provision
	if !p.Uptane() || p.ImageRoot != "/etc/hp/i.json" || p.ConfigTrial != 30*time.Second || p.DirectorURL("x") != "https://dir.example.com/d/x/" || len(p.Maintenance) != 2 {
		t.Fatalf("Parse(provision) = %+v", p)
	}
	windows := []struct {
		at   time.Time
		want bool
	}{
		{time.Date(2027, 3, 1, 3, 0, 0, 0, time.UTC), true},    // Monday 03:00
		{time.Date(2027, 3, 1, 4, 0, 0, 0, time.UTC), false},   // Monday 04:00 (end exclusive)
		{time.Date(2027, 3, 6, 13, 0, 0, 0, time.UTC), true},   // Saturday
		{time.Date(2027, 3, 3, 12, 30, 0, 0, time.UTC), false}, // Wednesday noon
	}
	for _, w := range windows {
		if got := p.InMaintenance(w.at); got != w.want {
			t.Errorf("InMaintenance(%v) = %v, want %v", w.at, got, w.want)
		}
	}
	if !(Provision{}).InMaintenance(time.Now()) {
		t.Errorf("InMaintenance without windows = false, want true")
	}
	c, err = Parse([]byte(base+repos), "/etc/hp")
	if err != nil || c.Provision.DirectorURL("dev") != "https://fleet.example.com:8443/director/dev/" || c.Provision.ConfigTrial != 2*time.Minute {
		t.Fatalf("Parse(defaults) = %+v, %v", c.Provision, err)
	}
	for _, tc := range []struct{ in, key string }{
		{base + "image_root = \"i.json\"\n", "provision.image_root"},
		{base + strings.Replace(repos, "https://cdn", "ftp://cdn", 1), "provision.image_repo"},
		{base + repos + "director_url = \"http://dir.example.com/\"\n", "provision.director_url"},
		{base + repos + "config_trial = \"1s\"\n", "provision.config_trial"},
		{base + repos + "maintenance = [\"Mon 04:00-02:00\"]\n", "provision.maintenance[0]"},
		{base + "config_trial = \"30s\"\n", "provision.director_root"},
	} {
		if _, err := Parse([]byte(tc.in), "/x"); err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("Parse(%q) = %v, want an error naming %s", tc.in, err, tc.key)
		}
	}
}

// TestREADMEFleetExample: the README's [provision] example for the
// fleet's repositories is a valid table.
func TestREADMEFleetExample(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatalf("read README.md: %v", err)
	}
	m := regexp.MustCompile("(?s)## Configuration and firmware from the fleet \\(phone side\\).*?```toml\n(.*?)```").FindSubmatch(b)
	if m == nil {
		t.Fatalf("README.md has no fleet configuration section with a toml block")
	}
	base := "state_dir = \"/data/hp\"\ncredential_store = \"/dev/tpmrm0\"\n[tls]\nca_file = \"ca.pem\"\n[[account]]\nuser = \"alice\"\nregistrar = \"pbx:5061\"\npassword_cred = \"sip/alice\"\n"
	c, err := Parse(append([]byte(base), m[1]...), "/etc/hp")
	if err != nil {
		t.Fatalf("Parse(README example) = %v", err)
	}
	if !c.Provision.Uptane() || c.Provision.DirectorURL("d") != "https://fleet.example.com:8443/director/d/" {
		t.Fatalf("Parse(README example).Provision = %+v", c.Provision)
	}
}

// TestSealedPassword: a fleet document's password_sealed goes with its
// account's password_cred onto the merged account; without the credential
// name, or not a sealed value, it is refused.
func TestSealedPassword(t *testing.T) {
	doc := "[[account]]\nuser = \"bob\"\nregistrar = \"127.0.0.1:5061\"\npassword_cred = \"sip/bob\"\npassword_sealed = \"hps1.AQAB\"\n"
	c, err := ParseWithDocument([]byte(ReferenceImage), "/", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Accounts[0]; a.PasswordSealed != "hps1.AQAB" || a.PasswordCred != "sip/bob" {
		t.Errorf("account = %+v, want the sealed value for sip/bob", a)
	}
	for _, bad := range []string{
		"[[account]]\nuser = \"bob\"\nregistrar = \"127.0.0.1:5061\"\npassword_sealed = \"hps1.AQAB\"\n",
		"[[account]]\nuser = \"bob\"\nregistrar = \"127.0.0.1:5061\"\npassword_cred = \"sip/bob\"\npassword_sealed = \"secret\"\n",
		"[[account]]\nuser = \"bob\"\nregistrar = \"127.0.0.1:5061\"\npassword_cred = \"sip/bob\"\npassword_sealed = 3\n",
	} {
		if err := CheckFleetDocument([]byte(bad)); err == nil {
			t.Errorf("CheckFleetDocument(%q) = nil, want refused", bad)
		}
	}
	// The image's own config never carries one.
	if _, err := Parse([]byte(ReferenceImage+"[[account]]\nuser = \"bob\"\nregistrar = \"127.0.0.1:5061\"\npassword_cred = \"sip/bob\"\npassword_sealed = \"hps1.AQAB\"\n"), "/"); err == nil {
		t.Errorf("Parse(image with password_sealed) = nil error, want an unknown key")
	}
}

func TestSealedOnlyChange(t *testing.T) {
	acct := func(sealed, expires string) string {
		s := "[[account]]\nname = \"alice\"\nuser = \"alice\"\npassword_cred = \"sip/alice\"\n"
		if sealed != "" {
			s += "password_sealed = \"" + sealed + "\"\n"
		}
		return s + "expires = \"" + expires + "\"\n"
	}
	tests := []struct {
		name       string
		prev, next string
		want       bool
		wantErr    bool
	}{
		{"rotation", acct("hps1.AAAA", "60s"), acct("hps1.BBBB", "60s"), true, false},
		{"first sealed password", acct("", "60s"), acct("hps1.BBBB", "60s"), true, false},
		{"same document", acct("hps1.AAAA", "60s"), acct("hps1.AAAA", "60s"), true, false},
		{"rotation and another key", acct("hps1.AAAA", "60s"), acct("hps1.BBBB", "90s"), false, false},
		{"a policy change", acct("hps1.AAAA", "60s"), acct("hps1.AAAA", "60s") + "max_calls = 1\n", false, false},
		{"a second account", acct("hps1.AAAA", "60s"), acct("hps1.BBBB", "60s") + "[[account]]\nname = \"bob\"\nuser = \"bob\"\n", false, false},
		{"next does not parse", acct("hps1.AAAA", "60s"), "max_calls = = 1\n", false, true},
		{"next sets an image-only key", acct("hps1.AAAA", "60s"), acct("hps1.BBBB", "60s") + "[tls]\nca_file = \"/x\"\n", false, true},
		{"previous does not parse", "[[account", acct("hps1.BBBB", "60s"), false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SealedOnlyChange([]byte(tt.prev), []byte(tt.next))
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("SealedOnlyChange(%q, %q) = %v, %v; want %v, error %v", tt.prev, tt.next, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
