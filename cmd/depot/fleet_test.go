package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge/upstream"
	"github.com/depotcc/depot/hq"
	"github.com/depotcc/depot/internal/natstest"
	"github.com/depotcc/depot/loadgen"
	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/crypto/bcrypt"
)

// fleetClient is one dashboard on the fleet page, as a browser's
// EventSource would be: the snapshot from one hq instance, then the SSE
// stream; when its instance goes away, the next one, from Last-Event-ID.
type fleetClient struct {
	urls  []string // the hq instances, tried in turn
	token string

	mu       sync.Mutex
	on       int // the instance it streams from
	lastID   uint64
	last     map[string]uint64    // per depot: the newest seq seen
	heard    map[string]time.Time // per depot: when it was seen
	lag      map[string]time.Duration
	made     map[string]time.Time // per depot: the newest event's own time
	maxLag   time.Duration        // since the last resetMax
	lats     []time.Duration      // every event's lag, while record is set
	record   bool
	events   int
	dupes    int
	gaps     []string
	switches int
}

func (c *fleetClient) get(url string, out any) error {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer "+c.token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return fmt.Errorf("%s: %s", url, res.Status)
	}
	return json.NewDecoder(res.Body).Decode(out)
}

// run streams until ctx ends.
func (c *fleetClient) run(ctx context.Context, t *testing.T) {
	var snap struct {
		Seq    uint64 `json:"seq"`
		Depots []struct {
			Depot   string `json:"depot"`
			LastSeq uint64 `json:"lastSeq"`
		} `json:"depots"`
	}
	for ctx.Err() == nil {
		if err := c.get("http://"+c.urls[0]+"/api/v1/fleet", &snap); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.mu.Lock()
	c.lastID = snap.Seq
	for _, d := range snap.Depots {
		c.last[d.Depot] = d.LastSeq
	}
	c.mu.Unlock()
	for ctx.Err() == nil {
		c.stream(ctx)
		c.mu.Lock()
		c.on = (c.on + 1) % len(c.urls)
		c.switches++
		c.mu.Unlock()
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c *fleetClient) stream(ctx context.Context) {
	c.mu.Lock()
	url := "http://" + c.urls[c.on] + "/api/v1/fleet/stream?access_token=" + c.token
	from := c.lastID
	c.mu.Unlock()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	req.Header.Set("Last-Event-ID", strconv.FormatUint(from, 10))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		return
	}
	_ = loadgen.ReadSSE(res.Body, func(e loadgen.SSEEvent) error {
		var l struct {
			Depot string `json:"depot"`
			Event struct {
				Seq       uint64    `json:"seq"`
				Timestamp time.Time `json:"timestamp"`
			} `json:"event"`
		}
		if e.Event != "" || json.Unmarshal([]byte(e.Data), &l) != nil {
			return fmt.Errorf("unexpected %+v", e)
		}
		id, _ := strconv.ParseUint(e.ID, 10, 64)
		now := time.Now()
		c.mu.Lock()
		defer c.mu.Unlock()
		c.lastID = id
		c.events++
		switch prev := c.last[l.Depot]; {
		case l.Event.Seq <= prev:
			c.dupes++
		case l.Event.Seq > prev+1 && len(c.gaps) < 10:
			c.gaps = append(c.gaps, fmt.Sprintf("%s: %d after %d", l.Depot, l.Event.Seq, prev))
		}
		if l.Event.Seq > c.last[l.Depot] {
			c.last[l.Depot] = l.Event.Seq
		}
		c.heard[l.Depot] = now
		c.lag[l.Depot] = now.Sub(l.Event.Timestamp)
		c.made[l.Depot] = l.Event.Timestamp
		c.maxLag = max(c.maxLag, c.lag[l.Depot])
		if c.record {
			c.lats = append(c.lats, c.lag[l.Depot])
		}
		return nil
	})
}

// live says whether every depot's newest event was made after since and
// reached the client under a second after the depot made it, lately.
func (c *fleetClient) live(depots []string, since time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, d := range depots {
		if !c.made[d].After(since) || time.Since(c.heard[d]) > 2*time.Second || c.lag[d] >= time.Second {
			return fmt.Errorf("depot %s: last heard %s ago, lag %s", d, time.Since(c.heard[d]).Round(time.Millisecond), c.lag[d])
		}
	}
	return nil
}

// TestFleet is the fleet end to end under faults: three depots under demo
// load forward into a three-node JetStream cluster (stream R3); two hq
// instances serve one SSE dashboard. During the run the node leading the
// stream is killed, then the hq instance the dashboard is on, then one
// depot's uplink is cut for 30 s. Every event of every depot reaches the
// dashboard exactly once and in per-depot seq order, and its lag is back
// under a second after each fault.
func TestFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("a run of about a minute with faults")
	}
	t.Parallel()
	nodes := natstest.Cluster(t, 3)
	urls := natstest.URLs(nodes)
	proxies := make([]*natstest.Proxy, len(nodes))
	var viaProxy []string
	for i, n := range nodes {
		proxies[i] = natstest.NewProxy(t, strings.TrimPrefix(n.ClientURL(), "nats://"))
		viaProxy = append(viaProxy, proxies[i].URL())
	}
	names := []string{"north", "south", "east"}
	apps := map[string]*testApp{}
	for i, d := range names {
		up := urls
		if i == 2 {
			up = strings.Join(viaProxy, ",") // its uplink is the one that will be cut
		}
		apps[d] = startApp(t, "", func(c *ServeConfig) {
			c.Depot, c.Upstream, c.UpstreamReplicas = d, up, 3
			c.CortexURL, c.Demo, c.DemoRoutes, c.DemoRate = "", true, 30, time.Second
		})
	}
	var hqs []*hq.HQ
	var addrs []string
	for i := range 2 {
		h, err := hq.Start(context.Background(), hq.Config{URLs: urls, Replicas: 3, HTTPAddr: "127.0.0.1:0", Instance: fmt.Sprint("hq", i),
			AdminPassword: adminPassword, HashCost: bcrypt.MinCost, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Kill() })
		hqs = append(hqs, h)
		addrs = append(addrs, h.Addr())
	}
	tok, _, err := hqs[0].Accounts().Login("admin", adminPassword)
	if err != nil {
		t.Fatal(err)
	}
	c := &fleetClient{urls: addrs, token: tok, last: map[string]uint64{}, heard: map[string]time.Time{}, lag: map[string]time.Duration{},
		made: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.run(ctx, t); close(done) }()
	defer func() { cancel(); <-done }()

	// recovered waits for each depot's events made a second after the
	// fault to reach the dashboard under a second after they were made.
	recovered := func(what string, depots []string, at time.Time) {
		t.Helper()
		checkFor(t, 90*time.Second, func() error {
			if err := c.live(depots, at.Add(time.Second)); err != nil {
				return fmt.Errorf("%s: %w", what, err)
			}
			return nil
		})
		c.mu.Lock()
		t.Logf("%s: live again %s after, the largest lag meanwhile %s", what, time.Since(at).Round(time.Millisecond), c.maxLag.Round(time.Millisecond))
		c.maxLag = 0
		c.mu.Unlock()
	}
	recovered("start", names, time.Now())

	// 1. The node that leads the stream dies.
	var leader *server.Server
	checkFor(t, 10*time.Second, func() error {
		for _, n := range nodes {
			if n.JetStreamIsStreamLeader(server.DEFAULT_GLOBAL_ACCOUNT, upstream.StreamName) {
				leader = n
				return nil
			}
		}
		return fmt.Errorf("no leader of %s", upstream.StreamName)
	})
	leader.Shutdown()
	recovered("stream leader killed", names, time.Now())

	// 2. The hq instance the dashboard is on dies.
	c.mu.Lock()
	on := c.on
	c.mu.Unlock()
	hqs[on].Kill()
	recovered("hq instance killed", names, time.Now())

	// 3. One depot's uplink is cut for 30 s; the others stay live.
	for _, p := range proxies {
		p.Cut()
	}
	cutAt := time.Now()
	recovered("east cut off: the others", names[:2], cutAt)
	checkFor(t, 60*time.Second, func() error {
		if h := apps["east"].upstream.Health(); h.Connected || h.Behind == 0 {
			return fmt.Errorf("east's uplink while cut: %+v", h)
		}
		return nil
	})
	time.Sleep(30*time.Second - time.Since(cutAt)) // the length of the outage is the point here
	for _, p := range proxies {
		p.Restore()
	}
	recovered("east's uplink back", names, time.Now())

	// Everything each depot logged reached the dashboard, once, in order.
	for _, d := range names {
		want := apps[d].depot.LastSeq()
		checkFor(t, 60*time.Second, func() error {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.last[d] < want {
				return fmt.Errorf("depot %s: dashboard at seq %d, depot logged %d", d, c.last[d], want)
			}
			return nil
		})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dupes != 0 || len(c.gaps) != 0 {
		t.Fatalf("%d events, %d duplicates, gaps %v", c.events, c.dupes, c.gaps)
	}
	if c.switches == 0 {
		t.Fatal("the dashboard never moved to the other instance")
	}
	t.Logf("%d events, no duplicate, no gap; the dashboard changed instance %d times", c.events, c.switches)
}
