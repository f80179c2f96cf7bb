package auth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/depotcc/depot/bridge"
	"golang.org/x/crypto/bcrypt"
)

// memStore is an in-memory Store.
type memStore struct {
	mu      sync.Mutex
	users   map[string]bridge.User
	devices map[string]bridge.Device
}

func (m *memStore) PutUser(u bridge.User) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.users[u.Username] = u
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
func (m *memStore) Users() (out []bridge.User, _ error) {
	for _, u := range m.users {
		out = append(out, u)
	}
	return out, nil
}
func (m *memStore) PutDevice(d bridge.Device) error { m.devices[d.DriverID] = d; return nil }
func (m *memStore) DeleteDevice(id string) error {
	if _, ok := m.devices[id]; !ok {
		return bridge.ErrNotFound
	}
	delete(m.devices, id)
	return nil
}
func (m *memStore) DeleteUser(n string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.users[n]; !ok {
		return bridge.ErrNotFound
	}
	delete(m.users, n)
	return nil
}
func (m *memStore) Devices() (out []bridge.Device, _ error) {
	for _, d := range m.devices {
		out = append(out, d)
	}
	return out, nil
}

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newAccounts(t testing.TB) (*Accounts, *clock, *[]bridge.Identity) {
	clk := &clock{time.Date(2026, 11, 26, 6, 0, 0, 0, time.UTC)}
	var revoked []bridge.Identity
	a := &Accounts{Store: &memStore{users: map[string]bridge.User{}, devices: map[string]bridge.Device{}},
		Key: []byte(strings.Repeat("k", 32)), Depot: "D", Now: clk.now, Cost: bcrypt.MinCost,
		OnRevoke: func(id bridge.Identity) { revoked = append(revoked, id) }}
	if err := a.Open(); err != nil {
		t.Fatal(err)
	}
	return a, clk, &revoked
}

func TestTokens(t *testing.T) {
	a, clk, _ := newAccounts(t)
	if err := a.CreateUser("ana", "ana-secret-1", bridge.RoleDispatcher); err != nil {
		t.Fatal(err)
	}
	tok, c, err := a.Issue("ana", bridge.RoleDispatcher)
	if err != nil || c.ExpiresAt.Sub(clk.t) != 12*time.Hour {
		t.Fatalf("Issue: %v %+v", err, c)
	}
	if got, err := a.Verify(tok); err != nil || got.Subject != "ana" || got.Role != bridge.RoleDispatcher {
		t.Fatalf("Verify: %+v %v", got, err)
	}
	clk.t = clk.t.Add(12*time.Hour + time.Minute)
	if _, err := a.Verify(tok); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("expired token: %v", err)
	}
	clk.t = clk.t.Add(-time.Hour)
	other := &Accounts{Key: []byte(strings.Repeat("x", 32)), Depot: "D", Now: clk.now}
	if _, err := other.Verify(tok); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("token with another key: %v", err)
	}
	other = &Accounts{Key: a.Key, Depot: "E", Now: clk.now}
	if _, err := other.Verify(tok); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("token of another depot: %v", err)
	}
	// alg=none and other algorithms are refused.
	none := "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + strings.Split(tok, ".")[1] + "."
	if _, err := a.Verify(none); err == nil {
		t.Fatal("alg none accepted")
	}
}

