package storage

// Tests of the history journal (journal.go, pending.go): a randomized
// model test with restarts and simulated crashes, a concurrent test of
// Commit / CompactHistory / PruneHistory / History, and targeted cases.

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/nutsdb/nutsdb"
)

var rvRoutes = []string{"R1", "R2", "R3"}
var rvDrivers = []string{"D1", "D2", "D3", "D4", "D5"}

// rvFix is a fix whose content is a function of its route, driver and
// time, so that any two fixes with the same key are a true redelivery.
func rvFix(route, driver string, ts int64) bridge.HistoryFix {
	h := fnv.New64a()
	fmt.Fprintf(h, "%s|%s|%d", route, driver, ts)
	v := h.Sum64()
	return bridge.HistoryFix{RouteID: route, Fix: bridge.Fix{
		DriverID: driver, TS: ts,
		Lat: float64(v%180000)/1000 - 90, Lng: float64(v>>20%360000)/1000 - 180,
		Acc: float64(v >> 40 % 100), Spd: 8.2, Hdg: 271.3, Batt: float64(v >> 50 % 100),
		Recv: ts + 17,
	}}
}

type rvKey struct {
	ts     int64
	driver string
}

// rvModel is what History must return: per owner (route, or "d/"+driver
// for fixes on no route), the fixes by time and driver.
type rvModel map[string]map[rvKey]bridge.Fix

func rvOwnerName(h bridge.HistoryFix) string {
	if h.RouteID != "" {
		return h.RouteID
	}
	return "d/" + h.Fix.DriverID
}

func (m rvModel) add(fs []bridge.HistoryFix) {
	for _, h := range fs {
		o := rvOwnerName(h)
		if m[o] == nil {
			m[o] = map[rvKey]bridge.Fix{}
		}
		m[o][rvKey{h.Fix.TS, h.Fix.DriverID}] = h.Fix
	}
}

// prune drops whole minutes before cut (a minute start).
func (m rvModel) prune(cut int64) {
	for _, om := range m {
		for k := range om {
			if minuteOf(k.ts) < cut {
				delete(om, k)
			}
		}
	}
}

func (m rvModel) of(owner string) []bridge.Fix {
	var out []bridge.Fix
	for _, f := range m[owner] {
		out = append(out, f)
	}
	slices.SortFunc(out, func(a, b bridge.Fix) int { return cmp.Or(cmp.Compare(a.TS, b.TS), cmp.Compare(a.DriverID, b.DriverID)) })
	return out
}

