package ui

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/ui/auth"
)

// memStore is an auth.Store in memory.
type memStore struct {
	mu    sync.Mutex
	users map[string]bridge.User
}

func (m *memStore) PutUser(u bridge.User) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users[u.Username] = u
	return nil
}
func (m *memStore) DeleteUser(n string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.users, n)
	return nil
}
func (m *memStore) User(n string) (bridge.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	u, ok := m.users[n]
	if !ok {
		return u, bridge.ErrNotFound
	}
	return u, nil
}
func (m *memStore) Users() ([]bridge.User, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []bridge.User
	for _, u := range m.users {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Username < out[j].Username })
	return out, nil
}
func (m *memStore) PutDevice(bridge.Device) error     { return nil }
func (m *memStore) DeleteDevice(string) error         { return nil }
func (m *memStore) Devices() ([]bridge.Device, error) { return nil, nil }

type adminAPI struct {
	t       *testing.T
	h       http.Handler
	acc     *auth.Accounts
	revoked []bridge.Identity
}

func newAdminAPI(t *testing.T) *adminAPI {
	t.Helper()
	a := &adminAPI{t: t}
	a.acc = &auth.Accounts{Store: &memStore{users: map[string]bridge.User{}}, Key: bytes.Repeat([]byte("k"), 32),
		Depot: "D1", Cost: 4, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnRevoke: func(id bridge.Identity) { a.revoked = append(a.revoked, id) }}
	if err := a.acc.Open(); err != nil {
		t.Fatal(err)
	}
	for _, u := range [][2]string{{"root", bridge.RoleAdmin}, {"ann", bridge.RoleDispatcher}} {
		if err := a.acc.CreateUser(u[0], u[0]+"-secret-1", u[1]); err != nil {
			t.Fatal(err)
		}
	}
	a.h = New(Config{Accounts: a.acc, DepotID: "D1", Log: a.acc.Log}).Handler()
	return a
}

// login returns a token of user, or "" with the status of a refusal.
func (a *adminAPI) login(user, password string) (string, int) {
	a.t.Helper()
	code, body := a.do("POST", "/api/v1/auth/login", "", map[string]string{"username": user, "password": password})
	var out struct{ Token string }
	_ = json.Unmarshal(body, &out)
	return out.Token, code
}

func (a *adminAPI) token(user string) string {
	a.t.Helper()
	tok, code := a.login(user, user+"-secret-1")
	if code != 200 {
		a.t.Fatalf("login %s: HTTP %d", user, code)
	}
	return tok
}

func (a *adminAPI) do(method, path, token string, body any) (int, []byte) {
	a.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req := httptest.NewRequest(method, path, r)
	req.RemoteAddr = "192.0.2.1:1234"
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	a.h.ServeHTTP(w, req)
	return w.Code, w.Body.Bytes()
}

func (a *adminAPI) want(method, path, token string, body any, code int, msg string) {
	a.t.Helper()
	got, b := a.do(method, path, token, body)
	if got != code || !strings.Contains(string(b), msg) {
		a.t.Fatalf("%s %s %v: HTTP %d %s, want %d with %q", method, path, body, got, b, code, msg)
	}
}

// TestAdminChangeRole: an admin changes a user's role; her old token stops
// at once and her session is ended; bad roles, unknown users, demoting
// yourself and the last admin are refused; dispatchers may not.
func TestAdminChangeRole(t *testing.T) {
	a := newAdminAPI(t)
	root, ann := a.token("root"), a.token("ann")
	a.want("PATCH", "/api/v1/users/ann", ann, map[string]string{"role": "admin"}, 403, "role")
	a.want("PATCH", "/api/v1/users/ann", root, map[string]string{"role": "boss"}, 400, "role: dispatcher or admin")
	a.want("PATCH", "/api/v1/users/ann", root, map[string]any{}, 400, "expected")
	a.want("PATCH", "/api/v1/users/ann", root, map[string]any{"role": "admin", "x": 1}, 400, "body")
	a.want("PATCH", "/api/v1/users/nobody", root, map[string]string{"role": "admin"}, 404, "not found")
	a.want("PATCH", "/api/v1/users/root", root, map[string]string{"role": "dispatcher"}, 409, "yourself")

	a.want("PATCH", "/api/v1/users/ann", root, map[string]string{"role": "admin"}, 200, `"role":"admin"`)
	a.want("POST", "/api/v1/auth/renew", ann, nil, 401, "invalid or expired token")
	if len(a.revoked) != 1 || a.revoked[0] != (bridge.Identity{Role: bridge.RoleDispatcher, Subject: "ann"}) {
		t.Fatalf("sessions ended: %v", a.revoked)
	}
	ann = a.token("ann")
	a.want("GET", "/api/v1/users", ann, nil, 200, `"username":"root"`)
	// Two admins: ann may demote root; then root is no admin and ann is
	// the last, whom nobody can demote (not even through another admin).
	a.want("PATCH", "/api/v1/users/root", ann, map[string]string{"role": "dispatcher"}, 200, `"role":"dispatcher"`)
	if _, err := a.acc.SetRole("ann", bridge.RoleDispatcher); err == nil || !strings.Contains(err.Error(), "last admin cannot be demoted") {
		t.Fatalf("demote the last admin: %v", err)
	}
	a.want("PATCH", "/api/v1/users/root", ann, map[string]string{"role": "dispatcher"}, 200, `"role":"dispatcher"`) // no change is fine
}

