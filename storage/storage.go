// Package storage keeps the depot's data on the box's own disk in nutsdb:
// routes, GPS history, the latest fix of each driver and the event log.
// Methods speak domain types; no nutsdb type leaves this package.
//
// Layout (all BTree buckets):
//
//	routes    routeID                        -> RouteStatus JSON
//	gpsjrn    be64(journal seq)              -> a commit's fixes (journal.go)
//	gpsblk    owner+0x00+be64(minute)        -> a route-minute's fixes (blocks.go)
//	gps       "r/"+routeID+0x00+be64(ts)+driver -> Fix JSON   (format 2 and older:
//	          "d/"+driverID+0x00+be64(ts)       -> Fix JSON    a fix per record)
//	gps_last  driverID                       -> Fix JSON
//	events    be64(seq)                      -> envelope JSON
//	users     username                       -> User JSON (bcrypt hash)
//	devices   driverID                       -> Device JSON (token SHA-256)
//	rescues   rescueID                       -> Rescue JSON
//	offers    vtoID                          -> Offer JSON
//	assignments routeID                      -> Assignment JSON (a dispatcher's reassignment)
//	mqtt      CL_/SUB_/RET_/IFM_ keys         -> the broker's persistent sessions (mochi's JSON)
//	push      targets, outbox and cursor of package push (push.go)
//	meta      small records of the depot's parts, e.g. the upstream cursor (meta.go)
//
// A route's time window is one RangeScan of its blocks plus the fixes not
// folded yet, from memory; a repeated fix (a QoS 1 redelivery) is dropped
// by its time and driver when read and when folded.
package storage

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/nutsdb/nutsdb"
)

const (
	bRoutes  = "routes"
	bGPS     = "gps"
	bGPSLast = "gps_last"
	bEvents  = "events"
	// bEventBlocks holds folded events (evblocks.go).
	bEventBlocks = "evblk"
	bUsers       = "users"
	bDevices     = "devices"
	bRescues     = "rescues"
	bOffers      = "offers"
	bAssign      = "assignments"
	bMQTT        = "mqtt"
	// bGPSBlocks holds closed route-minutes of history (blocks.go).
	bGPSBlocks = "gpsblk"
)

var buckets = []string{bRoutes, bGPS, bGPSJournal, bGPSLast, bEvents, bUsers, bDevices, bRescues, bOffers, bAssign, bMQTT, bGPSBlocks, bEventBlocks, bPush, bMeta}

// ErrNotFound is returned when a requested item does not exist.
var ErrNotFound = bridge.ErrNotFound

// MaxHistory bounds one history read.
const MaxHistory = 200_000

// DB is the depot's store.
type DB struct {
	Dir    string
	Log    *slog.Logger
	db     *nutsdb.DB
	format int // the store's format (format.go)
	// pending is what the history fold takes from memory (pending.go).
	pending pendingFixes
	// small lists the event blocks the event fold may merge (evblocks.go).
	small smallBlocks
	// evTail is the last run of single events this process wrote (evblocks.go).
	evTail eventTail
	// jseq is the newest history journal record's seq (journal.go).
	jseq atomic.Uint64
	// foldMu makes history folds take turns (CompactHistory).
	foldMu sync.Mutex
}

var _ bridge.Store = (*DB)(nil)

