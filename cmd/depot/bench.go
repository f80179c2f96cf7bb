package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/ui"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	mpackets "github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const benchUsage = `Usage:
  depot bench feed --drivers N [--prefix BD] > feed.json
      a route feed with one route per bench handheld; start the depot with
      --cortex-url file://$PWD/feed.json
  depot bench [flags]
      drive D handhelds at R fixes/s and S dashboards against a running depot
      and measure fix → dashboard latency (admin password: DEPOT_ADMIN_PASSWORD)
  depot bench --baseline [flags]
      the same load, then against a bare in-process mochi broker, and the ratio

Example:
  depot bench feed --drivers 35 > feed.json
  DEPOT_ADMIN_PASSWORD=secret-pass depot serve --cortex-url file://$PWD/feed.json --data $(mktemp -d) &
  DEPOT_ADMIN_PASSWORD=secret-pass depot bench --drivers 35 --rate 1 --dashboards 10 --duration 30s --json
`

// benchResult is what one run measured.
type benchResult struct {
	Target         string  `json:"target"`
	Drivers        int     `json:"drivers"`
	Rate           float64 `json:"rate"`
	Dashboards     int     `json:"dashboards"`
	QoS            int     `json:"qos"`
	DurationS      float64 `json:"duration_s"`
	FixesPerS      float64 `json:"fixes_per_s"`
	DeliveriesPerS float64 `json:"deliveries_per_s"`
	P50            float64 `json:"p50_ms"`
	P95            float64 `json:"p95_ms"`
	P99            float64 `json:"p99_ms"`
	Max            float64 `json:"max_ms"`
	Sent           int64   `json:"sent"`
	Acked          int64   `json:"acked"`
	Received       int64   `json:"received"`
	Lost           int64   `json:"lost"`
	CPUPct         float64 `json:"cpu_pct,omitempty"` // the appliance's, from /metrics (% of one core)
	RSSMB          float64 `json:"rss_mb,omitempty"`
}

type benchConfig struct {
	drivers, dashboards, qos int
	rate                     float64
	duration                 time.Duration
	prefix, depot            string
	log                      *slog.Logger
}

// maxBenchDashboards keeps one bench, all from one address, under the
// depot's per-address HTTP connection cap.
const maxBenchDashboards = ui.DefaultMaxConnsPerIP - 8

