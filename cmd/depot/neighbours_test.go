package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/loadgen"
	"github.com/depotcc/depot/storage"
)

// BenchmarkNeighbours measures what one bad client costs the others: ten
// handhelds publish QoS 1 fixes at 10 Hz, a dashboard over MQTT-over-
// WebSocket receives the route:update of each, and the fix→dashboard
// latency is reported (p50, p99). Scenarios: alone; beside a handheld
// flooding publishes as fast as it can; beside a dashboard that subscribes
// to everything and never reads its socket.
//
//	go test -run '^$' -bench Neighbours -benchtime 1x ./cmd/depot
func BenchmarkNeighbours(b *testing.B) {
	for _, scenario := range []string{"alone", "flooder", "slow-dashboard"} {
		b.Run(scenario, func(b *testing.B) {
			for b.Loop() {
				p50, p99, n := neighbours(b, scenario)
				b.ReportMetric(p50, "p50_ms")
				b.ReportMetric(p99, "p99_ms")
				b.ReportMetric(float64(n), "deliveries")
			}
		})
	}
}

func neighbours(b *testing.B, scenario string) (p50, p99 float64, n int) {
	dir := b.TempDir()
	type r = map[string]any
	var routes []r
	for i := 1; i <= 10; i++ {
		routes = append(routes, r{"routeId": fmt.Sprintf("R%d", i), "driverId": fmt.Sprintf("D%d", i), "totalStops": 100,
			"completedStops": 1, "currentLat": 38.5, "currentLng": -121.5})
	}
	raw, _ := json.Marshal(routes)
	writeFile(b, dir+"/feed.json", string(raw))
	a := startApp(b, dir, func(c *ServeConfig) { c.LogLevel = "error" })
	tokens := map[string]string{}
	for i := 1; i <= 11; i++ {
		d := fmt.Sprintf("D%d", i)
		tok, err := a.accounts.CreateDevice(d, "")
		if err != nil {
			b.Fatal(err)
		}
		tokens[d] = tok
	}
	sub := a.subscribeWS(b, "depot/DEMO1/events")

	stop := make(chan struct{})
	var bad sync.WaitGroup
	switch scenario {
	case "flooder":
		c, code, err := mqttConnect(a.MQTTAddr(), "drv-D11", "D11", tokens["D11"])
		if err != nil || code != 0 {
			b.Fatal(err, code)
		}
		bad.Add(1)
		go func() {
			defer bad.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := publish(c, "depot/DEMO1/drivers/D11/gps", 0, fixJSON(38.5, -121.5, time.Now())); err != nil {
					return // cut off: a real one would come back after a backoff, and be cut again
				}
			}
		}()
	case "slow-dashboard":
		conn, err := net.Dial("tcp", a.MQTTAddr())
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		conn.(*net.TCPConn).SetReadBuffer(4096)
		body := mqttString(nil, "MQTT")
		body = append(body, 4, 0xC2, 0, 60)
		body = mqttString(body, "dash-ana:slow")
		body = mqttString(body, "ana")
		body = mqttString(body, a.disp)
		conn.Write(packet(0x10, body))
		sb := []byte{0, 1}
		sb = mqttString(sb, "depot/DEMO1/#")
		conn.Write(packet(0x82, append(sb, 1)))
		// …and never reads again.
	}

	var wg sync.WaitGroup
	end := time.Now().Add(3 * time.Second)
	for i := 1; i <= 10; i++ {
		d := fmt.Sprintf("D%d", i)
		c, code, err := mqttConnect(a.MQTTAddr(), "drv-"+d, d, tokens[d])
		if err != nil || code != 0 {
			b.Fatal(err, code)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for now := range t.C {
				if now.After(end) {
					return
				}
				publish(c, "depot/DEMO1/drivers/"+d+"/gps", 1, fixJSON(38.5, -121.5, now))
			}
		}()
	}
	wg.Wait()
	close(stop)
	bad.Wait()
	time.Sleep(200 * time.Millisecond)

	// Latency: dashboard receive time minus the fix's device time, which
	// the delta carries as lastUpdated.
	var lat []float64
	sub.mu.Lock()
	for i, p := range sub.msgs["depot/DEMO1/events"] {
		for _, raw := range loadgen.SplitEnvelopes(p) { // one envelope, or a commit's batch of them
			var e bridge.Envelope
			if json.Unmarshal(raw, &e) != nil || e.Type != bridge.EventRouteUpdate {
				continue
			}
			var d struct {
				LastUpdated time.Time `json:"lastUpdated"`
			}
			if json.Unmarshal(e.Payload, &d) != nil || d.LastUpdated.IsZero() {
				continue
			}
			lat = append(lat, float64(sub.at["depot/DEMO1/events"][i].Sub(d.LastUpdated).Microseconds())/1000)
		}
	}
	sub.mu.Unlock()
	if len(lat) < 200 {
		b.Fatalf("only %d deliveries", len(lat))
	}
	slices.Sort(lat)
	return bridge.Quantile(lat, 0.50), bridge.Quantile(lat, 0.99), len(lat)
}

