package bundle

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"runtime"
	"time"

	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/squashfs"
)

// A bundle file, both formats (RAUC bundle.c):
//
//	0                                  sigOffset            size-8     size
//	+----------------------------------+--------------------+----------+
//	| payload                          | CMS SignedData DER | sigLen   |
//	+----------------------------------+--------------------+----------+
//	                                                          u64 BE = size-8-sigOffset
//
//	plain:  payload = squashfs (zero-padded to 4 KiB); CMS detached,
//	        messageDigest = digest(payload); manifest.raucm inside the squashfs.
//	verity: payload = squashfs (zero-padded to 4 KiB) || hash tree (verity-size);
//	        CMS carries the manifest as id-data content; the manifest binds
//	        the tree root, the tree binds every payload block.

// MaxSignatureSize is RAUC's bound on the CMS at the end of a bundle.
const MaxSignatureSize = 64 << 10

const trailerLen = 8

// Option configures Open.
type Option func(*options) error

type options struct {
	purpose  Purpose
	now      func() time.Time
	workDir  string
	inPlace  bool
	log      *slog.Logger
	progress func(done, total int64)
}

// WithPurpose selects the certificate purpose rule; the default is
// PurposeCodeSign.
func WithPurpose(p Purpose) Option {
	return func(o *options) error {
		if p != PurposeCodeSign && p != PurposeSMIME {
			return fmt.Errorf("WithPurpose(%d): unknown purpose", int(p))
		}
		o.purpose = p
		return nil
	}
}

// WithClock sets the time certificates are checked at (default time.Now).
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return errors.New("WithClock: nil clock")
		}
		o.now = now
		return nil
	}
}

// WithWorkDir sets where a plain bundle's private copy is made (default
// os.TempDir()). The copy is unlinked at once and needs as much free space
// as the payload.
func WithWorkDir(dir string) Option {
	return func(o *options) error {
		if dir == "" {
			return errors.New("WithWorkDir: empty directory")
		}
		o.workDir = dir
		return nil
	}
}

// WithPlainInPlace reads a plain bundle's payload where it is instead of
// from a private copy. Only for a file nobody else can write, such as one
// this process downloaded or a build host's output: otherwise the file can
// change between digest check and use.
func WithPlainInPlace() Option {
	return func(o *options) error { o.inPlace = true; return nil }
}

// WithLogger sets the logger; the package adds component=bundle.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return errors.New("WithLogger: nil logger")
		}
		o.log = l
		return nil
	}
}

// WithProgress is called with bytes done and total while Open hashes a plain
// payload.
func WithProgress(f func(done, total int64)) Option {
	return func(o *options) error { o.progress = f; return nil }
}

// Bundle is an opened bundle whose signature verified. Its Manifest is
// authentic. Payload reads through it are authenticated: verity blocks on
// every read, plain payloads by the digest checked during Open over the
// private copy they are read from. Not safe for concurrent use.
type Bundle struct {
	// Manifest is the signed manifest; never nil.
	Manifest *Manifest
	// Signature tells who signed and how.
	Signature Signature
	// Size is the bundle file size in bytes.
	Size int64
	// PayloadSize is the squashfs size: for verity bundles without the tree.
	PayloadSize int64

	src     io.ReaderAt
	closers []io.Closer
	payload io.ReaderAt     // authenticated reads of the squashfs
	ver     *verifier       // verity only
	vr      *verifiedReader // verity only
	fsys    *squashfs.FileSystem
	log     *slog.Logger
}

// OpenFile opens and verifies the bundle at path. See Open.
func OpenFile(path string, kr *Keyring, opts ...Option) (*Bundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open bundle: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open bundle: %w", err)
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("open bundle %s: not a regular file", path)
	}
	b, err := Open(f, st.Size(), kr, opts...)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("bundle %s: %w", path, err)
	}
	b.closers = append(b.closers, f)
	return b, nil
}