// benchTarget is what a load runs against: how handhelds and dashboards
// connect, where fixes go, and how a dashboard message names the fix it
// carries.
type benchTarget struct {
	name      string
	mqttAddr  string
	wsURL     string
	user      func(driver string) (user, pass, clientID string)
	dashAuth  func(i int) (user, pass, clientID string)
	gpsTopic  func(driver string) string
	subscribe string
	keys      func(payload []byte, out []fixKey) []fixKey // appends the fixes a message carries
	metrics   string                                      // http://…/metrics of the appliance, or ""
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "feed" {
		return benchFeed(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("depot bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, benchUsage+"\nFlags:\n"); fs.PrintDefaults() }
	httpAddr := fs.String("http", "localhost:8080", "HTTP address of the depot")
	mqttAddr := fs.String("mqtt", "localhost:1883", "MQTT TCP address of the depot")
	c := benchConfig{}
	fs.IntVar(&c.drivers, "drivers", 35, "simulated handhelds")
	fs.Float64Var(&c.rate, "rate", 1, "GPS fixes per second per handheld (0: connect and stay idle, keepalive only)")
	fs.IntVar(&c.dashboards, "dashboards", 10, "dashboards subscribed over MQTT-over-WebSocket")
	fs.IntVar(&c.qos, "qos", 1, "QoS of the fixes (0 or 1)")
	fs.DurationVar(&c.duration, "duration", 20*time.Second, "how long to publish")
	fs.StringVar(&c.prefix, "prefix", "BD", "driver ids are <prefix>1…<prefix>N (as in `depot bench feed`)")
	fs.StringVar(&c.depot, "depot", "DEMO1", "depot id")
	asJSON := fs.Bool("json", false, "print one JSON line per run")
	baseline := fs.Bool("baseline", false, "also run the load against a bare in-process mochi broker and print the ratio")
	cpuProfile := fs.String("cpuprofile", "", "write the load generator's own CPU profile to this file (it shares the machine)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if err := envFlags(fs); err != nil {
		return err
	}
	switch {
	case c.drivers < 1 || c.drivers > 20000:
		return fmt.Errorf("--drivers %d: want 1-20000", c.drivers)
	case c.dashboards < 0 || c.dashboards > maxBenchDashboards:
		return fmt.Errorf("--dashboards %d: want 0-%d (the depot takes at most %d HTTP connections from one address, and the bench needs a few besides its dashboards)",
			c.dashboards, maxBenchDashboards, ui.DefaultMaxConnsPerIP)
	case c.rate < 0 || c.rate > 1000:
		return fmt.Errorf("--rate %v: want [0, 1000]", c.rate)
	case c.qos != 0 && c.qos != 1:
		return fmt.Errorf("--qos %d: want 0 or 1", c.qos)
	case c.duration < time.Second || c.duration > time.Hour:
		return fmt.Errorf("--duration %s: want 1s-1h", c.duration)
	}
	c.log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	tgt, err := applianceTarget(ctx, *httpAddr, *mqttAddr, c)
	if err != nil {
		return err
	}
	res, err := benchRun(ctx, tgt, c)
	if err != nil {
		return err
	}
	results := []benchResult{res}
	if *baseline {
		bt, stop, err := baselineTarget(c)
		if err != nil {
			return err
		}
		bres, err := benchRun(ctx, bt, c)
		stop()
		if err != nil {
			return err
		}
		results = append(results, bres)
	}
	for _, r := range results {
		if *asJSON {
			b, _ := json.Marshal(r)
			fmt.Fprintln(stdout, string(b))
		} else {
			printBench(stdout, r)
		}
	}
	if len(results) == 2 {
		a, b := results[0], results[1]
		ratio := map[string]float64{"throughput_ratio": round2(a.FixesPerS / b.FixesPerS),
			"deliveries_ratio": round2(a.DeliveriesPerS / math.Max(b.DeliveriesPerS, 1e-9)), "p99_ratio": round2(a.P99 / math.Max(b.P99, 1e-9))}
		if *asJSON {
			out, _ := json.Marshal(ratio)
			fmt.Fprintln(stdout, string(out))
		} else {
			fmt.Fprintf(stdout, "appliance / bare broker: throughput %.2f×, deliveries %.2f×, p99 %.2f×\n",
				ratio["throughput_ratio"], ratio["deliveries_ratio"], ratio["p99_ratio"])
		}
	}
	return nil
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

func printBench(w io.Writer, r benchResult) {
	fmt.Fprintf(w, "%s: %d handhelds × %.3g fixes/s (QoS %d), %d dashboards, %.0fs\n", r.Target, r.Drivers, r.Rate, r.QoS, r.Dashboards, r.DurationS)
	fmt.Fprintf(w, "  fixes/s %.0f  deliveries/s %.0f  sent %d  acked %d  received %d  lost %d\n",
		r.FixesPerS, r.DeliveriesPerS, r.Sent, r.Acked, r.Received, r.Lost)
	fmt.Fprintf(w, "  fix → dashboard: p50 %.2f ms  p95 %.2f ms  p99 %.2f ms  max %.2f ms\n", r.P50, r.P95, r.P99, r.Max)
	if r.RSSMB > 0 {
		fmt.Fprintf(w, "  appliance: CPU %.1f%% of one core, RSS %.1f MB\n", r.CPUPct, r.RSSMB)
	}
}

// benchFeed writes a route feed with one route per bench handheld.
func benchFeed(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("depot bench feed", flag.ContinueOnError)
	fs.SetOutput(stderr)
	n := fs.Int("drivers", 35, "handhelds (and routes)")
	prefix := fs.String("prefix", "BD", "driver id prefix")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *n < 1 || *n > bridge.MaxFeedRoutes {
		return fmt.Errorf("--drivers %d: want 1-%d", *n, bridge.MaxFeedRoutes)
	}
	var out []bridge.RouteSnapshot
	for i := 1; i <= *n; i++ {
		out = append(out, bridge.RouteSnapshot{RouteID: fmt.Sprintf("BR%d", i), RouteCode: fmt.Sprintf("B%04d", i),
			DriverID: fmt.Sprintf("%s%d", *prefix, i), DriverName: fmt.Sprintf("Bench %d", i), PerformanceTier: "AVERAGE",
			TotalStops: 150, CompletedStops: 10, TotalPackages: 200, CompletedPackages: 12,
			CurrentLat: bridge.DemoLat, CurrentLng: bridge.DemoLng, LastUpdated: time.Now().UTC().Truncate(time.Second)})
	}
	return json.NewEncoder(stdout).Encode(out)
}

// applianceTarget provisions the handhelds' credentials and checks that
// each bench driver is on a route (so its fixes become route:updates).
func applianceTarget(ctx context.Context, httpAddr, mqttAddr string, c benchConfig) (*benchTarget, error) {
	pw := os.Getenv("DEPOT_ADMIN_PASSWORD")
	if pw == "" {
		return nil, errors.New("set DEPOT_ADMIN_PASSWORD: bench issues its handhelds' credentials as admin")
	}
	api := newAPIClient(httpAddr)
	if err := api.login(ctx, "admin", pw); err != nil {
		return nil, fmt.Errorf("log in as admin: %w", err)
	}
	var routes []bridge.RouteStatus
	if err := api.do(ctx, "GET", "/api/v1/routes", nil, &routes); err != nil {
		return nil, err
	}
	routeOf, driverOf := map[string]string{}, map[string]string{}
	for _, r := range routes {
		routeOf[r.DriverID], driverOf[r.RouteID] = r.RouteID, r.DriverID
	}
	tokens := make([]string, c.drivers)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range c.drivers {
		d := fmt.Sprintf("%s%d", c.prefix, i+1)
		if routeOf[d] == "" {
			return nil, fmt.Errorf("driver %s is on no route, so its fixes cannot reach a dashboard: start the depot with the feed of `depot bench feed --drivers %d --prefix %s`", d, c.drivers, c.prefix)
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			tok, err := api.deviceToken(ctx, d, "depot bench")
			if err != nil {
				firstErr.CompareAndSwap(nil, err)
			}
			tokens[i] = tok
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return nil, fmt.Errorf("issue credentials: %w", err)
	}
	host := strings.TrimPrefix(strings.TrimPrefix(api.base, "http://"), "https://")
	return &benchTarget{
		name: "appliance", mqttAddr: mqttAddr, wsURL: "ws://" + host + "/mqtt",
		user: func(d string) (string, string, string) {
			i, _ := strconv.Atoi(strings.TrimPrefix(d, c.prefix))
			return d, tokens[i-1], "drv-" + d
		},
		dashAuth: func(i int) (string, string, string) {
			return "admin", api.token, fmt.Sprintf("dash-admin:bench%d", i)
		},
		gpsTopic:  func(d string) string { return "depot/" + c.depot + "/drivers/" + d + "/gps" },
		subscribe: "depot/" + c.depot + "/events",
		keys: func(p []byte, out []fixKey) []fixKey {
			for _, raw := range splitEnvelopes(p) {
				if !bytes.Contains(raw, []byte(`"type":"route:update"`)) {
					continue
				}
				// Every fix-driven delta carries lastUpdated, the fix's
				// device time.
				route, lu := jsonField(raw, "routeId"), jsonField(raw, "lastUpdated")
				t, err := time.Parse(time.RFC3339Nano, string(lu))
				if route == nil || err != nil {
					continue
				}
				out = append(out, fixKey{driverOf[string(route)], t.UnixMilli()})
			}
			return out
		},
		metrics: api.base + "/metrics",
	}, nil
}

// The dashboards of a bench read 100,000 envelopes a second on the machine
// they measure, so they do not decode them with encoding/json (which was
// 40 % of the generator's CPU): they split a batch into its envelopes and
// pick the two fields they need. jsonField relies on the fields being
// unique string keys of the envelope, which they are (bench_test.go
// checks it against the real appliance).

// splitEnvelopes returns the top-level objects of a JSON array, or p itself.
func splitEnvelopes(p []byte) [][]byte {
	p = bytes.TrimSpace(p)
	if len(p) == 0 || p[0] != '[' {
		return [][]byte{p}
	}
	var out [][]byte
	depth, start, inStr, esc := 0, 0, false, false
	for i, c := range p {
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '{':
			if depth == 0 {
				start = i
			}
			depth++
		case c == '}':
			depth--
			if depth == 0 {
				out = append(out, p[start:i+1])
			}
		}
	}
	return out
}

// jsonField returns the raw value of the first string field named key in
// obj (without quotes; nil when absent).
func jsonField(obj []byte, key string) []byte { return jsonValue(obj, `"`+key+`":"`, `"`) }

// jsonNumber returns the raw value of the first number field named key.
func jsonNumber(obj []byte, key string) []byte { return jsonValue(obj, `"`+key+`":`, ",}") }

// jsonValue returns what follows the first pat in obj up to any of ends.
func jsonValue(obj []byte, pat, ends string) []byte {
	i := bytes.Index(obj, []byte(pat))
	if i < 0 {
		return nil
	}
	v := obj[i+len(pat):]
	end := bytes.IndexAny(v, ends)
	if end < 0 {
		return nil
	}
	return v[:end]
}

// fixKey names one fix: its driver and device time.
type fixKey struct {
	driver string
	ts     int64
}

// baselineTarget is a bare mochi broker in this process: no
// authentication, no storage, no domain; dashboards receive the raw fixes.
func baselineTarget(c benchConfig) (*benchTarget, func(), error) {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = 1024
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Capabilities: caps, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	wsln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	wsAddr := wsln.Addr().String()
	wsln.Close() // mochi's WebSocket listener binds its own
	if err := srv.AddListener(listeners.NewNet("tcp", ln)); err != nil {
		return nil, nil, err
	}
	if err := srv.AddListener(listeners.NewWebsocket(listeners.Config{ID: "ws", Address: wsAddr})); err != nil {
		return nil, nil, err
	}
	if err := srv.Serve(); err != nil {
		return nil, nil, err
	}
	time.Sleep(100 * time.Millisecond) // the WebSocket listener binds in its goroutine
	return &benchTarget{
		name: "bare mochi", mqttAddr: ln.Addr().String(), wsURL: "ws://" + wsAddr + "/",
		user:      func(d string) (string, string, string) { return "", "", "drv-" + d },
		dashAuth:  func(i int) (string, string, string) { return "", "", fmt.Sprintf("dash-%d", i) },
		gpsTopic:  func(d string) string { return "bench/" + d },
		subscribe: "bench/#",
		keys: func(p []byte, out []fixKey) []fixKey {
			ts, err := strconv.ParseInt(string(jsonNumber(p, "ts")), 10, 64)
			if drv := jsonField(p, "drv"); drv != nil && err == nil {
				out = append(out, fixKey{string(drv), ts})
			}
			return out
		},
	}, func() { srv.Close() }, nil
}

// benchRun drives the load against tgt and measures it.
func benchRun(ctx context.Context, tgt *benchTarget, c benchConfig) (benchResult, error) {
	res := benchResult{Target: tgt.name, Drivers: c.drivers, Rate: c.rate, Dashboards: c.dashboards, QoS: c.qos}
	var sentMu sync.RWMutex
	sentAt := map[fixKey]time.Time{}
	var mu sync.Mutex
	var lat []float64
	var received atomic.Int64

	// Dashboards first, so no fix is published before they listen.
	dctx, stopDash := context.WithCancel(ctx)
	defer stopDash()
	u, err := url.Parse(tgt.wsURL)
	if err != nil {
		return res, err
	}
	var ready sync.WaitGroup
	for i := range c.dashboards {
		user, pass, id := tgt.dashAuth(i)
		ready.Add(1)
		var once sync.Once
		var keys []fixKey // one dashboard's callbacks run one at a time
		var ms []float64
		cfg := autopaho.ClientConfig{ServerUrls: []*url.URL{u}, KeepAlive: 30, CleanStartOnInitialConnection: true,
			ConnectUsername: user, ConnectPassword: []byte(pass), ConnectTimeout: 10 * time.Second,
			OnConnectionUp: func(cm *autopaho.ConnectionManager, _ *paho.Connack) {
				go func() {
					if _, err := cm.Subscribe(dctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: tgt.subscribe, QoS: 0}}}); err == nil {
						once.Do(ready.Done)
					}
				}()
			},
			ClientConfig: paho.ClientConfig{ClientID: id, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) {
					now := time.Now()
					keys = tgt.keys(pr.Packet.Payload, keys[:0])
					ms = ms[:0]
					sentMu.RLock()
					for _, k := range keys {
						if at, ok := sentAt[k]; ok {
							ms = append(ms, float64(now.Sub(at).Microseconds())/1000)
						}
					}
					sentMu.RUnlock()
					received.Add(int64(len(ms)))
					mu.Lock()
					lat = append(lat, ms...)
					mu.Unlock()
					return true, nil
				}}},
		}
		if _, err := autopaho.NewConnection(dctx, cfg); err != nil {
			return res, err
		}
	}
	waitCh := make(chan struct{})
	go func() { ready.Wait(); close(waitCh) }()
	select {
	case <-waitCh:
	case <-time.After(30 * time.Second):
		return res, errors.New("dashboards did not connect and subscribe within 30 s")
	}

	// Handhelds: connect all, then publish at the rate for the duration.
	clients := make([]*paho.Client, c.drivers)
	for i := range c.drivers {
		d := fmt.Sprintf("%s%d", c.prefix, i+1)
		user, pass, id := tgt.user(d)
		conn, err := net.Dial("tcp", tgt.mqttAddr)
		if err != nil {
			return res, err
		}
		cl := paho.NewClient(paho.ClientConfig{Conn: packets.NewThreadSafeConn(conn), ClientID: id})
		cp := &paho.Connect{ClientID: id, KeepAlive: 60, CleanStart: true}
		if user != "" {
			cp.Username, cp.UsernameFlag, cp.Password, cp.PasswordFlag = user, true, []byte(pass), true
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		ca, err := cl.Connect(cctx, cp)
		cancel()
		if err != nil || ca.ReasonCode != 0 {
			return res, fmt.Errorf("handheld %s: connect: %v (reason %v)", d, err, ca)
		}
		clients[i] = cl
		defer cl.Disconnect(&paho.Disconnect{})
	}
	cpu0, _ := scrape(tgt.metrics)
	var sent, acked atomic.Int64
	start := time.Now()
	end := start.Add(c.duration)
	if c.rate == 0 {
		// Idle handhelds: connected, pinging at their keepalive, silent.
		select {
		case <-time.After(c.duration):
		case <-ctx.Done():
		}
	}
	interval := time.Duration(float64(time.Second) / max(c.rate, 1e-9))
	var wg sync.WaitGroup
	for i, cl := range clients {
		d := fmt.Sprintf("%s%d", c.prefix, i+1)
		topic := tgt.gpsTopic(d)
		if c.rate == 0 {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Spread the handhelds over one interval.
			time.Sleep(time.Duration(int64(interval) * int64(i) / int64(len(clients))))
			t := time.NewTicker(interval)
			defer t.Stop()
			last := int64(0)
			for {
				now := time.Now()
				if now.After(end) || ctx.Err() != nil {
					return
				}
				ts := max(now.UnixMilli(), last+1) // one fix per device millisecond
				last = ts
				payload := fmt.Appendf(nil, `{"lat":%.6f,"lng":%.6f,"ts":%d,"drv":%q}`,
					bridge.DemoLat+float64(i%100)/1e4, bridge.DemoLng+float64(ts%1000)/1e5, ts, d)
				sentMu.Lock()
				sentAt[fixKey{d, ts}] = time.Now()
				sentMu.Unlock()
				sent.Add(1)
				pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				r, err := cl.Publish(pctx, &paho.Publish{Topic: topic, QoS: byte(c.qos), Payload: payload})
				cancel()
				if err == nil && (c.qos == 0 || r != nil && r.ReasonCode == 0) {
					acked.Add(1)
				}
				<-t.C
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	// Let the last deliveries arrive.
	for prev := int64(-1); prev != received.Load(); {
		prev = received.Load()
		time.Sleep(300 * time.Millisecond)
	}
	cpu1, rss := scrape(tgt.metrics)

	res.DurationS = round2(el.Seconds())
	res.Sent, res.Acked, res.Received = sent.Load(), acked.Load(), received.Load()
	res.Lost = max(0, res.Acked*int64(c.dashboards)-res.Received)
	res.FixesPerS = round2(float64(res.Acked) / el.Seconds())
	res.DeliveriesPerS = round2(float64(res.Received) / el.Seconds())
	if cpu1 > 0 {
		res.CPUPct = round2((cpu1 - cpu0) / el.Seconds() * 100)
		res.RSSMB = round2(rss / (1 << 20))
	}
	mu.Lock()
	slices.Sort(lat)
	q := func(p float64) float64 { return round2(bridge.Quantile(lat, p)) }
	res.P50, res.P95, res.P99, res.Max = q(0.50), q(0.95), q(0.99), q(1)
	mu.Unlock()
	return res, nil
}

// scrape reads the appliance's CPU seconds and resident memory.
func scrape(u string) (cpu, rss float64) {
	if u == "" {
		return 0, 0
	}
	resp, err := http.Get(u)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return 0, 0
	}
	if f := fams["process_cpu_seconds_total"]; f != nil && len(f.GetMetric()) > 0 {
		cpu = f.GetMetric()[0].GetCounter().GetValue()
	}
	if f := fams["process_resident_memory_bytes"]; f != nil && len(f.GetMetric()) > 0 {
		rss = f.GetMetric()[0].GetGauge().GetValue()
	}
	return cpu, rss
}

// allowAll is the bare broker's only hook: everyone may do everything.
type allowAll struct{ mqtt.HookBase }

func (allowAll) ID() string { return "allow-all" }
func (allowAll) Provides(b byte) bool {
	return b == mqtt.OnConnectAuthenticate || b == mqtt.OnACLCheck
}
func (allowAll) OnConnectAuthenticate(*mqtt.Client, mpackets.Packet) bool { return true }
func (allowAll) OnACLCheck(*mqtt.Client, string, bool) bool               { return true }
