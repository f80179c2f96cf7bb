package storage

import (
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/nutsdb/nutsdb"
)

// History blocks. A fix is first filed in the history journal (journal.go)
// and held in memory (pendingFixes). Once its minute is over,
// CompactHistory folds the route's fixes of that minute into one binary
// block (bucket gpsblk), and a journal record goes once all its minutes
// are folded. nutsdb keeps every key in memory and reads each value with
// its own pread, so one record per route-minute divides memory, start-up
// time and history reads by ~60 against a record per fix.
//
//	gpsblk  owner + 0x00 + be64(minute start, Unix ms) -> block
//	        (owner: the route id, or "d/" + driver id for fixes filed under
//	        a driver on no route; ids cannot contain '/')
//	block   be64(minute start) then fixes: ts i64, lat f64, lng f64,
//	        acc f64, spd f64, hdg f64, batt f64, recv i64, len u8, driver
//	        (float64 throughout: a handheld's 8.2 must read back as 8.2)

const blockMinute = int64(time.Minute / time.Millisecond)

func blockKey(owner string, minute int64) []byte {
	return binary.BigEndian.AppendUint64(append([]byte(owner), 0), uint64(minute))
}

// minuteOf is the start of the minute that holds device time ts.
func minuteOf(ts int64) int64 {
	if ts < 0 {
		return (ts - blockMinute + 1) / blockMinute * blockMinute
	}
	return ts / blockMinute * blockMinute
}

func encodeBlock(minute int64, fixes []bridge.Fix) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(fixes)*(blockFixed+4)), uint64(minute))
	for _, f := range fixes {
		b = appendBlockFix(b, f)
	}
	return b
}

// appendBlockFix appends one fix in the block encoding.
func appendBlockFix(b []byte, f bridge.Fix) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(f.TS))
	for _, v := range []float64{f.Lat, f.Lng, f.Acc, f.Spd, f.Hdg, f.Batt} {
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(v))
	}
	b = binary.BigEndian.AppendUint64(b, uint64(f.Recv))
	b = append(b, byte(len(f.DriverID)))
	return append(b, f.DriverID...)
}

var errBadBlock = errors.New("damaged history block")

// blockFixed is the size of a fix in a block before its driver id.
const blockFixed = 8 + 6*8 + 8 + 1

func decodeBlock(b []byte) (minute int64, fixes []bridge.Fix, err error) {
	if len(b) < 8 {
		return 0, nil, errBadBlock
	}
	fixes, err = decodeBlockFixes(b[8:])
	if err != nil {
		return 0, nil, err
	}
	return int64(binary.BigEndian.Uint64(b)), fixes, nil
}

// decodeBlockFixes decodes the fixes of a block, after its minute.
func decodeBlockFixes(b []byte) (fixes []bridge.Fix, err error) {
	for len(b) > 0 {
		var f bridge.Fix
		if f, b, err = decodeBlockFix(b); err != nil {
			return nil, err
		}
		fixes = append(fixes, f)
	}
	return fixes, nil
}

// decodeBlockFix decodes one fix in the block encoding and returns what
// follows it.
func decodeBlockFix(b []byte) (f bridge.Fix, rest []byte, err error) {
	if len(b) < blockFixed {
		return f, nil, errBadBlock
	}
	u64 := func() uint64 { v := binary.BigEndian.Uint64(b); b = b[8:]; return v }
	f64 := func() float64 { return math.Float64frombits(u64()) }
	f.TS = int64(u64())
	f.Lat, f.Lng = f64(), f64()
	f.Acc, f.Spd, f.Hdg, f.Batt = f64(), f64(), f64(), f64()
	f.Recv = int64(u64())
	n := int(b[0])
	if len(b) < 1+n {
		return f, nil, errBadBlock
	}
	f.DriverID = string(b[1 : 1+n])
	return f, b[1+n:], nil
}

// sortFixes orders by device time then driver and drops repeats, keeping
// the copy that comes first in fs (callers put the older first: a QoS 1
// redelivery is the same fix received again, and its first receipt time
// is the one to keep).
func sortFixes(fs []bridge.Fix) []bridge.Fix {
	slices.SortStableFunc(fs, func(a, b bridge.Fix) int { return cmp.Or(cmp.Compare(a.TS, b.TS), cmp.Compare(a.DriverID, b.DriverID)) })
	return slices.CompactFunc(fs, func(a, b bridge.Fix) bool { return a.TS == b.TS && a.DriverID == b.DriverID })
}

// historyOwner is whose fixes a block holds: a route, or a driver on none.
type historyOwner struct{ routeID, driverID string }

func (o historyOwner) block() string {
	if o.routeID != "" {
		return o.routeID
	}
	return "d/" + o.driverID
}

func (o historyOwner) singlePrefix() []byte {
	if o.routeID != "" {
		return routeKeyPrefix(o.routeID)
	}
	return driverKeyPrefix(o.driverID)
}

// owners lists every route and every driver that may have history.
func (s *DB) owners() ([]historyOwner, error) {
	routes, err := s.keys(bRoutes)
	if err != nil {
		return nil, err
	}
	drivers, err := s.keys(bGPSLast)
	if err != nil {
		return nil, err
	}
	out := make([]historyOwner, 0, len(routes)+len(drivers))
	for _, r := range routes {
		out = append(out, historyOwner{routeID: r})
	}
	for _, d := range drivers {
		out = append(out, historyOwner{driverID: d})
	}
	return out, nil
}

