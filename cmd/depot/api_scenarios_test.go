package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestAPIScenarios walks every HTTP endpoint with every role against the
// real server and a real store, one row per request, in order (rows may
// depend on the ones above: a user is created, then deleted). A row gives
// the method, the path, who asks ("" nobody, "bad" a forged token,
// "dispatcher", "admin"), the body, the status and a fragment the answer
// must hold.
func TestAPIScenarios(t *testing.T) {
	t.Parallel()
	a := startApp(t, "", func(c *ServeConfig) { c.PayrollSecret = "payroll-secret-1" })
	tokens := map[string]string{"": "", "bad": a.disp + "x", "dispatcher": a.disp, "admin": a.admin}
	rows := []struct {
		method, path, who, body string
		status                  int
		fragment                string
	}{
		// Open to everyone: health without detail, login, the page.
		{"GET", "/healthz", "", "", 200, `"status":"ok"`},
		{"GET", "/readyz", "", "", 200, `"status":"ok"`},
		{"GET", "/", "", "", 200, "<"},
		{"POST", "/api/v1/auth/login", "", `{"username":"ana","password":"wrong-pass-1"}`, 401, "wrong username or password"},
		{"POST", "/api/v1/auth/login", "", `{"username":"ana"}`, 400, "required"},
		{"POST", "/api/v1/auth/login", "", `{"username":`, 400, `"error"`},
		{"POST", "/api/v1/auth/login", "", `{"username":"ana","password":"` + anaPassword + `"}`, 200, `"token"`},
		{"POST", "/api/v1/webhooks/payroll", "", `{}`, 401, `"error"`}, // unsigned

		// Every reading endpoint wants a valid token.
		{"GET", "/api/v1/config", "", "", 401, `"error"`},
		{"GET", "/api/v1/config", "bad", "", 401, `"error"`},
		{"GET", "/api/v1/config", "dispatcher", "", 200, `"depot":"DEMO1"`},
		{"GET", "/api/v1/routes", "", "", 401, `"error"`},
		{"GET", "/api/v1/routes", "dispatcher", "", 200, `"routeId":"R1"`},
		{"GET", "/api/v1/routes", "admin", "", 200, `"routeId":"R2"`},
		{"GET", "/api/v1/routes/R1", "dispatcher", "", 200, `"driverId":"D1"`},
		{"GET", "/api/v1/routes/NOPE", "dispatcher", "", 404, `"error"`},
		{"GET", "/api/v1/routes/R1/history", "dispatcher", "", 200, `"fixes":[]`},
		{"GET", "/api/v1/routes/R1/history?format=geojson", "dispatcher", "", 200, `"FeatureCollection"`},
		{"GET", "/api/v1/routes/R1/history?format=kml", "dispatcher", "", 400, `"error"`},
		{"GET", "/api/v1/events?after=0", "dispatcher", "", 200, `"seq":1`},
		{"GET", "/api/v1/events?after=-1", "dispatcher", "", 400, `"error"`},
		{"GET", "/api/v1/state", "", "", 401, `"error"`},
		{"GET", "/api/v1/state", "dispatcher", "", 200, `"routes"`},
		{"GET", "/api/v1/rescues", "dispatcher", "", 200, `[`},
		{"GET", "/api/v1/vto", "dispatcher", "", 200, `[`},
		{"POST", "/api/v1/auth/renew", "", "", 401, `"error"`},
		{"POST", "/api/v1/auth/renew", "dispatcher", "", 200, `"token"`},

		// Acting on routes: dispatchers and admins.
		{"POST", "/api/v1/vto", "", `{"driverId":"D1","routeId":"R1"}`, 401, `"error"`},
		{"POST", "/api/v1/vto", "dispatcher", `{"driverId":"D2","routeId":"R1"}`, 400, `"error"`},
		{"POST", "/api/v1/vto", "dispatcher", `{"driverId":"D1","routeId":"R1","reason":"light volume"}`, 201, `"vtoId"`},
		{"POST", "/api/v1/vto", "admin", `{"driverId":"D1","routeId":"R1"}`, 409, `"error"`}, // one open offer per driver
		{"POST", "/api/v1/vto/NOPE/accept", "dispatcher", "", 404, `"error"`},
		{"POST", "/api/v1/vto/NOPE/decline", "dispatcher", "", 404, `"error"`},
		{"POST", "/api/v1/rescues/NOPE/resolve", "dispatcher", "", 404, `"error"`},
		{"POST", "/api/v1/routes/R1/reassign", "", `{"toDriverId":"D2"}`, 401, `"error"`},
		{"POST", "/api/v1/routes/NOPE/reassign", "dispatcher", `{"toDriverId":"D2"}`, 404, `"error"`},
		{"POST", "/api/v1/routes/R1/reassign", "dispatcher", `{"toDriverId":"D2"}`, 200, `"driverId":"D2"`},
		{"GET", "/api/v1/vto", "admin", "", 200, `"reason":"light volume"`},

		// Administration: admins only.
		{"GET", "/api/v1/users", "dispatcher", "", 403, `"error"`},
		{"GET", "/api/v1/users", "admin", "", 200, `"username":"ana"`},
		{"POST", "/api/v1/users", "dispatcher", `{"username":"bo","password":"bo-pass-123","role":"dispatcher"}`, 403, `"error"`},
		{"POST", "/api/v1/users", "admin", `{"username":"bo","password":"short","role":"dispatcher"}`, 400, `"error"`},
		{"POST", "/api/v1/users", "admin", `{"username":"bo","password":"bo-pass-123","role":"driver"}`, 400, `"error"`},
		{"POST", "/api/v1/users", "admin", `{"username":"bo","password":"bo-pass-123","role":"dispatcher"}`, 201, `"bo"`},
		{"DELETE", "/api/v1/users/bo", "dispatcher", "", 403, `"error"`},
		{"DELETE", "/api/v1/users/bo", "admin", "", 204, ""},
		{"DELETE", "/api/v1/users/bo", "admin", "", 404, `"error"`},
		{"GET", "/api/v1/devices", "dispatcher", "", 403, `"error"`},
		{"GET", "/api/v1/devices", "admin", "", 200, `"driverId":"D1"`},
		{"POST", "/api/v1/devices", "dispatcher", `{"driverId":"D9"}`, 403, `"error"`},
		{"POST", "/api/v1/devices", "admin", `{"driverId":"D9","name":"spare"}`, 201, `"mqttClientId":"drv-D9"`},
		{"POST", "/api/v1/devices", "admin", `{"driverId":"D9","name":"spare"}`, 201, `"setup":{"driverApp":"http://`},
		{"POST", "/api/v1/devices", "admin", `{"driverId":"bad id/x"}`, 400, `"error"`},
		{"GET", "/api/v1/devices/D9/setup?kind=owntracks&format=svg", "", "", 401, `"error"`},
		{"GET", "/api/v1/devices/D9/setup?kind=owntracks&format=svg", "dispatcher", "", 403, `"error"`},
		{"GET", "/api/v1/devices/D9/setup?kind=owntracks&format=svg", "admin", "", 200, "<svg"},
		{"GET", "/api/v1/devices/D9/setup?kind=traccar", "admin", "", 200, "PNG"},
		{"GET", "/api/v1/devices/D9/setup?kind=sms", "admin", "", 400, `"error"`},
		{"GET", "/api/v1/devices/D9/setup?format=jpeg", "admin", "", 400, `"error"`},
		{"GET", "/api/v1/devices/NOPE/setup", "admin", "", 404, `"error"`},
		{"GET", "/api/v1/devices/D1/setup", "admin", "", 410, "provision it again"}, // D1 was not provisioned through this server
		{"DELETE", "/api/v1/devices/D9", "dispatcher", "", 403, `"error"`},
		{"DELETE", "/api/v1/devices/D9", "admin", "", 204, ""},
		{"GET", "/api/v1/devices/D9/setup", "admin", "", 404, `"error"`},
		{"POST", "/api/v1/admin/backup", "dispatcher", "", 403, `"error"`},
		{"POST", "/api/v1/admin/backup", "admin", "", 201, `"file"`},
		{"GET", "/debug/pprof/", "admin", "", 404, ""}, // off unless --pprof
		{"GET", "/api/v1/nothing", "dispatcher", "", 404, `"error"`},
	}
	for _, r := range rows {
		var body io.Reader
		if r.body != "" {
			body = strings.NewReader(r.body)
		}
		req, _ := http.NewRequest(r.method, "http://"+a.HTTPAddr()+r.path, body)
		req.Header.Set("Content-Type", "application/json")
		if tok := tokens[r.who]; tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s as %q: %v", r.method, r.path, r.who, err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != r.status || !bytes.Contains(got, []byte(r.fragment)) {
			t.Errorf("%s %s as %q: %d %.300s; want %d with %s", r.method, r.path, r.who, resp.StatusCode, got, r.status, r.fragment)
			continue
		}
		if r.status >= 400 && r.status != 404 || r.status == 404 && strings.HasPrefix(r.path, "/api/") {
			var e struct{ Error string }
			if json.Unmarshal(got, &e) != nil || e.Error == "" {
				t.Errorf("%s %s as %q: an error without a JSON reason: %.200s", r.method, r.path, r.who, got)
			}
		}
	}
}
