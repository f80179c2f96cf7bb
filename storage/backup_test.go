package storage

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/depotcc/depot/bridge"
)

// tearTail damages the last record of the newest data file, as a power
// loss in the middle of a write would.
func tearTail(t *testing.T, dir string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.dat"))
	if len(files) == 0 {
		t.Fatal("no data files")
	}
	f := files[len(files)-1]
	data, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	end := len(data)
	for end > 0 && data[end-1] == 0 {
		end--
	}
	for i := max(0, end-10); i < end; i++ {
		data[i] = 0
	}
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestBackupRestoreAfterTornTail(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "db")
	db := mustOpen(t, dir)
	db.PutUser(bridge.User{Username: "ana", Role: bridge.RoleDispatcher})
	var backup bytes.Buffer
	if err := db.BackupTarGZ(&backup); err != nil {
		t.Fatal(err)
	}
	db.PutUser(bridge.User{Username: "bo", Role: bridge.RoleDispatcher}) // after the backup
	db.Close()

	tearTail(t, dir)
	if _, err := Open(dir, nil); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open a torn store: %v, want ErrCorrupt", err)
	}
	if err := RestoreTarGZ(bytes.NewReader(backup.Bytes()), dir); err == nil {
		t.Fatal("restored over an existing directory")
	}
	restored := filepath.Join(root, "db.restored")
	if err := RestoreTarGZ(bytes.NewReader(backup.Bytes()), restored); err != nil {
		t.Fatal(err)
	}
	db = mustOpen(t, restored)
	if _, err := db.User("ana"); err != nil {
		t.Fatalf("backed-up user missing: %v", err)
	}
	if _, err := db.User("bo"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a user written after the backup: %v", err)
	}
	if err := RestoreTarGZ(bytes.NewReader([]byte("not a backup")), filepath.Join(root, "x")); err == nil {
		t.Fatal("garbage restored")
	}
}