// Open reads the trailer and the CMS of the size-byte bundle r, verifies the
// signature against kr, and parses the signed manifest. For a verity bundle
// it then reads the hash tree and checks it against the signed root; for a
// plain bundle it copies the payload to a private file while hashing it and
// checks the digest (see WithPlainInPlace). Nothing of the bundle is
// returned unless all of that passed.
func Open(r io.ReaderAt, size int64, kr *Keyring, opts ...Option) (*Bundle, error) {
	o := options{purpose: PurposeCodeSign, now: time.Now, workDir: os.TempDir(), log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	log := o.log.With("component", "bundle")
	sigOffset, der, err := readTrailer(r, size)
	if err != nil {
		return nil, err
	}
	c, err := parseCMS(der, kr, o.purpose, o.now())
	if err != nil {
		return nil, err
	}
	b := &Bundle{Signature: c.sig, Size: size, src: r, log: log}
	if len(c.p7.Content) > 0 {
		err = b.openVerity(c, sigOffset)
	} else {
		err = b.openPlain(c, sigOffset, o)
	}
	if err != nil {
		b.Close()
		return nil, err
	}
	log.Info("bundle signature verified", "format", b.Manifest.Format, "compatible", b.Manifest.Compatible,
		"version", b.Manifest.Version, "security_version", b.Manifest.SecurityVersion, "signer", c.sig.Signer.Subject.String())
	return b, nil
}

func readTrailer(r io.ReaderAt, size int64) (sigOffset int64, der []byte, err error) {
	if size <= trailerLen {
		return 0, nil, fmt.Errorf("bundle of %d bytes is truncated: %w: %w", size, errTrailer, ErrCorrupt)
	}
	var tr [trailerLen]byte
	if _, err := r.ReadAt(tr[:], size-trailerLen); err != nil {
		return 0, nil, fmt.Errorf("read bundle trailer: %w", err)
	}
	sigLen := binary.BigEndian.Uint64(tr[:])
	// RAUC refuses 0, more than the file holds, and more than 64 KiB.
	if sigLen == 0 || sigLen > uint64(size-trailerLen) || sigLen > MaxSignatureSize {
		return 0, nil, fmt.Errorf("signature length %d in a bundle of %d bytes (limit %d): truncated or not a bundle: %w: %w",
			sigLen, size, MaxSignatureSize, errTrailer, ErrCorrupt)
	}
	sigOffset = size - trailerLen - int64(sigLen)
	if sigOffset == 0 {
		return 0, nil, fmt.Errorf("bundle has no payload: %w: %w", errTrailer, ErrCorrupt)
	}
	der = make([]byte, sigLen)
	if _, err := r.ReadAt(der, sigOffset); err != nil {
		return 0, nil, fmt.Errorf("read bundle signature: %w", err)
	}
	return sigOffset, der, nil
}

func (b *Bundle) openVerity(c *cms, sigOffset int64) error {
	if err := c.verifyContent(nil); err != nil {
		return err
	}
	m, err := ParseManifest(c.p7.Content)
	if err != nil {
		return fmt.Errorf("signed manifest: %w", err)
	}
	if m.Format != FormatVerity {
		return fmt.Errorf("manifest with signature embedded says format %s, want verity: %w", m.Format, ErrCorrupt)
	}
	v := m.Verity
	dataSize := sigOffset - v.Size
	if dataSize <= BlockSize || dataSize%BlockSize != 0 {
		return fmt.Errorf("verity-size %d leaves %d payload bytes before the signature at %d: %w", v.Size, dataSize, sigOffset, ErrCorrupt)
	}
	treeSize, err := TreeSize(dataSize)
	if err != nil {
		return err
	}
	if treeSize != v.Size {
		return fmt.Errorf("verity-size %d, a tree over %d bytes takes %d: %w", v.Size, dataSize, treeSize, ErrCorrupt)
	}
	tree := make([]byte, v.Size)
	if _, err := b.src.ReadAt(tree, dataSize); err != nil {
		return fmt.Errorf("read verity tree: %w", err)
	}
	ver, err := newVerifier(tree, v.Hash, v.Salt, dataSize/BlockSize)
	if err != nil {
		return err
	}
	b.Manifest, b.PayloadSize, b.ver = m, dataSize, ver
	b.vr = newVerifiedReader(b.src, ver)
	b.payload = b.vr
	return nil
}

func (b *Bundle) openPlain(c *cms, sigOffset int64, o options) error {
	payload := io.NewSectionReader(b.src, 0, sigOffset)
	var h hash.Hash = c.sig.Digest.New()
	var dst io.Writer = h
	var private *os.File
	if !o.inPlace {
		f, err := os.CreateTemp(o.workDir, ".bundle-*")
		if err != nil {
			return fmt.Errorf("private copy of plain bundle: %w", err)
		}
		// Unlinked at once: nobody else can open it, and it vanishes with
		// the descriptor, even after a crash.
		if err := os.Remove(f.Name()); err != nil {
			f.Close()
			return fmt.Errorf("private copy of plain bundle: %w", err)
		}
		b.closers = append(b.closers, f)
		private = f
		dst = io.MultiWriter(h, f)
	}
	buf := make([]byte, 1<<20)
	var done int64
	for {
		n, err := payload.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return fmt.Errorf("private copy of plain bundle: %w", werr)
			}
			done += int64(n)
			if o.progress != nil {
				o.progress(done, sigOffset)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read plain payload: %w", err)
		}
	}
	if err := c.verifyContent(h.Sum(nil)); err != nil {
		return err
	}
	b.payload = payload
	if private != nil {
		b.payload = private
	}
	b.PayloadSize = sigOffset
	fsys, err := openSquashfs(b.payload, sigOffset)
	if err != nil {
		return err
	}
	b.fsys = fsys
	raw, err := readFile(fsys, "manifest.raucm", MaxManifestSize)
	if err != nil {
		return fmt.Errorf("plain bundle manifest: %w", err)
	}
	m, err := ParseManifest(raw)
	if err != nil {
		return fmt.Errorf("plain bundle manifest: %w", err)
	}
	if m.Format != FormatPlain {
		return fmt.Errorf("manifest in a bundle with detached signature says format %s, want plain: %w", m.Format, ErrCorrupt)
	}
	b.Manifest = m
	return nil
}

