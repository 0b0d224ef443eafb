package kmod

import "testing"

func TestCompressed(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"/lib/modules/virtio_blk.ko", false},
		{"/lib/modules/virtio_blk.ko.xz", true},
		{"/lib/modules/virtio_blk.ko.zst", true},
		{"/lib/modules/virtio_blk.ko.gz", true},
		{"/lib/modules/xz.ko", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := compressed(tt.path); got != tt.want {
				t.Errorf("compressed(%q) = %v, want %v", tt.path, got, tt.want)
			}
		})
	}
}

func TestLoadMissingFile(t *testing.T) {
	if err := Load("/nonexistent/module.ko", ""); err == nil {
		t.Fatalf("Load(missing file) = nil, want an error")
	}
}
