package agent

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hardphone/hardphone/agent/control"
	"github.com/hardphone/hardphone/fleet/api"
)

// TestCutText: a reason quoting a server is bounded and valid UTF-8, so
// the report carrying it stays canonical JSON the fleet accepts.
func TestCutText(t *testing.T) {
	tests := []struct {
		name, in string
	}{
		{"short", "fetch timestamp.json: 404 Not Found"},
		{"invalid UTF-8", "server said \xff\xfe\xfd"},
		{"long, split inside a rune", strings.Repeat("é", maxErrorText)},
		{"long ASCII", strings.Repeat("x", 3*maxErrorText)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := cutText(tt.in)
			if len(got) > maxErrorText || !utf8.ValidString(got) {
				t.Fatalf("cutText(%q) = %q: %d bytes, valid %v; want at most %d valid bytes", tt.in, got, len(got), utf8.ValidString(got), maxErrorText)
			}
			ps := &control.ProvisioningStatus{LastError: tt.in}
			r := api.Report{DeviceID: "dev-1", SentAt: time.Unix(1800000000, 0).UTC(), Model: "m", Firmware: api.Firmware{Version: "1"},
				Provisioning: &api.Provisioning{LastError: reportError(ps)}}
			b, err := api.MarshalReport(r)
			if err != nil {
				t.Fatalf("MarshalReport = %v", err)
			}
			if _, err := api.ParseReport(b); err != nil {
				t.Fatalf("ParseReport(report with the reason) = %v, want a report the fleet accepts", err)
			}
		})
	}
}

// TestReportError: the one reason a report gives, in order: the
// refresh's, a refused newer document's, the firmware's.
func TestReportError(t *testing.T) {
	refused := &control.DocumentOutcome{Version: 3, Reason: "config key tls: only the phone's image sets this key"}
	fw := &control.FirmwareStatus{Version: "2.0", State: control.FirmwareFailed, Detail: "install: below the floor"}
	tests := []struct {
		name string
		ps   control.ProvisioningStatus
		want string
	}{
		{"refresh first", control.ProvisioningStatus{LastError: "metadata expired", Refused: refused, Firmware: fw, GoodVersion: 2}, "metadata expired"},
		{"refused newer document", control.ProvisioningStatus{Refused: refused, Firmware: fw, GoodVersion: 2}, "configuration v3 refused: config key tls"},
		{"refused older document is history", control.ProvisioningStatus{Refused: refused, Firmware: fw, GoodVersion: 4}, "firmware 2.0: install: below the floor"},
		{"nothing", control.ProvisioningStatus{GoodVersion: 4}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reportError(&tt.ps); !strings.HasPrefix(got, tt.want) || tt.want == "" && got != "" {
				t.Fatalf("reportError(%+v) = %q, want %q", tt.ps, got, tt.want)
			}
		})
	}
}
