package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"

	"golang.org/x/mod/sumdb/tlog"
)

// ProblemKind classifies what Verify found.
type ProblemKind string

// Problem kinds.
const (
	// ProblemEdited: an entry's data does not carry a valid seal, does
	// not decode, or its readable form differs from its data.
	ProblemEdited ProblemKind = "edited"
	// ProblemDeleted: indexes missing between entries present.
	ProblemDeleted ProblemKind = "deleted"
	// ProblemDuplicated: an index appears twice.
	ProblemDuplicated ProblemKind = "duplicated"
	// ProblemReordered: an entry appears after one of a higher index.
	ProblemReordered ProblemKind = "reordered"
	// ProblemTruncated: a checkpoint (or the export's header) covers
	// indexes beyond the last entry present.
	ProblemTruncated ProblemKind = "truncated"
	// ProblemMalformed: a line that is not part of the format.
	ProblemMalformed ProblemKind = "malformed"
	// ProblemForgedCheckpoint: a checkpoint no trusted key of this log
	// signed, or whose signature does not verify.
	ProblemForgedCheckpoint ProblemKind = "forged_checkpoint"
	// ProblemFork: two checkpoints signed by trusted keys give one size
	// two roots: the key signed two histories.
	ProblemFork ProblemKind = "fork"
	// ProblemRootMismatch: every entry verifies, yet a signed checkpoint
	// does not match them: the history was rewritten with the log's key
	// (Index..Last is where it parts from the checkpoint's).
	ProblemRootMismatch ProblemKind = "root_mismatch"
)

// maxProblems bounds the problems a Report lists; the rest are counted.
const maxProblems = 1000

// DefaultMaxVerifyEntries bounds the entries Verify reads (its memory is
// one bit per index beside O(log n) hashes).
const DefaultMaxVerifyEntries = 1 << 30

// Problem is one finding. Index..Last is the range of entry indexes it
// concerns (-1 when none); Line the export line (0 when none).
type Problem struct {
	Kind   ProblemKind `json:"kind"`
	Index  int64       `json:"index"`
	Last   int64       `json:"last"`
	Line   int         `json:"line,omitempty"`
	Detail string      `json:"detail"`
}

func (p Problem) String() string {
	s := string(p.Kind)
	switch {
	case p.Index < 0:
	case p.Last > p.Index:
		s += fmt.Sprintf(" entries %d..%d", p.Index, p.Last)
	default:
		s += fmt.Sprintf(" entry %d", p.Index)
	}
	if p.Line > 0 {
		s += fmt.Sprintf(" (line %d)", p.Line)
	}
	return s + ": " + p.Detail
}

// Report is what Verify found.
type Report struct {
	Origin string `json:"origin"`
	// Entries is the number of entry lines read.
	Entries int64 `json:"entries"`
	// Checkpoints are the distinct checkpoints that verified (trusted
	// signature, this log), by size.
	Checkpoints []Checkpoint `json:"-"`
	// Matched are the sizes of the checkpoints whose roots the entries
	// reproduce. Any two of them are consistent: both trees are
	// prefixes of the same sequence of entries, which is a stronger
	// statement than an RFC 6962 consistency proof between them.
	Matched []int64 `json:"matched"`
	// Unsigned counts the entries beyond the largest matched checkpoint:
	// sealed, but a truncation of them would be seen only against a
	// later checkpoint.
	Unsigned     int64     `json:"unsigned"`
	Problems     []Problem `json:"problems"`
	MoreProblems int       `json:"more_problems,omitempty"`
}

// OK reports whether nothing was found.
func (r *Report) OK() bool { return len(r.Problems) == 0 && r.MoreProblems == 0 }

// Consistent reports whether Verify proved the checkpoints of sizes a and
// b consistent (both matched the entries).
func (r *Report) Consistent(a, b int64) bool {
	return slices.Contains(r.Matched, a) && slices.Contains(r.Matched, b)
}

type verifyOptions struct {
	outside    [][]byte
	maxEntries int64
}

// VerifyOption configures Verify.
type VerifyOption func(*verifyOptions) error

// WithOutsideCheckpoints adds checkpoint notes kept outside the exported
// log (the syslog collector's copy, a previous audit's): the export is
// held to them too, so a truncation that also dropped the checkpoints
// from the export is found.
func WithOutsideCheckpoints(notes ...[]byte) VerifyOption {
	return func(o *verifyOptions) error {
		for _, n := range notes {
			o.outside = append(o.outside, bytes.Clone(n))
		}
		return nil
	}
}

// WithMaxEntries bounds the entries read (default
// DefaultMaxVerifyEntries); beyond it Verify fails.
func WithMaxEntries(n int64) VerifyOption {
	return func(o *verifyOptions) error {
		if n < 1 {
			return fmt.Errorf("max entries %d: want > 0", n)
		}
		o.maxEntries = n
		return nil
	}
}

