package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/mod/sumdb/tlog"
)

// The export format is JSON lines, in this order:
//
//	{"type":"header","format":"hardphone-audit-export","version":1,"origin":O,"size":N,"exported_at":T}
//	{"type":"checkpoint","note":"<signed note text>"}             (each stored checkpoint, by size)
//	{"type":"entry","data":"<base64>","seal":"<base64>","entry":{...}}   (indexes 0..N-1)
//
// data is the entry's canonical encoding (the leaf) and is what Verify
// checks; entry is the same entry decoded, for people and tools reading
// the file, and Verify reports it as edited when it does not encode to
// data. A stored record that does not decode is exported with data and
// seal only.
const (
	exportFormat  = "hardphone-audit-export"
	exportVersion = 1
	// MaxExportLine bounds one line of an export: an entry's data
	// (MaxEntrySize) in base64 and its JSON form with every character
	// escaped fit well below it.
	MaxExportLine = 256 << 10
)

type exportLine struct {
	Type string `json:"type"`
	// header
	Format     string    `json:"format,omitempty"`
	Version    int       `json:"version,omitempty"`
	Origin     string    `json:"origin,omitempty"`
	Size       *int64    `json:"size,omitempty"`
	ExportedAt time.Time `json:"exported_at,omitzero"`
	// checkpoint
	Note string `json:"note,omitempty"`
	// entry
	Data  []byte `json:"data,omitempty"`
	Seal  []byte `json:"seal,omitempty"`
	Entry *Entry `json:"entry,omitempty"`
}

// Export writes the log as it is when Export starts (its size then, every
// checkpoint stored up to that size, every entry below it) to w in the
// export format. Records are written as stored, even ones that do not
// verify: judging them is Verify's job.
func (l *Log) Export(ctx context.Context, w io.Writer) error {
	size, err := l.st.Size(ctx)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(exportLine{Type: "header", Format: exportFormat, Version: exportVersion,
		Origin: l.Origin(), Size: &size, ExportedAt: l.now().UTC()}); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	for from := int64(1); ; {
		cps, err := l.st.Checkpoints(ctx, from, MaxReadRecords)
		if err != nil {
			return fmt.Errorf("export checkpoints: %w", err)
		}
		for _, c := range cps {
			if c.Size > size {
				break
			}
			if err := enc.Encode(exportLine{Type: "checkpoint", Note: string(c.Note)}); err != nil {
				return fmt.Errorf("export: %w", err)
			}
		}
		if len(cps) < MaxReadRecords || cps[len(cps)-1].Size >= size {
			break
		}
		from = cps[len(cps)-1].Size + 1
	}
	for from := int64(0); from < size; {
		n := int(min(size-from, MaxReadRecords))
		recs, err := l.st.ReadRecords(ctx, from, n)
		if err != nil {
			return fmt.Errorf("export entries from %d: %w", from, err)
		}
		if len(recs) == 0 {
			return fmt.Errorf("export: entry %d missing from storage: %w", from, ErrTampered)
		}
		for _, r := range recs {
			line := exportLine{Type: "entry", Data: r.Data, Seal: r.Seal}
			if e, err := DecodeEntry(r.Data); err == nil {
				line.Entry = &e
			}
			if err := enc.Encode(line); err != nil {
				return fmt.Errorf("export: %w", err)
			}
		}
		from += int64(len(recs))
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	return nil
}

// exportReader reads an export line by line, bounded.
type exportReader struct {
	br   *bufio.Reader
	line int
}

func newExportReader(r io.Reader) *exportReader {
	return &exportReader{br: bufio.NewReaderSize(r, 64<<10)}
}

var errLineTooLong = errors.New("line too long")

// next returns the next non-empty line, io.EOF at the end.
func (x *exportReader) next() ([]byte, error) {
	for {
		var buf []byte
		for {
			chunk, err := x.br.ReadSlice('\n')
			buf = append(buf, chunk...)
			if len(buf) > MaxExportLine {
				// Skip the rest of the line, so a reader can go on.
				for errors.Is(err, bufio.ErrBufferFull) {
					_, err = x.br.ReadSlice('\n')
				}
				x.line++
				return nil, fmt.Errorf("line %d: over %d bytes: %w (%w)", x.line, MaxExportLine, errLineTooLong, ErrInvalid)
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, err
			}
			if len(buf) == 0 && errors.Is(err, io.EOF) {
				return nil, io.EOF
			}
			break
		}
		x.line++
		if b := bytes.TrimSpace(buf); len(b) > 0 {
			return b, nil
		}
	}
}

func parseLine(b []byte) (exportLine, error) {
	var l exportLine
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return exportLine{}, fmt.Errorf("%v: %w", err, ErrInvalid)
	}
	if dec.More() {
		return exportLine{}, fmt.Errorf("trailing data: %w", ErrInvalid)
	}
	return l, nil
}

// ExportedEntry is one entry line of an export.
type ExportedEntry struct {
	// Line is the line number in the export (1-based).
	Line int
	Data []byte
	Seal []byte
	// Readable is the line's "entry" field as written: informational,
	// and reported as edited by Verify when it does not encode to Data.
	// Nil when absent.
	Readable *Entry
}

