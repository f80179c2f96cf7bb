package storage

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/nutsdb/nutsdb"
)

// Event blocks. A commit with few events stores each as its own record
// (bucket events, key be64(seq)); CompactEvents folds the oldest single
// records, up to eventBlockMax consecutive seqs at a time, into one block
// and deletes them in the same transaction. A commit with many events
// (eventBlockDirect or more: a busy depot, one route:update per fix)
// writes them as blocks at once, folding in the few singles this process
// wrote just before them (eventFoldInMax at most). nutsdb keeps every key of every record in
// memory (~160 bytes each): a depot at 35 fixes/s writes three million
// events a day, which as single records would have grown the heap by
// about half a gigabyte a day until retention caught up 30 days later,
// and made the nightly merge (one synced write per record) take hours.
// At 10,000 fixes/s, single records and their fold were a minute's
// 600,000 keys in memory and a sixth of the CPU: the appliance fell
// behind within two minutes. A busy commit's block holds only its own
// events (tens to hundreds), so the fold also merges runs of the small
// blocks this process wrote into blocks of up to eventBlockMax
// (mergeEventBlocks); those left by an earlier process stay small.
//
//	evblk  be64(first seq) -> block
//	block  be64(first seq), be64(time of its newest event, Unix ms), then
//	       each event as u32 length and the envelope's JSON
//
// Singles are mostly newer than every block, but not always: a busy
// commit writes its block while older singles wait for the fold. Readers
// merge the two by seq (eventsIn, oldestSeq).
const eventBlockMax = 1024

// eventBlockDirect is how many events a commit must carry to store them
// as blocks at once; eventFoldInMax is how many of the singles just before
// them it folds into its first block (older ones wait for CompactEvents).
const (
	eventBlockDirect = 64
	eventFoldInMax   = 256
)

// foldIn takes the single records that run without a hole up to seq
// next out of the store, and returns them to start the commit's first
// block. It takes only the run this process just wrote, which it holds
// in memory (eventTail): reading them back was a pread and a stat per
// event, a twentieth of the CPU at 10,000 fixes/s when quiet commits and
// busy ones alternate. Other singles wait for CompactEvents.
func (s *DB) foldIn(tx *nutsdb.Tx, next uint64) (run [][]byte, first uint64, newest int64, err error) {
	first, run, newest = s.evTail.take()
	if len(run) == 0 || first+uint64(len(run)) != next {
		return nil, 0, 0, nil
	}
	hi, err := edgeSeq(tx, bEvents, true)
	if err != nil || hi+1 != next {
		return nil, 0, 0, err
	}
	for i := range run {
		if err := tx.Delete(bEvents, be64(first+uint64(i))); err != nil {
			return nil, 0, 0, fmt.Errorf("fold single event: %w", err)
		}
	}
	return run, first, newest, nil
}

// eventTail is the run of single event records this process wrote last
// (at most eventFoldInMax, consecutive seqs). It only ever holds records
// the store has: a commit adds its singles once it is committed, and every
// transaction that deletes singles empties it first.
type eventTail struct {
	mu     sync.Mutex
	first  uint64
	raws   [][]byte
	newest int64
}

// add records singles just committed.
func (t *eventTail) add(evs []bridge.Event) {
	if len(evs) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, e := range evs {
		if len(t.raws) == 0 || e.Seq != t.first+uint64(len(t.raws)) {
			t.first, t.raws, t.newest = e.Seq, nil, 0
		}
		if len(t.raws) == eventFoldInMax {
			t.raws, t.first = t.raws[1:], t.first+1
		}
		at := e.At.UnixMilli()
		if e.At.IsZero() {
			if _, a, err := eventHead(e.Raw); err == nil {
				at = a.UnixMilli()
			}
		}
		// The newest of the run, kept over the events dropped off its
		// start: at most a block's retention comes a little late.
		t.raws, t.newest = append(t.raws, e.Raw), max(t.newest, at)
	}
}

// take returns the run and empties the tail.
func (t *eventTail) take() (first uint64, raws [][]byte, newest int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	first, raws, newest = t.first, t.raws, t.newest
	t.first, t.raws, t.newest = 0, nil, 0
	return first, raws, newest
}

