package configdoc

import (
	"slices"
	"strings"
	"testing"
)

func TestStripSealed(t *testing.T) {
	group := []byte("lockdown_policy = \"strict\"\n[[account]]\nname = \"desk\"\nregistrar = \"sip.example.test:5061\"\npassword_cred = \"sip-desk\"\n")
	dev := []byte("[[account]]\nname = \"desk\"\nuser = \"1001\"\n")
	g, err := Parse(group)
	if err != nil {
		t.Fatalf("Parse(group) = %v", err)
	}
	d, err := Parse(dev)
	if err != nil {
		t.Fatalf("Parse(device) = %v", err)
	}
	c, err := Compose(g, d)
	if err != nil {
		t.Fatalf("Compose = %v", err)
	}
	plain, err := c.Encode()
	if err != nil {
		t.Fatalf("Encode = %v", err)
	}
	if err := c.SetSealed(map[int]string{0: "hps1.sealed-value"}); err != nil {
		t.Fatalf("SetSealed = %v", err)
	}
	published, err := c.Encode()
	if err != nil {
		t.Fatalf("Encode(sealed) = %v", err)
	}
	got, err := StripSealed(published)
	if err != nil {
		t.Fatalf("StripSealed = %v", err)
	}
	if string(got) != string(plain) {
		t.Fatalf("StripSealed(published) = %q, want %q", got, plain)
	}
	if _, err := StripSealed([]byte("x = [")); err == nil {
		t.Fatalf("StripSealed(broken TOML) succeeded")
	}
}

func TestPolicyChanged(t *testing.T) {
	base := "lockdown_policy = \"strict\"\n[media]\nallow_peers = [\"10.0.0.0/8\"]\nlocal_ip = \"10.0.0.2\"\n"
	acct := "[[account]]\nname = \"line1\"\nregistrar = \"sip.example.test:5061\"\nanswer = \"ring\"\nexpires = \"1h\"\n"
	for _, tt := range []struct {
		name string
		a, b string
		want []string
	}{
		{"same", base, base, nil},
		{"media but not its peers", base, strings.Replace(base, "10.0.0.2", "10.0.0.3", 1), nil},
		{"lockdown policy", base, strings.Replace(base, "strict", "off", 1), []string{"lockdown_policy"}},
		{"media peers", base, strings.Replace(base, "10.0.0.0/8", "0.0.0.0/0", 1), []string{"media.allow_peers"}},
		{"trust anchor", base, base + "[update]\nkeyring = \"/etc/other.pem\"\n", []string{"update"}},
		{"an account's display settings", base + acct, base + strings.Replace(acct, "expires = \"1h\"", "expires = \"2h\"", 1), nil},
		{"auto-answer", base + acct, base + strings.Replace(acct, "answer = \"ring\"", "answer = \"auto\"", 1), []string{"account.line1.answer"}},
		{"dialling policy", base + acct, base + acct + "[account.dialing]\ninternational = true\n", []string{"account.line1.dialing"}},
		{"a new account", base, base + acct, []string{"account.line1.registrar", "account.line1.answer"}},
		{"where events go", base, base + "[events]\nsyslog = \"collector.example:6514\"\n", []string{"events"}},
	} {
		var a, b []byte
		if tt.a != "" {
			a = []byte(tt.a)
		}
		if tt.b != "" {
			b = []byte(tt.b)
		}
		got, err := PolicyChanged(a, b)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("PolicyChanged(%s) = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	if got, err := PolicyChanged(nil, []byte(base)); err != nil || !slices.Contains(got, "lockdown_policy") {
		t.Errorf("PolicyChanged(none, a policy) = %v, %v; want lockdown_policy", got, err)
	}
}
