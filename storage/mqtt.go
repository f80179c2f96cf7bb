package storage

import (
	"github.com/nutsdb/nutsdb"
)

// PutSession stores one record of the broker's persistent state.
func (s *DB) PutSession(key string, value []byte) error {
	return s.db.Update(func(tx *nutsdb.Tx) error { return tx.Put(bMQTT, []byte(key), value, nutsdb.Persistent) })
}

// DeleteSession removes one record; a missing one is not an error.
func (s *DB) DeleteSession(key string) error {
	err := s.db.Update(func(tx *nutsdb.Tx) error { return tx.Delete(bMQTT, []byte(key)) })
	if notFound(err) {
		return nil
	}
	return err
}

// ScanSessions returns the records whose key starts with prefix.
func (s *DB) ScanSessions(prefix string) (out [][]byte, err error) {
	err = s.db.View(func(tx *nutsdb.Tx) error {
		vals, err := tx.PrefixScan(bMQTT, []byte(prefix), 0, nutsdb.ScanNoLimit)
		if err != nil {
			if notFound(err) {
				return nil
			}
			return err
		}
		out = vals
		return nil
	})
	return out, err
}
