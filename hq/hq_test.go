package hq

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge/upstream"
	"github.com/depotcc/depot/internal/natstest"
	"github.com/depotcc/depot/loadgen"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/crypto/bcrypt"
)

// depotSide publishes what a depot's forwarder would: route states and
// events, with their Nats-Msg-Id.
type depotSide struct {
	t    *testing.T
	js   jetstream.JetStream
	seqs map[string]uint64
}

func newDepotSide(t *testing.T, url string) *depotSide {
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: upstream.StreamName, Subjects: []string{"depot.>"}}); err != nil {
		t.Fatal(err)
	}
	return &depotSide{t: t, js: js, seqs: map[string]uint64{}}
}

func (d *depotSide) route(depot, id, color string, done int) {
	d.t.Helper()
	b := fmt.Sprintf(`{"routeId":%q,"routeCode":"C-%s","driverId":"drv-%s","driverName":"Sam","completedStops":%d,"totalStops":100,`+
		`"completedPackages":0,"totalPackages":0,"currentLat":51.5,"currentLng":-0.1,"behindSchedule":0,"statusColor":%q,"lastUpdated":"2026-12-02T08:00:00Z"}`,
		id, id, id, done, color)
	if _, err := d.js.Publish(context.Background(), upstream.RouteSubject(depot, id), []byte(b)); err != nil {
		d.t.Fatal(err)
	}
}

func (d *depotSide) event(depot, typ, payload string) uint64 {
	d.t.Helper()
	d.seqs[depot]++
	seq := d.seqs[depot]
	d.raw(depot, seq, fmt.Sprintf(`{"seq":%d,"id":"evt_%d","type":%q,"priority":"NORMAL","timestamp":%q,"payload":%s}`,
		seq, seq, typ, time.Now().UTC().Format(time.RFC3339Nano), payload))
	return seq
}

func (d *depotSide) raw(depot string, seq uint64, data string) {
	d.t.Helper()
	m := nats.NewMsg(upstream.EventsSubject(depot))
	m.Data = []byte(data)
	m.Header.Set(jetstream.MsgIDHeader, depot+":"+strconv.FormatUint(seq, 10))
	if _, err := d.js.PublishMsg(context.Background(), m); err != nil {
		d.t.Fatal(err)
	}
}

func startHQ(t *testing.T, url, name string, mod ...func(*Config)) *HQ {
	t.Helper()
	c := Config{URLs: url, HTTPAddr: "127.0.0.1:0", Instance: name, AdminPassword: "admin-pass-1",
		KeepAlive: 200 * time.Millisecond,
		HashCost:  bcrypt.MinCost, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	for _, m := range mod {
		m(&c)
	}
	h, err := Start(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = h.Close(ctx)
	})
	return h
}

func waitFor(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	natstest.WaitFor(t, d, f)
}

// call makes one API request and decodes the answer into out; it returns
// the status.
func call(t *testing.T, h *HQ, method, path, token string, body any, out any) int {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, "http://"+h.Addr()+path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if out != nil {
		_ = json.NewDecoder(res.Body).Decode(out)
	}
	return res.StatusCode
}

func login(t *testing.T, h *HQ, user, pass string) (string, int) {
	t.Helper()
	var r struct {
		Token string `json:"token"`
	}
	code := call(t, h, "POST", "/api/v1/auth/login", "", map[string]string{"username": user, "password": pass}, &r)
	return r.Token, code
}

type fleetAnswer struct {
	Seq    uint64 `json:"seq"`
	Depots []struct {
		Depot    string            `json:"depot"`
		LastSeq  uint64            `json:"lastSeq"`
		Counts   map[string]int    `json:"counts"`
		Rescues  []json.RawMessage `json:"rescues"`
		Offers   []map[string]any  `json:"offers"`
		Routes   []map[string]any  `json:"routes"`
		Presence map[string]any    `json:"presence"`
	} `json:"depots"`
}

// sseLine is one event a test's browser saw.
type sseLine struct {
	id    uint64
	depot string
	seq   uint64
	event string
}