// Verify reads an export from r and checks it against trust (the log's
// public keys) and any outside checkpoints, streaming: memory is one bit
// per index. It returns an error only when it cannot verify at all (no
// header, a log trust has no key for, a read error, too many entries);
// everything it finds in the content is in the Report.
//
// It checks every checkpoint's signature, every entry's seal, that the
// readable form of each entry matches its sealed data, that indexes run
// 0, 1, 2... without gap, repeat or inversion, that no checkpoint covers
// more entries than are present, and recomputes the RFC 6962 tree over
// the entries as they appear to compare its root at each checkpoint's
// size.
func Verify(r io.Reader, trust *Trust, opts ...VerifyOption) (*Report, error) {
	o, err := verifyOpts(opts)
	if err != nil {
		return nil, err
	}
	x := newExportReader(r)
	h, err := readHeader(x)
	if err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	v, err := newVerifier(trust, h.Origin, *h.Size, o)
	if err != nil {
		return nil, err
	}
	for {
		b, err := x.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, errLineTooLong) {
			v.problem(Problem{Kind: ProblemMalformed, Index: -1, Last: -1, Line: x.line, Detail: "line too long"})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("verify: %w", err)
		}
		l, err := parseLine(b)
		if err != nil {
			v.problem(Problem{Kind: ProblemMalformed, Index: -1, Last: -1, Line: x.line, Detail: err.Error()})
			continue
		}
		switch l.Type {
		case "checkpoint":
			v.checkpoint([]byte(l.Note), x.line)
		case "entry":
			if err := v.entry(x.line, l.Data, l.Seal, l.Entry); err != nil {
				return nil, err
			}
		default:
			v.problem(Problem{Kind: ProblemMalformed, Index: -1, Last: -1, Line: x.line, Detail: fmt.Sprintf("line type %q", l.Type)})
		}
	}
	return v.finish(), nil
}

// VerifyExport is Verify over an export read by ReadExport.
func VerifyExport(exp *Export, trust *Trust, opts ...VerifyOption) *Report {
	o, err := verifyOpts(opts)
	if err != nil {
		return &Report{Problems: []Problem{{Kind: ProblemMalformed, Index: -1, Last: -1, Detail: err.Error()}}}
	}
	v, err := newVerifier(trust, exp.Origin, exp.Size, o)
	if err != nil {
		return &Report{Origin: exp.Origin, Problems: []Problem{{Kind: ProblemMalformed, Index: -1, Last: -1, Detail: err.Error()}}}
	}
	for _, c := range exp.Checkpoints {
		v.checkpoint(c, 0)
	}
	for _, e := range exp.Entries {
		if err := v.entry(e.Line, e.Data, e.Seal, e.Readable); err != nil {
			v.problem(Problem{Kind: ProblemMalformed, Index: -1, Last: -1, Line: e.Line, Detail: err.Error()})
			break
		}
	}
	return v.finish()
}

func verifyOpts(opts []VerifyOption) (verifyOptions, error) {
	o := verifyOptions{maxEntries: DefaultMaxVerifyEntries}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return o, fmt.Errorf("verify: %w", err)
		}
	}
	return o, nil
}

type mismatch struct {
	size, after int64 // checkpoint size; largest matched size below it
	line        int
}

type verifier struct {
	trust      *Trust
	o          verifyOptions
	rep        *Report
	headerSize int64

	cps     map[int64][]Checkpoint // verified checkpoints by size
	sizes   []int64                // their sizes, ascending, fixed at the first entry
	nextCP  int                    // sizes[nextCP] is the next size to check
	entries bool                   // an entry line was read

	stack   []tlog.Hash // compact range of the leaves read (RFC 6962 §2.1)
	seen    []uint64    // bit per index
	maxIdx  int64       // highest index seen, -1
	first   int64       // lowest index with an entry-level problem
	matched int64
	misses  []mismatch
}

func newVerifier(trust *Trust, origin string, headerSize int64, o verifyOptions) (*verifier, error) {
	if trust == nil {
		return nil, errors.New("verify: no trusted keys")
	}
	known := false
	for _, k := range trust.list {
		if k.Name() == origin {
			known = true
		}
	}
	if !known {
		return nil, fmt.Errorf("verify: export of log %q, for which no key is trusted: %w", origin, ErrBadSignature)
	}
	v := &verifier{trust: trust, o: o, rep: &Report{Origin: origin}, headerSize: headerSize,
		cps: map[int64][]Checkpoint{}, maxIdx: -1, first: -1}
	for _, n := range o.outside {
		v.checkpoint(n, 0)
	}
	return v, nil
}

