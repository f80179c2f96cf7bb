package main

import (
	"testing"

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
