package agent

import "testing"

// TestCallNumber: only a number leaves the phone; names and strange URIs
// send none.
func TestCallNumber(t *testing.T) {
	tests := []struct{ peer, want string }{
		{"sip:+4930123456@pbx.example", "+4930123456"},
		{"Alice <sips:1001@pbx.example;transport=tls>", "1001"},
		{"tel:+19005550123", "+19005550123"},
		{"SIP:0900123@pbx.example", "0900123"},
		{"sip:alice@pbx.example", ""},
		{"sip:+@pbx.example", ""},
		{"sip:12+3@pbx.example", ""},
		{"sip:" + "123456789012345678901234567890123@x", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := callNumber(tt.peer); got != tt.want {
			t.Errorf("callNumber(%q) = %q, want %q", tt.peer, got, tt.want)
		}
	}
}
