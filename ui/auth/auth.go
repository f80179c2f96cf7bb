// Package auth is the depot's identity service: users with bcrypt-hashed
// passwords, device credentials for handhelds (random tokens kept only as
// SHA-256 hashes), login tokens (JWT, HS256, signed with a key generated at
// first start and kept in the data directory), the MQTT authentication rule
// and the login throttle. The web server and the broker both ask it.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"
)

// Errors callers branch on.
var (
	ErrBadCredentials = errors.New("bad username or password")
	ErrNotAuthorized  = errors.New("not authorized")
	ErrExists         = errors.New("already exists")
	ErrInvalid        = errors.New("invalid request")
	// ErrBusy: too many logins are waiting for a password check.
	ErrBusy = errors.New("too many logins at once")
	// ErrLastAdmin: the depot would be left without an admin who can sign
	// in (the last enabled admin cannot be deleted, demoted or disabled).
	ErrLastAdmin = errors.New("the last admin cannot be deleted")
	// ErrDisabled: the password was right but the account is disabled.
	ErrDisabled = errors.New("this account is disabled; ask an admin")
)

// lastAdmin is ErrLastAdmin saying what was refused.
func lastAdmin(what string) error {
	if what == "deleted" {
		return ErrLastAdmin
	}
	return fmt.Errorf("%w: the last admin cannot be %s; make another admin first", ErrLastAdmin, what)
}

// MinPasswordLen is the shortest password a user may have.
const MinPasswordLen = 8

// Store is where accounts live (storage.DB).
type Store interface {
	PutUser(bridge.User) error
	DeleteUser(username string) error
	User(username string) (bridge.User, error)
	Users() ([]bridge.User, error)
	PutDevice(bridge.Device) error
	DeleteDevice(driverID string) error
	Devices() ([]bridge.Device, error)
}

// UserCreator is a Store that adds a user only when the name is free, in
// one step: a store that several processes share (depot hq's bucket)
// cannot leave that to a look and then a write. It returns ErrExists.
type UserCreator interface {
	CreateUser(bridge.User) error
}

// UserChanger is a Store that changes one user in one step with a look at
// all of them (depot hq's bucket: compare-and-set), so that a rule over
// all users (the last admin stays) holds across processes. fn gets the
// stored user and every user (not to be changed); its error ends the
// change with nothing stored; an unknown name is bridge.ErrNotFound. It
// returns the user as stored.
type UserChanger interface {
	ChangeUser(username string, fn func(u *bridge.User, all map[string]bridge.User) error) (bridge.User, error)
}

// Claims are what a login token says.
type Claims struct {
	Role  string `json:"role"`
	Depot string `json:"depot"`
	// Epoch is the user's bridge.User.Epoch when the token was issued.
	Epoch int `json:"ep,omitempty"`
	jwt.RegisteredClaims
}

// Accounts is the identity service of one depot.
type Accounts struct {
	Store Store
	Key   []byte        // HMAC key for tokens (LoadOrCreateKey)
	Depot string        // tokens are valid for this depot only
	TTL   time.Duration // token lifetime: a shift, 12 h when zero
	Now   func() time.Time
	Log   *slog.Logger
	// OnRevoke is called when a credential stops being valid, so that live
	// sessions using it are ended.
	OnRevoke func(bridge.Identity)
	// Cost is the bcrypt cost; bcrypt.DefaultCost (10) when zero. Tests
	// lower it: hashing is deliberately slow.
	Cost int
	// MaxHashing bounds the bcrypt compares running at once (2 when zero)
	// and MaxHashQueue the logins waiting for one (32 when zero; over it a
	// login gets ErrBusy at once). A flood of logins then costs at most
	// MaxHashing cores and cannot starve the broker or the dashboards.
	MaxHashing, MaxHashQueue int

	compareHook func() // tests: called while a compare holds its slot
	hashSlots   chan struct{}
	hashWait    atomic.Int32

	mu      sync.RWMutex
	userMu  sync.Mutex
	devices map[string][]byte    // driver id -> token hash; every handheld CONNECT reads it
	users   map[string]userState // every token check reads it
	// gen counts the changes to users (under mu): a login that read its
	// user from the store may put her in users only if none came between.
	gen   uint64
	dummy []byte // bcrypt hash compared for unknown users, so timing tells nothing
}

