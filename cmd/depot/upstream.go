package main

import (
	"github.com/depotcc/depot/bridge/upstream"
)

// openUpstream builds the fleet forwarder when --upstream is set; it runs
// with the jobs.
func (m *Main) openUpstream() error {
	c := m.Config
	if c.Upstream == "" {
		return nil
	}
	f, err := upstream.New(upstream.Config{Depot: c.Depot, URLs: c.Upstream, Creds: c.UpstreamCreds, CA: c.UpstreamCA,
		Replicas: c.UpstreamReplicas, MaxAge: c.EventRetention, Store: m.store, Route: m.depot.Route, LastSeq: m.depot.LastSeq, Wake: m.commits,
		Log: m.Log.With("part", "upstream")})
	if err != nil {
		return err
	}
	m.upstream = f
	m.metrics.watchUpstream(f)
	return nil
}

// upstreamHealth is the forwarder's health; a nil interface (left out of
// the heartbeat and /healthz) when it is off.
func (m *Main) upstreamHealth() any {
	if m.upstream == nil {
		return nil
	}
	return m.upstream.Health()
}
