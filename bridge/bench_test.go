package bridge

import (
	"testing"
	"time"
)

func BenchmarkParseFix(b *testing.B) {
	p := []byte(`{"lat":38.58,"lng":-121.49,"ts":` + itoa(t0.UnixMilli()) + `,"acc":5,"spd":8.2,"hdg":270,"batt":81}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if _, err := ParseFix("D1", p, t0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDiff(b *testing.B) {
	a := snap("R1", "D1", 10, 1).Status()
	c := a
	c.CurrentLat, c.CurrentLng, c.LastUpdated = 38.6, -121.4, t0.Add(time.Second)
	b.ReportAllocs()
	for b.Loop() {
		if Diff(a, c).Empty() {
			b.Fatal("no delta")
		}
	}
}

// BenchmarkIngestFix is one live fix through the domain: state update,
// delta, envelope, group commit (to a no-op store) and publish.
func BenchmarkIngestFix(b *testing.B) {
	d := &Depot{ID: "T", Store: &nopStore{}, Now: func() time.Time { return t0 }}
	if err := d.Open(nopPub{}); err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	d.ApplySnapshots([]RouteSnapshot{snap("R1", "D1", 10, 0)})
	b.ReportAllocs()
	i := int64(0)
	for b.Loop() {
		i++
		if err := d.IngestFix(Fix{DriverID: "D1", Lat: 38, Lng: -121, TS: t0.UnixMilli() + i}, false); err != nil {
			b.Fatal(err)
		}
	}
}

type nopStore struct{}

func (nopStore) LoadState() (State, error) { return State{}, nil }
func (nopStore) Commit(*Batch) error       { return nil }

type nopPub struct{}

func (nopPub) Publish(string, []byte, bool, byte) error                 { return nil }
func (nopPub) PublishExpiring(string, []byte, bool, byte, uint32) error { return nil }

// BenchmarkACL is the check mochi makes on every publish, subscribe and
// delivery.
func BenchmarkACL(b *testing.B) {
	drv := Identity{RoleDriver, "D17"}
	disp := Identity{RoleDispatcher, "ana"}
	b.ReportAllocs()
	for b.Loop() {
		if !drv.Allowed("DEMO1", "depot/DEMO1/drivers/D17/gps", true) || !disp.Allowed("DEMO1", "depot/DEMO1/events", false) {
			b.Fatal("denied")
		}
	}
}