// Open loads the device credentials.
func (a *Accounts) Open() error {
	if a.Now == nil {
		a.Now = time.Now
	}
	if a.Log == nil {
		a.Log = slog.Default()
	}
	if a.TTL == 0 {
		a.TTL = 12 * time.Hour
	}
	if a.Cost == 0 {
		a.Cost = bcrypt.DefaultCost
	}
	if len(a.Key) < 32 {
		return errors.New("auth: signing key shorter than 32 bytes")
	}
	if err := a.Reload(); err != nil {
		return err
	}
	if a.MaxHashing <= 0 {
		a.MaxHashing = 2
	}
	if a.MaxHashQueue <= 0 {
		a.MaxHashQueue = 32
	}
	a.hashSlots = make(chan struct{}, a.MaxHashing)
	a.dummy, _ = bcrypt.GenerateFromPassword([]byte("not a password"), a.Cost)
	return nil
}

// Reload reads the users and device credentials from the store again. Open
// calls it; so does whoever learns that others changed the store (the
// instances of depot hq share one key-value bucket and watch it).
func (a *Accounts) Reload() error {
	ds, err := a.Store.Devices()
	if err != nil {
		return fmt.Errorf("load devices: %w", err)
	}
	devices := make(map[string][]byte, len(ds))
	for _, d := range ds {
		devices[d.DriverID] = d.TokenHash
	}
	us, err := a.Store.Users()
	if err != nil {
		return fmt.Errorf("load users: %w", err)
	}
	users := make(map[string]userState, len(us))
	for _, u := range us {
		users[u.Username] = stateOf(u)
	}
	a.mu.Lock()
	a.devices, a.users = devices, users
	a.gen++
	a.mu.Unlock()
	return nil
}

// LoadOrCreateKey returns the signing key kept in dir/jwt.key, creating a
// random one (mode 0600) at first start. Tokens survive restarts because the
// key does.
func LoadOrCreateKey(dir string) ([]byte, error) {
	path := filepath.Join(dir, "jwt.key")
	key, err := os.ReadFile(path)
	if err == nil {
		if len(key) < 32 {
			return nil, fmt.Errorf("%s: key shorter than 32 bytes; delete it to make a new one (logs everyone out)", path)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return nil, fmt.Errorf("restrict %s: %w", path, err)
			}
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key = make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, key, 0o600); err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, fmt.Errorf("write signing key: %w", err)
	}
	return key, nil
}

// RandomSecret returns n random bytes as unpadded base64url text.
func RandomSecret(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // the kernel's random source does not fail
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// EnsureAdmin creates user "admin" when there are no users yet, with
// password, or a generated one that is returned (to be shown once).
func (a *Accounts) EnsureAdmin(password string) (generated string, err error) {
	us, err := a.Store.Users()
	if err != nil {
		return "", err
	}
	if len(us) > 0 {
		return "", nil
	}
	if password == "" {
		password = RandomSecret(12)
		generated = password
	}
	if err := a.CreateUser("admin", password, bridge.RoleAdmin); err != nil {
		return "", fmt.Errorf("create admin: %w", err)
	}
	return generated, nil
}

// CreateUser adds a dispatcher or admin.
func (a *Accounts) CreateUser(username, password, role string) error {
	switch {
	case !bridge.ValidID(username):
		return fmt.Errorf("%w: username: 1-64 letters, digits, '-', '_' or '.'", ErrInvalid)
	case !bridge.ValidUserRole(role):
		return fmt.Errorf("%w: role: dispatcher or admin", ErrInvalid)
	}
	if err := checkPassword(password); err != nil {
		return err
	}
	if _, err := a.Store.User(username); err == nil {
		return fmt.Errorf("%w: user %s", ErrExists, username)
	} else if !errors.Is(err, bridge.ErrNotFound) {
		return err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), a.Cost)
	if err != nil {
		return err
	}
	u := bridge.User{Username: username, Role: role, Hash: h, Created: a.Now().UTC()}
	if c, ok := a.Store.(UserCreator); ok {
		if err := c.CreateUser(u); err != nil {
			return err
		}
		a.cacheUser(u)
		return nil
	}
	return a.putUser(u)
}

// putUser stores u and makes its tokens valid (with its role only).
func (a *Accounts) putUser(u bridge.User) error {
	if err := a.Store.PutUser(u); err != nil {
		return err
	}
	a.cacheUser(u)
	return nil
}

