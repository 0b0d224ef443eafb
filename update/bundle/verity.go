package bundle

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"sync"
)

// The dm-verity hash tree as RAUC 1.8 builds it for verity bundles (format
// version 1, SHA-256, 4096-byte data and hash blocks, salt prepended):
//
//	bundle:  [ data: N blocks of 4096 ][ hash tree: verity-size bytes ][ CMS ][ u64 BE len(CMS) ]
//
//	tree, stored top level first:
//	  +-----------------+---------------------+-----+--------------------------+
//	  | level L-1: 1 blk| level L-2           | ... | level 0: ceil(N/128) blks|
//	  +-----------------+---------------------+-----+--------------------------+
//
//	one hash block of level i (128 digests, no padding between them):
//	  +------------+------------+-----+--------------+----------------------+
//	  | d[128j+0]  | d[128j+1]  | ... | d[128j+127]  | zero tail (last blk) |
//	  +------------+------------+-----+--------------+----------------------+
//	  d[k] = sha256(salt || block k of the level below; data for level 0)
//
//	root (verity-hash in the signed manifest) = sha256(salt || level L-1 block)
//
// L is the smallest level count with (N-1) >> (7*L) == 0, and level i has
// ceil(N / 128^(i+1)) blocks. RAUC refuses payloads of one block or less.

// BlockSize is the dm-verity data and hash block size RAUC uses.
const BlockSize = 4096

const (
	digestSize      = sha256.Size
	digestsPerBlock = BlockSize / digestSize // 128
	digestBits      = 7                      // log2(digestsPerBlock)
)

// levelBlocks returns the number of hash blocks of each level, level 0
// first, for n data blocks (n >= 2).
func levelBlocks(n int64) []int64 {
	var levels []int64
	for l := uint(0); l*digestBits < 63 && (n-1)>>(l*digestBits) != 0; l++ {
		div := int64(1) << ((l + 1) * digestBits)
		levels = append(levels, (n+div-1)/div)
	}
	return levels
}

// TreeSize returns the size in bytes of the hash tree for dataSize bytes of
// data (a multiple of BlockSize, more than one block).
func TreeSize(dataSize int64) (int64, error) {
	if dataSize <= BlockSize || dataSize%BlockSize != 0 {
		return 0, fmt.Errorf("verity data of %d bytes, want a multiple of %d above %d: %w", dataSize, BlockSize, BlockSize, ErrCorrupt)
	}
	var total int64
	for _, b := range levelBlocks(dataSize / BlockSize) {
		total += b * BlockSize
	}
	return total, nil
}

func saltedSum(salt, block []byte) [digestSize]byte {
	h := sha256.New()
	h.Write(salt)
	h.Write(block)
	var out [digestSize]byte
	h.Sum(out[:0])
	return out
}

// BuildTree computes the hash tree over dataSize bytes read from data, in
// the stored layout (top level first), and its root.
func BuildTree(data io.Reader, dataSize int64, salt []byte) (tree []byte, root [32]byte, err error) {
	size, err := TreeSize(dataSize)
	if err != nil {
		return nil, root, err
	}
	n := dataSize / BlockSize
	levels := levelBlocks(n)
	offsets := levelOffsets(levels)
	tree = make([]byte, size)

	// Level 0: digests of the data blocks.
	level0 := tree[offsets[0]:]
	buf := make([]byte, 256*BlockSize)
	for i := int64(0); i < n; {
		chunk := min(int64(len(buf)/BlockSize), n-i)
		if _, err := io.ReadFull(data, buf[:chunk*BlockSize]); err != nil {
			return nil, root, fmt.Errorf("read data block %d: %w", i, err)
		}
		for j := int64(0); j < chunk; j++ {
			d := saltedSum(salt, buf[j*BlockSize:(j+1)*BlockSize])
			copy(level0[(i+j)*digestSize:], d[:])
		}
		i += chunk
	}
	// Upper levels: digests of the hash blocks of the level below.
	for l := 1; l < len(levels); l++ {
		below := tree[offsets[l-1] : offsets[l-1]+levels[l-1]*BlockSize]
		here := tree[offsets[l]:]
		for j := int64(0); j < levels[l-1]; j++ {
			d := saltedSum(salt, below[j*BlockSize:(j+1)*BlockSize])
			copy(here[j*digestSize:], d[:])
		}
	}
	top := offsets[len(levels)-1]
	return tree, saltedSum(salt, tree[top:top+BlockSize]), nil
}

