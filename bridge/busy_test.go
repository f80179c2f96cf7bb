package bridge

import (
	"testing"
	"time"
)

// gatedPub blocks every publish until the test opens it: a broker that
// stopped answering.
type gatedPub struct {
	memPub
	open chan struct{}
}

func (g *gatedPub) Publish(topic string, payload []byte, retain bool, qos byte) error {
	<-g.open
	return g.memPub.Publish(topic, payload, retain, qos)
}

// waitBusy waits until cond(d.Busy()) holds, or fails.
func waitBusy(t *testing.T, d *Depot, what string, cond func(time.Duration) bool) time.Duration {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b := d.Busy()
		if cond(b) {
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("Busy %s: still %s", what, b)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestBusy: Busy is 0 when the pipeline is idle, grows while a commit
// hangs on the disk and while a publish hangs on the broker (either stage
// of the pipeline), and is 0 again once the work is through.
func TestBusy(t *testing.T) {
	for _, stage := range []string{"commit", "publish"} {
		t.Run(stage, func(t *testing.T) {
			st := &gatedStore{open: make(chan struct{})}
			pub := &gatedPub{open: make(chan struct{})}
			switch stage {
			case "commit":
				close(pub.open)
			case "publish":
				close(st.open)
			}
			d := &Depot{ID: "T", Store: st, Now: func() time.Time { return t0 }}
			if err := d.Open(pub); err != nil {
				t.Fatal(err)
			}
			if b := d.Busy(); b != 0 {
				t.Fatalf("idle: Busy %s", b)
			}
			if err := d.IngestFix(Fix{DriverID: "D1", Lat: 38.5, Lng: -121.5, TS: t0.UnixMilli()}, false); err != nil {
				t.Fatal(err)
			}
			b1 := waitBusy(t, d, "grows", func(b time.Duration) bool { return b >= 50*time.Millisecond })
			time.Sleep(100 * time.Millisecond)
			if b2 := d.Busy(); b2 < b1+90*time.Millisecond {
				t.Fatalf("a hung %s: Busy went from %s to %s in 100ms", stage, b1, b2)
			}
			if stage == "commit" {
				close(st.open)
			} else {
				close(pub.open)
			}
			waitBusy(t, d, "back to 0", func(b time.Duration) bool { return b == 0 })
			d.Close()
			if b := d.Busy(); b != 0 {
				t.Fatalf("closed: Busy %s", b)
			}
		})
	}
}
