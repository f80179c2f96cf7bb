package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge/upstream"
	"github.com/depotcc/depot/hq"
	"github.com/depotcc/depot/internal/natstest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"golang.org/x/crypto/bcrypt"
)

// TestFleetLoad is the fleet's load run (make bench-fleet; it runs only
// with DEPOT_FLEET_BENCH=1, as the other load runs have their own target):
// N demo depots (35 routes, a fix a second each) forward into a
// three-node cluster (stream R3); one hq instance serves 10 SSE
// dashboards. For N = 1, 2, 4, … 32 it reports the latency from an event
// made in a depot to each dashboard (p50, p99), and stops past the first
// N whose p99 is over a second. Everything runs in this one process, the
// depots' simulated handhelds too, so the N it finds is a floor.
func TestFleetLoad(t *testing.T) {
	if os.Getenv("DEPOT_FLEET_BENCH") == "" {
		t.Skip("a load run: make bench-fleet")
	}
	window := 20 * time.Second
	if v, err := time.ParseDuration(os.Getenv("DEPOT_FLEET_WINDOW")); err == nil {
		window = v
	}
	nodes := natstest.Cluster(t, 3)
	urls := natstest.URLs(nodes)
	h, err := hq.Start(context.Background(), hq.Config{URLs: urls, Replicas: 3, HTTPAddr: "127.0.0.1:0", Instance: "hq",
		AdminPassword: adminPassword, HashCost: bcrypt.MinCost, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Kill)
	tok, _, err := h.Accounts().Login("admin", adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	var apps []*testApp
	addDepot := func() {
		name := fmt.Sprintf("d%02d", len(apps)+1)
		apps = append(apps, startApp(t, "", func(c *ServeConfig) {
			c.Depot, c.Upstream, c.UpstreamReplicas = name, urls, 3
			c.CortexURL, c.Demo, c.DemoRoutes, c.DemoRate = "", true, 35, time.Second
		}))
	}
	addDepot()
	var clients []*fleetClient
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 10 {
		c := &fleetClient{urls: []string{h.Addr()}, token: tok, last: map[string]uint64{}, heard: map[string]time.Time{},
			lag: map[string]time.Duration{}, made: map[string]time.Time{}}
		clients = append(clients, c)
		go c.run(ctx, t)
	}
	fmt.Printf("fleet load: %d cores (%s), window %s per step, 10 SSE dashboards on one hq, stream R3 on 3 nodes\n",
		runtime.NumCPU(), runtime.GOARCH, window)
	fmt.Printf("%8s %12s %10s %10s %10s %8s %8s\n", "depots", "events/s", "p50", "p99", "max", "dupes", "gaps")
	for n := 1; n <= 32; n *= 2 {
		for len(apps) < n {
			addDepot()
		}
		// The new depots' start (and the cluster's, at first) drains first:
		// it is not what is measured.
		var names []string
		for _, a := range apps {
			names = append(names, a.Config.Depot)
		}
		since := time.Now()
		var behind error
		for _, c := range clients {
			for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
				if behind = c.live(names, since); behind == nil || time.Now().After(deadline) {
					break
				}
			}
			if behind != nil {
				break
			}
		}
		if behind != nil {
			// Past what this machine carries: the dashboards never catch
			// up. That ends the run; it is a finding, not a failure.
			fmt.Printf("%8d %12s   saturated: not caught up within 2 minutes (%v)\n", n, "-", behind)
			break
		}
		for _, c := range clients {
			c.mu.Lock()
			c.lats, c.record = nil, true
			c.mu.Unlock()
		}
		time.Sleep(window)
		var lats []time.Duration
		dupes, gaps := 0, 0
		for _, c := range clients {
			c.mu.Lock()
			lats = append(lats, c.lats...)
			c.record = false
			dupes += c.dupes
			gaps += len(c.gaps)
			c.mu.Unlock()
		}
		if len(lats) == 0 {
			t.Fatalf("%d depots: no event reached a dashboard", n)
		}
		slices.Sort(lats)
		q := func(p float64) time.Duration { return lats[int(p*float64(len(lats)-1))].Round(time.Millisecond) }
		fmt.Printf("%8d %12.0f %10s %10s %10s %8d %8d\n", n, float64(len(lats))/10/window.Seconds(), q(0.5), q(0.99), lats[len(lats)-1].Round(time.Millisecond), dupes, gaps)
		if q(0.99) > time.Second {
			break
		}
	}
}

// TestForwarderFootprint is the forwarder's cost inside a depot (make
// bench-fleet): two real depot processes under the demo load (35 routes,
// a fix a second each), side by side so they share the machine's noise,
// one forwarding to a JetStream server (in this process), one not. Over
// the same window it reports each one's CPU share and mean heap and
// resident memory, and the difference.
func TestForwarderFootprint(t *testing.T) {
	if os.Getenv("DEPOT_FLEET_BENCH") == "" {
		t.Skip("a load run: make bench-fleet")
	}
	window := 60 * time.Second
	if v, err := time.ParseDuration(os.Getenv("DEPOT_FOOTPRINT_WINDOW")); err == nil {
		window = v
	}
	ns := natstest.Start(t, server.Options{StoreDir: t.TempDir()})
	on := startProc(t, filepath.Join(t.TempDir(), "data"), "", "--demo", "--upstream", ns.ClientURL())
	off := startProc(t, filepath.Join(t.TempDir(), "data"), "", "--demo")
	time.Sleep(15 * time.Second) // a load run's warm-up: the demo handhelds connect, the first feed cycle passes
	type sample struct{ cpu, rss, heap float64 }
	scrape := func(p *proc) (s sample) {
		resp, err := http.Get("http://" + p.http + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		parser := expfmt.NewTextParser(model.UTF8Validation)
		fams, err := parser.TextToMetricFamilies(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		val := func(name string) float64 {
			f := fams[name]
			if f == nil || len(f.GetMetric()) == 0 {
				t.Fatalf("no %s in /metrics", name)
			}
			m := f.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
		return sample{val("process_cpu_seconds_total"), val("process_resident_memory_bytes"), val("go_memstats_heap_inuse_bytes")}
	}
	type acc struct {
		first, last sample
		rss, heap   float64
		n           int
	}
	var a [2]acc
	ps := [2]*proc{on, off}
	began := time.Now()
	for time.Since(began) < window {
		for i, p := range ps {
			s := scrape(p)
			if a[i].n == 0 {
				a[i].first = s
			}
			a[i].last, a[i].rss, a[i].heap, a[i].n = s, a[i].rss+s.rss, a[i].heap+s.heap, a[i].n+1
		}
		time.Sleep(time.Second)
	}
	secs := time.Since(began).Seconds()
	var cpu, rss, heap [2]float64
	for i := range a {
		cpu[i] = (a[i].last.cpu - a[i].first.cpu) / secs * 100
		rss[i], heap[i] = a[i].rss/float64(a[i].n)/(1<<20), a[i].heap/float64(a[i].n)/(1<<20)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	var n uint64
	if st, err := js.Stream(context.Background(), upstream.StreamName); err == nil {
		n = st.CachedInfo().State.Msgs
	}
	t.Logf("over %.0f s (%d messages in the stream, %.1f a second):", secs, n, float64(n)/(secs+15))
	t.Logf("  with the forwarder:    CPU %.2f %% of a core, heap %.1f MB, RSS %.1f MB", cpu[0], heap[0], rss[0])
	t.Logf("  without:               CPU %.2f %% of a core, heap %.1f MB, RSS %.1f MB", cpu[1], heap[1], rss[1])
	t.Logf("  the forwarder's share: CPU %+.2f %% of a core, heap %+.1f MB, RSS %+.1f MB", cpu[0]-cpu[1], heap[0]-heap[1], rss[0]-rss[1])
	if n == 0 {
		t.Fatal("nothing was forwarded")
	}
}