// cacheUser puts u, just stored, into the copy every token check reads.
func (a *Accounts) cacheUser(u bridge.User) {
	a.mu.Lock()
	a.users[u.Username] = stateOf(u)
	a.gen++
	a.mu.Unlock()
}

// userState is what a token check needs of a user.
type userState struct {
	role     string
	disabled bool
	epoch    int
}

func stateOf(u bridge.User) userState { return userState{u.Role, u.Disabled, u.Epoch} }

// activeAdmins counts the admins who can sign in.
func activeAdmins(all map[string]bridge.User) int {
	n := 0
	for _, u := range all {
		if u.Role == bridge.RoleAdmin && !u.Disabled {
			n++
		}
	}
	return n
}

// DeleteUser removes a user: her tokens stop working at once and her live
// sessions are ended. The last admin cannot be deleted.
func (a *Accounts) DeleteUser(username string) error {
	a.userMu.Lock() // one deletion at a time, so two cannot remove the last two admins
	defer a.userMu.Unlock()
	a.mu.RLock()
	st, ok := a.users[username]
	admins := 0
	for _, r := range a.users {
		if r.role == bridge.RoleAdmin && !r.disabled {
			admins++
		}
	}
	a.mu.RUnlock()
	role := st.role
	if !ok {
		return fmt.Errorf("%w: user %s", bridge.ErrNotFound, username)
	}
	if role == bridge.RoleAdmin && !st.disabled && admins <= 1 {
		return ErrLastAdmin
	}
	if err := a.Store.DeleteUser(username); err != nil {
		return err
	}
	a.mu.Lock()
	delete(a.users, username)
	a.gen++
	a.mu.Unlock()
	if a.OnRevoke != nil {
		a.OnRevoke(bridge.Identity{Role: role, Subject: username})
	}
	return nil
}

// SetRole gives a user another role. Her tokens (which name the old role)
// stop working at once and her live sessions end. The last enabled admin
// cannot be demoted.
func (a *Accounts) SetRole(username, role string) (bridge.User, error) {
	if !bridge.ValidUserRole(role) {
		return bridge.User{}, fmt.Errorf("%w: role: dispatcher or admin", ErrInvalid)
	}
	var old string
	u, err := a.changeUser(username, func(u *bridge.User, all map[string]bridge.User) error {
		old = u.Role
		if u.Role == bridge.RoleAdmin && role != bridge.RoleAdmin && !u.Disabled && activeAdmins(all) <= 1 {
			return lastAdmin("demoted")
		}
		u.Role = role
		return nil
	})
	if err == nil && old != role {
		a.revoked(bridge.Identity{Role: old, Subject: username})
	}
	return u, err
}

// ResetPassword gives a user a new password (the rules of CreateUser).
// Her tokens stop working and her live sessions end: a reset is what one
// does when a password may have leaked.
func (a *Accounts) ResetPassword(username, password string) (bridge.User, error) {
	if err := checkPassword(password); err != nil {
		return bridge.User{}, err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), a.Cost)
	if err != nil {
		return bridge.User{}, err
	}
	u, err := a.changeUser(username, func(u *bridge.User, _ map[string]bridge.User) error {
		u.Hash = h
		u.Epoch++
		return nil
	})
	if err == nil {
		a.revoked(bridge.Identity{Role: u.Role, Subject: username})
	}
	return u, err
}

// SetDisabled disables a user (she cannot sign in, her tokens stop working
// at once and her live sessions end) or enables her again (her old tokens
// stay refused: she signs in anew). The last enabled admin cannot be
// disabled.
func (a *Accounts) SetDisabled(username string, disabled bool) (bridge.User, error) {
	u, err := a.changeUser(username, func(u *bridge.User, all map[string]bridge.User) error {
		if !disabled || u.Disabled {
			u.Disabled = disabled
			return nil
		}
		if u.Role == bridge.RoleAdmin && activeAdmins(all) <= 1 {
			return lastAdmin("disabled")
		}
		u.Disabled = true
		u.Epoch++
		return nil
	})
	if err == nil && disabled {
		a.revoked(bridge.Identity{Role: u.Role, Subject: username})
	}
	return u, err
}

func (a *Accounts) revoked(id bridge.Identity) {
	if a.OnRevoke != nil {
		a.OnRevoke(id)
	}
}

