package bridge

import (
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
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

// TestFullQueueServesWritersInTurn: a slot freed in a full queue goes to
// the writer that waited for it, not to one that came later.
func TestFullQueueServesWritersInTurn(t *testing.T) {
	p := &pipeline{now: time.Now, space: make(chan struct{}, 1), quit: make(chan struct{})}
	defer close(p.quit)
	p.queued.Store(queueLen)
	got := make(chan string, 2)
	waitFor := func(n int32) {
		for deadline := time.Now().Add(5 * time.Second); p.waiting.Load() != n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%d waiting, want %d", p.waiting.Load(), n)
			}
		}
	}
	go func() { _ = p.reserve(); got <- "first" }()
	waitFor(1)
	go func() { _ = p.reserve(); got <- "second" }()
	waitFor(2)
	p.unreserve()
	if w := <-got; w != "first" {
		t.Fatalf("the slot went to the %s writer", w)
	}
	p.unreserve()
	if w := <-got; w != "second" {
		t.Fatalf("then to the %s writer", w)
	}
}

// TestQueuedNeverOverQueueLen: the health report never shows more than the
// queue holds, though a writer that finds it full counts itself in for a
// moment.
func TestQueuedNeverOverQueueLen(t *testing.T) {
	p := &pipeline{now: time.Now, space: make(chan struct{}, 1), quit: make(chan struct{})}
	p.queued.Store(queueLen)
	stop := make(chan struct{})
	defer close(stop)
	for range 2 {
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
					if p.take() {
						panic("a slot in a full queue")
					}
					runtime.Gosched()
				}
			}
		}()
	}
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		if q := p.storeHealth().Queued; q > queueLen {
			t.Fatalf("Queued %d > %d", q, queueLen)
		}
	}
}

// TestFreedSlotGoesToTheWaitingWriter: a slot freed while a writer waits
// is handed to it; a writer that comes just then cannot take it first.
func TestFreedSlotGoesToTheWaitingWriter(t *testing.T) {
	for range 50 {
		p := &pipeline{now: time.Now, space: make(chan struct{}, 1), quit: make(chan struct{})}
		p.queued.Store(queueLen)
		got := make(chan string, 2)
		go func() { _ = p.reserve(); got <- "waiting" }()
		for deadline := time.Now().Add(5 * time.Second); p.waiting.Load() != 1; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the writer never waited")
			}
		}
		p.unreserve()
		go func() { _ = p.reserve(); got <- "newcomer" }()
		if w := <-got; w != "waiting" {
			t.Fatalf("the freed slot went to the %s writer", w)
		}
		close(p.quit) // the newcomer gives up
		<-got
	}
}

// countingCommits counts the commits that reach the store.
type countingCommits struct {
	memStore
	n atomic.Int64
}

func (c *countingCommits) Commit(b *Batch) error {
	c.n.Add(1)
	return c.memStore.Commit(b)
}

// TestCommitGap: writers that each wait for their fix to be stored, one
// after another, share commits at most one per minCommitGap, and every
// fix is stored. (Without the gap, on a disk as fast as memory, nearly
// every fix had a commit of its own.)
func TestCommitGap(t *testing.T) {
	st := &countingCommits{}
	d := &Depot{ID: "T", Store: st, Now: func() time.Time { return t0 }}
	if err := d.Open(&memPub{}); err != nil {
		t.Fatal(err)
	}
	const writers = 8
	var sent atomic.Int64
	start := time.Now()
	end := start.Add(300 * time.Millisecond)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "D" + strconv.Itoa(w)
			for i := 0; time.Now().Before(end); i++ {
				if err := d.IngestFix(Fix{DriverID: id, Lat: 38.5, Lng: -121.5, TS: t0.UnixMilli() + int64(i)}, true); err != nil {
					t.Errorf("writer %d: %v", w, err)
					return
				}
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	d.Close()
	commits := st.n.Load()
	if most := int64(elapsed/minCommitGap) + 2; commits > most {
		t.Fatalf("%d commits in %s, at most %d expected (one per %s)", commits, elapsed, most, minCommitGap)
	}
	if n := int64(len(st.all().Fixes)); n != sent.Load() || n < writers {
		t.Fatalf("%d fixes stored, %d sent", n, sent.Load())
	}
	t.Logf("%d fixes in %d commits over %s", sent.Load(), commits, elapsed)
}