// BenchmarkEndToEnd is the nats-server-style matrix: handhelds publishing
// QoS 1 fixes at 5 Hz through the whole appliance (auth, ACL, storage,
// domain) to dashboards over MQTT-over-WebSocket, load generator in the
// same process. Reports fixes/s, deliveries/s and fix→dashboard p50/p99.
//
//	go test -run '^$' -bench EndToEnd ./cmd/depot
func BenchmarkEndToEnd(b *testing.B) {
	for _, drivers := range []int{35, 200} {
		for _, dashboards := range []int{1, 10} {
			b.Run(fmt.Sprintf("drivers=%d/dashboards=%d", drivers, dashboards), func(b *testing.B) {
				for b.Loop() {
					var feed bytes.Buffer
					if err := benchFeed([]string{"--drivers", strconv.Itoa(drivers)}, &feed, io.Discard); err != nil {
						b.Fatal(err)
					}
					dir := b.TempDir()
					writeFile(b, dir+"/feed.json", feed.String())
					a := startApp(b, dir, func(c *ServeConfig) { c.LogLevel = "error" })
					c := loadgen.Config{Drivers: drivers, Dashboards: dashboards, QoS: 1, Rate: 5, Duration: 3 * time.Second,
						Prefix: "BD", Depot: "DEMO1"}
					tgt, err := loadgen.Appliance(context.Background(), a.HTTPAddr(), a.MQTTAddr(), adminPassword, c)
					if err != nil {
						b.Fatal(err)
					}
					r, err := loadgen.Run(context.Background(), tgt, c)
					if err != nil {
						b.Fatal(err)
					}
					if r.Lost != 0 {
						b.Fatalf("%d deliveries lost", r.Lost)
					}
					b.ReportMetric(r.FixesPerS, "fixes/s")
					b.ReportMetric(r.DeliveriesPerS, "deliveries/s")
					b.ReportMetric(r.P50, "p50_ms")
					b.ReportMetric(r.P99, "p99_ms")
				}
			})
		}
	}
}

// BenchmarkReconnectStorm: N handhelds connect at once, all cut off, and
// all reconnect at once (the depot came back). Reports how long until all
// are back, and how many were refused.
//
//	go test -run '^$' -bench ReconnectStorm -benchtime 1x ./cmd/depot
func BenchmarkReconnectStorm(b *testing.B) {
	const n = 2000
	a := startApp(b, "", func(c *ServeConfig) { c.LogLevel = "error" })
	tokens := make([]string, n)
	for i := range n {
		tok, err := a.accounts.CreateDevice(fmt.Sprintf("S%d", i), "")
		if err != nil {
			b.Fatal(err)
		}
		tokens[i] = tok
	}
	storm := func() (time.Duration, int, []net.Conn) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var conns []net.Conn
		refused := 0
		start := time.Now()
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := fmt.Sprintf("S%d", i)
				c, err := net.Dial("tcp", a.MQTTAddr())
				if err == nil {
					_, code, herr := mqttHandshake(c, "drv-"+id, id, tokens[i])
					if herr == nil && code == 0 {
						mu.Lock()
						conns = append(conns, c)
						mu.Unlock()
						return
					}
				}
				mu.Lock()
				refused++
				mu.Unlock()
			}()
		}
		wg.Wait()
		return time.Since(start), refused, conns
	}
	_, refused, conns := storm()
	if refused > 0 {
		b.Fatalf("%d refused on first connect", refused)
	}
	for b.Loop() {
		for _, c := range conns { // the depot's network drops everyone
			c.Close()
		}
		var took time.Duration
		took, refused, conns = storm()
		b.ReportMetric(took.Seconds(), "s_all_back")
		b.ReportMetric(float64(refused), "refused")
	}
	for _, c := range conns {
		c.Close()
	}
}