// levelOffsets returns the byte offset of each level (level 0 first) in the
// stored tree, where the top level comes first.
func levelOffsets(levels []int64) []int64 {
	offs := make([]int64, len(levels))
	var off int64
	for l := len(levels) - 1; l >= 0; l-- {
		offs[l] = off
		off += levels[l] * BlockSize
	}
	return offs
}

// verifier holds a hash tree whose every block was checked top-down against
// the signed root; after newVerifier it is read-only and safe for concurrent
// use.
type verifier struct {
	salt   []byte
	level0 []byte // n digests, trusted
	n      int64  // data blocks
}

// newVerifier checks tree against root for n data blocks: the top block
// against the root, then each level's blocks against the digests in the
// level above. A tree of the wrong size or any mismatching block is
// ErrCorrupt, and nothing of the tree is used.
func newVerifier(tree []byte, root [32]byte, salt []byte, n int64) (*verifier, error) {
	levels := levelBlocks(n)
	offsets := levelOffsets(levels)
	var want int64
	for _, b := range levels {
		want += b * BlockSize
	}
	if int64(len(tree)) != want {
		return nil, fmt.Errorf("verity tree of %d bytes, %d data blocks need %d: %w", len(tree), n, want, ErrCorrupt)
	}
	top := offsets[len(levels)-1]
	if got := saltedSum(salt, tree[top:top+BlockSize]); subtle.ConstantTimeCompare(got[:], root[:]) != 1 {
		return nil, fmt.Errorf("verity tree top block does not match the signed verity-hash: %w", ErrCorrupt)
	}
	for l := len(levels) - 1; l >= 1; l-- {
		here := tree[offsets[l]:]
		below := tree[offsets[l-1]:]
		for j := int64(0); j < levels[l-1]; j++ {
			d := saltedSum(salt, below[j*BlockSize:(j+1)*BlockSize])
			if subtle.ConstantTimeCompare(d[:], here[j*digestSize:(j+1)*digestSize]) != 1 {
				return nil, fmt.Errorf("verity tree level %d block %d does not match level %d: %w", l-1, j, l, ErrCorrupt)
			}
		}
	}
	// The tail of level 0's last block past n digests is covered by the
	// digest of that block and carries nothing.
	return &verifier{salt: salt, level0: tree[offsets[0] : offsets[0]+n*digestSize], n: n}, nil
}

// BlockError reports the data block whose digest does not match the tree.
type BlockError struct {
	Block int64 // index of the 4096-byte data block
}

func (e *BlockError) Error() string {
	return fmt.Sprintf("payload block %d (offset %d) does not match the verity tree", e.Block, e.Block*BlockSize)
}

func (e *BlockError) Unwrap() error { return ErrCorrupt }

func (v *verifier) check(i int64, block []byte) *BlockError {
	if i < 0 || i >= v.n || len(block) != BlockSize {
		return &BlockError{Block: i}
	}
	d := saltedSum(v.salt, block)
	if subtle.ConstantTimeCompare(d[:], v.level0[i*digestSize:(i+1)*digestSize]) != 1 {
		return &BlockError{Block: i}
	}
	return nil
}

// checkAll reads and checks every data block, split over workers goroutines
// (the blocks are independent). It proves the whole payload authentic before
// anything is written, at the price of one read and hash pass.
func (v *verifier) checkAll(ctx context.Context, r io.ReaderAt, workers int, progress func(int64)) error {
	if workers < 1 {
		workers = 1
	}
	const chunk = 256 // blocks per read: 1 MiB
	per := (v.n + int64(workers) - 1) / int64(workers)
	var wg sync.WaitGroup
	var progressMu sync.Mutex // progress is called by one worker at a time
	errs := make([]error, workers)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for w := 0; w < workers; w++ {
		start, end := int64(w)*per, min(int64(w+1)*per, v.n)
		if start >= end {
			continue
		}
		wg.Add(1)
		go func(w int, start, end int64) {
			defer wg.Done()
			buf := make([]byte, chunk*BlockSize)
			for i := start; i < end; {
				if err := ctx.Err(); err != nil {
					errs[w] = err
					return
				}
				c := min(int64(chunk), end-i)
				p := buf[:c*BlockSize]
				if _, err := r.ReadAt(p, i*BlockSize); err != nil {
					errs[w] = fmt.Errorf("read payload block %d: %w", i, err)
					cancel()
					return
				}
				for j := int64(0); j < c; j++ {
					if be := v.check(i+j, p[j*BlockSize:(j+1)*BlockSize]); be != nil {
						errs[w] = be
						cancel()
						return
					}
				}
				if progress != nil {
					progressMu.Lock()
					progress(c * BlockSize)
					progressMu.Unlock()
				}
				i += c
			}
		}(w, start, end)
	}
	wg.Wait()
	// Report a block mismatch in preference to the cancellations it caused.
	var first error
	for _, err := range errs {
		var be *BlockError
		if errors.As(err, &be) {
			return err
		}
		if err != nil && first == nil {
			first = err
		}
	}
	return first
}

