// Package loadgen drives simulated handhelds and dashboards against a
// running depot, or against a bare mochi broker in this process (the
// baseline), and measures fix → dashboard latency, throughput and loss.
// `depot bench` is its command.
package loadgen

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"runtime/metrics"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/bridge/feed"
	"github.com/depotcc/depot/ui"
	"github.com/depotcc/depot/ui/client"
	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	mpackets "github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Result is what one run measured (latencies in ms).
type Result struct {
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
	// AckP50 and AckP99 are the handhelds' own view: a fix out to its
	// PUBACK in (QoS 1), which the appliance sends once the fix is stored.
	AckP50 float64 `json:"ack_p50_ms,omitempty"`
	AckP99 float64 `json:"ack_p99_ms,omitempty"`
	// GenSchedP99 is the generator's own scheduling delay (runnable to
	// running) at the 99th percentile: on one machine the instrument's
	// waits are in every latency it measures.
	GenSchedP99 float64 `json:"gen_sched_p99_ms"`
	Max         float64 `json:"max_ms"`
	Sent        int64   `json:"sent"`
	Acked       int64   `json:"acked"`
	Received    int64   `json:"received"`
	Lost        int64   `json:"lost"`
	CPUPct      float64 `json:"cpu_pct,omitempty"` // the appliance's, from /metrics (% of one core)
	RSSMB       float64 `json:"rss_mb,omitempty"`
	// Slow says when in the run the slow deliveries came: for each second
	// (from the start of publishing) with any over SlowMS, [second, how
	// many, the slowest in ms]. A p99 made by one stall and one made by a
	// steady queue look alike; this tells them apart.
	Slow [][3]float64 `json:"slow,omitempty"`
}

// SlowMS is the latency the Slow timeline counts: the p99 that issue 16 asks of 1,000 × 10 Hz.
const SlowMS = 100

// Config is one load: Drivers handhelds (ids Prefix1…PrefixN) publishing
// Rate fixes a second each at QoS for Duration, and Dashboards subscribed
// to depot Depot's events.
type Config struct {
	Drivers, Dashboards, QoS int
	Rate                     float64
	Duration                 time.Duration
	Prefix, Depot            string
	// Persistent: the handhelds keep their sessions (clean start off, an
	// hour's session expiry), as OwnTracks and other MQTT apps that want
	// their inbox while away connect.
	Persistent bool
}

// Validate checks the load's bounds.
func (c Config) Validate() error {
	switch {
	case c.Drivers < 1 || c.Drivers > 20000:
		return fmt.Errorf("--drivers %d: want 1-20000", c.Drivers)
	case c.Dashboards < 0 || c.Dashboards > MaxDashboards:
		return fmt.Errorf("--dashboards %d: want 0-%d (the depot takes at most %d HTTP connections from one address, and the bench needs a few besides its dashboards)",
			c.Dashboards, MaxDashboards, ui.DefaultMaxConnsPerIP)
	case c.Rate < 0 || c.Rate > 1000:
		return fmt.Errorf("--rate %v: want [0, 1000]", c.Rate)
	case c.QoS != 0 && c.QoS != 1:
		return fmt.Errorf("--qos %d: want 0 or 1", c.QoS)
	case c.Duration < time.Second || c.Duration > time.Hour:
		return fmt.Errorf("--duration %s: want 1s-1h", c.Duration)
	}
	return nil
}

// MaxDashboards keeps one load, all from one address, under the depot's
// per-address HTTP connection cap.
const MaxDashboards = ui.DefaultMaxConnsPerIP - 8

