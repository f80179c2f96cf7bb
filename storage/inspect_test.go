package storage

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
)

// TestInspect: the store's size, its event log's span and count, with
// events both folded into blocks and single; the latest fixes newest
// first; a second Open while the first holds the store is ErrInUse.
func TestInspect(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir)
	sum, err := db.Inspect()
	if err != nil || sum.Events != 0 || !sum.OldestEvent.IsZero() || sum.Bytes == 0 {
		t.Fatalf("empty store: %+v %v", sum, err)
	}
	ev := func(seq uint64, at time.Time) bridge.Event {
		return bridge.Event{Seq: seq, Raw: fmt.Appendf(nil, `{"seq":%d,"timestamp":%q}`, seq, at.Format(time.RFC3339Nano))}
	}
	b := &bridge.Batch{Latest: []bridge.Fix{fix("D1", t0, 38), fix("D2", t0.Add(time.Minute), 38)}}
	for i := range 10 {
		b.Events = append(b.Events, ev(uint64(i+1), t0.Add(time.Duration(i)*time.Hour)))
	}
	if err := db.Commit(b); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CompactEvents(); err != nil {
		t.Fatal(err)
	}
	if err := db.Commit(&bridge.Batch{Events: []bridge.Event{ev(11, t0.Add(48*time.Hour))}}); err != nil {
		t.Fatal(err)
	}
	sum, err = db.Inspect()
	if err != nil {
		t.Fatal(err)
	}
	if sum.Events != 11 || !sum.OldestEvent.Equal(t0) || !sum.NewestEvent.Equal(t0.Add(48*time.Hour)) {
		t.Fatalf("inspect: %+v", sum)
	}
	fixes, err := db.LatestFixes(1)
	if err != nil || len(fixes) != 1 || fixes[0].DriverID != "D2" {
		t.Fatalf("latest fixes: %+v %v", fixes, err)
	}
	if _, err := Open(dir, nil); !errors.Is(err, ErrInUse) {
		t.Fatalf("second open: %v, want ErrInUse", err)
	}
}
