package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/eclipse/paho.golang/paho"
)

// stallingStore blocks every commit while stalled: a disk that stops
// answering (a dying SSD, an NFS mount gone away).
type stallingStore struct {
	bridge.Store
	mu      sync.Mutex
	release chan struct{} // nil: not stalled
}

func (s *stallingStore) stall() {
	s.mu.Lock()
	s.release = make(chan struct{})
	s.mu.Unlock()
}

func (s *stallingStore) resume() {
	s.mu.Lock()
	close(s.release)
	s.release = nil
	s.mu.Unlock()
}

func (s *stallingStore) Commit(b *bridge.Batch) error {
	s.mu.Lock()
	r := s.release
	s.mu.Unlock()
	if r != nil {
		<-r
	}
	return s.Store.Commit(b)
}

// TestStalledDiskKeepsReadersAnswering: while the disk does not answer and
// the queue to it is full, health, readiness (503 with the reason), the
// routes and the state still answer, the broker still accepts
// connections, a QoS 1 fix is not acknowledged before it is stored, and
// everything resumes when the disk does, with no hole in the event log.
func TestStalledDiskKeepsReadersAnswering(t *testing.T) {
	ss := &stallingStore{}
	a := startApp(t, "", func(c *ServeConfig) {
		c.PublishRate, c.PublishBurst = 1e6, 1e6 // the flood must reach the queue
	}, func(m *Main) { m.faults.wrapStore = func(s bridge.Store) bridge.Store { ss.Store = s; return ss } })
	sub := a.subscribeWS(t, "depot/DEMO1/events")
	flood := a.driver(t, "D1")
	// The handheld's connection is read once its presence is stored.
	checkFor(t, 10*time.Second, func() error {
		if len(sub.typed(bridge.EventDriverPresence)) == 0 {
			return fmt.Errorf("D1 not yet online")
		}
		return nil
	})
	ss.stall()
	var resumed atomic.Bool
	defer func() {
		if !resumed.Load() {
			resumed.Store(true)
			ss.resume()
		}
	}()

	// Fill the queue with QoS 0 fixes; the handheld's reads stop when it
	// is full, so its publishes block too: send them aside.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now().Add(-time.Minute)
	var sent atomic.Int64
	go func() {
		for i := range 8000 {
			if _, err := flood.Publish(ctx, &paho.Publish{Topic: "depot/DEMO1/drivers/D1/gps", QoS: 0,
				Payload: fixJSON(38.6, -121.4+float64(i)*1e-5, start.Add(time.Duration(i)*time.Millisecond))}); err != nil {
				return
			}
			sent.Add(1)
		}
	}()
	checkFor(t, 60*time.Second, func() error {
		if q := a.depot.StoreHealth().Queued; q < 4096 {
			return fmt.Errorf("%d jobs queued (%d fixes sent, %d accepted)", q, sent.Load(), a.depot.Stats.FixesAccepted.Load())
		}
		return nil
	})

	quick := &http.Client{Timeout: 5 * time.Second} // a reader that waits for the disk fails here
	get := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+a.HTTPAddr()+path, nil)
		req.Header.Set("Authorization", "Bearer "+a.disp)
		resp, err := quick.Do(req)
		if err != nil {
			t.Fatalf("GET %s while the disk stalls: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, p := range []string{"/healthz", "/api/v1/routes", "/api/v1/state"} {
		if code, body := get(p); code != 200 {
			t.Fatalf("GET %s while the disk stalls: %d %.200s", p, code, body)
		}
	}
	checkFor(t, 20*time.Second, func() error {
		code, body := get("/readyz")
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "disk") {
			return fmt.Errorf("/readyz: %d %.200s", code, body)
		}
		return nil
	})

	// A handheld still connects, and its QoS 1 fix waits for the disk.
	late := a.driver(t, "D2")
	acked := make(chan error, 1)
	go func() {
		pctx, c := context.WithTimeout(context.Background(), 2*time.Minute)
		defer c()
		r, err := late.Publish(pctx, &paho.Publish{Topic: "depot/DEMO1/drivers/D2/gps", QoS: 1, Payload: fixJSON(38.6402, -121.41, time.Now())})
		switch {
		case err != nil:
			acked <- err
		case r.ReasonCode != 0:
			acked <- fmt.Errorf("PUBACK 0x%02x", r.ReasonCode)
		case !resumed.Load():
			acked <- fmt.Errorf("a QoS 1 fix was acknowledged while the disk stalled")
		default:
			acked <- nil
		}
	}()
	if code, _ := get("/api/v1/routes"); code != 200 {
		t.Fatalf("routes after a new connection: %d", code)
	}

	resumed.Store(true)
	ss.resume()
	if err := <-acked; err != nil {
		t.Fatal(err)
	}
	sub.findDelta(t, "DEMO1", "R2", func(d map[string]any) bool { return d["currentLat"] == 38.6402 })
	checkFor(t, 60*time.Second, func() error {
		if code, body := get("/readyz"); code != 200 {
			return fmt.Errorf("/readyz after the disk is back: %d %.200s", code, body)
		}
		return nil
	})
	cancel()
	checkFor(t, 60*time.Second, func() error {
		if q := a.depot.StoreHealth().Queued; q != 0 {
			return fmt.Errorf("%d jobs still queued", q)
		}
		return nil
	})
	var evs []bridge.Envelope
	a.getJSON(t, "/api/v1/events?after=0&limit=100000", &evs)
	for i, e := range evs {
		if e.Seq != uint64(i+1) {
			t.Fatalf("hole in the event log at %d: seq %d", i+1, e.Seq)
		}
	}
}