// Target is what a load runs against (Appliance or Baseline): how
// handhelds and dashboards connect, where fixes go, and how a dashboard
// message names the fix it carries.
type Target struct {
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

// Appliance logs in to the depot at httpAddr as admin, provisions the handhelds' credentials and checks that
// each bench driver is on a route (so its fixes become route:updates).
func Appliance(ctx context.Context, httpAddr, mqttAddr, adminPassword string, c Config) (*Target, error) {
	pw := adminPassword
	if pw == "" {
		return nil, errors.New("set DEPOT_ADMIN_PASSWORD: bench issues its handhelds' credentials as admin")
	}
	api := client.New(httpAddr)
	if err := api.Login(ctx, "admin", pw); err != nil {
		return nil, fmt.Errorf("log in as admin: %w", err)
	}
	var routes []bridge.RouteStatus
	if err := api.Do(ctx, "GET", "/api/v1/routes", nil, &routes); err != nil {
		return nil, err
	}
	routeOf, driverOf := map[string]string{}, map[string]string{}
	for _, r := range routes {
		routeOf[r.DriverID], driverOf[r.RouteID] = r.RouteID, r.DriverID
	}
	tokens := make([]string, c.Drivers)
	var firstErr atomic.Value
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range c.Drivers {
		d := fmt.Sprintf("%s%d", c.Prefix, i+1)
		if routeOf[d] == "" {
			return nil, fmt.Errorf("driver %s is on no route, so its fixes cannot reach a dashboard: start the depot with the feed of `depot bench feed --drivers %d --prefix %s`", d, c.Drivers, c.Prefix)
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			tok, err := api.DeviceToken(ctx, d, "depot bench")
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
	host := strings.TrimPrefix(strings.TrimPrefix(api.Base, "http://"), "https://")
	return &Target{
		name: "appliance", mqttAddr: mqttAddr, wsURL: "ws://" + host + "/mqtt",
		user: func(d string) (string, string, string) {
			i, _ := strconv.Atoi(strings.TrimPrefix(d, c.Prefix))
			return d, tokens[i-1], "drv-" + d
		},
		dashAuth: func(i int) (string, string, string) {
			return "admin", api.Token, fmt.Sprintf("dash-admin:bench%d", i)
		},
		gpsTopic:  func(d string) string { return "depot/" + c.Depot + "/drivers/" + d + "/gps" },
		subscribe: "depot/" + c.Depot + "/events",
		keys: func(p []byte, out []fixKey) []fixKey {
			for _, raw := range SplitEnvelopes(p) {
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
		metrics: api.Base + "/metrics",
	}, nil
}

// The dashboards of a bench read 100,000 envelopes a second on the machine
// they measure, so they do not decode them with encoding/json (which was
// 40 % of the generator's CPU): they split a batch into its envelopes and
// pick the two fields they need. jsonField relies on the fields being
// unique string keys of the envelope, which they are (cmd/depot's
// TestBenchRuns checks it against the real appliance).

// SplitEnvelopes returns the top-level objects of a JSON array, or p itself.
func SplitEnvelopes(p []byte) [][]byte {
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

// sentTimes holds when each fix was sent (ns after the run's base), by
// handheld index and device time. Its maps hold no pointers, so the
// collector does not scan their 200,000 entries a run, and they are
// sharded by handheld so 10 dashboards' lookups and 1,000 handhelds'
// writes rarely meet on one lock.
type sentTimes struct {
	shards [64]struct {
		sync.Mutex
		m map[uint64]int64
	}
}

// key packs a handheld index (below 2^20) and a device time in ms (below
// 2^43, the year 2248) into one word.
func sentKey(i int, ts int64) uint64 { return uint64(i)<<43 | uint64(ts)&(1<<43-1) }

func (s *sentTimes) put(i int, ts, at int64) {
	sh := &s.shards[i%len(s.shards)]
	sh.Lock()
	if sh.m == nil {
		sh.m = map[uint64]int64{}
	}
	sh.m[sentKey(i, ts)] = at
	sh.Unlock()
}

func (s *sentTimes) at(i int, ts int64) (int64, bool) {
	sh := &s.shards[i%len(s.shards)]
	sh.Lock()
	at, ok := sh.m[sentKey(i, ts)]
	sh.Unlock()
	return at, ok
}

// handheldKeepalive is the handhelds' MQTT keepalive, in seconds.
const handheldKeepalive = 60

// fixKey names one fix: its driver and device time.
type fixKey struct {
	driver string
	ts     int64
}

// BareBroker starts a bare mochi broker: no authentication, no storage,
// no domain, listening for MQTT on mqttAddr and MQTT over WebSocket on
// wsAddr ("127.0.0.1:0" for any port). It returns the addresses taken.
// `depot bench broker` runs it as its own process for --baseline, as the
// appliance is one: inside the generator it would share the generator's
// CPU and garbage collector, which flattered the appliance (at 500
// fixes/s to 100 dashboards, 0.17× the bare broker's p99 in-process
// against about 2× with each in its own process).
func BareBroker(mqttAddr, wsAddr string) (mqttAt, wsAt string, stop func(), err error) {
	srv, mqttAt, wsAt, err := bareBroker(mqttAddr, wsAddr)
	if err != nil {
		return "", "", nil, err
	}
	return mqttAt, wsAt, func() { srv.Close() }, nil
}

func bareBroker(mqttAddr, wsAddr string) (*mqtt.Server, string, string, error) {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = 1024
	srv := mqtt.New(&mqtt.Options{InlineClient: true, Capabilities: caps, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := srv.AddHook(new(allowAll), nil); err != nil {
		return nil, "", "", err
	}
	ln, err := net.Listen("tcp", mqttAddr)
	if err != nil {
		return nil, "", "", err
	}
	if wsAddr == "" || strings.HasSuffix(wsAddr, ":0") {
		// mochi's WebSocket listener binds its own address: find a free one.
		wsln, err := net.Listen("tcp", wsAddr)
		if err != nil {
			ln.Close()
			return nil, "", "", err
		}
		wsAddr = wsln.Addr().String()
		wsln.Close()
	}
	if err := srv.AddListener(listeners.NewNet("tcp", ln)); err != nil {
		return nil, "", "", err
	}
	if err := srv.AddListener(listeners.NewWebsocket(listeners.Config{ID: "ws", Address: wsAddr})); err != nil {
		return nil, "", "", err
	}
	if err := srv.Serve(); err != nil {
		return nil, "", "", err
	}
	// mochi's WebSocket listener binds in its own goroutine.
	for deadline := time.Now().Add(5 * time.Second); ; {
		c, err := net.Dial("tcp", wsAddr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			srv.Close()
			return nil, "", "", fmt.Errorf("the bare broker's WebSocket listener did not come up: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return srv, ln.Addr().String(), wsAddr, nil
}

// Baseline is the target of a bare broker (BareBroker) at these
// addresses: dashboards receive the raw fixes.
func Baseline(mqttAddr, wsAddr string) *Target {
	return &Target{
		name: "bare mochi", mqttAddr: mqttAddr, wsURL: "ws://" + wsAddr + "/",
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
	}
}

// Run drives the load against tgt and measures it.
func Run(ctx context.Context, tgt *Target, c Config) (Result, error) {
	res := Result{Target: tgt.name, Drivers: c.Drivers, Rate: c.Rate, Dashboards: c.Dashboards, QoS: c.QoS}
	index := make(map[string]int, c.Drivers) // read-only once built
	for i := range c.Drivers {
		index[fmt.Sprintf("%s%d", c.Prefix, i+1)] = i
	}
	var sent sentTimes
	base := time.Now() // sent times are monotonic offsets from it
	var mu sync.Mutex
	var lat []float64
	slow := map[int][2]float64{} // second -> how many over SlowMS, the slowest
	var received atomic.Int64
	var pubStart atomic.Int64 // when publishing starts, as an offset from base

	// Dashboards first, so no fix is published before they listen.
	dctx, stopDash := context.WithCancel(ctx)
	defer stopDash()
	u, err := url.Parse(tgt.wsURL)
	if err != nil {
		return res, err
	}
	var ready sync.WaitGroup
	for i := range c.Dashboards {
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
					for _, k := range keys {
						if i, ok := index[k.driver]; ok {
							if at, ok := sent.at(i, k.ts); ok {
								ms = append(ms, float64(int64(now.Sub(base))-at)/1e6)
							}
						}
					}
					received.Add(int64(len(ms)))
					mu.Lock()
					lat = append(lat, ms...)
					for _, v := range ms {
						if v > SlowMS {
							sec := int((int64(now.Sub(base)) - pubStart.Load()) / int64(time.Second))
							e := slow[sec]
							slow[sec] = [2]float64{e[0] + 1, max(e[1], v)}
						}
					}
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
	var nsent, acked, refused atomic.Int64
	clients := make([]*handheld, c.Drivers)
	for i := range c.Drivers {
		d := fmt.Sprintf("%s%d", c.Prefix, i+1)
		user, pass, id := tgt.user(d)
		h, err := dialHandheld(tgt.mqttAddr, id, user, pass, handheldKeepalive, c.Persistent, 10*time.Second, &acked, &refused)
		if err != nil {
			return res, fmt.Errorf("handheld %s: connect: %w", d, err)
		}
		clients[i] = h
		defer h.close()
	}
	// One goroutine pings them all, at half their keepalive.
	pctx, stopPings := context.WithCancel(ctx)
	defer stopPings()
	go func() {
		t := time.NewTicker(handheldKeepalive * time.Second / 2)
		defer t.Stop()
		for {
			select {
			case <-pctx.Done():
				return
			case <-t.C:
				for _, h := range clients {
					_ = h.ping()
				}
			}
		}
	}()
	cpu0, _ := Scrape(tgt.metrics)
	sched0 := schedLatencies()
	start := time.Now()
	end := start.Add(c.Duration)
	pubStart.Store(int64(start.Sub(base)))
	if c.Rate == 0 {
		// Idle handhelds: connected, pinging at their keepalive, silent.
		select {
		case <-time.After(c.Duration):
		case <-ctx.Done():
		}
	}
	interval := time.Duration(float64(time.Second) / max(c.Rate, 1e-9))
	var wg sync.WaitGroup
	for i, cl := range clients {
		d := fmt.Sprintf("%s%d", c.Prefix, i+1)
		topic := tgt.gpsTopic(d)
		if c.Rate == 0 {
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
			var payload []byte
			for {
				now := time.Now()
				if now.After(end) || ctx.Err() != nil {
					return
				}
				ts := max(now.UnixMilli(), last+1) // one fix per device millisecond
				last = ts
				payload = fmt.Appendf(payload[:0], `{"lat":%.6f,"lng":%.6f,"ts":%d,"drv":%q}`,
					feed.DemoLat+float64(i%100)/1e4, feed.DemoLng+float64(ts%1000)/1e5, ts, d)
				sent.put(i, ts, int64(time.Since(base)))
				nsent.Add(1)
				if cl.publish(topic, payload, byte(c.QoS)) == nil && c.QoS == 0 {
					acked.Add(1)
				}
				<-t.C
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	// Let the last PUBACKs and deliveries arrive.
	if c.QoS > 0 {
		for deadline := time.Now().Add(10 * time.Second); acked.Load()+refused.Load() < nsent.Load() && time.Now().Before(deadline); {
			time.Sleep(50 * time.Millisecond)
		}
	}
	for prev := int64(-1); prev != received.Load(); {
		prev = received.Load()
		time.Sleep(300 * time.Millisecond)
	}
	cpu1, rss := Scrape(tgt.metrics)
	res.GenSchedP99 = round2(sched0.p99Since() * 1e3)

	res.DurationS = round2(el.Seconds())
	res.Sent, res.Acked, res.Received = nsent.Load(), acked.Load(), received.Load()
	res.Lost = max(0, res.Acked*int64(c.Dashboards)-res.Received)
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
	for sec, e := range slow {
		res.Slow = append(res.Slow, [3]float64{float64(sec), e[0], round2(e[1])})
	}
	slices.SortFunc(res.Slow, func(a, b [3]float64) int { return cmp.Compare(a[0], b[0]) })
	mu.Unlock()
	if c.QoS > 0 {
		var acks []float64
		for _, h := range clients {
			h.close()
			acks = append(acks, h.acks...)
		}
		slices.Sort(acks)
		res.AckP50, res.AckP99 = round2(bridge.Quantile(acks, 0.5)), round2(bridge.Quantile(acks, 0.99))
	}
	return res, nil
}

var scrapeClient = &http.Client{Timeout: 10 * time.Second}

// Scrape reads a depot's CPU seconds and resident memory from its
// /metrics (Prometheus text format) at u; zeros when it cannot.
func Scrape(u string) (cpu, rss float64) {
	if u == "" {
		return 0, 0
	}
	resp, err := scrapeClient.Get(u)
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

func round2(x float64) float64 { return math.Round(x*100) / 100 }

// Ratio compares a run against the appliance with one against the
// baseline: throughput, deliveries and p99, appliance / bare broker.
func Ratio(a, b Result) map[string]float64 {
	return map[string]float64{"throughput_ratio": round2(a.FixesPerS / b.FixesPerS),
		"deliveries_ratio": round2(a.DeliveriesPerS / math.Max(b.DeliveriesPerS, 1e-9)), "p99_ratio": round2(a.P99 / math.Max(b.P99, 1e-9))}
}

// Feed is a route feed with one route per bench handheld (drivers
// prefix1…prefixN), for the depot the load runs against.
func Feed(drivers int, prefix string) []bridge.RouteSnapshot {
	var out []bridge.RouteSnapshot
	for i := 1; i <= drivers; i++ {
		out = append(out, bridge.RouteSnapshot{RouteID: fmt.Sprintf("BR%d", i), RouteCode: fmt.Sprintf("B%04d", i),
			DriverID: fmt.Sprintf("%s%d", prefix, i), DriverName: fmt.Sprintf("Bench %d", i), PerformanceTier: "AVERAGE",
			TotalStops: 150, CompletedStops: 10, TotalPackages: 200, CompletedPackages: 12,
			CurrentLat: feed.DemoLat, CurrentLng: feed.DemoLng, LastUpdated: time.Now().UTC().Truncate(time.Second)})
	}
	return out
}

// schedHist is a snapshot of the Go scheduler's latency histogram.
type schedHist struct{ h *metrics.Float64Histogram }

func schedLatencies() schedHist {
	s := []metrics.Sample{{Name: "/sched/latencies:seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return schedHist{}
	}
	return schedHist{s[0].Value.Float64Histogram()}
}

// p99Since returns the 99th percentile, in seconds, of the scheduling
// delays since the snapshot (0 without any).
func (s0 schedHist) p99Since() float64 { return histP99(s0.h, schedLatencies().h) }

// histP99 is the 99th percentile of what a cumulative histogram counted
// between two readings: the upper edge of its bucket (the lower one for
// the last, open-ended bucket).
func histP99(before, after *metrics.Float64Histogram) float64 {
	if before == nil || after == nil || len(before.Counts) != len(after.Counts) || len(after.Buckets) != len(after.Counts)+1 {
		return 0
	}
	var n uint64
	for i := range after.Counts {
		n += after.Counts[i] - before.Counts[i]
	}
	if n == 0 {
		return 0
	}
	var acc uint64
	for i := range after.Counts {
		acc += after.Counts[i] - before.Counts[i]
		if acc*100 >= n*99 {
			if hi := after.Buckets[i+1]; !math.IsInf(hi, 1) {
				return hi
			}
			return after.Buckets[i]
		}
	}
	return 0
}
