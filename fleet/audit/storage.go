package audit

import (
	"context"

	"golang.org/x/mod/sumdb/tlog"
)

// Record is one stored entry: its canonical encoding (the leaf's data)
// and its seal.
type Record struct {
	Data []byte
	Seal []byte
}

// StoredCheckpoint is a checkpoint note as stored, by the size it signs.
type StoredCheckpoint struct {
	Size int64
	Note []byte
}

// BuildFunc makes the records of an append and their tree hashes, given
// the log's size when the append's transaction started and a reader of
// the hashes stored so far (within that transaction).
type BuildFunc func(size int64, hashes tlog.HashReader) ([]Record, []tlog.Hash, error)

// Limits every Storage enforces.
const (
	// MaxReadRecords bounds one ReadRecords call.
	MaxReadRecords = 1000
	// MaxAppendBatch bounds the records of one Append.
	MaxAppendBatch = 1000
	// MaxReadHashes bounds one ReadHashes call (a proof reads at most
	// a few hundred).
	MaxReadHashes = 4096
)

// Storage keeps a log's records, its stored hashes (the layout of
// tlog.StoredHashIndex: the hashes of every complete subtree, in the
// order they become complete) and its checkpoints. It knows nothing of
// entries or keys: the Log computes, the Storage keeps.
//
// boltaudit and pgaudit implement it and pass audittest.Run.
type Storage interface {
	// Append runs build inside one transaction that no other Append on
	// the same log runs concurrently with, in this process or in any
	// other sharing the database (hpfleet replicas), then stores what
	// build returned in that transaction: the records at indexes size,
	// size+1, ..., and the hashes at stored-hash indexes
	// tlog.StoredHashCount(size) onward (exactly
	// StoredHashCount(size+len(records)) - StoredHashCount(size) of
	// them), and the new size. If build fails or the counts are wrong,
	// nothing is written. It returns the index of the first record.
	Append(ctx context.Context, build BuildFunc) (first int64, err error)
	// Size is the number of records.
	Size(ctx context.Context) (int64, error)
	// ReadHashes returns the stored hashes at the given stored-hash
	// indexes, in the order asked; ErrNotFound if one is not stored.
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	// ReadRecords returns up to n (1..MaxReadRecords) records from
	// index from on; fewer at the end of the log.
	ReadRecords(ctx context.Context, from int64, n int) ([]Record, error)
	// AddCheckpoint stores a checkpoint note for size. The first note
	// stored for a size stays: a second one is dropped without error
	// (replicas with their own keys may sign the same size).
	AddCheckpoint(ctx context.Context, size int64, note []byte) error
	// Checkpoints returns up to n (1..MaxReadRecords) stored
	// checkpoints of size >= from, by size; LatestCheckpoint the one of
	// the largest size, ErrNotFound when none is stored.
	Checkpoints(ctx context.Context, from int64, n int) ([]StoredCheckpoint, error)
	LatestCheckpoint(ctx context.Context) (StoredCheckpoint, error)
}