func TestUsersAndLogin(t *testing.T) {
	a, _, _ := newAccounts(t)
	pw, err := a.EnsureAdmin("")
	if err != nil || len(pw) < MinPasswordLen {
		t.Fatalf("generated admin password %q %v", pw, err)
	}
	if pw2, _ := a.EnsureAdmin("other-password"); pw2 != "" {
		t.Fatal("second EnsureAdmin created another admin")
	}
	if _, c, err := a.Login("admin", pw); err != nil || c.Role != bridge.RoleAdmin {
		t.Fatalf("admin login: %v", err)
	}
	for _, bad := range [][3]string{{"x y", "longenough", "dispatcher"}, {"bo", "short", "dispatcher"}, {"bo", "longenough", "driver"},
		{"bo", strings.Repeat("p", 73), "dispatcher"}} {
		if err := a.CreateUser(bad[0], bad[1], bad[2]); !errors.Is(err, ErrInvalid) {
			t.Errorf("CreateUser%v: %v", bad, err)
		}
	}
	if err := a.CreateUser("bo", "bo-secret-1", bridge.RoleDispatcher); err != nil {
		t.Fatal(err)
	}
	if err := a.CreateUser("bo", "bo-secret-2", bridge.RoleDispatcher); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	for _, pair := range [][2]string{{"bo", "bo-secret-2"}, {"nobody", "bo-secret-1"}, {"bo", ""}} {
		if _, _, err := a.Login(pair[0], pair[1]); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("Login%v: %v", pair, err)
		}
	}
	u, _ := a.Store.User("bo")
	if strings.Contains(string(u.Hash), "bo-secret-1") {
		t.Fatal("password stored in clear")
	}
}

func TestDevices(t *testing.T) {
	a, _, revoked := newAccounts(t)
	tok, err := a.CreateDevice("D1", "phone")
	if err != nil {
		t.Fatal(err)
	}
	d, _ := a.Store.(*memStore).devices["D1"]
	if strings.Contains(string(d.TokenHash), tok) || len(d.TokenHash) != 32 {
		t.Fatal("device token not stored as a hash")
	}
	id, exp, err := a.AuthenticateMQTT([]byte("D1"), []byte(tok), "drv-D1")
	if err != nil || id != (bridge.Identity{Role: bridge.RoleDriver, Subject: "D1"}) || !exp.IsZero() {
		t.Fatalf("AuthenticateMQTT: %v %v %v", id, exp, err)
	}
	if !a.DeviceTokenValid("D1", tok) || a.DeviceTokenValid("D1", tok+"x") || a.DeviceTokenValid("D2", tok) {
		t.Fatal("DeviceTokenValid")
	}
	tok2, _ := a.CreateDevice("D1", "new phone")
	if a.DeviceTokenValid("D1", tok) || !a.DeviceTokenValid("D1", tok2) {
		t.Fatal("DeviceTokenValid after reissue")
	}
	if len(*revoked) != 1 {
		t.Fatal("reissue did not end the old session")
	}
	if _, _, err := a.AuthenticateMQTT([]byte("D1"), []byte(tok), "drv-D1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("old token after reissue: %v", err)
	}
	if err := a.RevokeDevice("D1"); err != nil || len(*revoked) != 2 || a.DeviceValid("D1") || a.DeviceTokenValid("D1", tok2) {
		t.Fatalf("revoke: %v %v", err, *revoked)
	}
	if _, _, err := a.AuthenticateMQTT([]byte("D1"), []byte(tok2), "drv-D1"); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("revoked token: %v", err)
	}
	if err := a.RevokeDevice("D1"); !errors.Is(err, bridge.ErrNotFound) {
		t.Fatalf("second revoke: %v", err)
	}
	if _, err := a.CreateDevice("D 1", ""); !errors.Is(err, ErrInvalid) {
		t.Fatalf("bad driver id: %v", err)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreateKey(dir)
	if err != nil || len(k1) != 32 {
		t.Fatal(err)
	}
	fi, _ := os.Stat(filepath.Join(dir, "jwt.key"))
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode())
	}
	os.Chmod(filepath.Join(dir, "jwt.key"), 0o644)
	k2, err := LoadOrCreateKey(dir)
	if err != nil || string(k1) != string(k2) {
		t.Fatal("key not kept")
	}
	if fi, _ := os.Stat(filepath.Join(dir, "jwt.key")); fi.Mode().Perm() != 0o600 {
		t.Fatal("loose permissions not repaired")
	}
	os.WriteFile(filepath.Join(dir, "jwt.key"), []byte("short"), 0o600)
	if _, err := LoadOrCreateKey(dir); err == nil {
		t.Fatal("short key accepted")
	}
}