// verifiedReader is an io.ReaderAt over the data area of a verity bundle
// that returns only bytes of blocks that matched the tree on this very read
// (or on an earlier read whose verified copy it kept), so a file changed
// after the check cannot feed other bytes through it.
type verifiedReader struct {
	r    io.ReaderAt
	v    *verifier
	size int64 // data bytes: v.n * BlockSize

	mu      sync.Mutex // guards everything below
	scratch []byte
	cache   map[int64][]byte // verified copies of recently read blocks
	order   []int64          // FIFO of cache keys
	failed  *BlockError      // the last mismatch, for callers that lose error types
}

// failure returns the last block mismatch, or nil.
func (vr *verifiedReader) failure() *BlockError {
	vr.mu.Lock()
	defer vr.mu.Unlock()
	return vr.failed
}

const verifiedCacheBlocks = 64 // 256 KiB of verified blocks for metadata re-reads

func newVerifiedReader(r io.ReaderAt, v *verifier) *verifiedReader {
	return &verifiedReader{r: r, v: v, size: v.n * BlockSize, cache: map[int64][]byte{}}
}

func (vr *verifiedReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("verified read at %d: negative offset", off)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= vr.size {
		return 0, io.EOF
	}
	want := len(p)
	if int64(want) > vr.size-off {
		p = p[:vr.size-off]
	}
	vr.mu.Lock()
	defer vr.mu.Unlock()
	first, last := off/BlockSize, (off+int64(len(p))-1)/BlockSize
	span := (last - first + 1) * BlockSize
	if int64(cap(vr.scratch)) < span {
		vr.scratch = make([]byte, span)
	}
	buf := vr.scratch[:span]
	// Read only the blocks not cached, in runs, so a big sequential read is
	// one ReadAt.
	for b := first; b <= last; {
		if _, ok := vr.cache[b]; ok {
			b++
			continue
		}
		end := b
		for end+1 <= last {
			if _, ok := vr.cache[end+1]; ok {
				break
			}
			end++
		}
		seg := buf[(b-first)*BlockSize : (end-first+1)*BlockSize]
		if _, err := vr.r.ReadAt(seg, b*BlockSize); err != nil {
			return 0, fmt.Errorf("read payload block %d: %w", b, err)
		}
		if be := vr.checkRun(buf[(b-first)*BlockSize:], b, end); be != nil {
			vr.failed = be
			return 0, be
		}
		b = end + 1
	}
	n := 0
	for b := first; b <= last; b++ {
		blk, cached := vr.cache[b]
		if !cached {
			blk = buf[(b-first)*BlockSize : (b-first+1)*BlockSize]
		}
		lo := int64(0)
		if b == first {
			lo = off - first*BlockSize
		}
		n += copy(p[n:], blk[lo:])
	}
	// Keep the edge blocks: the next sequential read starts in the last one,
	// and squashfs metadata is read in small pieces.
	vr.remember(first, buf[:BlockSize])
	vr.remember(last, buf[(last-first)*BlockSize:])
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// checkRun checks blocks b..end held in seg; a long run is split over two
// goroutines, since a squashfs data block spans 32 verity blocks and the
// hashing is what bounds the read.
func (vr *verifiedReader) checkRun(seg []byte, b, end int64) *BlockError {
	n := end - b + 1
	check := func(from, to int64) *BlockError {
		for i := from; i < to; i++ {
			if be := vr.v.check(b+i, seg[i*BlockSize:(i+1)*BlockSize]); be != nil {
				return be
			}
		}
		return nil
	}
	if n < 16 {
		return check(0, n)
	}
	half := n / 2
	done := make(chan *BlockError, 1)
	go func() { done <- check(half, n) }()
	first := check(0, half)
	second := <-done
	if first != nil {
		return first
	}
	return second
}

// remember keeps a verified copy of block b (when it came from buf and not
// already from the cache).
func (vr *verifiedReader) remember(b int64, blk []byte) {
	if _, ok := vr.cache[b]; ok {
		return
	}
	if len(vr.order) >= verifiedCacheBlocks {
		old := vr.order[0]
		vr.order = vr.order[1:]
		delete(vr.cache, old)
	}
	vr.cache[b] = bytes.Clone(blk[:BlockSize])
	vr.order = append(vr.order, b)
}