// changeUser applies fn to a stored user, with the rule over all users
// checked in the same step (UserChanger), or under userMu for a store of
// this process alone, and makes the token checks see the result.
func (a *Accounts) changeUser(username string, fn func(u *bridge.User, all map[string]bridge.User) error) (bridge.User, error) {
	var u bridge.User
	var err error
	if c, ok := a.Store.(UserChanger); ok {
		u, err = c.ChangeUser(username, fn)
	} else {
		u, err = a.changeLocal(username, fn)
	}
	if errors.Is(err, bridge.ErrNotFound) {
		return u, fmt.Errorf("%w: user %s", bridge.ErrNotFound, username)
	}
	if err != nil {
		return u, err
	}
	a.cacheUser(u)
	return u, nil
}

func (a *Accounts) changeLocal(username string, fn func(u *bridge.User, all map[string]bridge.User) error) (bridge.User, error) {
	a.userMu.Lock() // with DeleteUser: one change at a time
	defer a.userMu.Unlock()
	us, err := a.Store.Users()
	if err != nil {
		return bridge.User{}, err
	}
	all := make(map[string]bridge.User, len(us))
	for _, u := range us {
		all[u.Username] = u
	}
	u, ok := all[username]
	if !ok {
		return bridge.User{}, bridge.ErrNotFound
	}
	if err := fn(&u, all); err != nil {
		return bridge.User{}, err
	}
	return u, a.Store.PutUser(u)
}

func checkPassword(p string) error {
	if len(p) < MinPasswordLen || len(p) > 72 {
		return fmt.Errorf("%w: password: %d to 72 characters", ErrInvalid, MinPasswordLen)
	}
	return nil
}

// SetKey replaces the token signing key (depot hq: another instance put
// a new one in the shared bucket). Tokens signed with the old one stop.
func (a *Accounts) SetKey(k []byte) error {
	if len(k) < 32 {
		return errors.New("auth: signing key shorter than 32 bytes")
	}
	a.mu.Lock()
	a.Key = append([]byte(nil), k...)
	a.mu.Unlock()
	return nil
}

func (a *Accounts) key() []byte {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.Key
}

// SetPassword creates a user or replaces her password and role (used for
// the demo dispatcher, whose password is new at every start).
func (a *Accounts) SetPassword(username, password, role string) error {
	if err := a.CreateUser(username, password, role); !errors.Is(err, ErrExists) {
		return err
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), a.Cost)
	if err != nil {
		return err
	}
	// As a reset: her old tokens stop (a new epoch, never one already
	// used, which would revive them), and a disabled user stays disabled.
	old, err := a.Store.User(username)
	if err != nil {
		return err
	}
	return a.putUser(bridge.User{Username: username, Role: role, Hash: h, Created: old.Created,
		Disabled: old.Disabled, Epoch: old.Epoch + 1})
}

// Login checks a username and password and returns a signed token.
func (a *Accounts) Login(username, password string) (token string, claims *Claims, err error) {
	return a.LoginContext(context.Background(), username, password)
}

// LoginContext is Login for a request: it waits for a hashing slot no
// longer than ctx, and gives ErrBusy at once when too many are waiting.
func (a *Accounts) LoginContext(ctx context.Context, username, password string) (token string, claims *Claims, err error) {
	a.mu.RLock()
	gen := a.gen
	a.mu.RUnlock()
	u, err := a.Store.User(username)
	if err != nil && !errors.Is(err, bridge.ErrNotFound) {
		return "", nil, err
	}
	hash := u.Hash
	if err != nil {
		hash = a.dummy
	}
	if err := a.acquireHashing(ctx); err != nil {
		return "", nil, err
	}
	if a.compareHook != nil {
		a.compareHook()
	}
	bad := bcrypt.CompareHashAndPassword(hash, []byte(password)) != nil
	<-a.hashSlots
	if bad || err != nil {
		return "", nil, ErrBadCredentials
	}
	if u.Disabled {
		return "", nil, ErrDisabled // told only to whoever knows the password
	}
	// The store may be shared (hq's instances): the user as read there can
	// be newer than this instance's copy, which its watch of the store
	// brings up to date a moment later. Until then a token issued here
	// would be refused here. So she is taken into the copy, but only if no
	// change came to it since the store was read (that one is as new).
	a.mu.Lock()
	if a.gen == gen && a.users[u.Username] != stateOf(u) {
		a.users[u.Username] = stateOf(u)
		a.gen++
	}
	a.mu.Unlock()
	return a.issue(u.Username, u.Role, u.Epoch) // the epoch as stored: another hq instance may have just changed it
}