// Close releases the bundle's files.
func (b *Bundle) Close() error {
	var first error
	for _, c := range b.closers {
		if err := c.Close(); err != nil && first == nil {
			first = err
		}
	}
	b.closers = nil
	return first
}

// Format is the bundle's format.
func (b *Bundle) Format() Format { return b.Manifest.Format }

// squashfs opens the payload file system once.
func (b *Bundle) squashfs() (*squashfs.FileSystem, error) {
	if b.fsys != nil {
		return b.fsys, nil
	}
	fsys, err := openSquashfs(b.payload, b.PayloadSize)
	if err != nil {
		return nil, b.blockErr(err)
	}
	b.fsys = fsys
	return fsys, nil
}

// blockErr prefers the verity mismatch that caused err, which go-diskfs
// flattens into text.
func (b *Bundle) blockErr(err error) error {
	if b.vr != nil {
		var already *BlockError
		if be := b.vr.failure(); be != nil && !errors.As(err, &already) {
			return fmt.Errorf("%w: %w", err, be)
		}
	}
	return err
}

// CheckPayload proves the whole payload authentic before anything is
// written: for a verity bundle every data block is read and checked against
// the tree (on all CPUs), for both formats every image of the manifest must
// be a regular file of the manifest's size. progress, if not nil, is called
// with bytes checked, from the checking goroutines but never concurrently.
func (b *Bundle) CheckPayload(ctx context.Context, progress func(int64)) error {
	if b.ver != nil {
		if err := b.ver.checkAll(ctx, b.src, runtime.GOMAXPROCS(0), progress); err != nil {
			return fmt.Errorf("check payload: %w", err)
		}
	}
	fsys, err := b.squashfs()
	if err != nil {
		return fmt.Errorf("check payload: %w", err)
	}
	for _, im := range b.Manifest.Images {
		size, err := statFile(fsys, im.Filename)
		if err != nil {
			return fmt.Errorf("check payload: %w", b.blockErr(err))
		}
		if size != im.Size {
			return fmt.Errorf("check payload: image %s is %d bytes, manifest says %d: %w", im.Filename, size, im.Size, ErrCorrupt)
		}
	}
	return nil
}

// ImageReader streams one image out of the bundle. Every byte it returns
// passed the payload check; at the end of the image it compares the size and
// sha256 with the manifest and returns ErrCorrupt instead of io.EOF when they
// differ. Read with large buffers (1 MiB): go-diskfs walks the image's
// block list on every call.
type ImageReader struct {
	b   *Bundle
	im  Image
	f   filesystem.File
	h   hash.Hash
	n   int64
	err error // sticky: io.EOF after a verified end, or the failure
}

// OpenImage opens the image im of the manifest.
func (b *Bundle) OpenImage(im Image) (*ImageReader, error) {
	fsys, err := b.squashfs()
	if err != nil {
		return nil, err
	}
	size, err := statFile(fsys, im.Filename)
	if err != nil {
		return nil, b.blockErr(err)
	}
	if size != im.Size {
		return nil, fmt.Errorf("image %s is %d bytes, manifest says %d: %w", im.Filename, size, im.Size, ErrCorrupt)
	}
	f, err := openFile(fsys, im.Filename)
	if err != nil {
		return nil, b.blockErr(err)
	}
	return &ImageReader{b: b, im: im, f: f, h: sha256.New()}, nil
}

