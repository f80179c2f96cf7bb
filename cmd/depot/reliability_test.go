package main

import (
	"bufio"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
)

// TestQueuedInboxSurvivesRestart: a handheld with a persistent session is
// offline while a message for it is queued and the appliance restarts; it
// gets the message when it comes back.
func TestQueuedInboxSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	a := startApp(t, dir, nil)
	d2 := &handheld{t: t, a: a, driver: "D2"}
	d2.connect(true) // subscribes to its inbox, session expiry 1 h
	d2.drop()
	if code := a.request(t, "POST", "/api/v1/routes/R1/reassign", a.disp, map[string]string{"toDriverId": "D2"}, nil); code != 200 {
		t.Fatalf("reassign: %d", code)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}

	b := startApp(t, dir, func(c *ServeConfig) { c.CortexURL = "" }) // (issues D2 a new token)
	back := &handheld{t: t, a: b, driver: "D2"}
	back.connect(false) // resumes its session: no new subscription
	env, _ := back.waitInbox(bridge.EventRouteReassign)
	if env.Type != bridge.EventRouteReassign {
		t.Fatalf("inbox %+v", env)
	}
}

// TestStreamResumesFromLastEventID: the SSE fallback sends every event
// after Last-Event-ID, with id: = seq, then live ones.
func TestStreamResumesFromLastEventID(t *testing.T) {
	a := startApp(t, "", nil)
	drv := a.driver(t, "D1")
	base := time.Now()
	for i := range 5 {
		publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.6+float64(i)/1000, -121.4, base.Add(time.Duration(i)*time.Second)))
	}
	from := a.depot.LastSeq() - 3
	req, _ := http.NewRequest("GET", "http://"+a.HTTPAddr()+"/api/v1/stream?access_token="+a.disp, nil)
	req.Header.Set("Last-Event-ID", strconv.FormatUint(from, 10))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, ct)
	}
	sc := bufio.NewScanner(resp.Body)
	var ids []uint64
	go func() {
		time.Sleep(200 * time.Millisecond)
		publish(drv, "depot/DEMO1/drivers/D1/gps", 1, fixJSON(38.7, -121.4, base.Add(time.Minute)))
	}()
	for sc.Scan() && len(ids) < 4 {
		if v, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
			n, _ := strconv.ParseUint(v, 10, 64)
			ids = append(ids, n)
		}
	}
	for i, id := range ids {
		if id != from+uint64(i)+1 {
			t.Fatalf("ids %v after %d", ids, from)
		}
	}
	if len(ids) != 4 {
		t.Fatalf("ids %v", ids)
	}
	// Without a token: refused.
	if r, err := http.Get("http://" + a.HTTPAddr() + "/api/v1/stream"); err != nil || r.StatusCode != 401 {
		t.Fatalf("stream without a token: %v %v", r.StatusCode, err)
	}
}