func (v *verifier) problem(p Problem) {
	if len(v.rep.Problems) >= maxProblems {
		v.rep.MoreProblems++
		return
	}
	v.rep.Problems = append(v.rep.Problems, p)
}

// entryProblem records a problem with an entry, which explains any root
// mismatch of a checkpoint above it.
func (v *verifier) entryProblem(p Problem) {
	if v.first < 0 || p.Index < v.first {
		v.first = p.Index
	}
	v.problem(p)
}

func (v *verifier) checkpoint(note []byte, line int) {
	cp, err := ParseCheckpoint(note, v.trust)
	if err == nil && cp.Origin != v.rep.Origin {
		err = fmt.Errorf("checkpoint of log %q in an export of %q: %w", cp.Origin, v.rep.Origin, ErrBadSignature)
	}
	if err != nil {
		kind := ProblemForgedCheckpoint
		if !errors.Is(err, ErrBadSignature) {
			kind = ProblemMalformed
		}
		v.problem(Problem{Kind: kind, Index: -1, Last: -1, Line: line, Detail: err.Error()})
		return
	}
	for _, c := range v.cps[cp.Size] {
		if c.Root == cp.Root {
			return // the same statement again (another copy, another key)
		}
	}
	if len(v.cps[cp.Size]) > 0 {
		v.problem(Problem{Kind: ProblemFork, Index: cp.Size - 1, Last: cp.Size - 1, Line: line,
			Detail: fmt.Sprintf("two signed roots for size %d: %s and %s", cp.Size, v.cps[cp.Size][0].Root, cp.Root)})
	}
	if v.entries && cp.Size <= v.rep.Entries {
		v.problem(Problem{Kind: ProblemMalformed, Index: -1, Last: -1, Line: line,
			Detail: fmt.Sprintf("checkpoint of size %d after the entries it covers", cp.Size)})
		return
	}
	v.cps[cp.Size] = append(v.cps[cp.Size], cp)
	if v.entries {
		v.sortSizes()
	}
}

func (v *verifier) sortSizes() {
	v.sizes = v.sizes[:0]
	for s := range v.cps {
		if s > v.rep.Entries {
			v.sizes = append(v.sizes, s)
		}
	}
	sort.Slice(v.sizes, func(i, j int) bool { return v.sizes[i] < v.sizes[j] })
	v.nextCP = 0
}

func (v *verifier) entry(line int, data, seal []byte, readable *Entry) error {
	if !v.entries {
		v.entries = true
		v.sortSizes()
	}
	pos := v.rep.Entries
	if pos >= v.o.maxEntries {
		return fmt.Errorf("verify: over %d entries: %w", v.o.maxEntries, ErrInvalid)
	}
	v.rep.Entries++
	v.push(tlog.RecordHash(data))

	e, err := DecodeEntry(data)
	idx := pos // where an undecodable entry sits is its best name
	if err == nil {
		idx = e.Index
	}
	if idx >= v.o.maxEntries {
		v.entryProblem(Problem{Kind: ProblemMalformed, Index: pos, Last: pos, Line: line, Detail: fmt.Sprintf("index %d beyond the %d entries verified", idx, v.o.maxEntries)})
		idx = pos
	}
	switch {
	case err != nil:
		v.entryProblem(Problem{Kind: ProblemEdited, Index: idx, Last: idx, Line: line, Detail: "data does not decode: " + err.Error()})
	case v.trust.checkSeal(v.rep.Origin, data, seal) != nil:
		v.entryProblem(Problem{Kind: ProblemEdited, Index: idx, Last: idx, Line: line, Detail: "seal does not verify: the entry's data was changed or its seal forged"})
	case readable != nil && !encodesTo(readable, data):
		v.entryProblem(Problem{Kind: ProblemEdited, Index: idx, Last: idx, Line: line, Detail: "readable entry differs from its sealed data"})
	}
	if v.mark(idx) {
		v.entryProblem(Problem{Kind: ProblemDuplicated, Index: idx, Last: idx, Line: line, Detail: "index appears more than once"})
	} else if idx < v.maxIdx {
		v.entryProblem(Problem{Kind: ProblemReordered, Index: idx, Last: idx, Line: line, Detail: fmt.Sprintf("appears after entry %d", v.maxIdx)})
	}
	v.maxIdx = max(v.maxIdx, idx)

	for v.nextCP < len(v.sizes) && v.sizes[v.nextCP] == v.rep.Entries {
		size := v.sizes[v.nextCP]
		root := v.root()
		// Every checkpoint of the size must match: with a fork, one of
		// the two histories is not the one these entries tell.
		all := true
		for _, c := range v.cps[size] {
			all = all && c.Root == root
		}
		if all {
			v.rep.Matched = append(v.rep.Matched, size)
			v.matched = size
		} else {
			v.misses = append(v.misses, mismatch{size: size, after: v.matched, line: line})
		}
		v.nextCP++
	}
	return nil
}

