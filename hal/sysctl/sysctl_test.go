//go:build linux

package sysctl

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestValidKey(t *testing.T) {
	tests := []struct {
		key string
		ok  bool
	}{
		{"net.ipv4.ip_forward", true},
		{"net.ipv6.conf.all.accept_ra", true},
		{"kernel.kptr_restrict", true},
		{"net.ipv4.conf.eth-0.rp_filter", true},
		{"kernel", false},
		{"", false},
		{"net..ipv4", false},
		{"net/ipv4/ip_forward", false},
		{"net.ipv4.../../etc", false},
		{"net.ipv4 .x", false},
		{".net.ipv4", false},
	}
	for _, tt := range tests {
		if err := ValidKey(tt.key); (err == nil) != tt.ok {
			t.Errorf("ValidKey(%q) = %v, want ok=%v", tt.key, err, tt.ok)
		}
	}
}

func TestGetSetStagedRoot(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "net/ipv4"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "net/ipv4/ip_local_port_range"), []byte("32768\t60999\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := New(WithRoot(root))
	if err != nil {
		t.Fatalf("New() = %v", err)
	}
	if got, err := f.Get("net.ipv4.ip_local_port_range"); err != nil || got != "32768 60999" {
		t.Fatalf("Get() = %q, %v, want %q", got, err, "32768 60999")
	}
	if err := f.Set("net.ipv4.ip_local_port_range", "40000 50000"); err != nil {
		t.Fatalf("Set() = %v", err)
	}
	if got, err := f.Get("net.ipv4.ip_local_port_range"); err != nil || got != "40000 50000" {
		t.Fatalf("Get() after Set = %q, %v", got, err)
	}
	if _, err := f.Get("net.ipv4.nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get(missing) = %v, want ErrNotFound", err)
	}
	if err := f.Set("net.ipv4.nope", "1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Set(missing) = %v, want ErrNotFound (no file created)", err)
	}
	if err := f.Set("net.ipv4.ip_local_port_range", "1\n2"); !errors.Is(err, errBadValue) {
		t.Errorf("Set(two lines) = %v, want errBadValue", err)
	}
}
