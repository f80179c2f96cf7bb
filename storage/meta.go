package storage

import "github.com/nutsdb/nutsdb"

// bMeta holds small records of the depot's own parts, such as the
// upstream forwarder's cursor:
//
//	meta  name -> bytes
const bMeta = "meta"

// MetaGet returns the record name, or ErrNotFound.
func (s *DB) MetaGet(name string) ([]byte, error) { return s.getBytes(bMeta, name) }

// MetaPut stores the record name.
func (s *DB) MetaPut(name string, v []byte) error { return s.putBytes(bMeta, name, v) }

// getBytes returns a copy of the value at key (nutsdb's is only good
// inside its transaction), or ErrNotFound.
func (s *DB) getBytes(bucket, key string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *nutsdb.Tx) error {
		v, err := tx.Get(bucket, []byte(key))
		if err != nil {
			if notFound(err) {
				return ErrNotFound
			}
			return err
		}
		out = append([]byte(nil), v...)
		return nil
	})
	return out, err
}

func (s *DB) putBytes(bucket, key string, v []byte) error {
	return s.db.Update(func(tx *nutsdb.Tx) error { return tx.Put(bucket, []byte(key), v, 0) })
}
