package storage

import (
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
)

// commitEvents stores events from..to, one a second after t0.
func commitEvents(t testing.TB, db *DB, from, to uint64) {
	t.Helper()
	var b bridge.Batch
	for i := from; i <= to; i++ {
		raw, _ := json.Marshal(map[string]any{"seq": i, "type": "route:update", "timestamp": t0.Add(time.Duration(i) * time.Second)})
		b.Events = append(b.Events, bridge.Event{Seq: i, Raw: raw})
	}
	if err := db.Commit(&b); err != nil {
		t.Fatal(err)
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