// openStream reads /api/v1/fleet/stream from h after id into ch until it
// ends.
func openStream(t *testing.T, h *HQ, token string, after uint64, ch chan<- sseLine) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+h.Addr()+"/api/v1/fleet/stream?access_token="+token, nil)
	req.Header.Set("Last-Event-ID", strconv.FormatUint(after, 10))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 {
		t.Fatalf("stream: %s", res.Status)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer res.Body.Close()
		_ = loadgen.ReadSSE(res.Body, func(e loadgen.SSEEvent) error {
			var l struct {
				Depot string `json:"depot"`
				Event struct {
					Seq uint64 `json:"seq"`
				} `json:"event"`
			}
			_ = json.Unmarshal([]byte(e.Data), &l)
			id, _ := strconv.ParseUint(e.ID, 10, 64)
			select {
			case ch <- sseLine{id: id, depot: l.Depot, seq: l.Event.Seq, event: e.Event}:
			case <-ctx.Done():
			}
			return nil
		})
	}()
	return func() { cancel(); <-done }
}

// TestHQ: two instances over one stream share users and tokens, hold the
// same picture, and a browser moved from one to the other mid-stream by
// Last-Event-ID sees every event once, in order.
func TestHQ(t *testing.T) {
	t.Parallel()
	ns := natstest.Start(t, server.Options{})
	d := newDepotSide(t, ns.ClientURL())
	d.route("D1", "R1", "GREEN", 10)
	d.route("D1", "R2", "GREEN", 20)
	d.event("D1", "route:update", `{"routeId":"R2","behindSchedule":5,"statusColor":"YELLOW"}`)
	d.event("D1", "rescue:alert", `{"rescueId":"rsc_1","struggleRoute":{"routeId":"R2"}}`)
	d.event("D1", "vto:offer", `{"vtoId":"vto_1","routeCode":"C-R1","state":"open"}`)
	d.event("D2", "route:update", `{"routeId":"R9","routeCode":"C-R9","statusColor":"RED"}`)
	d.event("D2", "driver:presence", `{"driverId":"drv-R9","state":"offline","since":"2026-12-02T08:00:00Z"}`)

	a := startHQ(t, ns.ClientURL(), "a")
	b := startHQ(t, ns.ClientURL(), "b")
	tok, code := login(t, a, "admin", "admin-pass-1")
	if code != 200 {
		t.Fatalf("login: %d", code)
	}
	var f fleetAnswer
	waitFor(t, 10*time.Second, func() error {
		if code := call(t, b, "GET", "/api/v1/fleet", tok, nil, &f); code != 200 {
			return fmt.Errorf("fleet on b with a's token: %d", code)
		}
		return nil
	})
	if len(f.Depots) != 2 || f.Depots[0].Depot != "D1" || f.Depots[1].Depot != "D2" {
		t.Fatalf("depots %+v", f.Depots)
	}
	d1, d2 := f.Depots[0], f.Depots[1]
	if d1.Counts["GREEN"] != 1 || d1.Counts["YELLOW"] != 1 || len(d1.Rescues) != 1 || len(d1.Offers) != 1 || d1.LastSeq != 3 {
		t.Fatalf("D1 %+v", d1)
	}
	if d2.Counts["RED"] != 1 || len(d2.Presence) != 1 || d2.Routes[0]["routeCode"] != "C-R9" {
		t.Fatalf("D2 %+v", d2)
	}
	snap := f.Seq

	// A user added on a is known to b.
	if code := call(t, a, "POST", "/api/v1/users", tok, map[string]string{"username": "region", "password": "region-pass", "role": "dispatcher"}, nil); code != 201 {
		t.Fatalf("add user: %d", code)
	}
	waitFor(t, 10*time.Second, func() error {
		rt, code := login(t, b, "region", "region-pass")
		if code != 200 {
			return fmt.Errorf("login on b: %d", code)
		}
		if code := call(t, b, "GET", "/api/v1/fleet", rt, nil, nil); code != 200 {
			return fmt.Errorf("fleet with the new user's token: %d", code)
		}
		return nil
	})
	if code := call(t, a, "GET", "/api/v1/users", mustLogin(t, b, "region", "region-pass"), nil, nil); code != 403 {
		t.Fatalf("a dispatcher lists users: %d", code)
	}

	// A browser on a from the snapshot; a is killed mid-stream; it goes on
	// at b from its Last-Event-ID.
	ch := make(chan sseLine, 1000)
	stopA := openStream(t, a, tok, snap, ch)
	want := map[string]uint64{"D1": 3, "D2": 2}
	for i := 0; i < 30; i++ {
		d.event([]string{"D1", "D2"}[i%2], "route:update", fmt.Sprintf(`{"routeId":"R1","completedStops":%d}`, 11+i))
	}
	// What a publisher that is not a depot may put on its subjects never
	// reaches a browser: data with a line break (which would let it write
	// SSE fields of its own), and data that is not JSON.
	d.raw("D1", 1000, "{\"seq\":1000,\n\"type\":\"route:update\"}\n\nevent: reset")
	d.raw("D1", 1001, "not json")
	got := map[string]uint64{"D1": 3, "D2": 2}
	var lastID uint64
	take := func(n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			select {
			case l := <-ch:
				if l.event != "" || l.id <= lastID || l.seq != got[l.depot]+1 {
					t.Fatalf("after id %d (%v): %+v", lastID, got, l)
				}
				lastID, got[l.depot] = l.id, l.seq
			case <-time.After(10 * time.Second):
				t.Fatalf("no event after id %d (%v)", lastID, got)
			}
		}
	}
	take(12)
	stopA()
	a.Kill()
	ch = make(chan sseLine, 1000) // what a had sent on is gone with it
	stopB := openStream(t, b, tok, lastID, ch)
	defer stopB()
	take(18)
	want["D1"], want["D2"] = 18, 17
	if got["D1"] != want["D1"] || got["D2"] != want["D2"] {
		t.Fatalf("got %v, want %v", got, want)
	}
	d.event("D2", "route:update", `{"routeId":"R9","statusColor":"GREEN"}`)
	take(1)

	// Polling, from the same ids.
	var page struct {
		Events []struct {
			ID    uint64          `json:"id"`
			Depot string          `json:"depot"`
			Event json.RawMessage `json:"event"`
		} `json:"events"`
		Last  uint64 `json:"last"`
		Reset bool   `json:"reset"`
	}
	if code := call(t, b, "GET", fmt.Sprintf("/api/v1/fleet/events?after=%d&limit=5&depot=D2", snap), tok, nil, &page); code != 200 || len(page.Events) != 5 || page.Events[0].Depot != "D2" {
		t.Fatalf("poll: %d %+v", code, page)
	}
	for i, e := range page.Events {
		var env struct{ Seq uint64 }
		_ = json.Unmarshal(e.Event, &env)
		if env.Seq != uint64(3+i) || (i > 0 && e.ID <= page.Events[i-1].ID) {
			t.Fatalf("poll event %d: %+v", i, page.Events)
		}
	}

	// Bad requests change nothing and say why.
	for _, p := range []string{"/api/v1/fleet/events?after=x", "/api/v1/fleet/events?limit=0", "/api/v1/fleet?depot=a%20b",
		"/api/v1/fleet/stream?depot=a.%3E&access_token=" + tok} {
		var e struct{ Error string }
		if code := call(t, b, "GET", p, tok, nil, &e); code != 400 || e.Error == "" {
			t.Fatalf("%s: %d %q", p, code, e.Error)
		}
	}
	if code := call(t, b, "GET", "/api/v1/fleet", "", nil, nil); code != 401 {
		t.Fatalf("fleet without a token: %d", code)
	}

	// Events the stream no longer keeps: the browser is told to reload.
	st, _ := d.js.Stream(context.Background(), upstream.StreamName)
	if err := st.Purge(context.Background(), jetstream.WithPurgeSequence(snap+5)); err != nil {
		t.Fatal(err)
	}
	if code := call(t, b, "GET", "/api/v1/fleet/events?after=1", tok, nil, &page); code != 200 || !page.Reset {
		t.Fatalf("poll after a purge: %d %+v", code, page)
	}
	ch2 := make(chan sseLine, 10)
	stop := openStream(t, b, tok, 1, ch2)
	defer stop()
	select {
	case l := <-ch2:
		if l.event != "reset" {
			t.Fatalf("stream after a purge: %+v", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no reset")
	}
}

func mustLogin(t *testing.T, h *HQ, user, pass string) string {
	t.Helper()
	tok, code := login(t, h, user, pass)
	if code != 200 {
		t.Fatalf("login %s: %d", user, code)
	}
	return tok
}

// TestHQNoStream: an instance started before any depot forwarded says so,
// and shows the fleet once the first depot does.
func TestHQNoStream(t *testing.T) {
	t.Parallel()
	ns := natstest.Start(t, server.Options{})
	h := startHQ(t, ns.ClientURL(), "a")
	tok := mustLogin(t, h, "admin", "admin-pass-1")
	var e struct{ Error string }
	if code := call(t, h, "GET", "/api/v1/fleet", tok, nil, &e); code != 503 || !strings.Contains(e.Error, "no stream") {
		t.Fatalf("before any depot: %d %q", code, e.Error)
	}
	d := newDepotSide(t, ns.ClientURL())
	d.event("D1", "route:update", `{"routeId":"R1","statusColor":"GREEN"}`)
	waitFor(t, 10*time.Second, func() error {
		var f fleetAnswer
		if code := call(t, h, "GET", "/api/v1/fleet", tok, nil, &f); code != 200 || len(f.Depots) != 1 {
			return fmt.Errorf("%d %+v", code, f)
		}
		return nil
	})
}

// TestHQReview, from a fresh-eye review: a request's consumer does not
// outlive it long; Close does not wait out open streams; a deleted user's
// open stream ends; a browser past the end of a stream made again is told
// to reload; every route is loaded at start, also those written meanwhile.
func TestHQReview(t *testing.T) {
	t.Parallel()
	ns := natstest.Start(t, server.Options{})
	d := newDepotSide(t, ns.ClientURL())
	for _, r := range []string{"R1", "R2", "R3", "R4", "R5"} {
		d.route("D1", r, "GREEN", 1)
	}
	for i := 0; i < 50; i++ {
		d.event("D1", "route:update", fmt.Sprintf(`{"routeId":"R1","completedStops":%d}`, i))
	}

	// Every route, whatever was written after the stream was read.
	nc, _ := nats.Connect(ns.ClientURL())
	defer nc.Close()
	js, _ := jetstream.New(nc)
	lh := &HQ{js: js, fleet: newFleet()}
	st, _ := js.Stream(context.Background(), upstream.StreamName)
	if err := lh.loadRoutes(context.Background(), st); err != nil {
		t.Fatal(err)
	}
	if _, _, deps := lh.fleet.Snapshot(""); len(deps) != 1 || len(deps[0].Routes) != 5 {
		t.Fatalf("routes loaded: %+v", deps)
	}

	h := startHQ(t, ns.ClientURL(), "a", func(c *Config) { c.streamCheck = 100 * time.Millisecond })
	tok := mustLogin(t, h, "admin", "admin-pass-1")
	var f fleetAnswer
	waitFor(t, 10*time.Second, func() error {
		if code := call(t, h, "GET", "/api/v1/fleet", tok, nil, &f); code != 200 {
			return fmt.Errorf("%d", code)
		}
		return nil
	})
	consumers := func() int {
		i, err := st.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return i.State.Consumers
	}
	base := consumers()
	for i := 0; i < 10; i++ {
		call(t, h, "GET", "/api/v1/fleet/events?after=40", tok, nil, nil)
	}
	waitFor(t, 30*time.Second, func() error {
		if n := consumers(); n > base {
			return fmt.Errorf("%d consumers left by 10 polls", n-base)
		}
		return nil
	})

	// A deleted user's open stream ends.
	if code := call(t, h, "POST", "/api/v1/users", tok, map[string]string{"username": "fired", "password": "fired-pass", "role": "dispatcher"}, nil); code != 201 {
		t.Fatal(code)
	}
	ft := mustLogin(t, h, "fired", "fired-pass")
	ended := make(chan struct{})
	req, _ := http.NewRequest("GET", "http://"+h.Addr()+"/api/v1/fleet/stream?after=50&access_token="+ft, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("stream: %v %v", res, err)
	}
	go func() { _, _ = io.Copy(io.Discard, res.Body); res.Body.Close(); close(ended) }()
	if code := call(t, h, "DELETE", "/api/v1/users/fired", tok, nil, nil); code != 204 {
		t.Fatal(code)
	}
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("a deleted user's stream goes on")
	}

	// The stream made again: a browser at its old place is told to reload.
	ctx := context.Background()
	_ = d.js.DeleteStream(ctx, upstream.StreamName)
	if _, err := d.js.CreateStream(ctx, jetstream.StreamConfig{Name: upstream.StreamName, Subjects: []string{"depot.>"}}); err != nil {
		t.Fatal(err)
	}
	d.seqs = map[string]uint64{}
	d.event("D2", "route:update", `{"routeId":"R2","statusColor":"RED"}`)
	ch := make(chan sseLine, 10)
	stop := openStream(t, h, tok, 50, ch)
	select {
	case l := <-ch:
		if l.event != "reset" {
			t.Fatalf("past the end: %+v", l)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("past the end of the stream: no reset")
	}
	stop()
	// ...and the instance's own picture is the new stream's, not the old
	// one's waiting for sequence numbers the new stream has not reached.
	waitFor(t, 10*time.Second, func() error {
		var f fleetAnswer
		call(t, h, "GET", "/api/v1/fleet", tok, nil, &f)
		if len(f.Depots) != 1 || f.Depots[0].Depot != "D2" || f.Seq != 1 {
			return fmt.Errorf("the picture after the stream was made again: seq %d, %+v", f.Seq, f.Depots)
		}
		return nil
	})

	// Close with a stream open does not wait it out.
	ch = make(chan sseLine, 10)
	stop = openStream(t, h, tok, 0, ch)
	defer stop()
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	began := time.Now()
	if err := h.Close(cctx); err != nil || time.Since(began) > 3*time.Second {
		t.Fatalf("Close with a stream open: %v after %s", err, time.Since(began))
	}
}

// TestHQAccountsAcrossInstances, from a review: a rule over all users
// holds across instances (two admins deleted at once on two instances
// leave one; one name created at once on two is created once), and the
// signing key stays one: deleted from the bucket it comes back unchanged,
// replaced there every instance takes the new one.
func TestHQAccountsAcrossInstances(t *testing.T) {
	t.Parallel()
	s := natstest.Start(t, server.Options{})
	newDepotSide(t, s.ClientURL())
	a, b := startHQ(t, s.ClientURL(), "a"), startHQ(t, s.ClientURL(), "b")
	for round := range 10 {
		name := fmt.Sprintf("admin%d", round)
		if err := a.Accounts().CreateUser(name, "admin-pass-2", "admin"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, func() error {
			us, _ := b.Accounts().Users()
			if len(us) != 2 {
				return fmt.Errorf("b sees %d users", len(us))
			}
			return nil
		})
		// Both at once: each instance sees two admins before it deletes.
		errs := make(chan error, 2)
		start := make(chan struct{})
		go func() { <-start; errs <- a.Accounts().DeleteUser("admin") }()
		go func() { <-start; errs <- b.Accounts().DeleteUser(name) }()
		close(start)
		e1, e2 := <-errs, <-errs
		us, err := a.Accounts().Users()
		if err != nil {
			t.Fatal(err)
		}
		if len(us) != 1 || us[0].Role != "admin" || (e1 == nil) == (e2 == nil) {
			t.Fatalf("round %d: two admins deleted at once on two instances: %v and %v, left %v", round, e1, e2, us)
		}
		if us[0].Username != "admin" { // the survivor becomes admin again for the next round
			if err := a.Accounts().CreateUser("admin", "admin-pass-1", "admin"); err != nil {
				t.Fatal(err)
			}
			if err := a.Accounts().DeleteUser(us[0].Username); err != nil {
				t.Fatal(err)
			}
		}
		// One name, two instances, at once.
		start = make(chan struct{})
		go func() { <-start; errs <- a.Accounts().CreateUser("sam", "sam-pass-1", "dispatcher") }()
		go func() { <-start; errs <- b.Accounts().CreateUser("sam", "sam-pass-2", "dispatcher") }()
		close(start)
		if e1, e2 := <-errs, <-errs; (e1 == nil) == (e2 == nil) {
			t.Fatalf("round %d: one name created on two instances: %v and %v", round, e1, e2)
		}
		waitFor(t, 5*time.Second, func() error { return a.Accounts().DeleteUser("sam") }) // once a has heard of it
	}

	// The signing key: deleted from the bucket, it comes back as it was.
	tok := mustLogin(t, a, "admin", "admin-pass-1")
	kv, err := a.js.KeyValue(context.Background(), Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Delete(context.Background(), keyName); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() error {
		if _, err := kv.Get(context.Background(), keyName); err != nil {
			return err
		}
		return nil
	})
	for _, h := range []*HQ{a, b} {
		if code := call(t, h, "GET", "/api/v1/fleet", tok, nil, nil); code != 200 {
			t.Fatalf("%s: a token after the key was deleted and put back: %d", h.cfg.Instance, code)
		}
	}
	// Replaced (the bucket made again by an instance with another key):
	// every instance signs with the new one.
	if _, err := kv.Put(context.Background(), keyName, bytes.Repeat([]byte{7}, 32)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, func() error {
		for _, h := range []*HQ{a, b} {
			if code := call(t, h, "GET", "/api/v1/fleet", tok, nil, nil); code != 401 {
				return fmt.Errorf("%s: a token signed with the old key: %d", h.cfg.Instance, code)
			}
		}
		return nil
	})
	tok = mustLogin(t, a, "admin", "admin-pass-1")
	if code := call(t, b, "GET", "/api/v1/fleet", tok, nil, nil); code != 200 {
		t.Fatalf("a token from a on b after the key changed: %d", code)
	}
}

// TestHQUserChanges: role changes, disabling and password resets work on
// hq's shared store too: a change on one instance stops the user's tokens
// on the other, and the last enabled admin stays one even when two
// instances demote the last two admins at once.
func TestHQUserChanges(t *testing.T) {
	t.Parallel()
	s := natstest.Start(t, server.Options{})
	newDepotSide(t, s.ClientURL())
	// b's keep-alive is long: what ends a stream must not wait for it.
	a, b := startHQ(t, s.ClientURL(), "a"), startHQ(t, s.ClientURL(), "b", func(c *Config) { c.KeepAlive = time.Minute })
	adm := mustLogin(t, a, "admin", "admin-pass-1")
	// The admin page is the depot's: hq does not serve it.
	for _, p := range []string{"/admin", "/admin.html", "/admin.js"} {
		if code := call(t, a, "GET", p, "", nil, nil); code != 404 {
			t.Errorf("GET %s on hq: %d, want 404", p, code)
		}
	}
	if code := call(t, a, "POST", "/api/v1/users", adm, map[string]string{"username": "sam", "password": "sam-pass-1", "role": "dispatcher"}, nil); code != 201 {
		t.Fatalf("create sam: %d", code)
	}
	var sam string
	waitFor(t, 5*time.Second, func() error {
		tok, code := login(t, b, "sam", "sam-pass-1")
		if code != 200 {
			return fmt.Errorf("sam on b: %d", code)
		}
		sam = tok
		return nil
	})
	// sam watches the fleet on b; a disables her: the stream ends.
	res, err := http.Get("http://" + b.Addr() + "/api/v1/fleet/stream?access_token=" + sam)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("sam's stream on b: %v %v", res, err)
	}
	ended := make(chan struct{})
	go func() { defer close(ended); _, _ = io.Copy(io.Discard, res.Body); res.Body.Close() }()
	if code := call(t, a, "PATCH", "/api/v1/users/sam", adm, map[string]bool{"disabled": true}, nil); code != 200 {
		t.Fatalf("disable sam: %d", code)
	}
	waitFor(t, 10*time.Second, func() error {
		select {
		case <-ended:
			return nil
		default:
			return fmt.Errorf("a disabled user's fleet stream on another instance is still open")
		}
	})
	waitFor(t, 5*time.Second, func() error {
		if code := call(t, b, "GET", "/api/v1/fleet", sam, nil, nil); code != 401 {
			return fmt.Errorf("a disabled user's token on b: %d", code)
		}
		return nil
	})
	if _, code := login(t, b, "sam", "sam-pass-1"); code != 403 {
		t.Fatalf("a disabled user's login on b: %d", code)
	}
	if code := call(t, b, "PATCH", "/api/v1/users/sam", adm, map[string]bool{"disabled": false}, nil); code != 200 {
		t.Fatalf("enable sam: %d", code)
	}
	if code := call(t, b, "POST", "/api/v1/users/sam/password", adm, map[string]string{"password": "sam-pass-2"}, nil); code != 204 {
		t.Fatalf("reset sam's password: %d", code)
	}
	waitFor(t, 5*time.Second, func() error {
		if _, code := login(t, a, "sam", "sam-pass-2"); code != 200 {
			return fmt.Errorf("sam's new password on a: %d", code)
		}
		return nil
	})

	// Two admins, each demoted at once on another instance: one stays.
	if code := call(t, a, "PATCH", "/api/v1/users/sam", adm, map[string]string{"role": "admin"}, nil); code != 200 {
		t.Fatalf("promote sam: %d", code)
	}
	waitFor(t, 5*time.Second, func() error {
		us, _ := b.Accounts().Users()
		for _, u := range us {
			if u.Username == "sam" && u.Role == "admin" {
				return nil
			}
		}
		return fmt.Errorf("b: sam not an admin yet")
	})
	errs := make(chan error, 2)
	start := make(chan struct{})
	go func() { <-start; _, err := a.Accounts().SetRole("admin", "dispatcher"); errs <- err }()
	go func() { <-start; _, err := b.Accounts().SetRole("sam", "dispatcher"); errs <- err }()
	close(start)
	e1, e2 := <-errs, <-errs
	if (e1 == nil) == (e2 == nil) {
		t.Fatalf("the last two admins demoted at once on two instances: %v and %v", e1, e2)
	}
}
