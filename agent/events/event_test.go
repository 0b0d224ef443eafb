package events

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClean(t *testing.T) {
	tests := []struct {
		name, in string
		max      int
		want     string
	}{
		{"plain", "friendly-scanner", 256, "friendly-scanner"},
		{"terminal escape", "ua\x1b[31mred", 256, "ua\uFFFD[31mred"},
		{"newline and NUL", "a\nb\x00c\r", 256, "a\uFFFDb\uFFFDc\uFFFD"},
		{"C1 control", "a\u0085b", 256, "a\uFFFDb"},
		{"bidi override", "abc\u202Eevil", 256, "abc\uFFFDevil"},
		{"line separator", "a\u2028b", 256, "a\uFFFDb"},
		{"invalid UTF-8", "a\xffb\xc3", 256, "a\uFFFDb\uFFFD"},
		{"cut with ellipsis", strings.Repeat("x", 300), 256, strings.Repeat("x", 253) + "…"},
		{"exact fit", strings.Repeat("x", 256), 256, strings.Repeat("x", 256)},
		{"cut on a rune boundary", strings.Repeat("é", 10), 8, "éé…"},
		{"huge input", strings.Repeat("\x00", 1<<20), 9, "\uFFFD\uFFFD…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := clean(tt.in, tt.max)
			if got != tt.want {
				t.Errorf("clean(%.40q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
			if len(got) > tt.max || !utf8.ValidString(got) || !isClean(got, tt.max) {
				t.Errorf("clean(%.40q, %d) = %q: not within bounds or not clean", tt.in, tt.max, got)
			}
		})
	}
}

func TestSanitize(t *testing.T) {
	in := Event{
		Kind:     KindScanner,
		Severity: SeverityEmergency, // replaced by the kind's
		Account:  strings.Repeat("a", 100),
		Peer:     netip.MustParseAddrPort("[::ffff:192.0.2.1%eth0]:5060"),
		Detail:   Detail{"user_agent": "x\x07"},
	}
	got, err := sanitize(in)
	if err != nil {
		t.Fatalf("sanitize = %v", err)
	}
	if got.Severity != SeverityWarning {
		t.Errorf("Severity = %v, want warning (the kind's)", got.Severity)
	}
	if len(got.Account) > MaxAccount {
		t.Errorf("Account of %d bytes, want at most %d", len(got.Account), MaxAccount)
	}
	if want := netip.MustParseAddrPort("192.0.2.1:5060"); got.Peer != want {
		t.Errorf("Peer = %v, want %v (zone dropped, IPv4 unmapped)", got.Peer, want)
	}
	if got.Detail["user_agent"] != "x\uFFFD" {
		t.Errorf("Detail[user_agent] = %q, want %q", got.Detail["user_agent"], "x\uFFFD")
	}
	in.Detail["user_agent"] = "changed"
	if got.Detail["user_agent"] == "changed" {
		t.Errorf("sanitize kept the caller's map")
	}
	for _, k := range []string{"sip_password", "auth_token", "Authorization", "", "9x", strings.Repeat("k", 33)} {
		if _, err := sanitize(Event{Kind: KindScanner, Detail: Detail{k: "v"}}); !errors.Is(err, ErrInvalidEvent) {
			t.Errorf("sanitize(detail key %q) = %v, want ErrInvalidEvent", k, err)
		}
	}
}

func TestKindsFitMSGID(t *testing.T) {
	for _, k := range Kinds() {
		if !k.wellFormed() {
			t.Errorf("kind %q is not a valid MSGID (RFC 5424 §6.2.7)", k)
		}
		if !k.Severity().Valid() {
			t.Errorf("kind %q severity %d", k, k.Severity())
		}
	}
}

// TestNearExpirySeverity: cert.near_expiry is graded by its days_left
// detail, whatever severity the emitter set; without a readable days_left
// it keeps the kind's.
func TestNearExpirySeverity(t *testing.T) {
	tests := []struct {
		name   string
		detail Detail
		want   Severity
	}{
		{"expired an hour ago", Detail{DetailDaysLeft: "-1"}, SeverityCritical},
		{"expires today", Detail{DetailDaysLeft: "0"}, SeverityError},
		{"2 days left", Detail{DetailDaysLeft: "2"}, SeverityError},
		{"3 days left", Detail{DetailDaysLeft: "3"}, SeverityWarning},
		{"13 days left", Detail{DetailDaysLeft: "13"}, SeverityWarning},
		{"14 days left", Detail{DetailDaysLeft: "14"}, SeverityNotice},
		{"29 days left", Detail{DetailDaysLeft: "29"}, SeverityNotice},
		{"no days_left", Detail{"role": "identity"}, KindCertNearExpiry.Severity()},
		{"days_left not a number", Detail{DetailDaysLeft: "soon"}, KindCertNearExpiry.Severity()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sanitize(Event{Kind: KindCertNearExpiry, Severity: SeverityDebug, Detail: tt.detail})
			if err != nil {
				t.Fatalf("sanitize = %v", err)
			}
			if got.Severity != tt.want {
				t.Errorf("sanitize(%v).Severity = %v, want %v", tt.detail, got.Severity, tt.want)
			}
		})
	}
	// Other kinds ignore a days_left detail.
	got, err := sanitize(Event{Kind: KindScanner, Detail: Detail{DetailDaysLeft: "-5"}})
	if err != nil || got.Severity != KindScanner.Severity() {
		t.Errorf("sanitize(scanner with days_left) = %v, %v; want the kind's %v", got.Severity, err, KindScanner.Severity())
	}
}