// putEvents stores a commit's events: as single records, or, when there
// are many, as blocks of consecutive seqs with the singles before them.
func (s *DB) putEvents(tx *nutsdb.Tx, evs []bridge.Event) (small []blockRef, err error) {
	if len(evs) < eventBlockDirect {
		for _, e := range evs {
			if err := tx.Put(bEvents, be64(e.Seq), e.Raw, nutsdb.Persistent); err != nil {
				return nil, fmt.Errorf("put event: %w", err)
			}
		}
		return nil, nil
	}
	run, first, newest, err := s.foldIn(tx, evs[0].Seq)
	if err != nil {
		return nil, err
	}
	flush := func() error {
		if len(run) == 0 {
			return nil
		}
		b := encodeEventBlock(first, newest, run)
		if err := tx.Put(bEventBlocks, be64(first), b, nutsdb.Persistent); err != nil {
			return fmt.Errorf("put event block: %w", err)
		}
		if len(run) < eventBlockMax {
			small = append(small, blockRef{first, len(run), b})
		}
		run, newest = run[:0:0], 0
		return nil
	}
	for _, e := range evs {
		if len(run) > 0 && (e.Seq != first+uint64(len(run)) || len(run) == eventBlockMax) {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		if len(run) == 0 {
			first = e.Seq
		}
		at := e.At
		if at.IsZero() {
			var err error
			if _, at, err = eventHead(e.Raw); err != nil {
				return nil, err
			}
		}
		run, newest = append(run, e.Raw), max(newest, at.UnixMilli())
	}
	return small, flush()
}

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
// transaction per block, then merges the small blocks this process wrote
// that follow each other (mergeEventBlocks). It returns how many single
// events it folded.
func (s *DB) CompactEvents() (int, error) {
	total := 0
	for {
		n, err := s.compactEventsOnce()
		total += n
		if err != nil {
			return total, err
		}
		if n == 0 {
			return total, s.mergeEventBlocks(false)
		}
	}
}

// MergeEventBlocks merges the runs of small event blocks this process
// wrote that make a full block (eventBlockMax events). A busy depot calls
// it every few seconds, so the merge's work comes in small steps and the
// blocks it reads stay few; CompactEvents merges the rest.
func (s *DB) MergeEventBlocks() error { return s.mergeEventBlocks(true) }

func (s *DB) compactEventsOnce() (int, error) {
	n := 0
	var small []blockRef
	defer func() { s.small.add(small) }()
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
		s.evTail.take() // it may hold some of these
		for i := range vals {
			if err := tx.Delete(bEvents, be64(first+uint64(i))); err != nil {
				return err
			}
		}
		if len(vals) == 0 {
			return nil
		}
		n = len(vals)
		b := encodeEventBlock(first, newest.UnixMilli(), vals)
		if n < eventBlockMax {
			small = []blockRef{{first, n, b}}
		}
		return tx.Put(bEventBlocks, be64(first), b, nutsdb.Persistent)
	})
	if err != nil {
		small = nil
	}
	return n, err
}

// blockRef names an event block: its first seq, how many it holds, and
// the block as written, so that merging reads nothing back.
type blockRef struct {
	first uint64
	n     int
	block []byte
}

// smallBlocks lists, in seq order, the event blocks this process wrote
// with room left: a busy commit's (its own events, tens to hundreds at
// 10,000 fixes/s) and a quiet minute's fold. Left alone they would keep
// a key in memory per commit (~20 times as many as full blocks) and cost
// every catch-up a read each. Blocks from before a restart stay as they
// are. merging makes the merge and retention take turns: the merge
// writes what it holds, so a block retention deleted meanwhile would
// come back.
type smallBlocks struct {
	mu      sync.Mutex
	refs    []blockRef
	merging sync.Mutex
}

// dropThrough forgets the blocks up to seq (retention deleted them).
func (b *smallBlocks) dropThrough(seq uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refs = slices.DeleteFunc(b.refs, func(r blockRef) bool { return r.first <= seq })
}

func (b *smallBlocks) add(refs []blockRef) {
	if len(refs) == 0 {
		return
	}
	b.mu.Lock()
	b.refs = append(b.refs, refs...)
	b.mu.Unlock()
}

// take returns the list and empties it.
func (b *smallBlocks) take() []blockRef {
	b.mu.Lock()
	defer b.mu.Unlock()
	refs := b.refs
	b.refs = nil
	return refs
}

// putBack returns refs (older than any added since take) to the list.
func (b *smallBlocks) putBack(refs []blockRef) {
	if len(refs) == 0 {
		return
	}
	b.mu.Lock()
	b.refs = append(refs, b.refs...)
	b.mu.Unlock()
}

