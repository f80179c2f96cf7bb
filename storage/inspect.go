package storage

import (
	"cmp"
	"errors"
	"io/fs"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/nutsdb/nutsdb"
)

// ErrInUse is returned by Open when another process (a running depot)
// holds the store's lock.
var ErrInUse = errors.New("store in use by another process")

// Summary is what Inspect reads of a store: its size on disk and the span
// of its event log, for `depot doctor`'s growth estimate and /metrics.
type Summary struct {
	Bytes       int64     `json:"bytes"`  // the disk space the store's files take
	Events      uint64    `json:"events"` // events kept (newest seq − oldest seq + 1)
	OldestEvent time.Time `json:"oldestEvent,omitzero"`
	NewestEvent time.Time `json:"newestEvent,omitzero"`
}

// Inspect reads the store's size and its event log's span; it writes
// nothing.
func (s *DB) Inspect() (Summary, error) {
	var sum Summary
	n, err := DirBytes(s.Dir)
	if err != nil {
		return sum, err
	}
	sum.Bytes = n
	err = s.db.View(func(tx *nutsdb.Tx) error {
		oldest, err := oldestSeq(tx)
		if err != nil || oldest == 0 {
			return err
		}
		single, err := edgeSeq(tx, bEvents, true)
		if err != nil {
			return err
		}
		folded, err := lastBlockSeq(tx)
		if err != nil {
			return err
		}
		newest := max(single, folded)
		if newest < oldest {
			return nil
		}
		sum.Events = newest - oldest + 1
		for _, e := range []struct {
			seq uint64
			at  *time.Time
		}{{oldest, &sum.OldestEvent}, {newest, &sum.NewestEvent}} {
			evs, err := eventsIn(tx, e.seq, e.seq)
			if err != nil {
				return err
			}
			if len(evs) == 1 {
				if _, at, err := eventHead(evs[0]); err == nil {
					*e.at = at
				}
			}
		}
		return nil
	})
	return sum, err
}

// LatestFixes returns up to n of the drivers' latest fixes, the most
// recently received first.
func (s *DB) LatestFixes(n int) ([]bridge.Fix, error) {
	var out []bridge.Fix
	err := s.db.View(func(tx *nutsdb.Tx) (err error) {
		out, err = allValues[bridge.Fix](tx, bGPSLast)
		return err
	})
	slices.SortFunc(out, func(a, b bridge.Fix) int { return cmp.Compare(b.Recv, a.Recv) })
	if len(out) > n {
		out = out[:n]
	}
	return out, err
}

// DirBytes is the disk space the regular files under dir take: their
// allocated blocks where the system says (nutsdb sizes a new data file to
// its full segment at once, but only what is written takes space), else
// their sizes.
func DirBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // gone meanwhile
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += min(int64(st.Blocks)*512, fi.Size())
		} else {
			n += fi.Size()
		}
		return nil
	})
	return n, err
}
