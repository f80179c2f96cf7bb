package hq

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/depotcc/depot/ui/auth"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the key-value bucket every hq instance shares: every user
// under one key, users, and the token signing key under signing-key.
const Bucket = "DEPOT_HQ"

const (
	usersKey  = "users"
	keyName   = "signing-key"
	kvTimeout = 10 * time.Second
	// maxTries bounds the retries of a change that lost its race with
	// another instance's (each try reads the users again).
	maxTries = 50
)

// kvStore keeps hq's accounts in the bucket (auth.Store). Every user is
// in one value, changed only by compare-and-set on its revision: a rule
// over all users (the last admin stays) then holds across instances, and
// two instances creating one name cannot both win. hq has no handhelds:
// it has no device to keep.
type kvStore struct{ kv jetstream.KeyValue }

func kvCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), kvTimeout)
}

// load reads every user and the revision they were read at (0: none yet).
func (s kvStore) load(ctx context.Context) (map[string]bridge.User, uint64, error) {
	e, err := s.kv.Get(ctx, usersKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return map[string]bridge.User{}, 0, nil
	}
	if err != nil {
		return nil, 0, err
	}
	us := map[string]bridge.User{}
	if err := json.Unmarshal(e.Value(), &us); err != nil {
		return nil, 0, fmt.Errorf("users in %s: %w", Bucket, err)
	}
	return us, e.Revision(), nil
}

// change applies fn to the users and stores the result if no other
// instance changed them meanwhile; otherwise it reads them again and
// retries. fn's error ends it with nothing changed.
func (s kvStore) change(fn func(map[string]bridge.User) error) error {
	ctx, cancel := kvCtx()
	defer cancel()
	for range maxTries {
		us, rev, err := s.load(ctx)
		if err != nil {
			return err
		}
		if err := fn(us); err != nil {
			return err
		}
		b, err := json.Marshal(us)
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = s.kv.Create(ctx, usersKey, b)
		} else {
			_, err = s.kv.Update(ctx, usersKey, b, rev)
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return err // nil: stored
		}
	}
	return errors.New("users: too many changes at once from other instances; try again")
}

func (s kvStore) PutUser(u bridge.User) error {
	return s.change(func(us map[string]bridge.User) error {
		us[u.Username] = u
		return nil
	})
}

// CreateUser adds u unless the name is taken (auth.UserCreator).
func (s kvStore) CreateUser(u bridge.User) error {
	return s.change(func(us map[string]bridge.User) error {
		if _, ok := us[u.Username]; ok {
			return fmt.Errorf("%w: user %s", auth.ErrExists, u.Username)
		}
		us[u.Username] = u
		return nil
	})
}

// DeleteUser removes a user, never the last admin: the rule is checked
// on the users as stored, in the same compare-and-set as the removal.
func (s kvStore) DeleteUser(username string) error {
	return s.change(func(us map[string]bridge.User) error {
		u, ok := us[username]
		if !ok {
			return bridge.ErrNotFound
		}
		if u.Role == bridge.RoleAdmin && !u.Disabled {
			admins := 0
			for _, v := range us {
				if v.Role == bridge.RoleAdmin && !v.Disabled {
					admins++
				}
			}
			if admins <= 1 {
				return auth.ErrLastAdmin
			}
		}
		delete(us, username)
		return nil
	})
}

// ChangeUser changes one user (role, password, disabled) with fn's rule
// over all users checked in the same compare-and-set (auth.UserChanger).
func (s kvStore) ChangeUser(username string, fn func(*bridge.User, map[string]bridge.User) error) (bridge.User, error) {
	var out bridge.User
	err := s.change(func(us map[string]bridge.User) error {
		u, ok := us[username]
		if !ok {
			return bridge.ErrNotFound
		}
		if err := fn(&u, us); err != nil {
			return err
		}
		us[username] = u
		out = u
		return nil
	})
	return out, err
}

func (s kvStore) User(username string) (bridge.User, error) {
	ctx, cancel := kvCtx()
	defer cancel()
	us, _, err := s.load(ctx)
	if err != nil {
		return bridge.User{}, err
	}
	u, ok := us[username]
	if !ok {
		return bridge.User{}, bridge.ErrNotFound
	}
	return u, nil
}

func (s kvStore) Users() ([]bridge.User, error) {
	ctx, cancel := kvCtx()
	defer cancel()
	us, _, err := s.load(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]bridge.User, 0, len(us))
	for _, u := range us {
		out = append(out, u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Username < out[j].Username })
	return out, nil
}

var errNoDevices = errors.New("depot hq keeps no handhelds: provision them on their depot")

func (kvStore) PutDevice(bridge.Device) error     { return errNoDevices }
func (kvStore) DeleteDevice(string) error         { return bridge.ErrNotFound }
func (kvStore) Devices() ([]bridge.Device, error) { return nil, nil }

// openBucket returns the shared bucket, created on first use.
func openBucket(ctx context.Context, js jetstream.JetStream, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, Bucket)
	if err == nil {
		return kv, nil
	}
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, fmt.Errorf("bucket %s: %w", Bucket, err)
	}
	kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: Bucket, Replicas: replicas,
		Description: "depot hq: users and the token signing key", History: 1, Storage: jetstream.FileStorage})
	if errors.Is(err, jetstream.ErrBucketExists) || errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
		return js.KeyValue(ctx, Bucket) // another instance made it first
	}
	if err != nil {
		return nil, fmt.Errorf("create bucket %s: %w", Bucket, err)
	}
	return kv, nil
}

// signingKey is the key every instance signs and checks tokens with: the
// first instance creates it, the others read it (Create fails on a key
// that exists, so two first starts agree on one). mine is the key to put
// when there is none; a new random one when nil.
func signingKey(ctx context.Context, kv jetstream.KeyValue, mine []byte) ([]byte, error) {
	k := mine
	if k == nil {
		k = make([]byte, 32)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
	}
	if _, err := kv.Create(ctx, keyName, k); err == nil {
		return k, nil
	} else if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	e, err := kv.Get(ctx, keyName)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if len(e.Value()) < 32 {
		return nil, fmt.Errorf("signing key in %s is %d bytes: want 32", Bucket, len(e.Value()))
	}
	return e.Value(), nil
}
