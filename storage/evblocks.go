package storage

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nutsdb/nutsdb"
)

// Event blocks. Each event is first stored as its own record (bucket
// events, key be64(seq)), written in the commit that sequences it.
// CompactEvents then folds the oldest single records, up to
// eventBlockMax consecutive seqs at a time, into one block and deletes
// them in the same transaction. nutsdb keeps every key of every record in
// memory (~160 bytes each): a depot at 35 fixes/s writes three million
// events a day, which as single records would have grown the heap by
// about half a gigabyte a day until retention caught up 30 days later,
// and made the nightly merge (one synced write per record) take hours.
//
//	evblk  be64(first seq) -> block
//	block  be64(first seq), be64(time of its newest event, Unix ms), then
//	       each event as u32 length and the envelope's JSON
//
// Every block holds seqs older than every single record: folding takes
// the oldest singles, commits add newer seqs, retention removes the oldest.
const eventBlockMax = 1024

func encodeEventBlock(first uint64, newest int64, evs [][]byte) []byte {
	n := 16
	for _, e := range evs {
		n += 4 + len(e)
	}
	b := binary.BigEndian.AppendUint64(make([]byte, 0, n), first)
	b = binary.BigEndian.AppendUint64(b, uint64(newest))
	for _, e := range evs {
		b = binary.BigEndian.AppendUint32(b, uint32(len(e)))
		b = append(b, e...)
	}
	return b
}

var errBadEventBlock = errors.New("damaged event block")

// decodeEventBlock returns the block's first seq, its newest event's time
// and its events (sharing b's memory).
func decodeEventBlock(b []byte) (first uint64, newest int64, evs [][]byte, err error) {
	if len(b) < 16 {
		return 0, 0, nil, errBadEventBlock
	}
	first, newest, b = binary.BigEndian.Uint64(b), int64(binary.BigEndian.Uint64(b[8:])), b[16:]
	for len(b) > 0 {
		if len(b) < 4 {
			return 0, 0, nil, errBadEventBlock
		}
		n := binary.BigEndian.Uint32(b)
		if uint64(len(b)-4) < uint64(n) || len(evs) >= eventBlockMax {
			return 0, 0, nil, errBadEventBlock
		}
		evs, b = append(evs, b[4:4+n:4+n]), b[4+n:]
	}
	return first, newest, evs, nil
}

// eventHead reads the seq and time of a stored envelope.
func eventHead(raw []byte) (seq uint64, at time.Time, err error) {
	var e struct {
		Seq       uint64    `json:"seq"`
		Timestamp time.Time `json:"timestamp"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		return 0, time.Time{}, fmt.Errorf("decode event: %w", err)
	}
	return e.Seq, e.Timestamp, nil
}

// CompactEvents folds every single event record into blocks, one
// transaction per block, and returns how many events it folded.
func (s *DB) CompactEvents() (int, error) {
	total := 0
	for {
		n, err := s.compactEventsOnce()
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

func (s *DB) compactEventsOnce() (int, error) {
	n := 0
	err := s.db.Update(func(tx *nutsdb.Tx) error {
		first, err := edgeSeq(tx, bEvents, false)
		if err != nil || first == 0 {
			return err
		}
		vals, err := tx.RangeScan(bEvents, be64(first), be64(first+eventBlockMax-1))
		if err != nil {
			if notFound(err) {
				return nil
			}
			return err
		}
		var newest time.Time
		for i, v := range vals {
			seq, at, err := eventHead(v)
			if err != nil {
				return err
			}
			if seq != first+uint64(i) {
				vals = vals[:i] // a block is consecutive seqs; the rest starts the next
				break
			}
			if at.After(newest) {
				newest = at
			}
		}
		for i := range vals {
			if err := tx.Delete(bEvents, be64(first+uint64(i))); err != nil {
				return err
			}
		}
		if len(vals) == 0 {
			return nil
		}
		n = len(vals)
		return tx.Put(bEventBlocks, be64(first), encodeEventBlock(first, newest.UnixMilli(), vals), nutsdb.Persistent)
	})
	return n, err
}

// eventsIn returns the stored events with seq in [lo, hi], in seq order:
// from the blocks that may hold them, then from the single records.
func eventsIn(tx *nutsdb.Tx, lo, hi uint64) ([]json.RawMessage, error) {
	var out []json.RawMessage
	from := lo - min(lo, eventBlockMax-1) // a block holding lo starts at most this far back
	blocks, err := tx.RangeScan(bEventBlocks, be64(from), be64(hi))
	if err != nil && !notFound(err) {
		return nil, err
	}
	for _, b := range blocks {
		first, _, evs, err := decodeEventBlock(b)
		if err != nil {
			return nil, err
		}
		for i, e := range evs {
			if seq := first + uint64(i); seq >= lo && seq <= hi {
				out = append(out, json.RawMessage(e))
			}
		}
	}
	singles, err := tx.RangeScan(bEvents, be64(lo), be64(hi))
	if err != nil && !notFound(err) {
		return nil, err
	}
	for _, v := range singles {
		out = append(out, json.RawMessage(v))
	}
	return out, nil
}

// edgeSeq is the smallest (or with last, the largest) seq key of bucket;
// 0 when it is empty (seqs start at 1).
func edgeSeq(tx *nutsdb.Tx, bucket string, last bool) (uint64, error) {
	get := tx.GetMinKey
	if last {
		get = tx.GetMaxKey
	}
	k, err := get(bucket)
	if err != nil && !notFound(err) {
		return 0, err
	}
	if len(k) != 8 {
		return 0, nil
	}
	return binary.BigEndian.Uint64(k), nil
}

// lastBlockSeq is the newest seq held in a block (0: no blocks).
func lastBlockSeq(tx *nutsdb.Tx) (uint64, error) {
	last, err := edgeSeq(tx, bEventBlocks, true)
	if err != nil || last == 0 {
		return 0, err
	}
	v, err := tx.Get(bEventBlocks, be64(last))
	if err != nil {
		return 0, err
	}
	first, _, evs, err := decodeEventBlock(v)
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	return first + uint64(len(evs)) - 1, nil
}

// pruneEventBlocks deletes the blocks whose newest event is before before,
// oldest first, chunk blocks per transaction; it returns how many events
// went with them and stops at the first block that is kept.
func (s *DB) pruneEventBlocks(before time.Time, chunk int) (int, error) {
	total := 0
	for {
		n, more := 0, false
		err := s.db.Update(func(tx *nutsdb.Tx) error {
			first, err := edgeSeq(tx, bEventBlocks, false)
			if err != nil || first == 0 {
				return err
			}
			vals, err := tx.RangeScan(bEventBlocks, be64(first), be64(first+uint64(chunk)*eventBlockMax))
			if err != nil {
				return err
			}
			deleted := 0
			for _, v := range vals[:min(len(vals), chunk)] {
				f, newest, evs, err := decodeEventBlock(v)
				if err != nil {
					return err
				}
				if !time.UnixMilli(newest).Before(before) {
					return nil
				}
				if err := tx.Delete(bEventBlocks, be64(f)); err != nil {
					return err
				}
				n += len(evs)
				deleted++
			}
			more = deleted > 0
			return nil
		})
		total += n
		if err != nil || !more {
			return total, err
		}
	}
}