// CompactHistory folds the fixes with device time before before (whole
// minutes) into per-minute blocks and returns how many fixes it folded.
// The journal's fixes are folded from memory (pendingFixes), a few
// route-minutes per transaction, and then the journal records that held
// only folded minutes are deleted; single records from a store of an
// older format are read back, one transaction per route-minute.
func (s *DB) CompactHistory(before time.Time) (int, error) {
	// Two folds at once could each take a minute and then each forget
	// what it took, the second forgetting fixes added after the first.
	s.foldMu.Lock()
	defer s.foldMu.Unlock()
	cut := minuteOf(before.UnixMilli())
	total := 0
	for o, newest := range s.pending.oldOwners() {
		for {
			n, err := s.compactOne(o, cut)
			total += n
			if err != nil {
				return total, fmt.Errorf("compact history of %s: %w", o.block(), err)
			}
			if n == 0 {
				break
			}
		}
		if newest < cut {
			s.pending.forgetOld(o)
		}
	}
	closed, journal := s.pending.closed(cut)
	keys := make([]ownerMinute, 0, len(closed))
	for k := range closed {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b ownerMinute) int {
		return cmp.Or(cmp.Compare(a.owner.block(), b.owner.block()), cmp.Compare(a.minute, b.minute))
	})
	for len(keys) > 0 {
		// Live commits wait for a fold transaction, so it is small (about
		// foldTxFixes fixes), and the fold rests as long as each took: at
		// 1,000 handhelds × 10 Hz a closed minute is 1,000 blocks of 600
		// fixes (36 MB of decoding, sorting and writing), which back to
		// back would hold the store for seconds.
		n, fixes := 0, 0
		for n < len(keys) && (n == 0 || fixes < foldTxFixes) {
			fixes += len(closed[keys[n]]) / (blockFixed + 1)
			n++
		}
		start := time.Now()
		folded, err := s.foldPending(keys[:n], closed)
		total += folded
		if err != nil {
			return total, fmt.Errorf("compact history: %w", err)
		}
		keys = keys[n:]
		if len(keys) > 0 {
			time.Sleep(min(time.Since(start), foldRestMax))
		}
	}
	return total, s.dropJournal(journal)
}

// foldTxFixes is about how many fixes one fold transaction takes (a
// route-minute at 10 fixes/s); foldRestMax bounds the rest after one.
const (
	foldTxFixes = 600
	foldRestMax = 50 * time.Millisecond
)

// foldPending writes the blocks of route-minutes held in memory, in one
// transaction.
func (s *DB) foldPending(keys []ownerMinute, closed map[ownerMinute][]byte) (int, error) {
	n := 0
	err := s.db.Update(func(tx *nutsdb.Tx) error {
		for _, k := range keys {
			fixes, err := decodeBlockFixes(closed[k])
			if err != nil {
				return err
			}
			fixes = sortFixes(fixes)
			n += len(fixes)
			if err := putBlock(tx, k.owner, k.minute, fixes); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, k := range keys {
		s.pending.done(k, closed[k])
	}
	return n, nil
}

// putBlock writes o's block of minute, merged with the block already there
// (late fixes for a minute already folded, or a minute folded twice).
func putBlock(tx *nutsdb.Tx, o historyOwner, minute int64, fixes []bridge.Fix) error {
	key := blockKey(o.block(), minute)
	if old, err := tx.Get(bGPSBlocks, key); err == nil {
		_, prev, err := decodeBlock(old)
		if err != nil {
			return err
		}
		fixes = append(prev, fixes...)
	} else if !notFound(err) {
		return err
	}
	return tx.Put(bGPSBlocks, key, encodeBlock(minute, sortFixes(fixes)), nutsdb.Persistent)
}

// compactOne folds the oldest minute of o's single records, if it is
// before cut.
func (s *DB) compactOne(o historyOwner, cut int64) (int, error) {
	n := 0
	err := s.db.Update(func(tx *nutsdb.Tx) error {
		vals, err := tx.PrefixScan(bGPS, o.singlePrefix(), 0, 2000)
		if err != nil {
			if notFound(err) {
				return nil
			}
			return err
		}
		var fixes []bridge.Fix
		minute := int64(-1)
		for _, v := range vals {
			var f bridge.Fix
			if err := json.Unmarshal(v, &f); err != nil {
				return fmt.Errorf("decode fix: %w", err)
			}
			m := minuteOf(f.TS)
			if minute == -1 {
				minute = m
			}
			if m != minute || m >= cut {
				break
			}
			fixes = append(fixes, f)
		}
		if len(fixes) == 0 {
			return nil
		}
		for _, f := range fixes {
			if err := tx.Delete(bGPS, historyKey(bridge.HistoryFix{RouteID: o.routeID, Fix: f})); err != nil {
				return err
			}
		}
		n = len(fixes)
		return putBlock(tx, o, minute, fixes)
	})
	return n, err
}

// pruneBlocks deletes owner's blocks of minutes that ended before before,
// chunk blocks per transaction, and returns how many fixes went with them.
func (s *DB) pruneBlocks(owner string, before time.Time, chunk int) (int, error) {
	cut := before.UnixMilli()
	total := 0
	for {
		n, more := 0, false
		err := s.db.Update(func(tx *nutsdb.Tx) error {
			vals, err := tx.PrefixScan(bGPSBlocks, append([]byte(owner), 0), 0, chunk)
			if err != nil {
				if notFound(err) {
					return nil
				}
				return err
			}
			deleted := 0
			for _, v := range vals {
				minute, fs, err := decodeBlock(v)
				if err != nil {
					return err
				}
				if minute+blockMinute > cut {
					return nil
				}
				if err := tx.Delete(bGPSBlocks, blockKey(owner, minute)); err != nil {
					return err
				}
				n += len(fs)
				deleted++
			}
			more = deleted == len(vals)
			return nil
		})
		total += n
		if err != nil || !more {
			return total, err
		}
	}
}
