package storage

import "github.com/nutsdb/nutsdb"

// bMeta holds small records of the depot's own parts, such as the
// upstream forwarder's cursor:
//
//	meta  name -> bytes
const bMeta = "meta"

// MetaGet returns the record name, or ErrNotFound.
func (s *DB) MetaGet(name string) ([]byte, error) {
	var out []byte
	err := s.db.View(func(tx *nutsdb.Tx) error {
		v, err := tx.Get(bMeta, []byte(name))
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

// MetaPut stores the record name.
func (s *DB) MetaPut(name string, v []byte) error {
	return s.db.Update(func(tx *nutsdb.Tx) error { return tx.Put(bMeta, []byte(name), v, 0) })
}
