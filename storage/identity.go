package storage

import (
	"encoding/json"
	"fmt"

	"github.com/depotcc/depot/bridge"
	"github.com/nutsdb/nutsdb"
)

func (s *DB) put(bucket, key string, v any) error {
	return s.db.Update(func(tx *nutsdb.Tx) error { return putJSON(tx, bucket, key, v) })
}

func get[T any](s *DB, bucket, key string) (T, error) {
	var v T
	err := s.db.View(func(tx *nutsdb.Tx) error {
		b, err := tx.Get(bucket, []byte(key))
		if err != nil {
			if notFound(err) {
				return ErrNotFound
			}
			return err
		}
		return json.Unmarshal(b, &v)
	})
	return v, err
}

// PutUser creates or replaces a user.
func (s *DB) PutUser(u bridge.User) error {
	if err := s.put(bUsers, u.Username, u); err != nil {
		return fmt.Errorf("put user %s: %w", u.Username, err)
	}
	return nil
}

// User returns a user or ErrNotFound.
func (s *DB) User(username string) (bridge.User, error) { return get[bridge.User](s, bUsers, username) }

// Users returns every user.
func (s *DB) Users() (us []bridge.User, err error) {
	err = s.db.View(func(tx *nutsdb.Tx) error {
		us, err = allValues[bridge.User](tx, bUsers)
		return err
	})
	return us, err
}

// DeleteUser removes a user; ErrNotFound if there was none.
func (s *DB) DeleteUser(username string) error {
	return s.db.Update(func(tx *nutsdb.Tx) error {
		if _, err := tx.Get(bUsers, []byte(username)); err != nil {
			if notFound(err) {
				return ErrNotFound
			}
			return err
		}
		return tx.Delete(bUsers, []byte(username))
	})
}

// PutDevice creates or replaces the credential of a driver's handheld.
func (s *DB) PutDevice(d bridge.Device) error {
	if err := s.put(bDevices, d.DriverID, d); err != nil {
		return fmt.Errorf("put device %s: %w", d.DriverID, err)
	}
	return nil
}

// DeleteDevice revokes a driver's credential; ErrNotFound if it had none.
func (s *DB) DeleteDevice(driverID string) error {
	return s.db.Update(func(tx *nutsdb.Tx) error {
		if _, err := tx.Get(bDevices, []byte(driverID)); err != nil {
			if notFound(err) {
				return ErrNotFound
			}
			return err
		}
		return tx.Delete(bDevices, []byte(driverID))
	})
}

// Devices returns every device credential.
func (s *DB) Devices() (ds []bridge.Device, err error) {
	err = s.db.View(func(tx *nutsdb.Tx) error {
		ds, err = allValues[bridge.Device](tx, bDevices)
		return err
	})
	return ds, err
}