// Export is an export read into memory by ReadExport.
type Export struct {
	Origin      string
	Size        int64
	ExportedAt  time.Time
	Checkpoints [][]byte
	Entries     []ExportedEntry
}

// ReadExport reads a whole export into memory, refusing one of more than
// maxEntries entries. It checks the format, not the content: Verify does.
func ReadExport(r io.Reader, maxEntries int) (*Export, error) {
	x := newExportReader(r)
	h, err := readHeader(x)
	if err != nil {
		return nil, err
	}
	exp := &Export{Origin: h.Origin, Size: *h.Size, ExportedAt: h.ExportedAt}
	for {
		b, err := x.next()
		if errors.Is(err, io.EOF) {
			return exp, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read export: %w", err)
		}
		l, err := parseLine(b)
		if err != nil {
			return nil, fmt.Errorf("read export: line %d: %w", x.line, err)
		}
		switch l.Type {
		case "checkpoint":
			if len(exp.Entries) > 0 {
				return nil, fmt.Errorf("read export: line %d: checkpoint after entries: %w", x.line, ErrInvalid)
			}
			exp.Checkpoints = append(exp.Checkpoints, []byte(l.Note))
		case "entry":
			if len(exp.Entries) >= maxEntries {
				return nil, fmt.Errorf("read export: over %d entries: %w", maxEntries, ErrInvalid)
			}
			ee := ExportedEntry{Line: x.line, Data: l.Data, Seal: l.Seal, Readable: l.Entry}
			exp.Entries = append(exp.Entries, ee)
		default:
			return nil, fmt.Errorf("read export: line %d: type %q: %w", x.line, l.Type, ErrInvalid)
		}
	}
}

func readHeader(x *exportReader) (exportLine, error) {
	b, err := x.next()
	if errors.Is(err, io.EOF) {
		return exportLine{}, fmt.Errorf("read export: empty: %w", ErrInvalid)
	}
	if err != nil {
		return exportLine{}, fmt.Errorf("read export: %w", err)
	}
	h, err := parseLine(b)
	if err != nil {
		return exportLine{}, fmt.Errorf("read export: header: %w", err)
	}
	if h.Type != "header" || h.Format != exportFormat || h.Version != exportVersion || h.Size == nil || *h.Size < 0 {
		return exportLine{}, fmt.Errorf("read export: line 1 is not a %s version %d header: %w", exportFormat, exportVersion, ErrInvalid)
	}
	if err := checkOrigin(h.Origin); err != nil {
		return exportLine{}, fmt.Errorf("read export: header: %w", err)
	}
	return h, nil
}

// Import restores a verified export into an empty Storage (moving a log
// from bbolt to PostgreSQL, or rebuilding a lost database from an
// archive): it runs Verify first and refuses an export with any problem
// or whose origin trust does not cover, then appends the records as they
// were (same data, same seals) and stores the checkpoints. The tree is
// recomputed, so the stored checkpoints must match it.
func Import(ctx context.Context, exp *Export, st Storage, trust *Trust) error {
	rep := VerifyExport(exp, trust)
	if !rep.OK() {
		return fmt.Errorf("import: export does not verify (%d problems, first: %s): %w", len(rep.Problems)+rep.MoreProblems, rep.Problems[0], ErrTampered)
	}
	size, err := st.Size(ctx)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	if size != 0 {
		return fmt.Errorf("import: storage holds %d entries, want an empty one: %w", size, ErrInvalid)
	}
	for from := 0; from < len(exp.Entries); {
		n := min(len(exp.Entries)-from, MaxAppendBatch)
		batch := exp.Entries[from : from+n]
		_, err := st.Append(ctx, func(size int64, r tlog.HashReader) ([]Record, []tlog.Hash, error) {
			if size != int64(from) {
				return nil, nil, fmt.Errorf("storage grew to %d during the import: %w", size, ErrInvalid)
			}
			var hashes []tlog.Hash
			base := tlog.StoredHashCount(size)
			over := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
				out := make([]tlog.Hash, len(idx))
				for i, x := range idx {
					if x >= base {
						out[i] = hashes[x-base]
						continue
					}
					h, err := r.ReadHashes([]int64{x})
					if err != nil {
						return nil, err
					}
					out[i] = h[0]
				}
				return out, nil
			})
			recs := make([]Record, len(batch))
			for i, e := range batch {
				h, err := tlog.StoredHashes(size+int64(i), e.Data, over)
				if err != nil {
					return nil, nil, err
				}
				hashes = append(hashes, h...)
				recs[i] = Record{Data: e.Data, Seal: e.Seal}
			}
			return recs, hashes, nil
		})
		if err != nil {
			return fmt.Errorf("import entries from %d: %w", from, err)
		}
		from += n
	}
	for _, cp := range rep.Checkpoints {
		if err := st.AddCheckpoint(ctx, cp.Size, cp.Note); err != nil {
			return fmt.Errorf("import checkpoint of %d: %w", cp.Size, err)
		}
	}
	return nil
}