// Open opens (creating if needed) the store in dir.
func Open(dir string, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.Default()
	}
	opts := nutsdb.DefaultOptions
	opts.Dir = dir
	// Keys only in RAM: values (history) would otherwise all live in memory.
	opts.EntryIdxMode = nutsdb.HintKeyAndRAMIdxMode
	opts.SegmentSize = 64 * nutsdb.MB
	// nutsdb's merge rewrites every live entry in its own synced
	// transaction; every 2 h by default it would compete with live commits
	// all day. The appliance merges once a night instead (Merge).
	opts.MergeInterval = 0
	// The default TTL manager is a time wheel that ticks every 10 ms,
	// waking the process 100 times a second forever (a quarter of an idle
	// appliance's CPU). The store sets no TTLs; a heap sleeps until the
	// next expiry, which is never.
	opts.ExpiredDeleteType = nutsdb.TimeHeap
	ndb, err := nutsdb.Open(opts)
	if err != nil {
		if errors.Is(err, nutsdb.ErrDirLocked) {
			return nil, fmt.Errorf("open store %s: %w", dir, ErrInUse)
		}
		if strings.Contains(err.Error(), "crc") {
			return nil, fmt.Errorf("open store %s: %w: %v", dir, ErrCorrupt, err)
		}
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	// A newer depot's store is not touched, not even to add a bucket.
	format, err := checkFormat(ndb, dir)
	if err != nil {
		ndb.Close()
		return nil, err
	}
	// Buckets must exist in a committed transaction before they are written.
	err = ndb.Update(func(tx *nutsdb.Tx) error {
		for _, b := range buckets {
			if !tx.ExistBucket(nutsdb.DataStructureBTree, b) {
				if err := tx.NewBucket(nutsdb.DataStructureBTree, b); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		ndb.Close()
		return nil, fmt.Errorf("create buckets: %w", err)
	}
	// A new store is born in this build's format; one from before formats
	// were recorded gets its format written down.
	if recorded, err := readFormat(ndb); err == nil && recorded == 0 {
		if format == 0 {
			format = current
		}
		err = ndb.Update(func(tx *nutsdb.Tx) error {
			return tx.Put(bMeta, []byte(formatKey), []byte(strconv.Itoa(format)), 0)
		})
		if err != nil {
			ndb.Close()
			return nil, fmt.Errorf("record the store's format: %w", err)
		}
	}
	s := &DB{Dir: dir, Log: log, db: ndb, format: format}
	err = ndb.View(func(tx *nutsdb.Tx) error {
		keys, err := tx.GetKeys(bGPS)
		if err != nil && !notFound(err) {
			return err
		}
		s.pending.loadOld(keys)
		return s.loadJournal(tx)
	})
	if err != nil {
		ndb.Close()
		return nil, fmt.Errorf("list unfolded history: %w", err)
	}
	return s, nil
}

// Close flushes and closes the store. Safe to call twice.
func (s *DB) Close() error {
	if s.db == nil {
		return nil
	}
	err := s.db.Close()
	s.db = nil
	return err
}

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func routeKeyPrefix(routeID string) []byte { return append([]byte("r/"+routeID), 0) }

func driverKeyPrefix(driverID string) []byte { return append([]byte("d/"+driverID), 0) }

func historyKey(h bridge.HistoryFix) []byte {
	var k []byte
	if h.RouteID != "" {
		k = routeKeyPrefix(h.RouteID)
	} else {
		k = driverKeyPrefix(h.Fix.DriverID)
	}
	k = binary.BigEndian.AppendUint64(k, uint64(h.Fix.TS))
	return append(k, h.Fix.DriverID...)
}

// Commit implements bridge.Store: the whole batch in one transaction.
func (s *DB) Commit(b *bridge.Batch) error {
	// Only the newest status of a route and fix of a driver is worth a record.
	routes := make(map[string]int, len(b.Routes))
	for i, r := range b.Routes {
		routes[r.RouteID] = i
	}
	latest := make(map[string]int, len(b.Latest))
	for i, f := range b.Latest {
		latest[f.DriverID] = i
	}
	var small []blockRef
	var journal []journalRef
	err := s.db.Update(func(tx *nutsdb.Tx) error {
		var err error
		if journal, err = s.putJournal(tx, b.Fixes); err != nil {
			return err
		}
		for _, i := range latest {
			f := b.Latest[i]
			v, _ := f.AppendJSON(make([]byte, 0, 160))
			if err := tx.Put(bGPSLast, []byte(f.DriverID), v, nutsdb.Persistent); err != nil {
				return fmt.Errorf("put latest: %w", err)
			}
		}
		for _, i := range routes {
			r := b.Routes[i]
			v, _ := r.AppendJSON(make([]byte, 0, 384))
			if err := tx.Put(bRoutes, []byte(r.RouteID), v, nutsdb.Persistent); err != nil {
				return fmt.Errorf("put route: %w", err)
			}
		}
		if small, err = s.putEvents(tx, b.Events); err != nil {
			return err
		}
		for _, r := range b.Rescues {
			if err := putJSON(tx, bRescues, r.RescueID, r); err != nil {
				return err
			}
		}
		for _, o := range b.Offers {
			if err := putJSON(tx, bOffers, o.VTOID, o); err != nil {
				return err
			}
		}
		for _, a := range b.Assignments {
			if a.DriverID == "" { // the feed caught up: the override is gone
				if err := tx.Delete(bAssign, []byte(a.RouteID)); err != nil && !notFound(err) {
					return fmt.Errorf("delete assignment: %w", err)
				}
				continue
			}
			if err := putJSON(tx, bAssign, a.RouteID, a); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		s.pending.add(b.Fixes, journal)
		s.small.add(small)
		if len(b.Events) < eventBlockDirect {
			s.evTail.add(b.Events)
		}
	}
	return err
}

func putJSON(tx *nutsdb.Tx, bucket, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := tx.Put(bucket, []byte(key), b, nutsdb.Persistent); err != nil {
		return fmt.Errorf("put %s %s: %w", bucket, key, err)
	}
	return nil
}

// notFound reports nutsdb's many ways of saying "nothing there". Its
// GetMaxKey says "bucket not found" for an existing empty bucket; every
// bucket is created at Open, so here that can only mean empty.
func notFound(err error) bool {
	return errors.Is(err, nutsdb.ErrRangeScan) || errors.Is(err, nutsdb.ErrPrefixScan) ||
		errors.Is(err, nutsdb.ErrKeyNotFound) || errors.Is(err, nutsdb.ErrNotFoundKey) ||
		errors.Is(err, nutsdb.ErrBucketEmpty) || errors.Is(err, nutsdb.ErrBucketNotFound) ||
		errors.Is(err, nutsdb.ErrNotFoundBucket)
}

// decodeAll decodes JSON values into a slice of T.
func decodeAll[T any](vals [][]byte) ([]T, error) {
	out := make([]T, 0, len(vals))
	for _, v := range vals {
		var x T
		if err := json.Unmarshal(v, &x); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

// allValues decodes every value of bucket.
func allValues[T any](tx *nutsdb.Tx, bucket string) ([]T, error) {
	vals, err := tx.GetValues(bucket)
	if err != nil && !notFound(err) {
		return nil, fmt.Errorf("read %s: %w", bucket, err)
	}
	out, err := decodeAll[T](vals)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", bucket, err)
	}
	return out, nil
}

// LoadState implements bridge.Store.
func (s *DB) LoadState() (bridge.State, error) {
	var st bridge.State
	err := s.db.View(func(tx *nutsdb.Tx) (err error) {
		if st.Routes, err = allValues[bridge.RouteStatus](tx, bRoutes); err != nil {
			return err
		}
		if st.Latest, err = allValues[bridge.Fix](tx, bGPSLast); err != nil {
			return err
		}
		if st.Rescues, err = allValues[bridge.Rescue](tx, bRescues); err != nil {
			return err
		}
		if st.Offers, err = allValues[bridge.Offer](tx, bOffers); err != nil {
			return err
		}
		if st.Assignments, err = allValues[bridge.Assignment](tx, bAssign); err != nil {
			return err
		}
		single, err := edgeSeq(tx, bEvents, true)
		if err != nil {
			return fmt.Errorf("read last seq: %w", err)
		}
		folded, err := lastBlockSeq(tx)
		if err != nil {
			return fmt.Errorf("read last seq: %w", err)
		}
		st.LastSeq = max(single, folded)
		return nil
	})
	return st, err
}

// History returns the fixes filed under routeID with device time in
// [from, to], oldest first, at most MaxHistory of them: the closed minutes
// from their blocks, the rest from memory (and from single records in a
// store of an older format).
func (s *DB) History(routeID string, from, to time.Time) ([]bridge.Fix, error) {
	f0, t0 := max(from.UnixMilli(), 0), max(to.UnixMilli(), 0)
	p := routeKeyPrefix(routeID)
	lo := binary.BigEndian.AppendUint64(append([]byte(nil), p...), uint64(f0))
	hi := append(binary.BigEndian.AppendUint64(append([]byte(nil), p...), uint64(t0)), 0xff)
	var out []bridge.Fix
	keep := func(fs []bridge.Fix) {
		for _, f := range fs {
			if f.TS >= f0 && f.TS <= t0 {
				out = append(out, f)
			}
		}
	}
	// Memory first: the fold writes a minute's block before it lets go of
	// the minute here, so a minute is in one or both, never neither. Its
	// fixes go after the blocks' (sortFixes keeps the older copy).
	held := s.pending.of(historyOwner{routeID: routeID}, minuteOf(f0), minuteOf(t0))
	err := s.db.View(func(tx *nutsdb.Tx) error {
		blocks, err := tx.RangeScan(bGPSBlocks, blockKey(routeID, minuteOf(f0)), blockKey(routeID, t0))
		if err != nil && !notFound(err) {
			return err
		}
		for _, b := range blocks {
			_, fs, err := decodeBlock(b)
			if err != nil {
				return err
			}
			keep(fs)
		}
		vals, err := tx.RangeScan(bGPS, lo, hi)
		if err != nil && !notFound(err) {
			return err
		}
		single, err := decodeAll[bridge.Fix](vals)
		if err != nil {
			return err
		}
		out = append(out, single...)
		return nil
	})
	for _, b := range held {
		fs, ferr := decodeBlockFixes(b)
		if ferr != nil {
			err = ferr
			break
		}
		keep(fs)
	}
	if err != nil {
		return nil, fmt.Errorf("read history of %s: %w", routeID, err)
	}
	out = sortFixes(out)
	if len(out) > MaxHistory {
		out = out[:MaxHistory]
	}
	return out, nil
}

// EventsAfter returns up to limit stored envelopes with seq > after, in
// order: a bounded range scan of the blocks and one of the single records,
// merged by seq.
func (s *DB) EventsAfter(after uint64, limit int) ([]json.RawMessage, error) {
	if limit <= 0 || after == math.MaxUint64 {
		return nil, nil
	}
	hi := after + uint64(limit)
	if hi < after {
		hi = math.MaxUint64
	}
	var out []json.RawMessage
	err := s.db.View(func(tx *nutsdb.Tx) (err error) {
		out, err = eventsIn(tx, after+1, hi)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read events after %d: %w", after, err)
	}
	return out, nil
}

// PruneEvents deletes events older than before, oldest first, at most
// chunk per transaction so live traffic never waits long for the lock;
// it stops at the first newer event. It returns how many it deleted.
func (s *DB) PruneEvents(before time.Time, chunk int) (int, error) {
	// A block holds from one event to eventBlockMax, and each is read to
	// learn its time: a few blocks a transaction keep the lock short.
	total, err := s.pruneEventBlocks(before, max(1, chunk/64))
	if err != nil {
		return total, err
	}
	for {
		n, more, err := s.pruneChunk(before, chunk)
		total += n
		if err != nil || !more {
			return total, err
		}
	}
}

func (s *DB) pruneChunk(before time.Time, chunk int) (n int, more bool, err error) {
	err = s.db.Update(func(tx *nutsdb.Tx) error {
		first, err := edgeSeq(tx, bEvents, false)
		if err != nil || first == 0 {
			return err
		}
		vals, err := tx.RangeScan(bEvents, be64(first), be64(first+uint64(chunk)-1))
		if err != nil {
			if notFound(err) {
				return nil
			}
			return err
		}
		for _, v := range vals {
			var e struct {
				Seq       uint64    `json:"seq"`
				Timestamp time.Time `json:"timestamp"`
			}
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("decode event: %w", err)
			}
			if !e.Timestamp.Before(before) {
				return nil
			}
			s.evTail.take() // it may hold this one
			if err := tx.Delete(bEvents, be64(e.Seq)); err != nil {
				return err
			}
			n++
		}
		more = n == len(vals) && n > 0
		return nil
	})
	return n, more, err
}

// OldestSeq is the seq of the oldest stored event, 0 when there is none.
func (s *DB) OldestSeq() (uint64, error) {
	var seq uint64
	err := s.db.View(func(tx *nutsdb.Tx) error {
		var err error
		seq, err = oldestSeq(tx)
		return err
	})
	return seq, err
}

// Merge rewrites the data files without dead records (overwritten or
// deleted), returning the space. It is slow (one synced write per live
// record) and competes with live traffic: run it at a quiet hour.
func (s *DB) Merge() error {
	err := s.db.Merge()
	if errors.Is(err, nutsdb.ErrDontNeedMerge) {
		return nil
	}
	return err
}

// PruneHistory deletes GPS fixes with device time before before, route by
// route (and driver by driver for fixes filed under no route), at most
// chunk per transaction so live traffic never waits long.
func (s *DB) PruneHistory(before time.Time, chunk int) (int, error) {
	// A fix older than the cut not folded yet (one the fold has not come
	// to, in a test or right after a restart) is folded first, and then
	// goes with its block.
	if _, err := s.CompactHistory(before); err != nil {
		return 0, err
	}
	if err := s.trimJournal(minuteOf(before.UnixMilli())); err != nil {
		return 0, err
	}
	owners, err := s.owners()
	if err != nil {
		return 0, err
	}
	total := 0
	for _, o := range owners {
		n, err := s.pruneBlocks(o.block(), before, chunk)
		total += n
		if err != nil {
			return total, err
		}
		for {
			n, more, err := s.pruneHistoryChunk(o.singlePrefix(), before, chunk)
			total += n
			if err != nil {
				return total, err
			}
			if !more {
				break
			}
		}
	}
	return total, nil
}

func (s *DB) pruneHistoryChunk(prefix []byte, before time.Time, chunk int) (n int, more bool, err error) {
	cut := before.UnixMilli()
	err = s.db.Update(func(tx *nutsdb.Tx) error {
		// Singles are minutes old (the fold takes them) and retention cuts
		// days back: one read says whether there is anything to prune,
		// instead of a chunk of reads for every route every hour.
		vals, err := tx.PrefixScan(bGPS, prefix, 0, 1)
		if err == nil && len(vals) == 1 {
			var f bridge.Fix
			if json.Unmarshal(vals[0], &f) == nil && f.TS >= cut {
				return nil
			}
			vals, err = tx.PrefixScan(bGPS, prefix, 0, chunk)
		}
		if err != nil {
			if notFound(err) {
				return nil
			}
			return err
		}
		for _, v := range vals {
			var f bridge.Fix
			if err := json.Unmarshal(v, &f); err != nil {
				return fmt.Errorf("decode fix: %w", err)
			}
			if f.TS >= cut {
				return nil
			}
			k := binary.BigEndian.AppendUint64(append([]byte(nil), prefix...), uint64(f.TS))
			if err := tx.Delete(bGPS, append(k, f.DriverID...)); err != nil {
				return err
			}
			n++
		}
		more = n == len(vals) && n > 0
		return nil
	})
	return n, more, err
}

// getAll is a bucket's keys and values; none for an empty bucket.
func getAll(tx *nutsdb.Tx, bucket string) (keys, vals [][]byte, err error) {
	keys, vals, err = tx.GetAll(bucket)
	if notFound(err) {
		return nil, nil, nil
	}
	return keys, vals, err
}

// keys lists a bucket's keys. nutsdb holds keys in memory, so this reads
// nothing from disk (unlike GetValues).
func (s *DB) keys(bucket string) (out []string, err error) {
	err = s.db.View(func(tx *nutsdb.Tx) error {
		ks, err := tx.GetKeys(bucket)
		if err != nil {
			if notFound(err) {
				return nil
			}
			return err
		}
		for _, k := range ks {
			out = append(out, string(k))
		}
		return nil
	})
	return out, err
}
