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
			d := &bridge.Depot{ID: "B", Store: db, Pub: nopPub{}}
			if err := d.Open(); err != nil {
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
