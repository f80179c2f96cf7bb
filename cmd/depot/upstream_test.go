package main

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge/upstream"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// TestUpstream: a depot with --upstream forwards its whole event log to
// the fleet's JetStream stream, each event once and in seq order, and
// reports the link in its health.
func TestUpstream(t *testing.T) {
	t.Parallel()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	defer ns.Shutdown()
	a := startApp(t, "", func(c *ServeConfig) { c.Upstream = ns.ClientURL() })
	a.offerVTO(t, "D1", "R1")
	last := a.depot.LastSeq()
	checkFor(t, 15*time.Second, func() error {
		if h := a.upstream.Health(); !h.Connected || h.Cursor < last {
			return fmt.Errorf("upstream health %+v, log at %d", h, last)
		}
		return nil
	})
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := js.OrderedConsumer(ctx, upstream.StreamName, jetstream.OrderedConsumerConfig{FilterSubjects: []string{upstream.EventsSubject("DEMO1")}})
	if err != nil {
		t.Fatal(err)
	}
	for want := uint64(1); want <= last; want++ {
		m, err := c.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			t.Fatalf("event %d: %v", want, err)
		}
		var env struct {
			Seq  uint64 `json:"seq"`
			Type string `json:"type"`
		}
		if json.Unmarshal(m.Data(), &env); env.Seq != want {
			t.Fatalf("stream holds seq %d where %d belongs", env.Seq, want)
		}
	}
	var h map[string]any
	a.request(t, "GET", "/healthz", a.admin, nil, &h)
	if u, ok := h["upstream"].(map[string]any); !ok || u["connected"] != true {
		t.Fatalf("healthz upstream %v", h["upstream"])
	}
}
