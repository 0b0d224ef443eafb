package system

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardphone/hardphone/agent/config"
	"github.com/hardphone/hardphone/test"
)

// TestPhoneBoardNeedsLockdown: on a phone board the agent does not start
// without a lockdown policy; a config without a board (a desktop) may.
func TestPhoneBoardNeedsLockdown(t *testing.T) {
	dir := t.TempDir()
	pki := test.NewPKI(t, filepath.Join(dir, "pki"))
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	account := "[tls]\nca_file = %q\n[[account]]\nuser = \"alice\"\nregistrar = \"127.0.0.1:5061\"\npassword_file = \"pw\"\n"
	for _, tt := range []struct {
		name, top, wantErr string
	}{
		{"phone board, no policy", "board = \"qemu-arm64\"\n", "does not run without a lockdown policy"},
		{"desktop, no policy", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := tt.top + strings.Replace(account, "%q", `"`+pki.CAFile+`"`, 1)
			cfg, err := config.Parse([]byte(body), dir)
			if err != nil {
				t.Fatal(err)
			}
			ph, err := Open(cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ph.Close()
			_, err = ph.Agent(OneShot, "test")
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Agent() = %v, want an agent", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Agent() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}
