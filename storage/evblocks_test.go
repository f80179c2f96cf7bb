package storage

import (
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/nutsdb/nutsdb"
)

// commitEvents stores events from..to, one a second after t0, in commits
// small enough to store them as single records.
func commitEvents(t testing.TB, db *DB, from, to uint64) {
	t.Helper()
	for lo := from; lo <= to; lo += eventBlockDirect - 1 {
		commitBatch(t, db, lo, min(to, lo+eventBlockDirect-2))
	}
}

// commitBatch stores events from..to, one a second after t0, in one commit.
func commitBatch(t testing.TB, db *DB, from, to uint64) {
	t.Helper()
	var b bridge.Batch
	for i := from; i <= to; i++ {
		at := t0.Add(time.Duration(i) * time.Second)
		raw, _ := json.Marshal(map[string]any{"seq": i, "type": "route:update", "timestamp": at})
		b.Events = append(b.Events, bridge.Event{Seq: i, Raw: raw, At: at})
	}
	if err := db.Commit(&b); err != nil {
		t.Fatal(err)
	}
}

// keyCount is how many records bucket holds.
func keyCount(t *testing.T, db *DB, bucket string) int {
	t.Helper()
	n := 0
	err := db.db.View(func(tx *nutsdb.Tx) error {
		keys, err := tx.GetKeys(bucket)
		if err != nil && !notFound(err) {
			return err
		}
		n = len(keys)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// A busy commit stores its events as blocks at once, folding in the few
// singles before it; reads, restarts and retention see the same log.
func TestEventBlocksDirect(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir)
	commitEvents(t, db, 1, 10)   // a quiet depot: singles
	commitBatch(t, db, 11, 2100) // busy: 1–10 folded in, blocks of at most eventBlockMax
	if n := keyCount(t, db, bEvents); n != 0 {
		t.Fatalf("%d singles left after a busy commit", n)
	}
	if n, err := db.CompactEvents(); err != nil || n != 0 {
		t.Fatalf("folded %d, %v: nothing was left to fold", n, err)
	}
	commitEvents(t, db, 2101, 2110) // quiet again: singles after the blocks
	wantRun(t, seqs(t, db, 0, 5000), 1, 2110)
	wantRun(t, seqs(t, db, 1020, 10), 1021, 10) // across the first two blocks
	wantRun(t, seqs(t, db, 2095, 10), 2096, 10) // across the blocks into singles
	// More singles than a commit folds in: it takes the newest
	// eventFoldInMax, the older ones stay singles until the fold, and
	// reads merge them with the blocks by seq.
	commitEvents(t, db, 2111, 2110+eventFoldInMax)
	commitBatch(t, db, 2111+eventFoldInMax, 2110+eventFoldInMax+100)
	if n := keyCount(t, db, bEvents); n != 10 {
		t.Fatalf("%d singles, want 2101–2110", n)
	}
	last := uint64(2110 + eventFoldInMax + 100)
	wantRun(t, seqs(t, db, 0, 5000), 1, int(last))
	wantRun(t, seqs(t, db, 2105, 20), 2106, 20)
	if n, err := db.CompactEvents(); err != nil || n != 10 {
		t.Fatalf("folded %d, %v", n, err)
	}
	wantRun(t, seqs(t, db, 0, 5000), 1, int(last))
	// A hole before the busy commit (which the depot never writes): the
	// singles stay singles, the log reads the same.
	commitEvents(t, db, last+1, last+5)
	commitBatch(t, db, last+10, last+100)
	if n := keyCount(t, db, bEvents); n != 5 {
		t.Fatalf("%d singles, want 5", n)
	}
	got := seqs(t, db, last, 200)
	if len(got) != 96 || got[4] != last+5 || got[5] != last+10 || got[95] != last+100 {
		t.Fatalf("seqs %v", got)
	}
	db.Close()
	db = mustOpen(t, dir)
	if st, err := db.LoadState(); err != nil || st.LastSeq != last+100 {
		t.Fatalf("last seq %d, %v", st.LastSeq, err)
	}
	if seq, _ := db.OldestSeq(); seq != 1 {
		t.Fatalf("oldest %d", seq)
	}
	// A block's time is its newest event's: retention drops 1–1024 (the
	// first block, events 1–10 folded in with 11–1024) and keeps the rest.
	n, err := db.PruneEvents(t0.Add(1024*time.Second+time.Millisecond), 500)
	if err != nil || n != 1024 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	if seq, _ := db.OldestSeq(); seq != 1025 {
		t.Fatalf("oldest %d after pruning", seq)
	}
}

// seqs reads events after..after+limit and returns their seqs.
func seqs(t *testing.T, db *DB, after uint64, limit int) []uint64 {
	t.Helper()
	evs, err := db.EventsAfter(after, limit)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]uint64, len(evs))
	for i, e := range evs {
		var v struct{ Seq uint64 }
		if err := json.Unmarshal(e, &v); err != nil {
			t.Fatal(err)
		}
		out[i] = v.Seq
	}
	return out
}

