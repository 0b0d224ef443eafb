package bundle

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/diskfs/go-diskfs/backend"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/squashfs"
)

// squashfsCache bounds go-diskfs's fragment and metadata cache (128 MiB by
// default, far too much for a phone). Data blocks bypass it.
const squashfsCache = 2 << 20

// readerStorage adapts an io.ReaderAt to go-diskfs's backend.Storage, read
// only. go-diskfs reads through ReadAt only; Read and Seek exist for the
// interface.
type readerStorage struct {
	r    io.ReaderAt
	size int64
	off  int64
}

var _ backend.Storage = (*readerStorage)(nil)

func (s *readerStorage) ReadAt(p []byte, off int64) (int, error) { return s.r.ReadAt(p, off) }

func (s *readerStorage) Read(p []byte) (int, error) {
	n, err := s.r.ReadAt(p, s.off)
	s.off += int64(n)
	return n, err
}

func (s *readerStorage) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += s.off
	case io.SeekEnd:
		off += s.size
	default:
		return 0, fmt.Errorf("seek whence %d", whence)
	}
	if off < 0 {
		return 0, fmt.Errorf("seek to %d", off)
	}
	s.off = off
	return off, nil
}

func (s *readerStorage) Close() error               { return nil }
func (s *readerStorage) Stat() (fs.FileInfo, error) { return storageInfo{s.size}, nil }
func (s *readerStorage) Sys() (*os.File, error)     { return nil, backend.ErrNotSuitable }
func (s *readerStorage) Writable() (backend.WritableFile, error) {
	return nil, backend.ErrIncorrectOpenMode
}
func (s *readerStorage) Path() string { return "" }

type storageInfo struct{ size int64 }

func (i storageInfo) Name() string       { return "payload" }
func (i storageInfo) Size() int64        { return i.size }
func (i storageInfo) Mode() fs.FileMode  { return 0o444 }
func (i storageInfo) ModTime() time.Time { return time.Time{} }
func (i storageInfo) IsDir() bool        { return false }
func (i storageInfo) Sys() any           { return nil }

// squashfsMagic is "hsqs", the little-endian squashfs 4 superblock magic.
var squashfsMagic = []byte("hsqs")

// openSquashfs reads the superblock and tables of the payload. The payload
// is authenticated before this runs (verified reads or a checked digest); the
// recover is defence in depth against a signed but malformed image making
// the parser panic.
func openSquashfs(r io.ReaderAt, size int64) (fsys *squashfs.FileSystem, err error) {
	magic := make([]byte, 4)
	if _, err := r.ReadAt(magic, 0); err != nil {
		return nil, fmt.Errorf("read squashfs superblock: %w", err)
	}
	if string(magic) != string(squashfsMagic) {
		return nil, fmt.Errorf("magic %q: %w", magic, errNotSquashfs)
	}
	defer func() {
		if p := recover(); p != nil {
			fsys, err = nil, fmt.Errorf("squashfs reader failed on the payload: %v: %w", p, ErrCorrupt)
		}
	}()
	fsys, err = squashfs.Read(&readerStorage{r: r, size: size}, size, 0, 0)
	if err != nil {
		var be *BlockError
		if errors.As(err, &be) {
			return nil, err
		}
		return nil, fmt.Errorf("read squashfs: %v: %w", err, ErrCorrupt)
	}
	fsys.SetCacheSize(squashfsCache)
	return fsys, nil
}

// statFile returns the size of a regular file at the root of fsys.
func statFile(fsys *squashfs.FileSystem, name string) (size int64, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("squashfs stat %s: %v: %w", name, p, ErrCorrupt)
		}
	}()
	fi, err := fsys.Stat(name)
	if err != nil {
		return 0, fmt.Errorf("bundle has no file %q: %v: %w", name, err, ErrCorrupt)
	}
	if !fi.Mode().IsRegular() {
		return 0, fmt.Errorf("bundle file %q is %s, not a regular file: %w", name, fi.Mode().Type(), ErrCorrupt)
	}
	return fi.Size(), nil
}

func openFile(fsys *squashfs.FileSystem, name string) (f filesystem.File, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("squashfs open %s: %v: %w", name, p, ErrCorrupt)
		}
	}()
	f, err = fsys.OpenFile(name, os.O_RDONLY)
	if err != nil {
		return nil, fmt.Errorf("open bundle file %q: %v: %w", name, err, ErrCorrupt)
	}
	return f, nil
}

// readFile reads a small file whole, bounded by limit.
func readFile(fsys *squashfs.FileSystem, name string, limit int64) ([]byte, error) {
	size, err := statFile(fsys, name)
	if err != nil {
		return nil, err
	}
	if size > limit {
		return nil, fmt.Errorf("bundle file %q of %d bytes, limit %d: %w", name, size, limit, ErrCorrupt)
	}
	f, err := openFile(fsys, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, size)
	if _, err := io.ReadFull(safeReader{f}, buf); err != nil {
		return nil, fmt.Errorf("read bundle file %q: %w", name, err)
	}
	return buf, nil
}

// safeReader turns a panic inside go-diskfs's File.Read into an error.
type safeReader struct{ r io.Reader }

func (s safeReader) Read(p []byte) (n int, err error) {
	defer func() {
		if v := recover(); v != nil {
			n, err = 0, fmt.Errorf("squashfs read: %v: %w", v, ErrCorrupt)
		}
	}()
	return s.r.Read(p)
}
