package storage

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/nutsdb/nutsdb"
)

func TestCompactHistory(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir)
	m0 := t0.Truncate(time.Minute)
	b := bridge.Batch{Routes: []bridge.RouteStatus{{RouteID: "R1"}, {RouteID: "R2"}}}
	for i := range 300 { // five minutes, a fix every second
		at := m0.Add(time.Duration(i) * time.Second)
		f := bridge.Fix{DriverID: "D1", Lat: 38 + float64(i)/1e4, Lng: -121, TS: at.UnixMilli(), Acc: 4.7, Spd: 8.2, Hdg: 271.3, Batt: 81, Recv: at.UnixMilli() + 3}
		b.Fixes = append(b.Fixes, bridge.HistoryFix{RouteID: "R1", Fix: f}, bridge.HistoryFix{RouteID: "R2", Fix: fix("D2", at, 2)})
	}
	if err := db.Commit(&b); err != nil {
		t.Fatal(err)
	}
	window := func(r string) []bridge.Fix {
		h, err := db.History(r, m0.Add(-time.Hour), m0.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	before := window("R1")
	n, err := db.CompactHistory(m0.Add(3*time.Minute + 30*time.Second)) // folds minutes 0–2
	if err != nil || n != 2*180 {
		t.Fatalf("folded %d, %v", n, err)
	}
	after := window("R1")
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("history changed by folding: %d vs %d fixes", len(before), len(after))
	}
	// A window inside a folded minute, and across the boundary.
	h, _ := db.History("R1", m0.Add(70*time.Second), m0.Add(190*time.Second))
	if len(h) != 121 || h[0].TS != m0.Add(70*time.Second).UnixMilli() {
		t.Fatalf("window: %d fixes from %v", len(h), h[0].Time())
	}
	// A redelivered fix of a folded minute: no double, and folded again later.
	late := before[30]
	if err := db.Commit(&bridge.Batch{Fixes: []bridge.HistoryFix{{RouteID: "R1", Fix: late}}}); err != nil {
		t.Fatal(err)
	}
	if got := window("R1"); len(got) != 300 {
		t.Fatalf("%d fixes after a redelivery", len(got))
	}
	if n, _ := db.CompactHistory(m0.Add(3 * time.Minute)); n != 1 {
		t.Fatalf("refolded %d", n)
	}
	db.Close()
	db = mustOpen(t, dir)
	if got := window("R1"); !reflect.DeepEqual(got, before) {
		t.Fatalf("after reopen: %d fixes", len(got))
	}
	// Retention removes whole old blocks and single records alike.
	n, err = db.PruneHistory(m0.Add(2*time.Minute), 2)
	if err != nil || n != 2*120 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	if got := window("R1"); len(got) != 180 || got[0].TS != m0.Add(2*time.Minute).UnixMilli() {
		t.Fatalf("after pruning: %d fixes", len(got))
	}
}

