package main

import (
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// TestAdminUserChangesEndSessions: on the whole appliance, disabling a
// user, changing her role and resetting her password each end her live
// MQTT session at once and make her token useless on HTTP and for a new
// MQTT CONNECT; the box summary answers an admin.
func TestAdminUserChangesEndSessions(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", nil)
	for _, c := range []struct {
		name, path string
		body       any
		code       int
		undo       func(t *testing.T)
	}{
		{"disable", "/api/v1/users/ana", map[string]bool{"disabled": true}, 200, func(t *testing.T) {
			if code := a.request(t, "PATCH", "/api/v1/users/ana", a.admin, map[string]bool{"disabled": false}, nil); code != 200 {
				t.Fatalf("enable: HTTP %d", code)
			}
		}},
		{"role", "/api/v1/users/ana", map[string]string{"role": "admin"}, 200, func(t *testing.T) {
			if code := a.request(t, "PATCH", "/api/v1/users/ana", a.admin, map[string]string{"role": "dispatcher"}, nil); code != 200 {
				t.Fatalf("role back: HTTP %d", code)
			}
		}},
		{"password", "/api/v1/users/ana/password", map[string]string{"password": anaPassword}, 204, func(*testing.T) {}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tok, _, err := a.accounts.Login("ana", anaPassword)
			if err != nil {
				t.Fatal(err)
			}
			cl, code, err := mqttConnect(a.MQTTAddr(), "dash-ana:x", "ana", tok)
			if err != nil || code != 0 {
				t.Fatalf("connect: 0x%02x %v", code, err)
			}
			t.Cleanup(func() { _ = cl.Disconnect(&paho.Disconnect{}) })
			select {
			case <-cl.Done():
				t.Fatal("disconnected before the change")
			default:
			}
			if code := a.request(t, method(c.path), c.path, a.admin, c.body, nil); code != c.code {
				t.Fatalf("%s: HTTP %d, want %d", c.name, code, c.code)
			}
			select {
			case <-cl.Done():
			case <-time.After(5 * time.Second):
				t.Fatal("her MQTT session goes on")
			}
			if code := a.request(t, "GET", "/api/v1/routes", tok, nil, nil); code != 401 {
				t.Fatalf("her old token on HTTP: %d", code)
			}
			if _, code, _ := mqttConnect(a.MQTTAddr(), "dash-ana:y", "ana", tok); code != 0x86 {
				t.Fatalf("her old token on MQTT: CONNACK 0x%02x", code)
			}
			c.undo(t)
		})
	}
	var box map[string]any
	if code := a.request(t, "GET", "/api/v1/admin/box", a.admin, nil, &box); code != 200 {
		t.Fatalf("box: HTTP %d", code)
	}
	for _, k := range []string{"version", "uptimeS", "store", "retention", "backups", "feed"} {
		if _, ok := box[k]; !ok {
			t.Errorf("box without %s: %v", k, box)
		}
	}
}

func method(path string) string {
	if strings.HasSuffix(path, "/password") {
		return "POST"
	}
	return "PATCH"
}
