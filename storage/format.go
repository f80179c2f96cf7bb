package storage

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/nutsdb/nutsdb"
)

// Format is the layout of the store this build reads and writes. A store
// records the format it was last written in (meta "format"); a store made
// before formats were recorded is format 1, the layout of that release.
//
// Changing the layout means: Format+1, and a migration from the old
// format appended to migrations. Open refuses a store of a newer format
// (its layout is unknown here: writing to it could destroy it); Migrate
// upgrades an older one, after a backup.
//
//	1  the first release's layout
//	2  a busy commit writes its events as a block that can be newer than
//	   single event records not yet folded (evblocks.go); format 1's
//	   readers took every block to be older than every single and would
//	   misorder such a log, so a store written by this build is refused
//	   by them. A format 1 store is a valid format 2 store as it is.
//	3  a commit files its fixes as one history journal record (journal.go)
//	   instead of a record per fix; format 2's readers would not see the
//	   fixes not folded yet. This build still reads and folds the single
//	   records of a format 2 store, so that store is a valid format 3
//	   store as it is.
const Format = 3

const formatKey = "format"

// current is Format, a variable only so that tests can play a newer build.
var current = Format

// migrations[i] upgrades a store from format i+1 to i+2, in place; each
// runs once, then the store records the next format.
var migrations = []func(*DB) error{
	func(*DB) error { return nil }, // 1 → 2: nothing to rewrite
	func(*DB) error { return nil }, // 2 → 3: singles are folded as they were
}

// ErrNewerFormat is returned by Open for a store written by a newer depot.
var ErrNewerFormat = errors.New("the store was written by a newer depot")

// readFormat returns the store's recorded format; 0 when none is recorded.
func readFormat(ndb *nutsdb.DB) (int, error) {
	var v []byte
	err := ndb.View(func(tx *nutsdb.Tx) error {
		if !tx.ExistBucket(nutsdb.DataStructureBTree, bMeta) {
			return nil
		}
		b, err := tx.Get(bMeta, []byte(formatKey))
		if notFound(err) {
			return nil
		}
		v = append([]byte(nil), b...)
		return err
	})
	if err != nil || v == nil {
		return 0, err
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 1 {
		return 0, fmt.Errorf("the store's format record %q is not a version", v)
	}
	return n, nil
}

// checkFormat refuses a store from the future; it returns the store's
// format, 1 for a store from before formats were recorded, and 0 for a
// new, empty one.
func checkFormat(ndb *nutsdb.DB, dir string) (int, error) {
	f, err := readFormat(ndb)
	if err != nil {
		return 0, err
	}
	if f > current {
		return f, fmt.Errorf("%w: %s is in format %d, and this depot knows formats up to %d. "+
			"Install the depot that wrote it again (an upgrade cannot be undone by a downgrade), "+
			"or restore a backup made by this version with `depot restore`", ErrNewerFormat, dir, f, current)
	}
	if f == 0 {
		empty := true
		_ = ndb.View(func(tx *nutsdb.Tx) error {
			for _, b := range []string{bUsers, bEvents, bRoutes, bGPSLast} {
				if !tx.ExistBucket(nutsdb.DataStructureBTree, b) {
					continue
				}
				if keys, err := tx.GetKeys(b); err == nil && len(keys) > 0 {
					empty = false
				}
			}
			return nil
		})
		if !empty {
			f = 1
		}
	}
	return f, nil
}

// FormatVersion is the format the store is in now.
func (s *DB) FormatVersion() int { return s.format }

// NeedsMigration says whether Migrate has work to do.
func (s *DB) NeedsMigration() bool { return s.format < current }

// Migrate upgrades a store of an older format to this build's, one
// format at a time, recording each. backup runs first, once, when there
// is anything to do: a migration that fails half-way leaves the store as
// the failed step left it, and the backup is the way back.
func (s *DB) Migrate(backup func() (string, error)) error {
	if !s.NeedsMigration() {
		return nil
	}
	from := s.format
	where, err := backup()
	if err != nil {
		return fmt.Errorf("back up before upgrading the store from format %d: %w (nothing was changed)", from, err)
	}
	for s.format < current {
		step := migrations[s.format-1]
		if err := step(s); err != nil {
			return fmt.Errorf("upgrade the store from format %d to %d: %w. The backup taken before the upgrade is %s "+
				"(`depot restore` brings it back; this depot will try the upgrade again at its next start)", s.format, s.format+1, err, where)
		}
		if err := s.putBytes(bMeta, formatKey, []byte(strconv.Itoa(s.format+1))); err != nil {
			return err
		}
		s.format++
	}
	s.Log.Info("store upgraded", "from", from, "to", s.format, "backup", where)
	return nil
}
