package gcpace

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"
	"testing"
	"time"
)

const mib = 1 << 20

func TestPercent(t *testing.T) {
	for _, c := range []struct {
		name                         string
		rate, steady                 float64
		live, stacks, globals, limit uint64
		want                         int
	}{
		{"nothing allocated: quiet", 0, 0, 50 * mib, 100 * mib, mib, 256 * mib, quietPercent},
		// 2 MB/s, 30 MB in 15 s, is under half of 113 MB.
		{"5,000 idle handhelds: quiet", 2 * mib, 2 * mib, 76 * mib, 36 * mib, mib, 256 * mib, quietPercent},
		// An idle depot's presence tick: 8 MB/s for a moment, 2 MB/s over 10 s.
		{"a burst in a quiet process", 8 * mib, 2 * mib, 76 * mib, 36 * mib, mib, 256 * mib, quietPercent},
		// 100 MB/s for 2 s over a 113 MB base; the cap leaves 144 MB.
		{"a busy spell begins", 100 * mib, 2 * mib, 76 * mib, 36 * mib, mib, 256 * mib, 127},
		{"a small depot: the default already leaves 2 s of room", 1 * mib, 1 * mib, 20 * mib, 2 * mib, mib, 256 * mib, 100},
		// 105 MB/s for 2 s is 210 MB of room, capped at 256-75-16 = 165.
		{"10,000 fixes a second: the cap decides", 105 * mib, 105 * mib, 75 * mib, 16 * mib, mib, 256 * mib, 179},
		// 40 MB/s for 2 s: 80 MB of room over a 46 MB base.
		{"the rate decides", 40 * mib, 40 * mib, 40 * mib, 5 * mib, mib, 256 * mib, 173},
		{"live heap over the cap: GOGC stays 100", 500 * mib, 500 * mib, 300 * mib, 10 * mib, mib, 256 * mib, 100},
		{"tiny heap, huge rate: bounded", 10000 * mib, 10000 * mib, 1 * mib, 0, 0, 256 * mib, maxPercent},
		{"nothing measured yet", 50 * mib, 50 * mib, 0, 0, 0, 256 * mib, 100},
	} {
		if got := Percent(c.rate, c.steady, 2*time.Second, c.live, c.stacks, c.globals, c.limit); got != c.want {
			t.Errorf("%s: Percent = %d, want %d", c.name, got, c.want)
		}
	}
}

func TestCapFor(t *testing.T) {
	if c := capFor(0); c != 256<<20 {
		t.Errorf("capFor(unknown) = %d", c)
	}
	if c := capFor(1 << 30); c != 128<<20 {
		t.Errorf("capFor(1 GiB) = %d, want an eighth", c)
	}
	if c := capFor(16 << 30); c != 256<<20 {
		t.Errorf("capFor(16 GiB) = %d, want 256 MiB", c)
	}
}

func TestEnabled(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	if !Enabled() {
		t.Fatal("not enabled with neither GOGC nor GOMEMLIMIT set")
	}
	t.Setenv("GOGC", "150")
	if Enabled() {
		t.Fatal("enabled with GOGC set: the operator's choice must win")
	}
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "1GiB")
	if Enabled() {
		t.Fatal("enabled with GOMEMLIMIT set")
	}
}

func TestMemBytes(t *testing.T) {
	for _, c := range []struct{ total, unit, want uint64 }{
		{16 << 30, 1, 16 << 30},
		{4 << 20, 4096, 16 << 30},
		{1 << 30, 0, 1 << 30},
		{1 << 62, 8, 0},
	} {
		if got := memBytes(c.total, c.unit); got != c.want {
			t.Errorf("memBytes(%d, %d) = %d, want %d", c.total, c.unit, got, c.want)
		}
	}
	if runtime.GOOS == "linux" && MemTotal() < 64<<20 {
		t.Errorf("MemTotal() = %d on Linux", MemTotal())
	}
}

func gogc() uint64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestRunRaisesAndRestores: under a high allocation rate Run raises GOGC
// above 100, and puts back what was set when its context ends.
func TestRunRaisesAndRestores(t *testing.T) {
	old := debug.SetGCPercent(120)
	defer debug.SetGCPercent(old)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); Run(ctx, Config{Every: 20 * time.Millisecond}) }()
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		var keep []byte
		for {
			select {
			case <-stop:
				runtime.KeepAlive(keep)
				return
			default:
				for range 64 {
					keep = make([]byte, 64<<10)
				}
			}
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for gogc() <= 120 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	<-stopped
	if g := gogc(); g <= 120 {
		t.Fatalf("GOGC is %d after allocating hard for 20 s; want it raised", g)
	}
	cancel()
	<-done
	if g := gogc(); g != 120 {
		t.Fatalf("GOGC is %d after Run ended; want the 120 it found", g)
	}
}

// TestRunQuiet: a process that allocates next to nothing gets the quiet
// GOGC and, once quiet for quietFor, returns its free memory once; it
// gets its own GOGC back when Run ends.
func TestRunQuiet(t *testing.T) {
	old := debug.SetGCPercent(120)
	defer debug.SetGCPercent(old)
	ballast := make([][]byte, 256) // a live heap of 16 MB to be quiet about
	for i := range ballast {
		ballast[i] = make([]byte, 64<<10)
	}
	runtime.GC()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var freed atomic.Int32
	go func() {
		defer close(done)
		Run(ctx, Config{Every: 20 * time.Millisecond, quietFor: 200 * time.Millisecond, free: func() { freed.Add(1) }})
	}()
	for deadline := time.Now().Add(20 * time.Second); (gogc() != quietPercent || freed.Load() == 0) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if g := gogc(); g != quietPercent {
		t.Fatalf("GOGC is %d in a quiet process; want %d", g, quietPercent)
	}
	if freed.Load() == 0 {
		t.Fatal("a process quiet for longer than quietFor kept its free memory")
	}
	// Once per quiet spell, and not again within freeEvery.
	time.Sleep(500 * time.Millisecond)
	if n := freed.Load(); n != 1 {
		t.Fatalf("free memory returned %d times in one quiet spell", n)
	}
	cancel()
	<-done
	if g := gogc(); g != 120 {
		t.Fatalf("GOGC is %d after Run ended; want the 120 it found", g)
	}
	runtime.KeepAlive(ballast)
}
