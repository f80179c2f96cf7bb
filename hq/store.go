package hq

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/depotcc/depot/bridge"
	"github.com/nats-io/nats.go/jetstream"
)

// Bucket is the key-value bucket every hq instance shares: users under
// users.<name>, the token signing key under signing-key.
const Bucket = "DEPOT_HQ"

const (
	userPrefix = "users."
	keyName    = "signing-key"
	kvTimeout  = 10 * time.Second
)

// kvStore keeps hq's accounts in the bucket (auth.Store). hq has no
// handhelds: it has no device to keep.
type kvStore struct{ kv jetstream.KeyValue }

func kvCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), kvTimeout)
}

func (s kvStore) PutUser(u bridge.User) error {
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	ctx, cancel := kvCtx()
	defer cancel()
	_, err = s.kv.Put(ctx, userPrefix+u.Username, b)
	return err
}

func (s kvStore) DeleteUser(username string) error {
	ctx, cancel := kvCtx()
	defer cancel()
	if _, err := s.User(username); err != nil {
		return err
	}
	return s.kv.Delete(ctx, userPrefix+username)
}

func (s kvStore) User(username string) (bridge.User, error) {
	if !bridge.ValidID(username) {
		return bridge.User{}, bridge.ErrNotFound // also keeps odd names out of the key space
	}
	ctx, cancel := kvCtx()
	defer cancel()
	e, err := s.kv.Get(ctx, userPrefix+username)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return bridge.User{}, bridge.ErrNotFound
	}
	if err != nil {
		return bridge.User{}, err
	}
	var u bridge.User
	if err := json.Unmarshal(e.Value(), &u); err != nil {
		return bridge.User{}, fmt.Errorf("user %s: %w", username, err)
	}
	return u, nil
}

func (s kvStore) Users() ([]bridge.User, error) {
	ctx, cancel := kvCtx()
	defer cancel()
	l, err := s.kv.ListKeysFiltered(ctx, userPrefix+">")
	if err != nil {
		return nil, err
	}
	defer func() { _ = l.Stop() }() // after the last key it has stopped itself: an error of no interest
	var us []bridge.User
	for k := range l.Keys() {
		u, err := s.User(strings.TrimPrefix(k, userPrefix))
		if errors.Is(err, bridge.ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		us = append(us, u)
	}
	return us, nil
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
// that exists, so two first starts agree on one).
func signingKey(ctx context.Context, kv jetstream.KeyValue) ([]byte, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
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
