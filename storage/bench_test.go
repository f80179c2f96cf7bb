package storage

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
)

type nopPub struct{}

func (nopPub) Publish(string, []byte, bool, byte) error                 { return nil }
func (nopPub) PublishExpiring(string, []byte, bool, byte, uint32) error { return nil }

// BenchmarkDurableFix: QoS 1 fixes from many handhelds at once, each
// acknowledged only once fsynced. "group" is the appliance (the pipeline
// puts whatever arrived together into one transaction); "one-per-fix" gives
// every fix its own transaction and fsync, for comparison.
func BenchmarkDurableFix(b *testing.B) {
	for _, mode := range []string{"group", "one-per-fix"} {
		b.Run(mode, func(b *testing.B) {
			db := mustOpen(b, b.TempDir())
			d := &bridge.Depot{ID: "B", Store: db}
			if err := d.Open(nopPub{}); err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			d.ApplySnapshots([]bridge.RouteSnapshot{{RouteID: "R1", DriverID: "D1", TotalStops: 10}})
			var n atomic.Int64
			base := time.Now().UnixMilli()
			commits0 := d.Stats.Commits.Load()
			b.SetParallelism(50) // 100 handhelds on 2 cores
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					f := bridge.Fix{DriverID: "D1", Lat: 38, Lng: -121, TS: base + i, Recv: base}
					var err error
					if mode == "group" {
						err = d.IngestFix(f, true)
					} else {
						err = db.Commit(&bridge.Batch{Fixes: []bridge.HistoryFix{{RouteID: "R1", Fix: f}}})
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(n.Load())/b.Elapsed().Seconds(), "fixes/s")
			if mode == "group" {
				b.ReportMetric(float64(n.Load())/float64(d.Stats.Commits.Load()-commits0), "fixes/fsync")
			} else {
				b.ReportMetric(1, "fixes/fsync")
			}
		})
	}
}

// BenchmarkHistoryRouteDay reads one route-day: 30,000 fixes (a fix every
// ~1.2 s for 10 hours), the target of GET /api/v1/routes/{id}/history.
func BenchmarkHistoryRouteDay(b *testing.B) {
	db := mustOpen(b, b.TempDir())
	start := time.Date(2026, 11, 26, 6, 0, 0, 0, time.UTC)
	if err := db.Commit(&bridge.Batch{Routes: []bridge.RouteStatus{{RouteID: "R1"}, {RouteID: "R2"}}}); err != nil {
		b.Fatal(err)
	}
	for c := 0; c < 30; c++ {
		var batch bridge.Batch
		for i := range 1000 {
			k := c*1000 + i
			batch.Fixes = append(batch.Fixes, bridge.HistoryFix{RouteID: "R1",
				Fix: bridge.Fix{DriverID: "D1", Lat: 38.5, Lng: -121.5, TS: start.Add(time.Duration(k) * 1200 * time.Millisecond).UnixMilli(), Acc: 5, Spd: 8, Hdg: 90, Batt: 80}})
			batch.Fixes = append(batch.Fixes, bridge.HistoryFix{RouteID: "R2", // a neighbour in the same bucket
				Fix: bridge.Fix{DriverID: "D2", Lat: 38.5, Lng: -121.5, TS: start.Add(time.Duration(k) * 1200 * time.Millisecond).UnixMilli()}})
		}
		if err := db.Commit(&batch); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := db.CompactHistory(start.Add(24 * time.Hour)); err != nil { // as the appliance does every 5 s
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		h, err := db.History("R1", start, start.Add(24*time.Hour))
		if err != nil || len(h) != 30000 {
			b.Fatal(len(h), err)
		}
	}
}
