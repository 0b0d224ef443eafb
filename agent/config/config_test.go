package config

import (
	"errors"
	"fmt"
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
		{"media_security", a.MediaSecurity, MediaDTLS},
		{"answer", a.Answer, AnswerAuto},
		{"expires", a.Expires, 600 * time.Second},
		{"allow_refer", a.AllowRefer, false},
		{"call_waiting", a.CallWaiting, CallWaitingRing},
		{"ca_file", c.TLS.CAFile, "/etc/hp/ca.pem"},
		{"password_file", a.PasswordFile, "/etc/hp/alice.pass"},
		{"rtp_port_min", c.Media.PortMin, uint16(20000)},
		{"listen", len(c.Listen), 0},
		{"max_calls", c.MaxCalls, 8},
		{"idle_code_release", c.IdleCodeRelease, 10 * time.Second},
		{"account max_calls", a.MaxCalls, 4},
		{"inactivity_timeout", c.Media.InactivityTimeout, 60 * time.Second},
		{"allow_peers", len(c.Media.AllowPeers), 0},
		{"realm", a.Realm, ""},
		{"listen_peer set", c.ListenPeer.IsValid(), false},
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
		{"bad call_waiting", func(s string) string { return s + `call_waiting = "always"` + "\n" }, "account[0].call_waiting"},
		{"bad listener", func(s string) string {
			return strings.Replace(s, "[tls]", "listen = [\"sctp:127.0.0.1:5060\"]\n[tls]", 1)
		}, "listen[0]"},
		{"max_calls 0", func(s string) string { return strings.Replace(s, "[tls]", "max_calls = 0\n[tls]", 1) }, "max_calls"},
		{"idle_code_release too short", func(s string) string {
			return strings.Replace(s, "[tls]", "idle_code_release = \"100ms\"\n[tls]", 1)
		}, "idle_code_release"},
		{"idle_code_release not a duration", func(s string) string {
			return strings.Replace(s, "[tls]", "idle_code_release = \"never\"\n[tls]", 1)
		}, "idle_code_release"},
		{"max_calls beyond the port range", func(s string) string {
			// 20000-20099 holds 50 RTP/RTCP pairs.
			return strings.Replace(s, "[tls]", "max_calls = 51\n[tls]", 1)
		}, "max_calls"},
		{"account max_calls above global", func(s string) string {
			return strings.Replace(s, "[tls]", "max_calls = 2\n[tls]", 1) + "max_calls = 3\n"
		}, "account[0].max_calls"},
		{"inactivity 1s", func(s string) string {
			return strings.Replace(s, "[[account]]", "inactivity_timeout = \"1s\"\n[[account]]", 1)
		}, "media.inactivity_timeout"},
		{"allow_peers not a network", func(s string) string {
			return strings.Replace(s, "[[account]]", "allow_peers = [\"loopback\"]\n[[account]]", 1)
		}, "media.allow_peers[0]"},
		{"allow_peers host bits", func(s string) string {
			return strings.Replace(s, "[[account]]", "allow_peers = [\"127.0.0.1/8\"]\n[[account]]", 1)
		}, "media.allow_peers[0]"},
		{"listen_peer without listen", func(s string) string {
			return strings.Replace(s, "[tls]", "listen_peer = \"127.0.0.1:5060\"\n[tls]", 1)
		}, "listen_peer"},
		{"listen_peer without port", func(s string) string {
			return strings.Replace(s, "[tls]", "listen = [\"udp:127.0.0.1:5090\"]\nlisten_peer = \"127.0.0.1\"\n[tls]", 1)
		}, "listen_peer"},
		{"empty realm", func(s string) string { return s + `realm = ""` + "\n" }, "account[0].realm"},
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

// TestIdleCodeRelease: a duration in range, or "off" (0: never).
func TestIdleCodeRelease(t *testing.T) {
	for in, want := range map[string]time.Duration{`"1m"`: time.Minute, `"off"`: 0, `"1h"`: time.Hour} {
		c, err := Parse([]byte(strings.Replace(good, "[tls]", "idle_code_release = "+in+"\n[tls]", 1)), "/etc/hp")
		if err != nil {
			t.Fatalf("%s: %v", in, err)
		}
		if c.IdleCodeRelease != want {
			t.Errorf("%s: %v, want %v", in, c.IdleCodeRelease, want)
		}
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

func TestParseCallPathKeys(t *testing.T) {
	in := strings.Replace(good, "[tls]", "max_calls = 6\nlisten = [\"udp:127.0.0.1:5090\"]\nlisten_peer = \"127.0.0.1:5060\"\n[tls]", 1)
	in = strings.Replace(in, "[[account]]", "inactivity_timeout = \"30s\"\nallow_peers = [\"127.0.0.0/8\", \"192.0.2.10\"]\n[[account]]", 1)
	in += "max_calls = 2\nrealm = \"sip.example.org\"\n"
	c, err := Parse([]byte(in), "/")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	a := c.Accounts[0]
	checks := []struct {
		name      string
		got, want any
	}{
		{"max_calls", c.MaxCalls, 6},
		{"account max_calls", a.MaxCalls, 2},
		{"realm", a.Realm, "sip.example.org"},
		{"listen_peer", c.ListenPeer.String(), "127.0.0.1:5060"},
		{"inactivity_timeout", c.Media.InactivityTimeout, 30 * time.Second},
		{"allow_peers", fmt.Sprint(c.Media.AllowPeers), "[127.0.0.0/8 192.0.2.10/32]"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("Parse.%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	// A small port range lowers the default global cap to what it holds.
	small := strings.Replace(good, "20099", "20005", 1)
	c, err = Parse([]byte(small), "/")
	if err != nil {
		t.Fatalf("Parse(6 ports): %v", err)
	}
	if c.MaxCalls != 3 || c.Accounts[0].MaxCalls != 3 {
		t.Errorf("6 RTP ports: max_calls %d, account %d; want 3, 3", c.MaxCalls, c.Accounts[0].MaxCalls)
	}
}

// TestProvision: the [provision] table's keys, defaults and refusals.
func TestProvision(t *testing.T) {
	base := "state_dir = \"st\"\ncredential_store = \"software:kek\"\n[tls]\nca_file = \"ca.pem\"\n[[account]]\nuser = \"alice\"\nregistrar = \"127.0.0.1:5061\"\npassword_file = \"pw\"\n"
	good := "[provision]\nserver = \"https://fleet.example.com:8443\"\nserver_ca = \"fleet-ca.pem\"\ndevice_ca = \"device-ca.pem\"\n"
	c, err := Parse([]byte(base+good), "/etc/hp")
	if err != nil {
		t.Fatal(err)
	}
	p := c.Provision
	if p.ServerName != "fleet.example.com" || p.ServerCA != "/etc/hp/fleet-ca.pem" || p.CheckInInterval != 15*time.Minute {
		t.Errorf("Parse(provision) = %+v, want server_name from the URL, paths resolved, 15m check-ins", p)
	}
	if !c.Events.Fleet || c.Events.FleetCalls {
		t.Errorf("Parse(provision) events = %+v, want the journal to the fleet and no calls by default", c.Events)
	}
	c, err = Parse([]byte(base+good+"[events]\nfleet = false\n"), "/etc/hp")
	if err != nil || c.Events.Fleet {
		t.Errorf("Parse(events.fleet = false) = %+v, %v", c.Events, err)
	}
	c, err = Parse([]byte(base+good+"[events]\nfleet_calls = true\n"), "/etc/hp")
	if err != nil || !c.Events.Fleet || !c.Events.FleetCalls {
		t.Errorf("Parse(events.fleet_calls = true) = %+v, %v", c.Events, err)
	}
	c, err = Parse([]byte(base), "/x")
	if err != nil || c.Provision.Server != "" || c.Events.Fleet {
		t.Errorf("Parse(no [provision]) = %+v %+v, %v; want none", c.Provision, c.Events, err)
	}
	for _, tc := range []struct{ in, key string }{
		{base + "[provision]\nserver_ca = \"x\"\n", "provision.server"},
		{base + strings.Replace(good, "https://", "http://", 1), "provision.server"},
		{base + strings.Replace(good, ":8443", ":8443/enrol?x=1", 1), "provision.server"},
		{base + strings.Replace(good, "server_ca = \"fleet-ca.pem\"\n", "", 1), "provision.server_ca"},
		{base + strings.Replace(good, "device_ca = \"device-ca.pem\"\n", "", 1), "provision.device_ca"},
		{base + good + "checkin_interval = \"1s\"\n", "provision.checkin_interval"},
		{strings.Replace(base, "credential_store = \"software:kek\"\n", "", 1) + good, "credential_store"},
		{strings.Replace(base, "state_dir = \"st\"\n", "", 1) + good, "state_dir"},
		{base + "[events]\nfleet = true\n", "events.fleet"},
		{base + good + "[events]\nfleet = false\nfleet_calls = true\n", "events.fleet_calls"},
	} {
		if _, err := Parse([]byte(tc.in), "/x"); err == nil || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("Parse(%q) = %v, want an error naming %s", tc.in, err, tc.key)
		}
	}
}
