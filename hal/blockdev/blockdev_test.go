package blockdev

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func newSlot(t *testing.T, size int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "slot")
	if err := os.WriteFile(path, bytes.Repeat([]byte{0xAA}, size), 0o600); err != nil {
		t.Fatalf("create slot: %v", err)
	}
	return path
}

func TestWriterCommit(t *testing.T) {
	path := newSlot(t, 1000)
	if n, err := Size(path); err != nil || n != 1000 {
		t.Fatalf("Size() = %d, %v, want 1000", n, err)
	}
	w, err := OpenWriter(path)
	if err != nil {
		t.Fatalf("OpenWriter() error %v", err)
	}
	for i := 0; i < 3; i++ {
		if _, err := w.Write(bytes.Repeat([]byte{byte(i)}, 100)); err != nil {
			t.Fatalf("Write() error %v", err)
		}
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit() error %v", err)
	}
	if _, err := w.Write([]byte{1}); !errors.Is(err, errClosed) {
		t.Errorf("Write() after Commit error %v, want errClosed", err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read slot: %v", err)
	}
	want := append(append(append(bytes.Repeat([]byte{0}, 100), bytes.Repeat([]byte{1}, 100)...),
		bytes.Repeat([]byte{2}, 100)...), bytes.Repeat([]byte{0xAA}, 700)...)
	if !bytes.Equal(got, want) {
		t.Errorf("slot after Commit differs: the written prefix or the untouched tail is wrong")
	}
}

// TestWriterNoSpace proves a write past the end changes nothing: the slot
// keeps its size and its bytes.
func TestWriterNoSpace(t *testing.T) {
	path := newSlot(t, 100)
	w, err := OpenWriter(path)
	if err != nil {
		t.Fatalf("OpenWriter() error %v", err)
	}
	defer w.Abort()
	if _, err := w.Write(make([]byte, 101)); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("Write(101 bytes into 100) error %v, want ErrNoSpace", err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read slot: %v", err)
	}
	if !bytes.Equal(got, bytes.Repeat([]byte{0xAA}, 100)) {
		t.Errorf("refused write changed the slot")
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	tests := []struct{ name, path string }{
		{"missing", filepath.Join(dir, "none")},
		{"directory", dir},
		{"char device", "/dev/null"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := OpenWriter(tt.path); err == nil {
				t.Errorf("OpenWriter(%s) succeeded, want an error", tt.path)
			}
			if _, err := os.Stat(filepath.Join(dir, "none")); err == nil {
				t.Errorf("OpenWriter created a file")
			}
		})
	}
}
