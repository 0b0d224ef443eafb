package agent

import (
	"strings"
	"testing"

	"github.com/hardphone/hardphone/agent/sip"
)

func TestJudgeBoot(t *testing.T) {
	reg := sip.AccountStatus{Name: "a", Registered: true}
	unreachable := sip.AccountStatus{Name: "b", LastError: "tls flow to x: dial TCP error: connection refused", ErrorClass: sip.ErrorNetwork}
	refused := sip.AccountStatus{Name: "c", LastError: "register: REGISTER answered 403 Forbidden", ErrorClass: sip.ErrorRefused}
	other := sip.AccountStatus{Name: "d", LastError: "register: context deadline exceeded", ErrorClass: sip.ErrorOther}
	starting := sip.AccountStatus{Name: "e"}
	tests := []struct {
		name             string
		in               []sip.AccountStatus
		registered, runs bool
		reason           string
	}{
		{"all registered", []sip.AccountStatus{reg, reg}, true, true, "every account registered"},
		{"registrar unreachable", []sip.AccountStatus{reg, unreachable}, false, true, "unreachable at the network level for b"},
		{"refused", []sip.AccountStatus{unreachable, refused}, false, false, "c: refused"},
		{"no answer on the flow", []sip.AccountStatus{other}, false, false, "d: other"},
		{"first attempt in progress", []sip.AccountStatus{starting, unreachable}, false, false, "first registration in progress"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := judgeBoot(tt.in)
			if h.registered != tt.registered || h.runs != tt.runs || !strings.Contains(h.reason, tt.reason) {
				t.Errorf("judgeBoot() = %+v, want registered %v runs %v reason containing %q", h, tt.registered, tt.runs, tt.reason)
			}
		})
	}
}