// TestAdminResetPassword: the admin sets a new password (rules of
// creation); the old password and the user's tokens stop working.
func TestAdminResetPassword(t *testing.T) {
	a := newAdminAPI(t)
	root, ann := a.token("root"), a.token("ann")
	a.want("POST", "/api/v1/users/ann/password", ann, map[string]string{"password": "new-secret-1"}, 403, "role")
	a.want("POST", "/api/v1/users/ann/password", root, map[string]string{"password": "short"}, 400, "password: 8 to 72")
	a.want("POST", "/api/v1/users/ann/password", root, map[string]string{"password": strings.Repeat("x", 73)}, 400, "password")
	a.want("POST", "/api/v1/users/nobody/password", root, map[string]string{"password": "new-secret-1"}, 404, "not found")
	a.want("POST", "/api/v1/users/ann/password", root, map[string]string{"password": "new-secret-1"}, 204, "")
	a.want("POST", "/api/v1/auth/renew", ann, nil, 401, "invalid or expired token")
	if _, code := a.login("ann", "ann-secret-1"); code != 401 {
		t.Fatalf("old password: HTTP %d", code)
	}
	tok, code := a.login("ann", "new-secret-1")
	if code != 200 {
		t.Fatalf("new password: HTTP %d", code)
	}
	a.want("POST", "/api/v1/auth/renew", tok, nil, 200, "token")
	if len(a.revoked) != 1 || a.revoked[0].Subject != "ann" {
		t.Fatalf("sessions ended: %v", a.revoked)
	}
	a.want("GET", "/api/v1/users", root, nil, 200, `"username":"ann"`)
}

// TestAdminDisableUser: a disabled user cannot log in (the right password
// hears so; a wrong one hears only "wrong"), her token stops at once and
// her session ends; enabled again, she logs in anew but her old token
// stays dead. Nobody disables herself or the last enabled admin.
func TestAdminDisableUser(t *testing.T) {
	a := newAdminAPI(t)
	root, ann := a.token("root"), a.token("ann")
	a.want("PATCH", "/api/v1/users/root", root, map[string]bool{"disabled": true}, 409, "yourself")
	a.want("PATCH", "/api/v1/users/ann", root, map[string]bool{"disabled": true}, 200, `"disabled":true`)
	a.want("POST", "/api/v1/auth/renew", ann, nil, 401, "invalid or expired token")
	a.want("POST", "/api/v1/auth/login", "", map[string]string{"username": "ann", "password": "ann-secret-1"}, 403, "disabled")
	a.want("POST", "/api/v1/auth/login", "", map[string]string{"username": "ann", "password": "wrong-secret"}, 401, "wrong username or password")
	if _, _, err := a.acc.AuthenticateMQTT([]byte("ann"), []byte(ann), "dsp-ann"); err == nil {
		t.Fatal("MQTT CONNECT with a disabled user's token accepted")
	}
	if a.acc.UserActive("ann", bridge.RoleDispatcher) {
		t.Fatal("a disabled user is active")
	}
	if len(a.revoked) != 1 || a.revoked[0] != (bridge.Identity{Role: bridge.RoleDispatcher, Subject: "ann"}) {
		t.Fatalf("sessions ended: %v", a.revoked)
	}
	a.want("GET", "/api/v1/users", root, nil, 200, `"username":"ann","role":"dispatcher"`)

	a.want("PATCH", "/api/v1/users/ann", root, map[string]bool{"disabled": false}, 200, `"disabled":false`)
	a.want("POST", "/api/v1/auth/renew", ann, nil, 401, "invalid or expired token") // the old token stays dead
	a.want("POST", "/api/v1/auth/renew", a.token("ann"), nil, 200, "")

	// The last enabled admin: a disabled admin does not count.
	a.want("PATCH", "/api/v1/users/ann", root, map[string]string{"role": "admin"}, 200, "")
	a.want("PATCH", "/api/v1/users/ann", root, map[string]bool{"disabled": true}, 200, "")
	if _, err := a.acc.SetDisabled("root", true); err == nil || !strings.Contains(err.Error(), "last admin cannot be disabled") {
		t.Fatalf("disable the last admin: %v", err)
	}
	if _, err := a.acc.SetRole("root", bridge.RoleDispatcher); err == nil {
		t.Fatal("the last enabled admin demoted while another admin is disabled")
	}
	a.want("DELETE", "/api/v1/users/ann", root, nil, 204, "") // a disabled admin may go
	if err := a.acc.DeleteUser("root"); err == nil {
		t.Fatal("the last admin deleted")
	}
}

