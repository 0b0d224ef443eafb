package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
)

// bbolt's meta page, as bbolt v1.5 writes it in native byte order (little
// endian on every hardphone target) at page 0 and page 1:
//
//	 0        8      10      12        16      20        24         28      32
//	+--------+-------+-------+---------+-------+---------+----------+-------+
//	| pgid   | flags | count | overflow| magic | version | pageSize | flags |
//	+--------+-------+-------+---------+-------+---------+----------+-------+
//	 32          40           48         56     64     72         80
//	+-----------+------------+----------+------+------+----------+
//	| root pgid | root seq   | freelist | hwm  | txid | checksum |
//	+-----------+------------+----------+------+------+----------+
//
// checksum is FNV-1a 64 over bytes 16..72. hwm (the high-water mark) is the
// number of pages the tree may reference, so a sound file is at least
// hwm*pageSize bytes long.
const (
	metaOffset    = 16
	metaSumEnd    = 72
	metaMagic     = 0xED0CDAED
	metaVersion   = 2
	metaSize      = 80
	noFreelist    = ^uint64(0)
	maxPageSize   = 1 << 16
	minPageSize   = 512
	defaultPageSz = 4096
)

type meta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	hwm      uint64
	txid     uint64
}

func parseMeta(p []byte) (meta, error) {
	if len(p) < metaSize {
		return meta{}, fmt.Errorf("meta page is %d bytes, want %d", len(p), metaSize)
	}
	le := binary.LittleEndian
	if m := le.Uint32(p[metaOffset:]); m != metaMagic {
		return meta{}, fmt.Errorf("magic 0x%08x, want 0x%08x", m, uint32(metaMagic))
	}
	if v := le.Uint32(p[metaOffset+4:]); v != metaVersion {
		return meta{}, fmt.Errorf("bbolt format version %d, want %d", v, metaVersion)
	}
	h := fnv.New64a()
	h.Write(p[metaOffset:metaSumEnd])
	if sum, want := le.Uint64(p[metaSumEnd:]), h.Sum64(); sum != want {
		return meta{}, fmt.Errorf("meta checksum 0x%016x, want 0x%016x", sum, want)
	}
	m := meta{
		pageSize: le.Uint32(p[metaOffset+8:]),
		root:     le.Uint64(p[32:]),
		freelist: le.Uint64(p[48:]),
		hwm:      le.Uint64(p[56:]),
		txid:     le.Uint64(p[64:]),
	}
	if m.pageSize < minPageSize || m.pageSize > maxPageSize || m.pageSize&(m.pageSize-1) != 0 {
		return meta{}, fmt.Errorf("page size %d is not a power of two in [%d, %d]", m.pageSize, minPageSize, maxPageSize)
	}
	if m.root >= m.hwm || (m.freelist != noFreelist && m.freelist >= m.hwm) {
		return meta{}, fmt.Errorf("root page %d or freelist page %d at or above the high-water mark %d", m.root, m.freelist, m.hwm)
	}
	return m, nil
}

// checkFile reads the two meta pages of an existing bbolt file and checks
// that the file is as long as the meta bbolt would use says. bbolt itself
// does not check this: it maps the file and faults (SIGBUS, which Go cannot
// recover) when it reaches a page past the end.
func checkFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	if size == 0 {
		return nil // bbolt initializes an empty file
	}
	buf := make([]byte, metaSize)
	readAt := func(off int64) ([]byte, error) {
		if _, err := f.ReadAt(buf, off); err != nil {
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("file ends at %d bytes, before the meta page at %d", size, off)
			}
			return nil, err
		}
		return buf, nil
	}
	var (
		metas []meta
		errs  []error
	)
	p0, err := readAt(0)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	m0, err0 := parseMeta(p0)
	if err0 == nil {
		metas = append(metas, m0)
	}
	errs = append(errs, fmt.Errorf("meta 0: %v", err0))
	// Page 1 sits one page in; without a sound meta 0, try the sizes bbolt
	// would (its getPageSize does the same).
	sizes := []uint32{defaultPageSz, 8192, 16384, 32768, 65536}
	if err0 == nil {
		sizes = []uint32{m0.pageSize}
	}
	for _, ps := range sizes {
		p1, err := readAt(int64(ps))
		if err != nil {
			errs = append(errs, fmt.Errorf("meta 1: %v", err))
			break
		}
		m1, err1 := parseMeta(p1)
		if err1 == nil {
			metas = append(metas, m1)
			break
		}
		errs = append(errs, fmt.Errorf("meta 1 at %d: %v", ps, err1))
	}
	if len(metas) == 0 {
		return fmt.Errorf("%w: no valid meta page: %v", ErrCorrupt, errors.Join(errs...))
	}
	// bbolt uses the meta with the higher transaction ID.
	use := metas[0]
	if len(metas) == 2 && metas[1].txid > use.txid {
		use = metas[1]
	}
	if need := int64(use.hwm) * int64(use.pageSize); size < need {
		return fmt.Errorf("%w: truncated: %d bytes, but transaction %d uses %d pages of %d bytes (%d bytes)",
			ErrCorrupt, size, use.txid, use.hwm, use.pageSize, need)
	}
	return nil
}
