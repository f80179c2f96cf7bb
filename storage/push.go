package storage

import (
	"github.com/nutsdb/nutsdb"
)

// The push outbox's records (package push), kept as the bytes it gives:
//
//	push  "t/"+driverID+0x00+targetID -> push target JSON
//	      "o/"+be64(seq)+driverID     -> outbox entry JSON
//	      "cursor"                    -> be64(seq): the last event looked at
const bPush = "push"

// PushGet returns the value at key, or ErrNotFound.
func (s *DB) PushGet(key string) ([]byte, error) { return s.getBytes(bPush, key) }

// PushPut stores v at key.
func (s *DB) PushPut(key string, v []byte) error { return s.putBytes(bPush, key, v) }

// PushDelete removes key; no error when it is not there.
func (s *DB) PushDelete(key string) error {
	return s.db.Update(func(tx *nutsdb.Tx) error {
		if err := tx.Delete(bPush, []byte(key)); err != nil && !notFound(err) {
			return err
		}
		return nil
	})
}

// PushScan returns the values whose keys begin with prefix, in key order
// (each value names its own record).
func (s *DB) PushScan(prefix string) (vals [][]byte, err error) {
	err = s.db.View(func(tx *nutsdb.Tx) error {
		vs, err := tx.PrefixScan(bPush, []byte(prefix), 0, nutsdb.ScanNoLimit)
		if err != nil {
			if notFound(err) {
				return nil
			}
			return err
		}
		for _, v := range vs {
			vals = append(vals, append([]byte(nil), v...))
		}
		return nil
	})
	return vals, err
}
