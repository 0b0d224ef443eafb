package system

import (
	"path/filepath"
	"testing"

	"github.com/hardphone/hardphone/crypto/credstore"
)

func TestOpenProtectorSpec(t *testing.T) {
	tests := []struct {
		spec    string
		opts    []credstore.TPMOption
		want    credstore.Protection
		wantErr bool
	}{
		{"software:" + filepath.Join(t.TempDir(), "kek"), nil, credstore.ProtectionSoftware, false},
		{"software:/x/kek", []credstore.TPMOption{credstore.WithPCRs(7)}, 0, true},
		{"software:", nil, 0, true},
		{"swtpm:unix:/nonexistent.sock", nil, credstore.ProtectionTPM, false}, // opening sends nothing
		{"swtpm:unix:/x.sock", []credstore.TPMOption{credstore.WithPCRs(99)}, 0, true},
		{"swtpm:unix:/x.sock", []credstore.TPMOption{credstore.WithGenerationCounter(0x81000001)}, 0, true},
		{"nonsense", nil, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			p, err := OpenProtector(tt.spec, tt.opts...)
			if (err != nil) != tt.wantErr {
				t.Fatalf("OpenProtector(%q) error = %v, want error %t", tt.spec, err, tt.wantErr)
			}
			if err != nil {
				return
			}
			defer p.Close()
			if p.Protection() != tt.want {
				t.Fatalf("OpenProtector(%q).Protection() = %v, want %v", tt.spec, p.Protection(), tt.want)
			}
		})
	}
}
