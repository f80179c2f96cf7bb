package gcpace

import (
	"context"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"testing"
	"time"
)

const mib = 1 << 20

func TestPercent(t *testing.T) {
	for _, c := range []struct {
		name                         string
		rate                         float64
		live, stacks, globals, limit uint64
		want                         int
	}{
		{"idle", 0, 50 * mib, 100 * mib, mib, 256 * mib, 100},
		{"a quiet depot: the default already leaves 2 s of room", 1 * mib, 20 * mib, 2 * mib, mib, 256 * mib, 100},
		// 105 MB/s for 2 s is 210 MB of room, capped at 256-75-16 = 165.
		{"10,000 fixes a second: the cap decides", 105 * mib, 75 * mib, 16 * mib, mib, 256 * mib, 179},
		// 40 MB/s for 2 s: 80 MB of room over a 46 MB base.
		{"the rate decides", 40 * mib, 40 * mib, 5 * mib, mib, 256 * mib, 173},
		{"live heap over the cap: GOGC stays 100", 500 * mib, 300 * mib, 10 * mib, mib, 256 * mib, 100},
		{"tiny heap, huge rate: bounded", 10000 * mib, 1 * mib, 0, 0, 256 * mib, maxPercent},
		{"nothing measured yet", 50 * mib, 0, 0, 0, 256 * mib, 100},
	} {
		if got := Percent(c.rate, 2*time.Second, c.live, c.stacks, c.globals, c.limit); got != c.want {
			t.Errorf("%s: Percent = %d, want %d", c.name, got, c.want)
		}
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

func TestParseMemTotal(t *testing.T) {
	for in, want := range map[string]uint64{
		"MemTotal:       16318012 kB\nMemFree:         1234 kB\n": 16318012 * 1024,
		"MemFree:  1 kB\nMemTotal: 2048 kB":                       2048 * 1024,
		"MemTotal: 12 MB\n":                                       0, // not the kernel's unit
		"MemTotal: -5 kB\n":                                       0,
		"MemTotal: 99999999999999999999 kB\n":                     0,
		"MemTotal: 18446744073709551 kB\n":                        0, // overflows in bytes
		"":                                                        0,
	} {
		if got := parseMemTotal([]byte(in)); got != want {
			t.Errorf("parseMemTotal(%q) = %d, want %d", in, got, want)
		}
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