// mergeEventBlocks joins runs of consecutive small blocks into blocks of
// up to eventBlockMax events, one transaction per merged block, resting
// as long as each took so live commits keep their pace. With full, a run
// that does not make a full block waits for more.
func (s *DB) mergeEventBlocks(full bool) error {
	s.small.merging.Lock()
	defer s.small.merging.Unlock()
	refs := s.small.take()
	// Commits add in seq order, the fold of singles older blocks: sort.
	slices.SortFunc(refs, func(a, b blockRef) int { return cmp.Compare(a.first, b.first) })
	var keep []blockRef
	defer func() { s.small.putBack(keep) }()
	for i := 0; i < len(refs); {
		j, total := i+1, refs[i].n
		for j < len(refs) && refs[j].first == refs[j-1].first+uint64(refs[j-1].n) && total+refs[j].n <= eventBlockMax {
			total += refs[j].n
			j++
		}
		group := refs[i:j]
		i = j
		// Only the last run can still grow: the others end at a hole or
		// at a block that would not fit, and leave the list (holding
		// their bytes until the end of the process would be a leak).
		last := j == len(refs)
		if len(group) == 1 || full && total < eventBlockMax && last {
			if last {
				keep = append(keep, group...)
			}
			continue
		}
		start := time.Now()
		merged, err := s.mergeGroup(group)
		if err != nil {
			keep = append(append(keep, group...), refs[i:]...)
			return fmt.Errorf("merge event blocks from %d: %w", group[0].first, err)
		}
		if total < eventBlockMax && last {
			keep = append(keep, merged)
		}
		if i < len(refs) {
			time.Sleep(min(time.Since(start), foldRestMax))
		}
	}
	return nil
}

// mergeGroup rewrites the blocks of group as one, from what the list
// holds, and returns it.
func (s *DB) mergeGroup(group []blockRef) (blockRef, error) {
	var evs [][]byte
	var newest int64
	n := 0
	for _, r := range group {
		first, nw, e, err := decodeEventBlock(r.block)
		if err != nil || first != r.first || len(e) != r.n {
			return blockRef{}, errBadEventBlock
		}
		evs, newest, n = append(evs, e...), max(newest, nw), n+len(e)
	}
	merged := blockRef{group[0].first, n, encodeEventBlock(group[0].first, newest, evs)}
	err := s.db.Update(func(tx *nutsdb.Tx) error {
		for _, r := range group[1:] {
			if err := tx.Delete(bEventBlocks, be64(r.first)); err != nil {
				return err
			}
		}
		return tx.Put(bEventBlocks, be64(merged.first), merged.block, nutsdb.Persistent)
	})
	return merged, err
}

// eventsIn returns the stored events with seq in [lo, hi], in seq order,
// from the blocks that may hold them and the single records. Singles are
// usually all newer than the blocks, but a busy commit writes a block
// after singles the fold has not reached yet, so the two are merged.
func eventsIn(tx *nutsdb.Tx, lo, hi uint64) ([]json.RawMessage, error) {
	type ev struct {
		seq uint64
		raw []byte
	}
	var out []ev
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
				out = append(out, ev{seq, e})
			}
		}
	}
	singles, err := tx.RangeScan(bEvents, be64(lo), be64(hi))
	if err != nil && !notFound(err) {
		return nil, err
	}
	for _, v := range singles {
		seq, err := eventSeq(v)
		if err != nil {
			return nil, err
		}
		out = append(out, ev{seq, v})
	}
	byseq := func(a, b ev) int { return cmp.Compare(a.seq, b.seq) }
	if !slices.IsSortedFunc(out, byseq) {
		slices.SortFunc(out, byseq)
	}
	raws := make([]json.RawMessage, len(out))
	for i, e := range out {
		raws[i] = e.raw
	}
	return raws, nil
}

// eventSeq reads the seq of a stored envelope, which the depot writes
// first; anything else is decoded.
func eventSeq(raw []byte) (uint64, error) {
	const head = `{"seq":`
	if rest, ok := bytes.CutPrefix(raw, []byte(head)); ok {
		var seq uint64
		for i, c := range rest {
			if c == ',' && i > 0 {
				return seq, nil
			}
			if c < '0' || c > '9' || i >= 19 { // 19 digits cannot overflow
				break
			}
			seq = seq*10 + uint64(c-'0')
		}
	}
	seq, _, err := eventHead(raw)
	return seq, err
}

// oldestSeq is the smallest stored seq, in a block or a single record (0:
// none).
func oldestSeq(tx *nutsdb.Tx) (uint64, error) {
	b, err := edgeSeq(tx, bEventBlocks, false)
	if err != nil {
		return 0, err
	}
	s, err := edgeSeq(tx, bEvents, false)
	if err != nil || b == 0 {
		return s, err
	}
	if s == 0 {
		return b, nil
	}
	return min(b, s), nil
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
	s.small.merging.Lock()
	defer s.small.merging.Unlock()
	total := 0
	for {
		n, more := 0, false
		err := s.db.Update(func(tx *nutsdb.Tx) error {
			// The oldest chunk blocks, whatever they hold: blocks of a busy
			// commit or of a quiet minute hold far fewer than eventBlockMax.
			vals, err := tx.PrefixScan(bEventBlocks, nil, 0, chunk)
			if err != nil {
				if notFound(err) {
					return nil
				}
				return err
			}
			deleted := 0
			for _, v := range vals {
				f, newest, evs, err := decodeEventBlock(v)
				if err != nil {
					return err
				}
				if !time.UnixMilli(newest).Before(before) {
					return nil
				}
				s.small.dropThrough(f)
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