// TestAdminLastAdminDelete: deleting the only enabled admin is refused
// even when a disabled admin remains.
func TestAdminLastAdminDelete(t *testing.T) {
	a := newAdminAPI(t)
	root := a.token("root")
	a.want("POST", "/api/v1/users", root, map[string]string{"username": "bo", "password": "bo-secret-1", "role": "admin"}, 201, "")
	a.want("PATCH", "/api/v1/users/bo", root, map[string]bool{"disabled": true}, 200, "")
	if err := a.acc.DeleteUser("root"); err == nil {
		t.Fatal("the last enabled admin deleted while a disabled admin remains")
	}
	a.want("PATCH", "/api/v1/users/bo", root, map[string]bool{"disabled": false}, 200, "")
	bo := a.token("bo")
	a.want("DELETE", "/api/v1/users/root", bo, nil, 204, "")
}

// TestAdminBoxNotConfigured: without Config.Box the summary is a clear 501;
// dispatchers get 403 from every admin endpoint.
func TestAdminBoxNotConfigured(t *testing.T) {
	a := newAdminAPI(t)
	root, ann := a.token("root"), a.token("ann")
	a.want("GET", "/api/v1/admin/box", root, nil, 501, "no box summary")
	for _, r := range [][2]string{{"GET", "/api/v1/admin/box"}, {"POST", "/api/v1/admin/backup"}, {"GET", "/api/v1/users"},
		{"PATCH", "/api/v1/users/root"}, {"POST", "/api/v1/users/root/password"}, {"GET", "/api/v1/devices"}} {
		a.want(r[0], r[1], ann, map[string]string{}, 403, "your role may not do this")
	}
}

// emptyArchive is an Archive with no history.
type emptyArchive struct{}

func (emptyArchive) History(string, time.Time, time.Time) ([]bridge.Fix, error) { return nil, nil }
func (emptyArchive) EventsAfter(uint64, int) ([]json.RawMessage, error)         { return nil, nil }
func (emptyArchive) OldestSeq() (uint64, error)                                 { return 0, nil }

// TestAdminDisableEndsStream: a disabled user's open SSE stream (HTTP, not
// MQTT: OnRevoke does not reach it) ends within seconds, and so does a
// deleted one's; another user's stream goes on.
func TestAdminDisableEndsStream(t *testing.T) {
	a := newAdminAPI(t)
	srv := New(Config{Accounts: a.acc, DepotID: "D1", Log: a.acc.Log, Archive: emptyArchive{}})
	ts := httptest.NewServer(srv.Handler())
	defer func() { srv.Kill(); ts.Close() }() // Kill ends the streams still open
	open := func(tok string) chan error {
		req, _ := http.NewRequest("GET", ts.URL+"/api/v1/stream", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("stream: %v %v", resp, err)
		}
		ended := make(chan error, 1)
		go func() { _, err := io.Copy(io.Discard, resp.Body); resp.Body.Close(); ended <- err }()
		return ended
	}
	if err := a.acc.CreateUser("bo", "bo-secret-1", bridge.RoleDispatcher); err != nil {
		t.Fatal(err)
	}
	ann, bo, root := open(a.token("ann")), open(a.token("bo")), open(a.token("root"))
	if _, err := a.acc.SetDisabled("ann", true); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ann:
	case <-time.After(5 * time.Second):
		t.Fatal("a disabled user's stream goes on")
	}
	if err := a.acc.DeleteUser("bo"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-bo:
	case <-time.After(5 * time.Second):
		t.Fatal("a deleted user's stream goes on")
	}
	select {
	case err := <-root:
		t.Fatalf("the admin's stream ended: %v", err)
	default:
	}
}

// TestAdminSetPasswordKeepsDisabled: the demo's SetPassword (a new
// password at every start) neither enables a disabled user nor revives
// her tokens from before she was disabled.
func TestAdminSetPasswordKeepsDisabled(t *testing.T) {
	a := newAdminAPI(t)
	old := a.token("ann")
	if _, err := a.acc.SetDisabled("ann", true); err != nil {
		t.Fatal(err)
	}
	if err := a.acc.SetPassword("ann", "ann-secret-2", bridge.RoleDispatcher); err != nil {
		t.Fatal(err)
	}
	a.want("POST", "/api/v1/auth/login", "", map[string]string{"username": "ann", "password": "ann-secret-2"}, 403, "disabled")
	if _, err := a.acc.SetDisabled("ann", false); err != nil {
		t.Fatal(err)
	}
	a.want("POST", "/api/v1/auth/renew", old, nil, 401, "")
	if tok, code := a.login("ann", "ann-secret-2"); code != 200 || tok == "" {
		t.Fatalf("login after enable: %d", code)
	}
}
