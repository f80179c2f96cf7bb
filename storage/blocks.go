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

// History blocks. A fix is first stored as its own record (bucket gps), so
// that acknowledging it is one Put and a redelivery overwrites itself. Once
// its minute is over, CompactHistory folds the route's fixes of that minute
// into one binary block (bucket gpsblk) and deletes the single records in
// the same transaction. nutsdb keeps every key in memory and reads each
// value with its own pread, so one record per route-minute instead of one
// per fix divides memory, start-up time and history reads by ~60.
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

func encodeBlock(minute int64, fixes []bridge.Fix) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(fixes)*(blockFixed+4)), uint64(minute))
	for _, f := range fixes {
		b = binary.BigEndian.AppendUint64(b, uint64(f.TS))
		for _, v := range []float64{f.Lat, f.Lng, f.Acc, f.Spd, f.Hdg, f.Batt} {
			b = binary.BigEndian.AppendUint64(b, math.Float64bits(v))
		}
		b = binary.BigEndian.AppendUint64(b, uint64(f.Recv))
		b = append(b, byte(len(f.DriverID)))
		b = append(b, f.DriverID...)
	}
	return b
}

var errBadBlock = errors.New("damaged history block")

// blockFixed is the size of a fix in a block before its driver id.
const blockFixed = 8 + 6*8 + 8 + 1

func decodeBlock(b []byte) (minute int64, fixes []bridge.Fix, err error) {
	if len(b) < 8 {
		return 0, nil, errBadBlock
	}
	minute, b = int64(binary.BigEndian.Uint64(b)), b[8:]
	u64 := func() uint64 { v := binary.BigEndian.Uint64(b); b = b[8:]; return v }
	f64 := func() float64 { return math.Float64frombits(u64()) }
	for len(b) > 0 {
		if len(b) < blockFixed {
			return 0, nil, errBadBlock
		}
		var f bridge.Fix
		f.TS = int64(u64())
		f.Lat, f.Lng = f64(), f64()
		f.Acc, f.Spd, f.Hdg, f.Batt = f64(), f64(), f64(), f64()
		f.Recv = int64(u64())
		n := int(b[0])
		if len(b) < 1+n {
			return 0, nil, errBadBlock
		}
		f.DriverID, b = string(b[1:1+n]), b[1+n:]
		fixes = append(fixes, f)
	}
	return minute, fixes, nil
}

// sortFixes orders by device time then driver and drops repeats.
func sortFixes(fs []bridge.Fix) []bridge.Fix {
	slices.SortFunc(fs, func(a, b bridge.Fix) int { return cmp.Or(cmp.Compare(a.TS, b.TS), cmp.Compare(a.DriverID, b.DriverID)) })
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

// CompactHistory folds the single fix records with device time before
// before into per-minute blocks, one small transaction per route-minute
// (and driver-minute, for fixes filed under a driver on no route). It
// returns how many fixes it folded.
func (s *DB) CompactHistory(before time.Time) (int, error) {
	owners, err := s.owners()
	if err != nil {
		return 0, err
	}
	cut := before.UnixMilli() / blockMinute * blockMinute // whole minutes only
	total := 0
	for _, o := range owners {
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
	}
	return total, nil
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
			m := f.TS / blockMinute * blockMinute
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
		key := blockKey(o.block(), minute)
		if old, err := tx.Get(bGPSBlocks, key); err == nil {
			_, prev, err := decodeBlock(old)
			if err != nil {
				return err
			}
			fixes = append(prev, fixes...) // a late fix for a minute already folded
		} else if !notFound(err) {
			return err
		}
		return tx.Put(bGPSBlocks, key, encodeBlock(minute, sortFixes(fixes)), nutsdb.Persistent)
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