func wantRun(t *testing.T, got []uint64, first uint64, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%d events, want %d from %d", len(got), n, first)
	}
	for i, s := range got {
		if s != first+uint64(i) {
			t.Fatalf("event %d has seq %d, want %d", i, s, first+uint64(i))
		}
	}
}

func TestEventBlocks(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir)
	commitEvents(t, db, 1, 2500)
	n, err := db.CompactEvents()
	if err != nil || n != 2500 {
		t.Fatalf("folded %d, %v", n, err)
	}
	if n, _ := db.CompactEvents(); n != 0 {
		t.Fatalf("folded %d again", n)
	}
	commitEvents(t, db, 2501, 2600) // newer singles beside the blocks
	// Reads cross block and single boundaries and see each event once.
	wantRun(t, seqs(t, db, 0, 5000), 1, 2600)
	wantRun(t, seqs(t, db, 1000, 50), 1001, 50) // inside block 1, across into block 2
	wantRun(t, seqs(t, db, 2040, 10), 2041, 10) // in the last, partial block
	wantRun(t, seqs(t, db, 2495, 10), 2496, 10) // across the blocks into singles
	wantRun(t, seqs(t, db, 2600, 10), 0, 0)
	if seq, _ := db.OldestSeq(); seq != 1 {
		t.Fatalf("oldest %d", seq)
	}
	// Everything folded: the last seq still comes back after a restart.
	if _, err := db.CompactEvents(); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = mustOpen(t, dir)
	if st, err := db.LoadState(); err != nil || st.LastSeq != 2600 {
		t.Fatalf("last seq %d, %v", st.LastSeq, err)
	}
	wantRun(t, seqs(t, db, 2590, 100), 2591, 10)
	// Retention drops whole blocks whose newest event is old enough, then
	// singles, and never a newer event.
	commitEvents(t, db, 2601, 2610)
	// Blocks now: 1–1024, 1025–2048, 2049–2500, 2501–2600; singles 2601–2610.
	n, err = db.PruneEvents(t0.Add(2048*time.Second), 500)
	if err != nil || n != 1024 {
		t.Fatalf("pruned %d, %v (want the first block only: the second ends at 2048 s)", n, err)
	}
	n, err = db.PruneEvents(t0.Add(2605*time.Second+time.Millisecond), 500)
	if err != nil || n != 1024+452+100+5 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	if seq, _ := db.OldestSeq(); seq != 2606 {
		t.Fatalf("oldest %d after pruning", seq)
	}
	wantRun(t, seqs(t, db, 2605, 100), 2606, 5)
}

// A run of seqs with a hole (which the depot never writes) still folds,
// into blocks of consecutive seqs.
func TestEventBlocksSplitAtHoles(t *testing.T) {
	db := mustOpen(t, t.TempDir())
	commitEvents(t, db, 1, 10)
	commitEvents(t, db, 20, 30)
	if n, err := db.CompactEvents(); err != nil || n != 21 {
		t.Fatalf("folded %d, %v", n, err)
	}
	got := seqs(t, db, 0, 100)
	if len(got) != 21 || got[9] != 10 || got[10] != 20 {
		t.Fatalf("seqs %v", got)
	}
}

// TestEventMemory: heap kept per stored event, before and after folding
// (nutsdb holds every key in memory).
func TestEventMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("measures memory over 100,000 events")
	}
	db := mustOpen(t, t.TempDir())
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	h0 := heap()
	const n = 100_000
	for i := uint64(0); i < n; i += 1000 {
		commitEvents(t, db, i+1, i+1000)
	}
	single := int64(heap()-h0) / n
	if _, err := db.CompactEvents(); err != nil {
		t.Fatal(err)
	}
	folded := (int64(heap()) - int64(h0)) / n
	t.Logf("heap per stored event: %d B as single records, %d B folded", single, folded)
	if folded*20 > single {
		t.Fatalf("folding kept %d of %d bytes per event", folded, single)
	}
}