// rvOwnerFixes reads an owner's fixes as History does (memory, then
// blocks), for owners History cannot name (drivers on no route).
func rvOwnerFixes(t *testing.T, db *DB, o historyOwner) []bridge.Fix {
	t.Helper()
	var out []bridge.Fix
	for _, b := range db.pending.of(o, math.MinInt64, math.MaxInt64) {
		fs, err := decodeBlockFixes(b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fs...)
	}
	err := db.db.View(func(tx *nutsdb.Tx) error {
		vals, err := tx.PrefixScan(bGPSBlocks, append([]byte(o.block()), 0), 0, math.MaxInt32)
		if err != nil && !notFound(err) {
			return err
		}
		for _, v := range vals {
			_, fs, err := decodeBlock(v)
			if err != nil {
				return err
			}
			out = append(out, fs...)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sortFixes(out)
}

// rvJournal reads every journal record on disk.
func rvJournal(t *testing.T, db *DB) map[uint64][]bridge.HistoryFix {
	t.Helper()
	out := map[uint64][]bridge.HistoryFix{}
	err := db.db.View(func(tx *nutsdb.Tx) error {
		keys, vals, err := getAll(tx, bGPSJournal)
		if err != nil {
			return err
		}
		for i, k := range keys {
			fs, err := decodeJournal(vals[i])
			if err != nil {
				return fmt.Errorf("journal %x: %w", k, err)
			}
			out[binary.BigEndian.Uint64(k)] = fs
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rvBlockMinutes lists every block's owner and minute.
func rvBlockMinutes(t *testing.T, db *DB) map[string][]int64 {
	t.Helper()
	out := map[string][]int64{}
	err := db.db.View(func(tx *nutsdb.Tx) error {
		keys, err := tx.GetKeys(bGPSBlocks)
		if err != nil {
			if notFound(err) {
				return nil
			}
			return err
		}
		for _, k := range keys {
			owner := string(k[:len(k)-9])
			out[owner] = append(out[owner], int64(binary.BigEndian.Uint64(k[len(k)-8:])))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

type rvHarness struct {
	t     *testing.T
	dir   string
	db    *DB
	model rvModel
	rng   *rand.Rand
	now   time.Time
	all   []bridge.HistoryFix // everything ever committed, for redeliveries
	// foldCut is the newest cut a completed fold had since the last open
	// (memory invariants hold below it).
	foldCut int64
	step    int
	what    string
	stats   map[string]int
}

func (h *rvHarness) fatalf(format string, args ...any) {
	h.t.Helper()
	h.t.Fatalf("step %d (%s): %s", h.step, h.what, fmt.Sprintf(format, args...))
}

func (h *rvHarness) reopen() {
	h.db.Close()
	h.db = mustOpen(h.t, h.dir)
	h.foldCut = math.MinInt64
}

// batch makes a commit's fixes: live ones, late ones (up to 2 h), future
// ones (up to 5 min ahead) and redeliveries of earlier ones.
func (h *rvHarness) batch(n int) []bridge.HistoryFix {
	var out []bridge.HistoryFix
	nowMs := h.now.UnixMilli()
	for range n {
		route := rvRoutes[h.rng.IntN(len(rvRoutes))]
		if h.rng.IntN(8) == 0 {
			route = ""
		}
		driver := rvDrivers[h.rng.IntN(len(rvDrivers))]
		var ts int64
		switch r := h.rng.IntN(100); {
		case r < 60: // live
			ts = nowMs - h.rng.Int64N(3000)
		case r < 75: // late
			ts = nowMs - h.rng.Int64N(2*3600*1000)
		case r < 85: // future, within the bridge's skew
			ts = nowMs + h.rng.Int64N(5*60*1000)
		default: // a redelivery
			if len(h.all) > 0 {
				out = append(out, h.all[h.rng.IntN(len(h.all))])
				continue
			}
			ts = nowMs
		}
		out = append(out, rvFix(route, driver, ts))
	}
	return out
}

func (h *rvHarness) registerOwners() {
	b := bridge.Batch{}
	for _, r := range rvRoutes {
		b.Routes = append(b.Routes, bridge.RouteStatus{RouteID: r})
	}
	for _, d := range rvDrivers {
		b.Latest = append(b.Latest, bridge.Fix{DriverID: d, TS: h.now.UnixMilli()})
	}
	if err := h.db.Commit(&b); err != nil {
		h.t.Fatal(err)
	}
}

func (h *rvHarness) commit(fs []bridge.HistoryFix) {
	if err := h.db.Commit(&bridge.Batch{Fixes: fs}); err != nil {
		h.fatalf("commit: %v", err)
	}
	h.model.add(fs)
	h.all = append(h.all, fs...)
}

// check compares History (and the driver owners' fixes) with the model
// and checks the journal's bookkeeping.
func (h *rvHarness) check() {
	h.t.Helper()
	db := h.db
	lo, hi := t0.Add(-48*time.Hour), h.now.Add(48*time.Hour)
	for _, r := range rvRoutes {
		got, err := db.History(r, lo, hi)
		if err != nil {
			h.fatalf("History %s: %v", r, err)
		}
		want := h.model.of(r)
		if !reflect.DeepEqual(got, want) {
			h.fatalf("History %s: %s", r, rvDiff(got, want))
		}
	}
	for _, d := range rvDrivers {
		got := rvOwnerFixes(h.t, db, historyOwner{driverID: d})
		if want := h.model.of("d/" + d); !reflect.DeepEqual(got, want) {
			h.fatalf("driver %s: %s", d, rvDiff(got, want))
		}
	}
	// Bookkeeping: pending knows exactly the records on disk, with their
	// minutes; every held fix is in a record (or a crash would lose it).
	disk := rvJournal(h.t, db)
	db.pending.mu.Lock()
	jrn := map[uint64]journalRef{}
	for k, v := range db.pending.jrn {
		jrn[k] = v
	}
	held := map[ownerMinute][]bridge.Fix{}
	for o, om := range db.pending.m {
		for m, b := range om {
			fs, err := decodeBlockFixes(b)
			if err != nil {
				db.pending.mu.Unlock()
				h.fatalf("held %v %d: %v", o, m, err)
			}
			held[ownerMinute{o, m}] = fs
		}
	}
	db.pending.mu.Unlock()
	if len(disk) != len(jrn) {
		h.fatalf("%d journal records on disk, pending knows %d", len(disk), len(jrn))
	}
	inJournal := map[string]bool{}
	for seq, fs := range disk {
		r, ok := jrn[seq]
		if !ok {
			h.fatalf("journal record %d on disk, unknown to pending (never deleted)", seq)
		}
		if want := refOf(seq, fs); r != want {
			h.fatalf("journal record %d: pending has %+v, disk %+v", seq, r, want)
		}
		for _, f := range fs {
			inJournal[fmt.Sprint(ownerOf(f), f.Fix.TS, f.Fix.DriverID)] = true
		}
	}
	for k, fs := range held {
		if k.minute < h.foldCut {
			h.fatalf("minute %d of %v still held after a fold at %d", k.minute, k.owner, h.foldCut)
		}
		for _, f := range fs {
			if !inJournal[fmt.Sprint(k.owner, f.TS, f.DriverID)] {
				h.fatalf("held fix %v %d %s is in no journal record", k.owner, f.TS, f.DriverID)
			}
		}
	}
	for seq, r := range jrn {
		if r.newest < h.foldCut {
			h.fatalf("journal record %d (newest %d) kept after a fold at %d", seq, r.newest, h.foldCut)
		}
	}
}

func rvDiff(got, want []bridge.Fix) string {
	g := map[rvKey]bridge.Fix{}
	for _, f := range got {
		g[rvKey{f.TS, f.DriverID}] = f
	}
	w := map[rvKey]bridge.Fix{}
	for _, f := range want {
		w[rvKey{f.TS, f.DriverID}] = f
	}
	var missing, extra, changed []string
	for k, f := range w {
		if gf, ok := g[k]; !ok {
			missing = append(missing, fmt.Sprintf("%d/%s (min %d)", k.ts, k.driver, minuteOf(k.ts)))
		} else if gf != f {
			changed = append(changed, fmt.Sprintf("%d/%s", k.ts, k.driver))
		}
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			extra = append(extra, fmt.Sprintf("%d/%s (min %d)", k.ts, k.driver, minuteOf(k.ts)))
		}
	}
	const show = 5
	cut := func(s []string) []string { slices.Sort(s); return s[:min(len(s), show)] }
	return fmt.Sprintf("got %d want %d; missing %d %v; extra %d %v; changed %d %v (dups in got: %d)",
		len(got), len(want), len(missing), cut(missing), len(extra), cut(extra), len(changed), cut(changed), len(got)-len(g))
}

// TestJournalModel runs random commits, folds, prunes, restarts and
// simulated crashes against a model, checking History after each step.
func TestJournalModel(t *testing.T) {
	seeds := []uint64{1, 2, 3, 4, 5, 6}
	steps := 250
	if testing.Short() || raceOn {
		seeds, steps = seeds[:2], 150
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			h := &rvHarness{t: t, dir: t.TempDir(), model: rvModel{}, rng: rand.New(rand.NewPCG(seed, 99)), now: t0, foldCut: math.MinInt64, stats: map[string]int{}}
			h.db = mustOpen(t, h.dir)
			h.registerOwners()
			for h.step = 0; h.step < steps; h.step++ {
				// The clock moves on: mostly seconds, now and then minutes
				// or an hour.
				switch r := h.rng.IntN(100); {
				case r < 80:
					h.now = h.now.Add(time.Duration(h.rng.IntN(20000)) * time.Millisecond)
				case r < 95:
					h.now = h.now.Add(time.Duration(1+h.rng.IntN(10)) * time.Minute)
				default:
					h.now = h.now.Add(time.Hour)
				}
				switch r := h.rng.IntN(100); {
				case r < 45:
					h.what = "commit"
					n := 1 + h.rng.IntN(40)
					if h.rng.IntN(40) == 0 {
						n = journalMax + 1 + h.rng.IntN(200) // two records
					}
					h.commit(h.batch(n))
				case r < 65:
					h.what = "fold"
					before := h.now.Add(-5 * time.Second)
					if _, err := h.db.CompactHistory(before); err != nil {
						h.fatalf("fold: %v", err)
					}
					h.foldCut = max(h.foldCut, minuteOf(before.UnixMilli()))
				case r < 72:
					h.what = "prune"
					before := h.now.Add(-time.Hour - time.Duration(h.rng.IntN(60000))*time.Millisecond)
					for _, r := range h.db.pending.journalBefore(minuteOf(before.UnixMilli())) {
						if r.newest >= minuteOf(before.UnixMilli()) {
							h.stats["records trimmed"]++
						}
					}
					if _, err := h.db.PruneHistory(before, 1+h.rng.IntN(5)); err != nil {
						h.fatalf("prune: %v", err)
					}
					h.model.prune(minuteOf(before.UnixMilli()))
					h.foldCut = max(h.foldCut, minuteOf(before.UnixMilli()))
					h.checkPruned(minuteOf(before.UnixMilli()))
				case r < 80:
					h.what = "restart"
					h.reopen()
				case r < 84:
					// A crash after a fold wrote some of its blocks, before
					// it deleted any journal record.
					h.what = "crash in fold"
					before := h.now.Add(-5 * time.Second)
					closed, _ := h.db.pending.closed(minuteOf(before.UnixMilli()))
					keys := make([]ownerMinute, 0, len(closed))
					for k := range closed {
						keys = append(keys, k)
					}
					slices.SortFunc(keys, func(a, b ownerMinute) int {
						return cmp.Or(cmp.Compare(a.owner.block(), b.owner.block()), cmp.Compare(a.minute, b.minute))
					})
					keys = keys[:h.rng.IntN(len(keys)+1)]
					if _, err := h.db.foldPending(keys, closed); err != nil {
						h.fatalf("fold: %v", err)
					}
					h.reopen()
				case r < 88:
					// A crash in retention after it trimmed the journal,
					// before it pruned a block: nothing is pruned yet.
					h.what = "crash in prune"
					before := h.now.Add(-time.Hour)
					if _, err := h.db.CompactHistory(before); err != nil {
						h.fatalf("fold: %v", err)
					}
					if err := h.db.trimJournal(minuteOf(before.UnixMilli())); err != nil {
						h.fatalf("trim: %v", err)
					}
					h.reopen()
				case r < 92:
					// A crash right after a commit's transaction, before
					// pending heard of it.
					h.what = "crash after commit"
					fs := h.batch(1 + h.rng.IntN(20))
					err := h.db.db.Update(func(tx *nutsdb.Tx) error { _, err := h.db.putJournal(tx, fs); return err })
					if err != nil {
						h.fatalf("put journal: %v", err)
					}
					h.model.add(fs)
					h.all = append(h.all, fs...)
					h.reopen()
				case r < 93:
					h.what = "merge and restart"
					if err := h.db.Merge(); err != nil {
						h.fatalf("merge: %v", err)
					}
					h.reopen()
				default:
					h.what = "idle"
				}
				h.stats[h.what]++
				h.stats["max journal records"] = max(h.stats["max journal records"], len(h.db.pending.jrn))
				h.check()
				h.foldCut = math.MinInt64 // later commits may hold older minutes
			}
			t.Logf("%v; %d fixes committed", h.stats, len(h.all))
			// The end: everything folds, the journal empties, memory is
			// released; a restart changes nothing; retention takes all.
			h.what = "final fold"
			h.now = h.now.Add(time.Hour)
			if _, err := h.db.CompactHistory(h.now); err != nil {
				t.Fatal(err)
			}
			h.foldCut = minuteOf(h.now.UnixMilli())
			h.check()
			if n, j, m := keyCount(t, h.db, bGPSJournal), len(h.db.pending.jrn), len(h.db.pending.m); n != 0 || j != 0 || m != 0 {
				t.Fatalf("after folding everything: %d journal records, pending knows %d, holds %d owners", n, j, m)
			}
			h.reopen()
			h.check()
			h.what = "final prune"
			if _, err := h.db.PruneHistory(h.now, 3); err != nil {
				t.Fatal(err)
			}
			h.model.prune(minuteOf(h.now.UnixMilli()))
			h.check()
			if n := keyCount(t, h.db, bGPSBlocks); n != 0 {
				t.Fatalf("%d blocks after pruning everything", n)
			}
		})
	}
}

// checkPruned: after retention at cut, no block and no journal record
// holds a minute before it.
func (h *rvHarness) checkPruned(cut int64) {
	for owner, ms := range rvBlockMinutes(h.t, h.db) {
		for _, m := range ms {
			if m < cut {
				h.fatalf("block %s minute %d kept after pruning at %d", owner, m, cut)
			}
		}
	}
	for seq, fs := range rvJournal(h.t, h.db) {
		for _, f := range fs {
			if minuteOf(f.Fix.TS) < cut {
				h.fatalf("journal record %d holds minute %d after pruning at %d", seq, minuteOf(f.Fix.TS), cut)
			}
		}
	}
}

// TestJournalConcurrent runs the appliance's goroutines at once: commits
// (the pipeline), folds every few ms, retention, and History readers,
// checking that a read sees every fix committed before it that no
// retention could have taken, and none a retention finished taking
// before it (and not committed again since).
func TestJournalConcurrent(t *testing.T) {
	seeds := []uint64{11, 12, 13}
	if testing.Short() || raceOn {
		seeds = seeds[:1]
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { rvConcurrent(t, seed) })
	}
}

type rvCommitted struct {
	firstDone int64 // logical clock when a commit of it first returned
	lastStart int64 // logical clock when its latest commit started
	lastEnd   int64 // logical clock when its latest commit returned
	route     string
}

type rvPrune struct {
	start, end int64 // logical clock
	cut        int64 // minute
}

func rvConcurrent(t *testing.T, seed uint64) {
	dir := t.TempDir()
	db := mustOpen(t, dir)
	var simNow atomic.Int64 // simulated wall clock, Unix ms
	simNow.Store(t0.UnixMilli())
	var clock atomic.Int64 // logical order of events
	var mu sync.Mutex
	committed := map[string]map[rvKey]*rvCommitted{} // route -> key
	var prunes []rvPrune
	h := &rvHarness{t: t, db: db, now: t0}
	h.registerOwners()

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failed atomic.Bool
	var trims, prunedFixes, reads atomic.Int64
	errf := func(format string, args ...any) {
		failed.Store(true)
		t.Errorf(format, args...)
	}
	// The pipeline.
	commits := 400
	var commitWG sync.WaitGroup
	commitWG.Add(1)
	go func() {
		defer commitWG.Done()
		rng := rand.New(rand.NewPCG(seed, 1))
		var all []bridge.HistoryFix
		for i := 0; i < commits && !failed.Load(); i++ {
			now := simNow.Add(int64(rng.IntN(3000)))
			var fs []bridge.HistoryFix
			for range 1 + rng.IntN(30) {
				route := rvRoutes[rng.IntN(len(rvRoutes))]
				driver := rvDrivers[rng.IntN(len(rvDrivers))]
				var ts int64
				switch r := rng.IntN(100); {
				case r < 65:
					ts = now - rng.Int64N(3000)
				case r < 78:
					ts = now - rng.Int64N(40*60*1000)
				case r < 88:
					ts = now + rng.Int64N(5*60*1000)
				default:
					if len(all) > 0 {
						fs = append(fs, all[rng.IntN(len(all))])
						continue
					}
					ts = now
				}
				fs = append(fs, rvFix(route, driver, ts))
			}
			start := clock.Add(1)
			mu.Lock()
			for _, f := range fs {
				om := committed[f.RouteID]
				if om == nil {
					om = map[rvKey]*rvCommitted{}
					committed[f.RouteID] = om
				}
				c := om[rvKey{f.Fix.TS, f.Fix.DriverID}]
				if c == nil {
					c = &rvCommitted{firstDone: math.MaxInt64, route: f.RouteID}
					om[rvKey{f.Fix.TS, f.Fix.DriverID}] = c
				}
				c.lastStart = start
			}
			mu.Unlock()
			if err := db.Commit(&bridge.Batch{Fixes: fs}); err != nil {
				errf("commit: %v", err)
				return
			}
			done := clock.Add(1)
			mu.Lock()
			for _, f := range fs {
				c := committed[f.RouteID][rvKey{f.Fix.TS, f.Fix.DriverID}]
				c.firstDone = min(c.firstDone, done)
				c.lastEnd = done
			}
			mu.Unlock()
			all = append(all, fs...)
		}
	}()
	// every runs f every d until stop or until f returns false.
	every := func(d time.Duration, f func() bool) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(d):
				}
				if !f() {
					return
				}
			}
		}()
	}
	// The fold, every few ms.
	every(2*time.Millisecond, func() bool {
		if _, err := db.CompactHistory(time.UnixMilli(simNow.Load() - 5000)); err != nil {
			errf("fold: %v", err)
			return false
		}
		return true
	})
	// Retention, with a short keep so that it cuts into the late fixes.
	every(15*time.Millisecond, func() bool {
		before := time.UnixMilli(simNow.Load() - 20*60*1000)
		mu.Lock()
		i := len(prunes)
		prunes = append(prunes, rvPrune{start: clock.Add(1), end: math.MaxInt64, cut: minuteOf(before.UnixMilli())})
		mu.Unlock()
		for _, r := range db.pending.journalBefore(minuteOf(before.UnixMilli())) {
			if r.newest >= minuteOf(before.UnixMilli()) {
				trims.Add(1)
			}
		}
		pruned, err := db.PruneHistory(before, 7)
		if err != nil {
			errf("prune: %v", err)
			return false
		}
		prunedFixes.Add(int64(pruned))
		mu.Lock()
		prunes[i].end = clock.Add(1)
		mu.Unlock()
		return true
	})
	// Readers.
	for r := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			route := rvRoutes[r]
			for {
				select {
				case <-stop:
					return
				default:
				}
				rs := clock.Add(1)
				reads.Add(1)
				got, err := db.History(route, t0.Add(-24*time.Hour), t0.Add(1000*time.Hour))
				re := clock.Add(1)
				if err != nil {
					errf("history: %v", err)
					return
				}
				mu.Lock()
				seen := map[rvKey]bool{}
				for _, f := range got {
					k := rvKey{f.TS, f.DriverID}
					if seen[k] {
						errf("%s: fix %d/%s twice", route, k.ts, k.driver)
					}
					seen[k] = true
					c := committed[route][k]
					if c == nil {
						errf("%s: fix %d/%s never committed", route, k.ts, k.driver)
						continue
					}
					if f != rvFix(route, f.DriverID, f.TS).Fix {
						errf("%s: fix %d/%s changed: %+v", route, k.ts, k.driver, f)
					}
					// Taken by a retention that finished before this read
					// began and started after the fix's latest commit.
					for _, p := range prunes {
						if p.end < rs && c.lastEnd > c.lastStart && p.start > c.lastEnd && minuteOf(k.ts) < p.cut {
							errf("%s: fix %d/%s (minute %d) back after retention at %d", route, k.ts, k.driver, minuteOf(k.ts), p.cut)
							break
						}
					}
				}
				// Every fix committed before the read, unless a retention
				// that started before the read ended could have taken it.
				maxCut := int64(math.MinInt64)
				for _, p := range prunes {
					if p.start < re {
						maxCut = max(maxCut, p.cut)
					}
				}
				for k, c := range committed[route] {
					if c.firstDone < rs && minuteOf(k.ts) >= maxCut && !seen[k] {
						errf("%s: fix %d/%s (minute %d) committed before the read is missing (cut %d)", route, k.ts, k.driver, minuteOf(k.ts), maxCut)
					}
				}
				mu.Unlock()
				if failed.Load() {
					return
				}
			}
		}()
	}
	commitWG.Wait()
	close(stop)
	wg.Wait()
	if failed.Load() {
		return
	}
	// Quiet now: the store and a reopened store agree with a model.
	model := rvModel{}
	for route, om := range committed {
		for k, c := range om {
			if route != "" && c.firstDone != math.MaxInt64 {
				model.add([]bridge.HistoryFix{rvFix(route, k.driver, k.ts)})
			}
		}
	}
	lastCut := int64(math.MinInt64)
	for _, p := range prunes {
		lastCut = max(lastCut, p.cut)
	}
	check := func(what string) {
		for _, r := range rvRoutes {
			got, err := db.History(r, t0.Add(-24*time.Hour), t0.Add(1000*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			// A fix at a minute before the last cut may or may not be
			// there (committed again after a retention, or late); newer
			// ones must all be.
			var want, g []bridge.Fix
			for _, f := range model.of(r) {
				if minuteOf(f.TS) >= lastCut {
					want = append(want, f)
				}
			}
			for _, f := range got {
				if minuteOf(f.TS) >= lastCut {
					g = append(g, f)
				}
			}
			if !reflect.DeepEqual(g, want) {
				t.Fatalf("%s, %s: %s", what, r, rvDiff(g, want))
			}
		}
	}
	t.Logf("%d prunes (%d fixes pruned, %d records to trim), %d reads", len(prunes), prunedFixes.Load(), trims.Load(), reads.Load())
	check("quiet")
	db.Close()
	db = mustOpen(t, dir)
	check("reopened")
	if _, err := db.PruneHistory(time.UnixMilli(lastCut), 5); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CompactHistory(time.UnixMilli(simNow.Load() + 3600*1000)); err != nil {
		t.Fatal(err)
	}
	if n, j, m := keyCount(t, db, bGPSJournal), len(db.pending.jrn), len(db.pending.m); n != 0 || j != 0 || m != 0 {
		t.Fatalf("after folding everything: %d journal records, pending knows %d, holds %d owners", n, j, m)
	}
}

// A damaged journal record (one that does not decode) is kept and
// reported at Open; the other records, the fold, retention and new
// commits are unaffected.
func TestJournalDamagedRecord(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir)
	m0 := t0.Truncate(time.Minute)
	h := &rvHarness{t: t, db: db, now: m0}
	h.registerOwners()
	good := []bridge.HistoryFix{rvFix("R1", "D1", m0.UnixMilli()+1000), rvFix("R1", "D2", m0.Add(time.Minute).UnixMilli())}
	if err := db.Commit(&bridge.Batch{Fixes: good}); err != nil {
		t.Fatal(err)
	}
	// Damaged values after the good record, and a key of a wrong size.
	bad := map[string][]byte{
		string(be64(50)): {journalV1, 'x', 1, 2, 3},
		string(be64(51)): {},
		string(be64(52)): {9},
		string(be64(53)): {journalV1}, // decodes to no fixes
		"short":          {journalV1},
	}
	err := db.db.Update(func(tx *nutsdb.Tx) error {
		for k, v := range bad {
			if len(v) == 0 {
				v = []byte{0} // nutsdb refuses empty values in some paths
			}
			if err := tx.Put(bGPSJournal, []byte(k), v, nutsdb.Persistent); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = mustOpen(t, dir)
	if got := db.jseq.Load(); got < 53 {
		t.Fatalf("jseq %d after a damaged record at 53: a new record could overwrite it", got)
	}
	got, err := db.History("R1", m0.Add(-time.Hour), m0.Add(time.Hour))
	if err != nil || len(got) != 2 {
		t.Fatalf("history with damaged journal records: %d fixes, %v", len(got), err)
	}
	more := []bridge.HistoryFix{rvFix("R1", "D3", m0.Add(90*time.Second).UnixMilli())}
	if err := db.Commit(&bridge.Batch{Fixes: more}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CompactHistory(m0.Add(5 * time.Minute)); err != nil {
		t.Fatalf("fold with damaged records: %v", err)
	}
	if _, err := db.PruneHistory(m0.Add(-time.Hour), 10); err != nil {
		t.Fatalf("retention with damaged records: %v", err)
	}
	if n := keyCount(t, db, bGPSJournal); n != len(bad) {
		t.Fatalf("%d journal records left, want the %d damaged ones", n, len(bad))
	}
	db.Close()
	db = mustOpen(t, dir)
	got, err = db.History("R1", m0.Add(-time.Hour), m0.Add(time.Hour))
	if err != nil || len(got) != 3 {
		t.Fatalf("after reopening: %d fixes, %v", len(got), err)
	}
}

// After every record is folded and deleted, the next Open starts seqs
// again from 1; the reused keys (and a nightly merge) bring nothing back.
func TestJournalSeqReuse(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir)
	m0 := t0.Truncate(time.Minute)
	h := &rvHarness{t: t, db: db, now: m0}
	h.registerOwners()
	var want []bridge.Fix
	for round := range 4 {
		at := m0.Add(time.Duration(round) * 10 * time.Minute)
		var fs []bridge.HistoryFix
		for i := range 5 {
			fs = append(fs, rvFix("R1", "D1", at.Add(time.Duration(i)*time.Second).UnixMilli()))
		}
		if err := db.Commit(&bridge.Batch{Fixes: fs}); err != nil {
			t.Fatal(err)
		}
		for _, f := range fs {
			want = append(want, f.Fix)
		}
		if _, err := db.CompactHistory(at.Add(2 * time.Minute)); err != nil {
			t.Fatal(err)
		}
		if round == 2 {
			if err := db.Merge(); err != nil {
				t.Fatal(err)
			}
		}
		db.Close()
		db = mustOpen(t, dir)
		if j := keyCount(t, db, bGPSJournal); j != 0 || db.jseq.Load() != 0 {
			t.Fatalf("round %d: %d journal records, jseq %d", round, j, db.jseq.Load())
		}
		got, err := db.History("R1", m0.Add(-time.Hour), m0.Add(time.Hour))
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("round %d: %s, %v", round, rvDiff(got, want), err)
		}
	}
}

// One handheld whose clock runs a few minutes fast (within the bridge's
// 5-minute skew) puts a fix minutes ahead into every commit. A record
// per commit stayed until that future minute was folded, with all the
// live fixes beside it, and a restart read them all back and folded them
// again; a record per minute keeps only the fast fixes.
func TestJournalFastClockKeepsRecords(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir)
	m0 := t0.Truncate(time.Minute)
	h := &rvHarness{t: t, db: db, now: m0}
	h.registerOwners()
	commits, perCommit := 120, 50
	for i := range commits { // two minutes, a commit a second
		at := m0.Add(time.Duration(i) * time.Second)
		var fs []bridge.HistoryFix
		for j := range perCommit - 1 {
			fs = append(fs, rvFix(rvRoutes[j%3], fmt.Sprintf("L%d", j), at.UnixMilli()))
		}
		fs = append(fs, rvFix("R1", "FAST", at.Add(4*time.Minute+30*time.Second).UnixMilli()))
		if err := db.Commit(&bridge.Batch{Fixes: fs}); err != nil {
			t.Fatal(err)
		}
	}
	// Three minutes on: the two live minutes are long folded.
	if _, err := db.CompactHistory(m0.Add(3 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	records := keyCount(t, db, bGPSJournal)
	held := 0
	for _, om := range db.pending.m {
		for _, b := range om {
			fs, _ := decodeBlockFixes(b)
			held += len(fs)
		}
	}
	db.Close()
	db = mustOpen(t, dir)
	replayed := 0
	for _, om := range db.pending.m {
		for _, b := range om {
			fs, _ := decodeBlockFixes(b)
			replayed += len(fs)
		}
	}
	if records != commits || held != commits || replayed != commits {
		t.Fatalf("after folding the live minutes: %d journal records kept (want the %d holding only the fast fixes), %d fixes held, a restart reads back %d (want %d)",
			records, commits, held, replayed, commits)
	}
	if n, err := db.CompactHistory(m0.Add(3 * time.Minute)); err != nil || n != 0 {
		t.Fatalf("the first fold after the restart folds again %d fixes, %v", n, err)
	}
}

// A QoS 1 redelivery is parsed again and gets a new receive time. History
// returns the first copy, before the fold, after it and after a restart.
func TestJournalRedeliveryRecv(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir)
	m0 := t0.Truncate(time.Minute)
	var fs []bridge.HistoryFix
	for i := range 40 {
		fs = append(fs, rvFix("R1", "D1", m0.Add(time.Duration(i)*time.Second).UnixMilli()))
	}
	if err := db.Commit(&bridge.Batch{Fixes: fs}); err != nil {
		t.Fatal(err)
	}
	again := slices.Clone(fs)
	for i := range again {
		again[i].Fix.Recv += 5000
	}
	if err := db.Commit(&bridge.Batch{Fixes: again}); err != nil {
		t.Fatal(err)
	}
	second := func() int {
		got, err := db.History("R1", m0, m0.Add(time.Hour))
		if err != nil || len(got) != len(fs) {
			t.Fatalf("%d fixes, %v", len(got), err)
		}
		n := 0
		for i, f := range got {
			if f.Recv == again[i].Fix.Recv {
				n++
			}
		}
		return n
	}
	a := second()
	if _, err := db.CompactHistory(m0.Add(2 * time.Minute)); err != nil {
		t.Fatal(err)
	}
	b := second()
	db.Close()
	db = mustOpen(t, dir)
	c := second()
	if a+b+c != 0 {
		t.Fatalf("fixes read with the redelivery's receive time (of %d): before the fold %d, after it %d, after a restart %d", len(fs), a, b, c)
	}
}