// BenchmarkColdStart fills a store with DEPOT_COLDSTART_FIXES fixes
// (default 1,000,000; the README's figure uses 10,000,000) over 30 routes,
// folds and compacts it as the appliance does, then starts the real binary
// on it and reports the time to ready and its resident memory.
//
//	DEPOT_COLDSTART_FIXES=10000000 go test -run '^$' -bench ColdStart -benchtime 1x -timeout 30m ./cmd/depot
func BenchmarkColdStart(b *testing.B) {
	n := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("DEPOT_COLDSTART_FIXES")); err == nil && v > 0 {
		n = v
	}
	dir := b.TempDir()
	db, err := storage.Open(dbDir(filepath.Join(dir, "data")), nil)
	if err != nil {
		b.Fatal(err)
	}
	var routes []bridge.RouteStatus
	for r := range 30 {
		routes = append(routes, bridge.RouteStatus{RouteID: fmt.Sprintf("R%d", r+1), DriverID: fmt.Sprintf("D%d", r+1), TotalStops: 150})
	}
	if err := db.Commit(&bridge.Batch{Routes: routes}); err != nil {
		b.Fatal(err)
	}
	// The real shape: each route one fix a second (10 million is ~4 days of
	// a 30-route depot, within the default retention).
	start := time.Now().Add(-time.Duration(n/30+120) * time.Second).UnixMilli()
	for i := 0; i < n; i += 3000 {
		var batch bridge.Batch
		for k := i; k < min(n, i+3000); k++ {
			r := k % 30
			batch.Fixes = append(batch.Fixes, bridge.HistoryFix{RouteID: routes[r].RouteID, Fix: bridge.Fix{
				DriverID: routes[r].DriverID, Lat: 38.5, Lng: -121.5, TS: start + int64(k/30)*1000, Acc: 5, Spd: 8, Hdg: 90, Batt: 80}})
		}
		if err := db.Commit(&batch); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := db.CompactHistory(time.Now()); err != nil { // as the appliance does every 5 s
		b.Fatal(err)
	}
	if err := db.Merge(); err != nil { // and the nightly compaction
		b.Fatal(err)
	}
	db.Close()
	feed := filepath.Join(dir, "feed.json")
	writeFile(b, feed, "[]")
	depotBinary(b) // built before the clock starts
	for b.Loop() {
		// The real binary, started fresh: time to ready, and its RSS.
		t0 := time.Now()
		p := startProc(b, filepath.Join(dir, "data"), feed)
		took := time.Since(t0)
		_, rss := loadgen.Scrape("http://" + p.http + "/metrics")
		p.cmd.Process.Kill()
		p.cmd.Wait()
		b.ReportMetric(took.Seconds(), "s_to_ready")
		b.ReportMetric(rss/(1<<20), "rss_MB")
		b.ReportMetric(float64(n), "fixes")
	}
}

// BenchmarkHistoryAPI: GET /api/v1/routes/{id}/history for one route-day
// (30,000 fixes), through the real HTTP server, JSON included.
func BenchmarkHistoryAPI(b *testing.B) {
	a := startApp(b, "", func(c *ServeConfig) { c.LogLevel = "error" })
	start := time.Now().Add(-11 * time.Hour).Truncate(time.Minute)
	for c := 0; c < 30; c++ {
		var batch bridge.Batch
		for i := range 1000 {
			k := c*1000 + i
			batch.Fixes = append(batch.Fixes, bridge.HistoryFix{RouteID: "R1", Fix: bridge.Fix{DriverID: "D1", Lat: 38.5, Lng: -121.5,
				TS: start.Add(time.Duration(k) * 1200 * time.Millisecond).UnixMilli(), Acc: 5, Spd: 8.2, Hdg: 90, Batt: 80}})
		}
		if err := a.store.Commit(&batch); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := a.store.CompactHistory(time.Now()); err != nil {
		b.Fatal(err)
	}
	url := fmt.Sprintf("http://%s/api/v1/routes/R1/history?from=%d&to=%d", a.HTTPAddr(), start.UnixMilli(), time.Now().UnixMilli())
	for b.Loop() {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", "Bearer "+a.disp)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n < 30000*50 {
			b.Fatalf("HTTP %d, %d bytes", resp.StatusCode, n)
		}
	}
}