func TestThrottle(t *testing.T) {
	th := NewThrottle()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	// One address, many users: 10 at once, then one every 3 s.
	for i := range 10 {
		if ok, _ := th.Allow("1.2.3.4", "u"+string(rune('a'+i)), now); !ok {
			t.Fatalf("attempt %d refused", i)
		}
	}
	ok, wait := th.Allow("1.2.3.4", "uz", now)
	if ok || wait <= 0 || wait > 3*time.Second {
		t.Fatalf("11th attempt: %v %s", ok, wait)
	}
	if ok, _ := th.Allow("1.2.3.4", "uz", now.Add(3*time.Second)); !ok {
		t.Fatal("not refilled after 3 s")
	}
	// One user, many addresses: each address may fail 5 times for ana
	// before it is locked out for her; 20 failures in all lock out every
	// address that has failed for her, but not a clean one.
	th = NewThrottle()
	for i := range 5 {
		if ok, _ := th.Allow("10.0.0.1", "ana", now); !ok {
			t.Fatalf("failure %d refused", i)
		}
		th.Failed("10.0.0.1", "ana", now)
	}
	if ok, wait := th.Allow("10.0.0.1", "ana", now); ok || wait < 29*time.Second {
		t.Fatalf("6th failure for ana from one address: %v %s", ok, wait)
	}
	if ok, _ := th.Allow("10.0.0.1", "ana", now.Add(31*time.Second)); !ok {
		t.Fatal("address not unlocked for ana after 30 s")
	}
	for i := 2; i <= 5; i++ {
		addr := "10.0.0." + strconv.Itoa(i)
		for range 5 {
			th.Allow(addr, "ana", now)
			th.Failed(addr, "ana", now)
		}
	}
	// ana's budget is spent: an address that has failed for her once is
	// out, a clean one may still try.
	if ok, _ := th.Allow("10.0.0.6", "ana", now); !ok {
		t.Fatal("a clean address is locked out by others' failures")
	}
	th.Failed("10.0.0.6", "ana", now)
	if ok, wait := th.Allow("10.0.0.6", "ana", now); ok || wait <= 0 {
		t.Fatalf("with ana's budget spent, an address that failed once may try again: %v %s", ok, wait)
	}
	if ok, _ := th.Allow("10.0.0.77", "ana", now); !ok {
		t.Fatal("a clean address is locked out by others' failures")
	}
}

// TestThrottleOtherAddress: 20 wrong passwords for ana from one address do
// not stop her from another.
func TestThrottleOtherAddress(t *testing.T) {
	th := NewThrottle()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for range 20 {
		if ok, _ := th.Allow("192.0.2.1", "ana", now); ok {
			th.Failed("192.0.2.1", "ana", now)
		}
	}
	if ok, wait := th.Allow("192.0.2.2", "ana", now); !ok {
		t.Fatalf("ana from another address: refused for %s", wait)
	}
}

// TestHashingBounded: however many logins arrive at once, at most
// MaxHashing bcrypt compares run at a time.
func TestHashingBounded(t *testing.T) {
	a, _, _ := newAccounts(t)
	if err := a.CreateUser("ana", "ana-secret-1", bridge.RoleDispatcher); err != nil {
		t.Fatal(err)
	}
	const n = 12
	var mu sync.Mutex
	inFlight, most, entered := 0, 0, 0
	gate := make(chan struct{})
	a.compareHook = func() {
		mu.Lock()
		inFlight++
		entered++
		most = max(most, inFlight)
		mu.Unlock()
		<-gate
		mu.Lock()
		inFlight--
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := a.LoginContext(context.Background(), "ana", "ana-secret-1"); err != nil {
				t.Error(err)
			}
		}()
	}
	// Let them through one at a time: each release admits one more, so
	// any compare that ran outside the bound is seen in most.
	for released := 0; released < n; released++ {
		for {
			mu.Lock()
			e := entered
			mu.Unlock()
			if e > released {
				break
			}
			runtime.Gosched()
		}
		gate <- struct{}{}
	}
	wg.Wait()
	if most > 2 {
		t.Fatalf("%d compares at once, bound 2", most)
	}
}

