package storage

import (
	"errors"
	"testing"

	"github.com/depotcc/depot/bridge"
)

func TestUsersAndDevicesSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir)
	if _, err := db.User("ana"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing user: %v", err)
	}
	if err := db.PutUser(bridge.User{Username: "ana", Role: bridge.RoleDispatcher, Hash: []byte("h"), Created: t0}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutDevice(bridge.Device{DriverID: "D1", TokenHash: []byte{1, 2}}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutDevice(bridge.Device{DriverID: "D2", TokenHash: []byte{3}}); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteDevice("D2"); err != nil {
		t.Fatal(err)
	}
	if err := db.DeleteDevice("D2"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	db.Close()
	db = mustOpen(t, dir)
	u, err := db.User("ana")
	if err != nil || u.Role != bridge.RoleDispatcher || string(u.Hash) != "h" || !u.Created.Equal(t0) {
		t.Fatalf("user after reopen: %+v %v", u, err)
	}
	ds, err := db.Devices()
	if err != nil || len(ds) != 1 || ds[0].DriverID != "D1" || len(ds[0].TokenHash) != 2 {
		t.Fatalf("devices after reopen: %+v %v", ds, err)
	}
	us, err := db.Users()
	if err != nil || len(us) != 1 {
		t.Fatalf("users: %+v %v", us, err)
	}
}

// A box that has users but has never logged an event (no feed yet) must
// start again: nutsdb reports an empty bucket oddly.
func TestReopenWithUsersButNoEvents(t *testing.T) {
	dir := t.TempDir()
	db := mustOpen(t, dir)
	if err := db.PutUser(bridge.User{Username: "admin", Role: bridge.RoleAdmin}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = mustOpen(t, dir)
	if st, err := db.LoadState(); err != nil || st.LastSeq != 0 {
		t.Fatalf("LoadState: %+v %v", st, err)
	}
}