func encodesTo(e *Entry, data []byte) bool {
	b, err := e.Encode()
	return err == nil && bytes.Equal(b, data)
}

// mark sets idx's bit and reports whether it was set.
func (v *verifier) mark(idx int64) bool {
	w := int(idx / 64)
	for len(v.seen) <= w {
		v.seen = append(v.seen, 0)
	}
	bit := uint64(1) << (idx % 64)
	was := v.seen[w]&bit != 0
	v.seen[w] |= bit
	return was
}

func (v *verifier) isSeen(idx int64) bool {
	w := int(idx / 64)
	return w < len(v.seen) && v.seen[w]&(1<<(idx%64)) != 0
}

// push adds a leaf to the compact range: the stack holds the roots of
// the perfect subtrees the leaves so far split into, largest first.
func (v *verifier) push(leaf tlog.Hash) {
	h := leaf
	for n := v.rep.Entries - 1; n&1 == 1; n >>= 1 {
		h = tlog.NodeHash(v.stack[len(v.stack)-1], h)
		v.stack = v.stack[:len(v.stack)-1]
	}
	v.stack = append(v.stack, h)
}

// root is the RFC 6962 §2.1 Merkle tree hash of the leaves so far: the
// subtree roots folded from the right.
func (v *verifier) root() tlog.Hash {
	h := v.stack[len(v.stack)-1]
	for i := len(v.stack) - 2; i >= 0; i-- {
		h = tlog.NodeHash(v.stack[i], h)
	}
	return h
}

func (v *verifier) finish() *Report {
	// Indexes never seen below the highest one: deleted.
	for i := int64(0); i < v.maxIdx; {
		if v.isSeen(i) {
			i++
			continue
		}
		j := i
		for j+1 < v.maxIdx && !v.isSeen(j+1) {
			j++
		}
		v.entryProblem(Problem{Kind: ProblemDeleted, Index: i, Last: j, Detail: fmt.Sprintf("%d entries missing", j-i+1)})
		i = j + 1
	}
	// Beyond the highest: truncated, if anything signed (or the
	// header) says the log went further.
	var maxCP int64
	for s := range v.cps {
		maxCP = max(maxCP, s)
	}
	if end := v.maxIdx + 1; end < maxCP || end < v.headerSize {
		last, why := maxCP, fmt.Sprintf("a checkpoint signed %d entries", maxCP)
		if v.headerSize > maxCP {
			last, why = v.headerSize, fmt.Sprintf("the export's header says %d entries (unsigned)", v.headerSize)
		}
		v.entryProblem(Problem{Kind: ProblemTruncated, Index: end, Last: last - 1,
			Detail: fmt.Sprintf("the log ends after %d entries; %s", end, why)})
	}
	// Root mismatches that no entry-level problem explains.
	for _, m := range v.misses {
		if v.first >= 0 && v.first < m.size {
			continue
		}
		v.problem(Problem{Kind: ProblemRootMismatch, Index: m.after, Last: m.size - 1, Line: m.line,
			Detail: fmt.Sprintf("every entry verifies but the tree of %d does not have the signed root: history rewritten with the log key after entry %d", m.size, m.after)})
	}
	for _, s := range v.sortedAll() {
		v.rep.Checkpoints = append(v.rep.Checkpoints, v.cps[s]...)
	}
	if v.matched > 0 || v.rep.Entries > 0 {
		v.rep.Unsigned = max(0, v.rep.Entries-v.matched)
	}
	return v.rep
}

func (v *verifier) sortedAll() []int64 {
	s := make([]int64, 0, len(v.cps))
	for k := range v.cps {
		s = append(s, k)
	}
	slices.Sort(s)
	return s
}

// Text renders the report for a person (hpctl fleet audit verify).
func (r *Report) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "audit log %s: %d entries, %d checkpoints verified", r.Origin, r.Entries, len(r.Checkpoints))
	if len(r.Matched) > 0 {
		fmt.Fprintf(&b, ", entries match the checkpoints of sizes %v (all consistent)", r.Matched)
	}
	if r.Unsigned > 0 {
		fmt.Fprintf(&b, ", %d entries after the last matched checkpoint", r.Unsigned)
	}
	b.WriteString("\n")
	if r.OK() {
		b.WriteString("OK: no edit, deletion, reordering or truncation found\n")
		return b.String()
	}
	fmt.Fprintf(&b, "TAMPERED: %d problems\n", len(r.Problems)+r.MoreProblems)
	for _, p := range r.Problems {
		b.WriteString("  " + p.String() + "\n")
	}
	if r.MoreProblems > 0 {
		fmt.Fprintf(&b, "  ... and %d more\n", r.MoreProblems)
	}
	return b.String()
}
