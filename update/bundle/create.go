package bundle

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
)

// Create makes a signed verity bundle at out on a build host: it fills each
// image's sha256 and size from files (image file name to path on disk),
// builds the squashfs with mksquashfs (from squashfs-tools) using rauc's
// options, and seals it (SealVerity). m.Images name the slot classes and
// file names; m.Format is set to verity. out appears only when complete.
func Create(ctx context.Context, out string, m *Manifest, files map[string]string, s Signer) error {
	if len(m.Images) == 0 {
		return errors.New("create bundle: no images")
	}
	mksquashfs, err := exec.LookPath("mksquashfs")
	if err != nil {
		return fmt.Errorf("create bundle: mksquashfs (Debian package squashfs-tools) not found: %w", err)
	}
	m.Format, m.Verity = FormatVerity, nil
	work, err := os.MkdirTemp(filepath.Dir(out), ".bundle-create-")
	if err != nil {
		return fmt.Errorf("create bundle: %w", err)
	}
	defer os.RemoveAll(work)
	content := filepath.Join(work, "content")
	if err := os.Mkdir(content, 0o755); err != nil {
		return fmt.Errorf("create bundle: %w", err)
	}
	seen := map[string]bool{}
	for i := range m.Images {
		im := &m.Images[i]
		if err := checkFilename(im.Filename); err != nil {
			return fmt.Errorf("create bundle: image %s: %w", im.SlotClass, err)
		}
		if !validSlotClass(im.SlotClass) || seen[im.SlotClass] {
			return fmt.Errorf("create bundle: slot class %q invalid or given twice", im.SlotClass)
		}
		seen[im.SlotClass] = true
		src, ok := files[im.Filename]
		if !ok {
			return fmt.Errorf("create bundle: no file for image %s", im.Filename)
		}
		if im.SHA256, im.Size, err = HashImage(src); err != nil {
			return fmt.Errorf("create bundle: %w", err)
		}
		dst := filepath.Join(content, im.Filename)
		// A hard link saves copying a large image; across file systems,
		// copy.
		if err := os.Link(src, dst); err != nil {
			if err := copyFile(src, dst); err != nil {
				return fmt.Errorf("create bundle: %w", err)
			}
		}
	}
	// The manifest inside the squashfs carries no verity keys, as rauc's.
	if err := os.WriteFile(filepath.Join(content, "manifest.raucm"), m.Marshal(), 0o644); err != nil {
		return fmt.Errorf("create bundle: %w", err)
	}
	sq := filepath.Join(work, "bundle.raucb")
	cmd := exec.CommandContext(ctx, mksquashfs, content, sq, "-all-root", "-noappend", "-no-progress", "-no-xattrs")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("create bundle: mksquashfs: %v: %s", err, b)
	}
	f, err := os.OpenFile(sq, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("create bundle: %w", err)
	}
	if err := SealVerity(f, m, s); err != nil {
		f.Close()
		return fmt.Errorf("create bundle: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create bundle: %w", err)
	}
	if err := os.Rename(sq, out); err != nil {
		return fmt.Errorf("create bundle: %w", err)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.CopyBuffer(out, in, make([]byte, 1<<20)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// HashImage returns the sha256 and size of an image file, the values
// rauc bundle fills into [image.*] sha256 and size.
func HashImage(path string) (sum [32]byte, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return sum, 0, fmt.Errorf("hash image: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	size, err = io.CopyBuffer(h, f, make([]byte, 1<<20))
	if err != nil {
		return sum, 0, fmt.Errorf("hash image %s: %w", path, err)
	}
	h.Sum(sum[:0])
	return sum, size, nil
}

// SealVerity turns f, which holds a squashfs image from offset 0 and
// nothing after it (as mksquashfs writes it), into a verity bundle the way
// rauc bundle does: it pads the image with zeros to a multiple of 4096,
// appends the hash tree over the padded image with a fresh 32-byte salt,
// fills m's verity keys, signs m.Marshal() into an attached CMS and appends
// the CMS and its length. m must describe the images inside the squashfs
// and have Format FormatVerity.
func SealVerity(f *os.File, m *Manifest, s Signer) error {
	if m.Format != FormatVerity {
		return fmt.Errorf("seal: manifest format %s, want verity", m.Format)
	}
	if m.Compatible == "" {
		return errors.New("seal: manifest has no compatible")
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	magic := make([]byte, 4)
	if _, err := f.ReadAt(magic, 0); err != nil || string(magic) != string(squashfsMagic) {
		return fmt.Errorf("seal: %s does not start with a squashfs superblock: %w", f.Name(), errNotSquashfs)
	}
	sqSize := st.Size()
	dataSize := (sqSize + BlockSize - 1) / BlockSize * BlockSize
	if dataSize <= BlockSize {
		// RAUC refuses such bundles too ("squashfs size must be larger
		// than 4096 bytes").
		return fmt.Errorf("seal: squashfs of %d bytes, want more than %d", sqSize, BlockSize)
	}
	if pad := dataSize - sqSize; pad > 0 {
		if _, err := f.WriteAt(make([]byte, pad), sqSize); err != nil {
			return fmt.Errorf("seal: pad: %w", err)
		}
	}
	salt := make([]byte, 32)
	if _, err := rand.Read(salt); err != nil {
		return fmt.Errorf("seal: salt: %w", err)
	}
	tree, root, err := BuildTree(io.NewSectionReader(f, 0, dataSize), dataSize, salt)
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	if _, err := f.WriteAt(tree, dataSize); err != nil {
		return fmt.Errorf("seal: write tree: %w", err)
	}
	m.Verity = &Verity{Hash: root, Salt: salt, Size: int64(len(tree))}
	der, err := s.signAttached(m.Marshal())
	if err != nil {
		return fmt.Errorf("seal: %w", err)
	}
	if len(der) > MaxSignatureSize {
		return fmt.Errorf("seal: CMS of %d bytes exceeds RAUC's %d", len(der), MaxSignatureSize)
	}
	off := dataSize + int64(len(tree))
	if _, err := f.WriteAt(der, off); err != nil {
		return fmt.Errorf("seal: write signature: %w", err)
	}
	var tr [trailerLen]byte
	binary.BigEndian.PutUint64(tr[:], uint64(len(der)))
	if _, err := f.WriteAt(tr[:], off+int64(len(der))); err != nil {
		return fmt.Errorf("seal: write trailer: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("seal: sync: %w", err)
	}
	return nil
}
