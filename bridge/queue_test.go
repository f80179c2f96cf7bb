package bridge

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

// gatedStore commits only when the test lets it: each Commit waits for a
// token on open.
type gatedStore struct {
	memStore
	open chan struct{}
}

func (g *gatedStore) Commit(b *Batch) error {
	<-g.open
	return g.memStore.Commit(b)
}

// TestFullQueueWritersAllResume: writers that find the queue full wait
// outside the lock and every one of them goes on as the disk frees slots,
// however the wake-ups interleave (a lost one would leave a writer asleep
// next to free slots). The disk lets one commit through at a time, so the
// queue fills and drains many times over.
func TestFullQueueWritersAllResume(t *testing.T) {
	st := &gatedStore{open: make(chan struct{})}
	d := &Depot{ID: "T", Store: st, Now: func() time.Time { return t0 }}
	if err := d.Open(&memPub{}); err != nil {
		t.Fatal(err)
	}
	const writers, each = 16, 2000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "D" + strconv.Itoa(w)
			for i := range each {
				if err := d.IngestFix(Fix{DriverID: id, Lat: 38.5, Lng: -121.5, TS: t0.UnixMilli() + int64(i)}, false); err != nil {
					t.Errorf("writer %d fix %d: %v", w, i, err)
					return
				}
			}
		}()
	}
	// The queue fills while the disk is shut, and readers still answer.
	deadline := time.Now().Add(10 * time.Second)
	for d.StoreHealth().Queued < queueLen {
		if time.Now().After(deadline) {
			t.Fatalf("the queue never filled: %d", d.StoreHealth().Queued)
		}
		time.Sleep(time.Millisecond)
	}
	_ = d.Routes()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for open := true; open; {
		select {
		case st.open <- struct{}{}:
		case <-done:
			open = false
		case <-time.After(20 * time.Second):
			t.Fatalf("writers stuck: queue %d, %d waiting", d.p.queued.Load(), d.p.waiting.Load())
		}
	}
	close(st.open) // let the last commits through
	d.Close()
	if n := len(st.all().Fixes); n != writers*each {
		t.Fatalf("%d fixes stored, want %d", n, writers*each)
	}
	if q := d.StoreHealth().Queued; q != 0 {
		t.Fatalf("%d slots still taken", q)
	}
}