// TestHashingQueueFull: over the queue limit a login is refused at once
// with ErrBusy rather than waiting.
func TestHashingQueueFull(t *testing.T) {
	a, _, _ := newAccounts(t)
	a.CreateUser("ana", "ana-secret-1", bridge.RoleDispatcher)
	a.MaxHashing, a.MaxHashQueue = 1, 1
	if err := a.Open(); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	var mu sync.Mutex
	entered := 0
	a.compareHook = func() { mu.Lock(); entered++; mu.Unlock(); <-gate }
	done := make(chan error, 3)
	go func() { _, _, err := a.LoginContext(context.Background(), "ana", "ana-secret-1"); done <- err }()
	for {
		mu.Lock()
		e := entered
		mu.Unlock()
		if e == 1 {
			break
		}
		runtime.Gosched()
	}
	// One waits in the queue; it gives up when its request does.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _, _, err := a.LoginContext(ctx, "ana", "ana-secret-1"); done <- err }()
	for a.hashWaiting() != 1 {
		runtime.Gosched()
	}
	if _, _, err := a.LoginContext(context.Background(), "ana", "ana-secret-1"); !errors.Is(err, ErrBusy) {
		t.Fatalf("over the queue limit: %v, want ErrBusy", err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	close(gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestDeletedUserTokens: a deleted user's tokens stop working at once and
// her sessions are ended; a token whose role no longer matches fails too.
func TestDeletedUserTokens(t *testing.T) {
	a, _, revoked := newAccounts(t)
	a.CreateUser("admin", "admin-secret-1", bridge.RoleAdmin)
	a.CreateUser("ana", "ana-secret-1", bridge.RoleDispatcher)
	tok, _, err := a.Login("ana", "ana-secret-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(tok); err != nil {
		t.Fatal(err)
	}
	ghost, _, _ := a.Issue("ghost", bridge.RoleDispatcher)
	if _, err := a.Verify(ghost); err == nil {
		t.Fatal("token of a user that does not exist accepted")
	}
	promoted, _, _ := a.Issue("ana", bridge.RoleAdmin)
	if _, err := a.Verify(promoted); err == nil {
		t.Fatal("token with a role the user does not have accepted")
	}
	if err := a.DeleteUser("ana"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(tok); !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("deleted user's token: %v", err)
	}
	if _, _, err := a.AuthenticateMQTT([]byte("ana"), []byte(tok), "dash-ana:1"); err == nil {
		t.Fatal("deleted user's token accepted over MQTT")
	}
	if len(*revoked) != 1 || (*revoked)[0] != (bridge.Identity{Role: bridge.RoleDispatcher, Subject: "ana"}) {
		t.Fatalf("revoked %v", *revoked)
	}
	if err := a.DeleteUser("ana"); !errors.Is(err, bridge.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if err := a.DeleteUser("admin"); !errors.Is(err, ErrLastAdmin) {
		t.Fatalf("delete the last admin: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	a, _, _ := newAccounts(f)
	a.CreateUser("ana", "ana-secret-1", bridge.RoleDispatcher)
	tok, _, _ := a.Issue("ana", bridge.RoleDispatcher)
	f.Add(tok)
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		// Only tokens signed with the key are accepted, and the only ones
		// signed (here or in another fuzz worker) are ana's.
		c, err := a.Verify(s)
		if err == nil && (c.Subject != "ana" || c.Role != bridge.RoleDispatcher || c.Depot != "D") {
			t.Fatalf("accepted a token it did not issue: %q", s)
		}
	})
}

func FuzzAuthenticateMQTT(f *testing.F) {
	a, _, _ := newAccounts(f)
	tok, _ := a.CreateDevice("D1", "")
	f.Add([]byte("D1"), []byte(tok), "drv-D1")
	f.Add([]byte(""), []byte(""), "")
	f.Add([]byte("D1"), []byte("x.y.z"), "drv-D1")
	f.Fuzz(func(t *testing.T, user, pass []byte, clientID string) {
		// Workers issue their own D1 token; any accepted pair must be D1's.
		id, _, err := a.AuthenticateMQTT(user, pass, clientID)
		if err == nil && (string(user) != "D1" || id.Subject != "D1" || !id.ClientIDAllowed(clientID)) {
			t.Fatalf("accepted %q/%q as %q", user, pass, clientID)
		}
	})
}

// TestAuthenticateMQTTTokenExpiry: a session opened with a login token is
// told when the token runs out, so the broker can end it then.
func TestAuthenticateMQTTTokenExpiry(t *testing.T) {
	a, _, _ := newAccounts(t)
	if err := a.CreateUser("ana", "ana-secret-1", bridge.RoleDispatcher); err != nil {
		t.Fatal(err)
	}
	tok, claims, err := a.Issue("ana", bridge.RoleDispatcher)
	if err != nil {
		t.Fatal(err)
	}
	id, exp, err := a.AuthenticateMQTT([]byte("ana"), []byte(tok), "dash-ana:tab1")
	if err != nil || id.Subject != "ana" {
		t.Fatalf("AuthenticateMQTT: %v %v", id, err)
	}
	if want := claims.ExpiresAt.Time; exp.IsZero() || exp.Unix() != want.Unix() {
		t.Fatalf("session expires %v, token %v", exp, want)
	}
	if _, _, err := a.AuthenticateMQTT([]byte("ana"), []byte(tok), "dash-ana-tab1"); !errors.Is(err, ErrNotAuthorized) {
		t.Fatalf("client id of user ana-tab1 accepted for ana: %v", err)
	}
}

// TestLoginFromASharedStore: on one of hq's instances a user made (or
// whose password was reset) on another is in the shared store before this
// instance's copy hears of it. Her login here reads the store, so the
// token it issues works here at once; a change to the copy during the
// login wins over what the login read.
func TestLoginFromASharedStore(t *testing.T) {
	a, _, _ := newAccounts(t)
	hash, _ := bcrypt.GenerateFromPassword([]byte("sam-pass-1"), bcrypt.MinCost)
	ms := a.Store.(*memStore)
	ms.PutUser(bridge.User{Username: "sam", Role: bridge.RoleDispatcher, Hash: hash}) // another instance, not a's copy
	tok, _, err := a.Login("sam", "sam-pass-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(tok); err != nil {
		t.Fatalf("a token from a fresh login: %v", err)
	}
	// A password reset elsewhere: a new epoch in the store; the login with
	// the new password gives a token that works, the old one stops.
	ms.PutUser(bridge.User{Username: "sam", Role: bridge.RoleDispatcher, Hash: hash, Epoch: 1})
	tok2, _, err := a.Login("sam", "sam-pass-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(tok2); err != nil {
		t.Fatalf("a token after a reset elsewhere: %v", err)
	}
	if _, err := a.Verify(tok); err == nil {
		t.Fatal("a token from before the reset still works")
	}
	// The copy changed while the login hashed (here: sam deleted and
	// reloaded): the login leaves the copy alone.
	a.compareHook = func() {
		ms.DeleteUser("sam")
		if err := a.Reload(); err != nil {
			t.Error(err)
		}
	}
	defer func() { a.compareHook = nil }()
	ms.PutUser(bridge.User{Username: "sam", Role: bridge.RoleDispatcher, Hash: hash, Epoch: 1})
	tok3, _, err := a.Login("sam", "sam-pass-1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(tok3); err == nil {
		t.Fatal("a token of a user deleted while she logged in works")
	}
}