func (a *Accounts) acquireHashing(ctx context.Context) error {
	select {
	case a.hashSlots <- struct{}{}:
		return nil
	default:
	}
	if int(a.hashWait.Add(1)) > a.MaxHashQueue {
		a.hashWait.Add(-1)
		return ErrBusy
	}
	defer a.hashWait.Add(-1)
	select {
	case a.hashSlots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (a *Accounts) hashWaiting() int { return int(a.hashWait.Load()) }

// Issue signs a token for subject with role.
func (a *Accounts) Issue(subject, role string) (string, *Claims, error) {
	a.mu.RLock()
	epoch := a.users[subject].epoch
	a.mu.RUnlock()
	return a.issue(subject, role, epoch)
}

func (a *Accounts) issue(subject, role string, epoch int) (string, *Claims, error) {
	now := a.Now()
	c := &Claims{Role: role, Depot: a.Depot, Epoch: epoch, RegisteredClaims: jwt.RegisteredClaims{
		Subject: subject, Issuer: "depot", IssuedAt: jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(a.TTL)), ID: RandomSecret(9),
	}}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(a.key())
	return s, c, err
}

// Verify checks a token's signature, expiry, depot and role, and that its
// user still exists with that role.
func (a *Accounts) Verify(token string) (*Claims, error) {
	c := &Claims{}
	_, err := jwt.ParseWithClaims(token, c, func(*jwt.Token) (any, error) { return a.key(), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer("depot"), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(a.Now), jwt.WithLeeway(5*time.Second))
	if err != nil {
		return nil, fmt.Errorf("%w: token: %v", ErrBadCredentials, err)
	}
	if c.Depot != a.Depot || !bridge.ValidUserRole(c.Role) || !bridge.ValidID(c.Subject) {
		return nil, fmt.Errorf("%w: token not for this depot", ErrBadCredentials)
	}
	// A token is good only while its user exists with the role it names,
	// is enabled and is in the epoch the token was issued in: a deleted,
	// re-roled or disabled user's tokens (or those from before a password
	// reset) stop at once, not at expiry.
	if err := a.userOf(c); err != nil {
		return nil, err
	}
	return c, nil
}

// StillValid reports whether the user of claims that Verify accepted is
// still as they say (exists with that role, enabled, same epoch): a cheap
// check for a long request, such as an SSE stream, to end when she is
// deleted, re-roled or disabled meanwhile.
func (a *Accounts) StillValid(c *Claims) bool { return c != nil && a.userOf(c) == nil }

func (a *Accounts) userOf(c *Claims) error {
	a.mu.RLock()
	st, ok := a.users[c.Subject]
	a.mu.RUnlock()
	if !ok || st.role != c.Role {
		return fmt.Errorf("%w: token of a user that no longer exists with role %s", ErrBadCredentials, c.Role)
	}
	if st.disabled || st.epoch != c.Epoch {
		return fmt.Errorf("%w: token of a disabled user or from before a password reset", ErrBadCredentials)
	}
	return nil
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// CreateDevice issues a new credential for driverID's handheld and returns
// its token, shown once. A previous credential of the driver stops working
// and its live session is ended.
func (a *Accounts) CreateDevice(driverID, name string) (string, error) {
	if !bridge.ValidID(driverID) {
		return "", fmt.Errorf("%w: driverId: 1-64 letters, digits, '-', '_' or '.'", ErrInvalid)
	}
	if len(name) > 128 {
		return "", fmt.Errorf("%w: name: at most 128 characters", ErrInvalid)
	}
	token := RandomSecret(32)
	d := bridge.Device{DriverID: driverID, Name: name, TokenHash: tokenHash(token), Created: a.Now().UTC()}
	if err := a.Store.PutDevice(d); err != nil {
		return "", err
	}
	a.mu.Lock()
	_, replaced := a.devices[driverID]
	a.devices[driverID] = d.TokenHash
	a.mu.Unlock()
	if replaced && a.OnRevoke != nil {
		a.OnRevoke(bridge.Identity{Role: bridge.RoleDriver, Subject: driverID})
	}
	return token, nil
}

// RevokeDevice removes a driver's credential and ends its live session.
func (a *Accounts) RevokeDevice(driverID string) error {
	if err := a.Store.DeleteDevice(driverID); err != nil {
		return err
	}
	a.mu.Lock()
	delete(a.devices, driverID)
	a.mu.Unlock()
	if a.OnRevoke != nil {
		a.OnRevoke(bridge.Identity{Role: bridge.RoleDriver, Subject: driverID})
	}
	return nil
}

// Devices lists the device credentials (hashes stay inside).
func (a *Accounts) Devices() ([]bridge.Device, error) { return a.Store.Devices() }

// Users lists the users (hashes stay inside).
func (a *Accounts) Users() ([]bridge.User, error) { return a.Store.Users() }

// looksLikeJWT tells a login token from a device token.
func looksLikeJWT(p []byte) bool {
	dots := 0
	for _, c := range p {
		if c == '.' {
			dots++
		}
	}
	return dots == 2 && len(p) > 20
}

// AuthenticateMQTT checks an MQTT CONNECT. A handheld presents its driver id
// and device token; a dashboard its username and login token. Anonymous
// clients and client ids bound to someone else get ErrNotAuthorized; wrong,
// expired, tampered, revoked or borrowed credentials ErrBadCredentials.
// expires is when a login token runs out (the session must end then); a
// device credential has none (it lasts until revoked).
func (a *Accounts) AuthenticateMQTT(username, password []byte, clientID string) (id bridge.Identity, expires time.Time, err error) {
	if len(username) == 0 {
		return id, expires, fmt.Errorf("%w: anonymous", ErrNotAuthorized)
	}
	if looksLikeJWT(password) {
		c, err := a.Verify(string(password))
		if err != nil {
			return id, expires, err
		}
		if c.Subject != string(username) {
			return id, expires, fmt.Errorf("%w: token of %q used as %q", ErrBadCredentials, c.Subject, username)
		}
		id = bridge.Identity{Role: c.Role, Subject: c.Subject}
		expires = c.ExpiresAt.Time // required by Verify
	} else {
		a.mu.RLock()
		want, ok := a.devices[string(username)]
		a.mu.RUnlock()
		if !ok || subtle.ConstantTimeCompare(want, tokenHash(string(password))) != 1 {
			return id, expires, fmt.Errorf("%w: device %q", ErrBadCredentials, username)
		}
		id = bridge.Identity{Role: bridge.RoleDriver, Subject: string(username)}
	}
	if !id.ClientIDAllowed(clientID) {
		return id, expires, fmt.Errorf("%w: client id %q is not bound to %s (use %q or %q)", ErrNotAuthorized, clientID, id, id.ClientID(), id.ClientID()+":<anything>")
	}
	return id, expires, nil
}

// DeviceTokenValid reports whether token is driverID's credential now.
func (a *Accounts) DeviceTokenValid(driverID, token string) bool {
	a.mu.RLock()
	want, ok := a.devices[driverID]
	a.mu.RUnlock()
	return ok && subtle.ConstantTimeCompare(want, tokenHash(token)) == 1
}

// UserActive reports whether username exists, enabled, with role now (the
// broker asks on every publish and delivery of a dashboard's session).
func (a *Accounts) UserActive(username, role string) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	st, ok := a.users[username]
	return ok && st.role == role && !st.disabled
}

// DeviceValid reports whether driverID has a credential now.
func (a *Accounts) DeviceValid(driverID string) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	_, ok := a.devices[driverID]
	return ok
}

// AuthenticateDevice checks a handheld's credential presented over HTTP
// (OwnTracks' Basic auth, the driver app): ErrBadCredentials unless token
// is driverID's device token now.
func (a *Accounts) AuthenticateDevice(driverID, token string) error {
	a.mu.RLock()
	want, ok := a.devices[driverID]
	a.mu.RUnlock()
	if !ok || subtle.ConstantTimeCompare(want, tokenHash(token)) != 1 {
		return fmt.Errorf("%w: device %q", ErrBadCredentials, clipID(driverID))
	}
	return nil
}

// DeviceForToken finds whose device token this is: an OsmAnd URL carries
// only the token. Every credential is compared, in constant time each, so
// the answer's timing says nothing of which was close.
func (a *Accounts) DeviceForToken(token string) (driverID string, ok bool) {
	h := tokenHash(token)
	a.mu.RLock()
	defer a.mu.RUnlock()
	for id, want := range a.devices {
		if subtle.ConstantTimeCompare(want, h) == 1 {
			driverID, ok = id, true
		}
	}
	return driverID, ok
}

// clipID bounds an id from the network for an error message.
func clipID(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