func FuzzDecodeEventBlock(f *testing.F) {
	f.Add(encodeEventBlock(7, 1000, [][]byte{[]byte(`{"seq":7}`), []byte(`{"seq":8}`)}))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		first, newest, evs, err := decodeEventBlock(b)
		if err != nil {
			return
		}
		f2, n2, again, err := decodeEventBlock(encodeEventBlock(first, newest, evs))
		if err != nil || f2 != first || n2 != newest || fmt.Sprint(again) != fmt.Sprint(evs) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

func TestEventSeq(t *testing.T) {
	for _, c := range []struct {
		raw  string
		want uint64
		ok   bool
	}{
		{`{"seq":12,"id":"evt_12"}`, 12, true},
		{`{"seq":18446744073709551615,"id":"x"}`, 18446744073709551615, true},
		{`{"seq":99999999999999999999,"x":1}`, 0, false},  // 20 digits, over a uint64
		{`{"seq":7}`, 7, true},                            // no comma: decoded
		{`{"id":"evt_5","seq":5}`, 5, true},               // not first: decoded
		{`{"seq":,"id":"x"}`, 0, false},                   // no digits
		{`{"seq":123456789012345678901,"x":1}`, 0, false}, // too long for a uint64
		{`not json`, 0, false},
	} {
		got, err := eventSeq([]byte(c.raw))
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("eventSeq(%s) = %d, %v; want %d, ok %v", c.raw, got, err, c.want, c.ok)
		}
	}
}

// Busy commits' blocks hold their own events; the event fold merges runs
// of them into blocks of up to eventBlockMax, and the log reads the same.
func TestEventBlocksMerged(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir)
	for lo := uint64(1); lo <= 3000; lo += 100 {
		commitBatch(t, db, lo, lo+99)
	}
	commitEvents(t, db, 3001, 3010) // a quiet spell: singles, folded into a small block
	if n := keyCount(t, db, bEventBlocks); n != 30 {
		t.Fatalf("%d blocks before merging, want 30", n)
	}
	if n, err := db.CompactEvents(); err != nil || n != 10 {
		t.Fatalf("folded %d, %v", n, err)
	}
	// Ten commits a block, the fold's ten events with the last:
	// 1–1000, 1001–2000, 2001–3010.
	if n := keyCount(t, db, bEventBlocks); n != 3 {
		t.Fatalf("%d blocks after merging, want 3", n)
	}
	wantRun(t, seqs(t, db, 0, 5000), 1, 3010)
	wantRun(t, seqs(t, db, 995, 10), 996, 10)
	// Merged blocks with room merge again with what comes next.
	for lo := uint64(3011); lo <= 3410; lo += 100 {
		commitBatch(t, db, lo, lo+99)
	}
	if _, err := db.CompactEvents(); err != nil {
		t.Fatal(err)
	}
	if n := keyCount(t, db, bEventBlocks); n != 4 {
		t.Fatalf("%d blocks, want 1–1000, 1001–2000, 2001–3010, 3011–3410", n)
	}
	wantRun(t, seqs(t, db, 0, 5000), 1, 3410)
	// Retention takes blocks waiting for their merge: the merge leaves
	// them out, and the log reads what is left.
	for lo := uint64(3411); lo <= 3710; lo += 100 {
		commitBatch(t, db, lo, lo+99)
	}
	if n, err := db.PruneEvents(t0.Add(3511*time.Second), 10); err != nil || n != 3510 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	if _, err := db.CompactEvents(); err != nil {
		t.Fatal(err)
	}
	got := seqs(t, db, 0, 5000)
	wantRun(t, got, 3511, 200)
	if n := keyCount(t, db, bEventBlocks); n != 1 {
		t.Fatalf("%d blocks, want 3511–3710", n)
	}
	// A busy depot merges every few seconds, only runs that fill a block.
	for lo := uint64(3711); lo <= 5110; lo += 100 {
		commitBatch(t, db, lo, lo+99)
	}
	if err := db.MergeEventBlocks(); err != nil {
		t.Fatal(err)
	}
	// 3511–4510 made a full block; 4511–5110 wait in six blocks.
	if n := keyCount(t, db, bEventBlocks); n != 7 {
		t.Fatalf("%d blocks after merging full runs, want 7", n)
	}
	// Only those six stay listed (with their bytes): a block that cannot
	// grow any more leaves the list.
	if n := len(db.small.refs); n != 6 {
		t.Fatalf("%d blocks listed for merging, want 6", n)
	}
	wantRun(t, seqs(t, db, 3000, 5000), 3511, 1600)
	db.Close()
	db = mustOpen(t, dir)
	if st, err := db.LoadState(); err != nil || st.LastSeq != 5110 {
		t.Fatalf("last seq %d, %v", st.LastSeq, err)
	}
	if seq, _ := db.OldestSeq(); seq != 3511 {
		t.Fatalf("oldest %d", seq)
	}
}
