package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge/upstream"
	"github.com/depotcc/depot/internal/natstest"
	"github.com/depotcc/depot/storage"
	"github.com/depotcc/depot/ui/client"
	"github.com/eclipse/paho.golang/paho"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestUpstreamSIGKILLMidPublish: the real depot binary, draining a
// backlog of a few thousand events into JetStream, is killed with SIGKILL
// after the stream acknowledged events its cursor in the store does not
// record yet (the test checks that the kill came there), and started
// again: the stream holds every event of the depot exactly once, in seq
// order.
func TestUpstreamSIGKILLMidPublish(t *testing.T) {
	t.Parallel()
	ns := natstest.Start(t, server.Options{StoreDir: t.TempDir()})
	dir := t.TempDir()
	data, feed := filepath.Join(dir, "data"), filepath.Join(dir, "feed.json")
	var routes []map[string]any
	for i := 1; i <= 10; i++ {
		routes = append(routes, map[string]any{"routeId": fmt.Sprintf("R%d", i), "driverId": fmt.Sprintf("D%d", i), "totalStops": 100, "completedStops": 1})
	}
	b, _ := json.Marshal(routes)
	writeFile(t, feed, string(b))

	// The backlog: made with the uplink off.
	p := startProc(t, data, feed)
	api := client.New(p.http)
	ctx := context.Background()
	if err := api.Login(ctx, "admin", adminPassword); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := 1; i <= 10; i++ {
		d := fmt.Sprintf("D%d", i)
		tok, err := api.DeviceToken(ctx, d, "crash test")
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, code, err := mqttConnect(p.mqtt, "drv-"+d, d, tok)
			if err != nil || code != 0 {
				t.Errorf("connect %s: 0x%02x %v", d, code, err)
				return
			}
			defer func() { _ = c.Disconnect(&paho.Disconnect{}) }()
			for k := range 300 {
				fix := fmt.Sprintf(`{"lat":%f,"lng":-121.5,"ts":%d}`, 38.5+float64(k)*0.0001, time.Now().UnixMilli())
				if code, err := publish(c, "depot/DEMO1/drivers/"+d+"/gps", 1, []byte(fix)); err != nil || code != 0 {
					t.Errorf("fix %d of %s: 0x%02x %v", k, d, code, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()

	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	subject := upstream.EventsSubject("DEMO1")
	inStream := func() uint64 {
		s, err := js.Stream(ctx, upstream.StreamName)
		if err != nil {
			return 0
		}
		i, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
		if err != nil {
			return 0
		}
		return i.State.Subjects[subject]
	}
	cursor := func() uint64 {
		db, err := storage.Open(dbDir(data), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		b, err := db.MetaGet("upstream.cursor")
		if err != nil || len(b) != 8 {
			return 0
		}
		return binary.BigEndian.Uint64(b)
	}

	// Drain, killed mid-way: until the kill lands between the stream's
	// acknowledgement and the cursor (it nearly always does at the first).
	hit := false
	for try := 0; try < 5 && !hit; try++ {
		before := inStream()
		p = startProc(t, data, feed, "--upstream", ns.ClientURL())
		natstest.WaitFor(t, 30*time.Second, func() error {
			if n := inStream(); n < before+350 {
				return fmt.Errorf("%d events in the stream", n)
			}
			return nil
		})
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_ = p.cmd.Wait()
		sent, cur := inStream(), cursor()
		t.Logf("try %d: killed with %d events in the stream, cursor at %d", try, sent, cur)
		hit = cur < sent
	}
	if !hit {
		t.Fatal("no kill landed between an acknowledgement and the cursor")
	}

	// Started again: it finishes the drain.
	p = startProc(t, data, feed, "--upstream", ns.ClientURL())
	api = client.New(p.http)
	if err := api.Login(ctx, "admin", adminPassword); err != nil {
		t.Fatal(err)
	}
	var last uint64
	natstest.WaitFor(t, 60*time.Second, func() error {
		var h struct {
			Upstream upstream.Health `json:"upstream"`
		}
		if err := api.Do(ctx, "GET", "/healthz", nil, &h); err != nil {
			return err
		}
		if !h.Upstream.Connected || h.Upstream.Behind != 0 || h.Upstream.Cursor < 2000 {
			return fmt.Errorf("upstream %+v", h.Upstream)
		}
		last = h.Upstream.Cursor
		return nil
	})
	// Every message on the subject, read in stream order, must be the
	// depot's next seq: a duplicate shows as a seq already read, a gap as
	// one skipped. The depot may log more events meanwhile (presence, route
	// alerts), so the reading goes on until it has caught up with the
	// stream's count.
	c, err := js.OrderedConsumer(ctx, upstream.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		t.Fatal(err)
	}
	var read uint64
	for {
		n := inStream()
		if read >= last && read == n {
			t.Logf("%d events in the stream, each once and in order (%d logged after the drain)", read, read-last)
			break
		}
		if read > n {
			t.Fatalf("read %d messages, the stream counts %d", read, n)
		}
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("event %d (stream counts %d): %v", read+1, n, err)
		}
		var env struct {
			Seq uint64 `json:"seq"`
		}
		if err := json.Unmarshal(m.Data(), &env); err != nil || env.Seq != read+1 {
			t.Fatalf("the stream holds seq %d where %d belongs (%v)", env.Seq, read+1, err)
		}
		read++
	}
}