// Read implements io.Reader. Errors are sticky: after a mismatch every
// further Read returns the same error, never io.EOF.
func (r *ImageReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := safeReader{r.f}.Read(p)
	if n > 0 {
		r.h.Write(p[:n])
		r.n += int64(n)
		if r.n > r.im.Size {
			r.err = fmt.Errorf("image %s longer than the manifest's %d bytes: %w", r.im.Filename, r.im.Size, ErrCorrupt)
			return 0, r.err
		}
	}
	switch {
	case err == io.EOF || err == nil && r.n == r.im.Size:
		if err := r.finish(); err != nil {
			return 0, err
		}
		return n, io.EOF
	case err != nil:
		r.err = fmt.Errorf("read image %s at %d: %w", r.im.Filename, r.n, r.b.blockErr(err))
		return 0, r.err
	}
	return n, nil
}

// imageBuffer is the read size for WriteTo: go-diskfs decompresses whole
// squashfs blocks and walks the block list on every Read.
const (
	imageBuffer  = 1 << 20
	imageBuffers = 4
)

// WriteTo implements io.WriterTo, the fast path io.Copy takes: one
// goroutine reads the image (verity checks, decompression) into 1 MiB
// buffers while the caller's goroutine hashes them and writes them to w, so
// the two SHA-256 passes (blocks and image) run on two CPUs. The size and
// sha256 are compared after the last byte was handed to w; on a mismatch
// WriteTo returns ErrCorrupt, and what w got must be thrown away.
func (r *ImageReader) WriteTo(w io.Writer) (int64, error) {
	if r.err != nil {
		if r.err == io.EOF {
			return 0, nil
		}
		return 0, r.err
	}
	type chunk struct {
		buf []byte
		n   int
		err error
	}
	free := make(chan []byte, imageBuffers)
	for i := 0; i < imageBuffers; i++ {
		free <- make([]byte, imageBuffer)
	}
	full := make(chan chunk, imageBuffers)
	stop := make(chan struct{})
	go func() {
		defer close(full)
		for {
			var buf []byte
			select {
			case buf = <-free:
			case <-stop:
				return
			}
			n := 0
			var err error
			for n < len(buf) && err == nil {
				var m int
				m, err = safeReader{r.f}.Read(buf[n:])
				n += m
			}
			select {
			case full <- chunk{buf, n, err}:
			case <-stop:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		close(stop)
		for range full {
		}
	}()
	var written int64
	for c := range full {
		if c.n > 0 {
			r.n += int64(c.n)
			if r.n > r.im.Size {
				r.err = fmt.Errorf("image %s longer than the manifest's %d bytes: %w", r.im.Filename, r.im.Size, ErrCorrupt)
				return written, r.err
			}
			r.h.Write(c.buf[:c.n])
			m, err := w.Write(c.buf[:c.n])
			written += int64(m)
			if err != nil {
				r.err = err
				return written, err
			}
		}
		switch {
		case c.err == io.EOF:
			if err := r.finish(); err != nil {
				return written, err
			}
			return written, nil
		case c.err != nil:
			r.err = fmt.Errorf("read image %s at %d: %w", r.im.Filename, r.n, r.b.blockErr(c.err))
			return written, r.err
		}
		free <- c.buf
	}
	return written, fmt.Errorf("image %s: reader stopped without end or error", r.im.Filename)
}

// finish compares size and digest at the end of the image and makes the
// outcome sticky.
func (r *ImageReader) finish() error {
	if r.n != r.im.Size {
		r.err = fmt.Errorf("image %s ended at %d bytes, manifest says %d: %w", r.im.Filename, r.n, r.im.Size, ErrCorrupt)
		return r.err
	}
	var sum [32]byte
	r.h.Sum(sum[:0])
	if subtle.ConstantTimeCompare(sum[:], r.im.SHA256[:]) != 1 {
		r.err = fmt.Errorf("image %s sha256 %x, manifest says %x: %w", r.im.Filename, sum, r.im.SHA256, ErrCorrupt)
		return r.err
	}
	r.err = io.EOF
	return nil
}

// Close closes the image.
func (r *ImageReader) Close() error { return r.f.Close() }
