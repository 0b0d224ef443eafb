package blockdev

import (
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Size returns the size of the slot at path in bytes: the length of a plain
// file, or the capacity of a block device (found by seeking to its end,
// which works for both without an ioctl).
func Size(path string) (int64, error) {
	f, err := openSlot(path, os.O_RDONLY)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return size(f)
}

func size(f *os.File) (int64, error) {
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("size of slot %s: %w", f.Name(), err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("rewind slot %s: %w", f.Name(), err)
	}
	return end, nil
}

// openSlot opens an existing regular file or block device; it never creates
// one, so a wrong path fails instead of filling the root file system.
func openSlot(path string, flag int) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("slot %s: %w", path, err)
	}
	if !st.Mode().IsRegular() && st.Mode()&fs.ModeDevice == 0 {
		return nil, fmt.Errorf("slot %s (%s): %w", path, st.Mode().Type(), errNotSlot)
	}
	if st.Mode()&fs.ModeCharDevice != 0 {
		return nil, fmt.Errorf("slot %s is a character device: %w", path, errNotSlot)
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("open slot: %w", err)
	}
	return f, nil
}

// Writer writes a slot sequentially from its first byte. It is not safe for
// concurrent use.
type Writer struct {
	f    *os.File // nil once Commit or Abort ran
	path string
	cap  int64 // slot size in bytes
	off  int64 // bytes written so far
}

// OpenWriter opens the slot at path for writing from offset 0. Bytes past
// what is written keep their old contents.
func OpenWriter(path string) (*Writer, error) {
	f, err := openSlot(path, os.O_WRONLY)
	if err != nil {
		return nil, err
	}
	n, err := size(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Writer{f: f, path: path, cap: n}, nil
}

// Capacity is the slot size in bytes.
func (w *Writer) Capacity() int64 { return w.cap }

// Written is the number of bytes written so far.
func (w *Writer) Written() int64 { return w.off }

// Write writes p at the current offset. Data that would run past the end of
// the slot is refused whole with ErrNoSpace, and nothing of p is written.
func (w *Writer) Write(p []byte) (int, error) {
	if w.f == nil {
		return 0, errClosed
	}
	if int64(len(p)) > w.cap-w.off {
		return 0, fmt.Errorf("slot %s: %d bytes at offset %d, slot holds %d: %w", w.path, len(p), w.off, w.cap, ErrNoSpace)
	}
	n, err := w.f.WriteAt(p, w.off)
	w.off += int64(n)
	if err != nil {
		return n, fmt.Errorf("write slot %s at %d: %w", w.path, w.off, err)
	}
	return n, nil
}

// Commit syncs the slot to stable storage, then closes it. The slot holds
// the written data only when Commit returns nil.
func (w *Writer) Commit() error {
	if w.f == nil {
		return errClosed
	}
	f := w.f
	w.f = nil
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync slot %s: %w", w.path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close slot %s: %w", w.path, err)
	}
	return nil
}

// Abort closes the slot without syncing; its contents are undefined. Abort
// after Commit does nothing.
func (w *Writer) Abort() error {
	if w.f == nil {
		return nil
	}
	f := w.f
	w.f = nil
	return f.Close()
}
