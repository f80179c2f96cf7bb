package storage

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/depotcc/depot/bridge"
	"github.com/nutsdb/nutsdb"
)

// TestFormat: a new store records this build's format; a store from
// before formats were recorded is format 1; one from a newer depot is
// refused with a message that says what to do, and is not written to.
func TestFormat(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if db.FormatVersion() != Format || db.NeedsMigration() {
		t.Fatalf("a new store: format %d, needs migration %v", db.FormatVersion(), db.NeedsMigration())
	}
	if b, err := db.MetaGet(formatKey); err != nil || string(b) != strconv.Itoa(Format) {
		t.Fatalf("format record %q %v", b, err)
	}

	// From before formats were recorded: data, no record.
	if err := db.PutUser(bridge.User{Username: "admin", Role: "admin"}); err != nil {
		t.Fatal(err)
	}
	if err := db.db.Update(func(tx *nutsdb.Tx) error { return tx.Delete(bMeta, []byte(formatKey)) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := db.MetaGet(formatKey); err != nil || string(b) != "1" || db.FormatVersion() != 1 || !db.NeedsMigration() {
		t.Fatalf("an unrecorded store with data: record %q %v, format %d", b, err, db.FormatVersion())
	}
	// Formats 1 → 2 → 3 rewrite nothing and record 3.
	if err := db.Migrate(func() (string, error) { return "b0", nil }); err != nil || db.FormatVersion() != 3 {
		t.Fatalf("migrate 1 → 3: %v, format %d", err, db.FormatVersion())
	}
	if b, _ := db.MetaGet(formatKey); string(b) != "3" {
		t.Fatalf("format record after migrating: %q", b)
	}

	// From the future.
	if err := db.MetaPut(formatKey, []byte("7")); err != nil {
		t.Fatal(err)
	}
	db.Close()
	_, err = Open(dir, nil)
	if !errors.Is(err, ErrNewerFormat) || !strings.Contains(err.Error(), "format 7") || !strings.Contains(err.Error(), "depot restore") {
		t.Fatalf("a store from the future: %v", err)
	}
}

// TestMigrate plays a build one format ahead: the backup is taken first,
// the step runs once, the new format is recorded; a failing step says
// where the backup is and leaves the format as it was, to be tried again.
func TestMigrate(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.PutUser(bridge.User{Username: "admin", Role: "admin"}); err != nil {
		t.Fatal(err)
	}
	db.Close()

	defer func(c int, m []func(*DB) error) { current, migrations = c, m }(current, migrations)
	current = Format + 1
	var order []string
	fail := true
	migrations = append(append([]func(*DB) error(nil), migrations...), func(s *DB) error {
		order = append(order, "step")
		if fail {
			return errors.New("disk on fire")
		}
		return s.MetaPut("migrated", []byte("yes"))
	})
	backup := func() (string, error) { order = append(order, "backup"); return "/backups/b1.tar.gz", nil }

	db, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !db.NeedsMigration() {
		t.Fatal("an older store needs no migration?")
	}
	err = db.Migrate(backup)
	if err == nil || !strings.Contains(err.Error(), "/backups/b1.tar.gz") || db.FormatVersion() != Format {
		t.Fatalf("a failed step: %v, format %d", err, db.FormatVersion())
	}
	fail = false
	order = nil
	if err := db.Migrate(backup); err != nil {
		t.Fatal(err)
	}
	if strings.Join(order, ",") != "backup,step" || db.FormatVersion() != Format+1 || db.NeedsMigration() {
		t.Fatalf("migration: %v, format %d", order, db.FormatVersion())
	}
	db.Close()
	db, err = Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if b, _ := db.MetaGet("migrated"); string(b) != "yes" || db.FormatVersion() != Format+1 || db.NeedsMigration() {
		t.Fatalf("after a restart: migrated %q, format %d", b, db.FormatVersion())
	}
	order = nil
	if err := db.Migrate(backup); err != nil || len(order) != 0 {
		t.Fatalf("nothing to migrate, yet %v %v", order, err)
	}

	// A backup that fails: nothing is changed.
	current = Format + 2
	migrations = append(migrations, func(*DB) error { t.Fatal("a step ran without a backup"); return nil })
	if err := db.Migrate(func() (string, error) { return "", errors.New("no space") }); err == nil || !strings.Contains(err.Error(), "nothing was changed") {
		t.Fatalf("a failed backup: %v", err)
	}
}