func FuzzDecodeBlock(f *testing.F) {
	f.Add(encodeBlock(60000, []bridge.Fix{{DriverID: "D1", TS: 60001, Lat: 1, Lng: 2}}))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, fs, err := decodeBlock(b)
		if err != nil {
			return
		}
		if _, again, err := decodeBlock(encodeBlock(m, fs)); err != nil || len(again) != len(fs) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// Fixes filed under a driver on no route are folded and pruned too: one
// record per fix would otherwise stay in memory for the whole retention.
func TestCompactDriverHistory(t *testing.T) {
	db := mustOpen(t, t.TempDir())
	m0 := t0.Truncate(time.Minute)
	b := bridge.Batch{Latest: []bridge.Fix{fix("D9", m0, 1)}}
	for i := range 180 {
		b.Fixes = append(b.Fixes, bridge.HistoryFix{Fix: fix("D9", m0.Add(time.Duration(i)*time.Second), 1)})
	}
	if err := db.Commit(&b); err != nil {
		t.Fatal(err)
	}
	if n, err := db.CompactHistory(m0.Add(2 * time.Minute)); err != nil || n != 120 {
		t.Fatalf("folded %d, %v", n, err)
	}
	var blocks int
	db.db.View(func(tx *nutsdb.Tx) error {
		vals, _ := tx.PrefixScan(bGPSBlocks, []byte("d/D9\x00"), 0, 100)
		blocks = len(vals)
		return nil
	})
	if blocks != 2 {
		t.Fatalf("%d driver blocks, want 2", blocks)
	}
	// Retention takes whole minutes: minute 2 is not over at the cut.
	if n, err := db.PruneHistory(m0.Add(150*time.Second), 10); err != nil || n != 120 {
		t.Fatalf("pruned %d, %v (want two folded minutes)", n, err)
	}
}

// putSingles files fixes as a store of format 2 or older did: a record
// per fix.
func putSingles(t *testing.T, db *DB, fixes []bridge.HistoryFix) {
	t.Helper()
	err := db.db.Update(func(tx *nutsdb.Tx) error {
		for _, h := range fixes {
			v, _ := h.Fix.AppendJSON(nil)
			if err := tx.Put(bGPS, historyKey(h), v, nutsdb.Persistent); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Singles from a store of format 2 are read back and folded; journal
// records are read back into memory at Open and folded from there, and
// go once all their minutes are; a minute with both is folded whole,
// once.
func TestCompactHistoryAfterRestart(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir)
	m0 := t0.Truncate(time.Minute)
	fixes := func(from, to int) (b bridge.Batch) {
		for i := from; i < to; i++ {
			at := m0.Add(time.Duration(i) * time.Second)
			b.Fixes = append(b.Fixes, bridge.HistoryFix{RouteID: "R1", Fix: fix("D1", at, 1)}, bridge.HistoryFix{Fix: fix("D9", at, 2)})
		}
		return b
	}
	commit := func(from, to int) {
		b := fixes(from, to)
		if err := db.Commit(&b); err != nil {
			t.Fatal(err)
		}
	}
	reopen := func() {
		db.Close()
		db = mustOpen(t, dir)
	}
	putSingles(t, db, fixes(0, 90).Fixes) // minute 0 and half of minute 1, as format 2 filed them
	reopen()
	if len(db.pending.old) != 2 {
		t.Fatalf("owners with singles from before: %v", db.pending.old)
	}
	commit(90, 150) // the rest of minute 1, half of minute 2
	if got := keyCount(t, db, bGPSJournal); got != 2 {
		t.Fatalf("%d journal records for a commit of two minutes, want one a minute", got)
	}
	reopen() // the journal is read back
	if len(db.pending.m) != 2 || len(db.pending.jrn) != 2 || len(db.pending.old) != 2 {
		t.Fatalf("after reopening: %d owners held, %d journal records, %d owners with singles", len(db.pending.m), len(db.pending.jrn), len(db.pending.old))
	}
	want, err := db.History("R1", m0, m0.Add(time.Hour))
	if err != nil || len(want) != 150 {
		t.Fatalf("%d fixes, %v", len(want), err)
	}
	n, err := db.CompactHistory(m0.Add(2 * time.Minute)) // minutes 0 and 1
	if err != nil || n != 2*120 {
		t.Fatalf("folded %d, %v", n, err)
	}
	// Minute 1's journal record went; minute 2's stays.
	if s, j := keyCount(t, db, bGPS), keyCount(t, db, bGPSJournal); s != 0 || j != 1 {
		t.Fatalf("%d singles and %d journal records left, want 0 and 1", s, j)
	}
	if got, _ := db.History("R1", m0, m0.Add(time.Hour)); !reflect.DeepEqual(got, want) {
		t.Fatalf("history changed by folding: %d fixes", len(got))
	}
	if len(db.pending.old) != 0 {
		t.Fatalf("owners still thought to have old singles: %v", db.pending.old)
	}
	commit(150, 180)
	if n, err := db.CompactHistory(m0.Add(3 * time.Minute)); err != nil || n != 2*60 {
		t.Fatalf("folded %d, %v", n, err)
	}
	if j := keyCount(t, db, bGPSJournal); j != 0 || len(db.pending.m) != 0 || len(db.pending.jrn) != 0 {
		t.Fatalf("%d journal records, %d owners held after folding everything", j, len(db.pending.m))
	}
	all, _ := db.History("R1", m0, m0.Add(time.Hour))
	if len(all) != 180 || !reflect.DeepEqual(all[:150], want) {
		t.Fatalf("after folding: %d fixes", len(all))
	}
	// A crash after a fold wrote its blocks but before it deleted the
	// journal record: the record is folded again, and nothing doubles.
	b := fixes(100, 180)
	if err := db.db.Update(func(tx *nutsdb.Tx) error { _, err := db.putJournal(tx, b.Fixes); return err }); err != nil {
		t.Fatal(err)
	}
	reopen()
	if got, _ := db.History("R1", m0, m0.Add(time.Hour)); !reflect.DeepEqual(got, all) {
		t.Fatalf("a journal record left by a crash: %d fixes", len(got))
	}
	if n, err := db.CompactHistory(m0.Add(3 * time.Minute)); err != nil || n != 2*80 {
		t.Fatalf("folded %d again, %v", n, err)
	}
	if got, _ := db.History("R1", m0, m0.Add(time.Hour)); !reflect.DeepEqual(got, all) || keyCount(t, db, bGPSJournal) != 0 {
		t.Fatalf("after folding it again: %d fixes", len(got))
	}
}

// A fix added to a minute while the fold writes it stays for the next fold.
func TestPendingKeepsWhatCameDuringAFold(t *testing.T) {
	var p pendingFixes
	m0 := t0.Truncate(time.Minute)
	p.add([]bridge.HistoryFix{{RouteID: "R1", Fix: fix("D1", m0, 1)}}, []journalRef{{1, m0.UnixMilli(), m0.UnixMilli()}})
	taken, journal := p.closed(m0.Add(time.Minute).UnixMilli())
	p.add([]bridge.HistoryFix{{RouteID: "R1", Fix: fix("D1", m0.Add(time.Second), 1)}}, []journalRef{{2, m0.UnixMilli(), m0.UnixMilli()}})
	for k, b := range taken {
		p.done(k, b)
	}
	if len(journal) != 1 || journal[0] != 1 {
		t.Fatalf("journal records done: %v, want only the first", journal)
	}
	left, journal := p.closed(m0.Add(time.Minute).UnixMilli())
	if len(left) != 1 || len(journal) != 2 {
		t.Fatalf("%d minutes left, %d journal records", len(left), len(journal))
	}
	for _, b := range left {
		fs, err := decodeBlockFixes(b)
		if err != nil || len(fs) != 1 || fs[0].TS != m0.Add(time.Second).UnixMilli() {
			t.Fatalf("left %v, %v", fs, err)
		}
	}
}

func TestParseHistoryKey(t *testing.T) {
	for _, h := range []bridge.HistoryFix{{RouteID: "R1", Fix: bridge.Fix{DriverID: "D1", TS: 123456}}, {Fix: bridge.Fix{DriverID: "D9", TS: 7}}} {
		o, ts, ok := parseHistoryKey(historyKey(h))
		if !ok || o != ownerOf(h) || ts != h.Fix.TS {
			t.Fatalf("%+v: %+v %d %v", h, o, ts, ok)
		}
	}
	for _, k := range []string{"", "r/", "x/R1\x00\x00\x00\x00\x00\x00\x00\x00\x01", "r/R1\x00\x01"} {
		if _, _, ok := parseHistoryKey([]byte(k)); ok {
			t.Fatalf("%q parsed", k)
		}
	}
}

func FuzzDecodeJournal(f *testing.F) {
	f.Add(appendJournal([]byte{journalV1}, []bridge.HistoryFix{{RouteID: "R1", Fix: bridge.Fix{DriverID: "D1", TS: 60001, Lat: 1}}, {Fix: bridge.Fix{DriverID: "D9", TS: -5}}}))
	f.Add([]byte{journalV1, 'r', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{journalV1, 'd', 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		hs, err := decodeJournal(b)
		if err != nil {
			return
		}
		enc := appendJournal([]byte{journalV1}, hs)
		again, err := decodeJournal(enc)
		if err != nil || len(again) != len(hs) || !bytes.Equal(appendJournal([]byte{journalV1}, again), enc) {
			t.Fatalf("round trip: %v", err)
		}
	})
}
