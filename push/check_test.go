package push

import (
	"errors"
	"io/fs"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// TestFCMCheckToken: a token the token server grants, and one it refuses.
func TestFCMCheckToken(t *testing.T) {
	f, grants, sends := newTestFCM(t, answer(200, nil, `{}`))
	if err := f.CheckToken(); err != nil || grants.Load() != 1 || sends.Load() != 0 {
		t.Fatalf("CheckToken: %v, %d grants, %d sends", err, grants.Load(), sends.Load())
	}
	refuse := httptest.NewServer(answer(400, nil, `{"error":"invalid_grant"}`))
	defer refuse.Close()
	g, err := NewFCM(serviceAccountJSON(t, testRSAKey(t), refuse.URL+"/token"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.CheckToken(); err == nil {
		t.Fatal("a refused grant passed")
	}
}

// TestReadVAPID: no file is ErrNotExist and makes none; the keys made
// at first start read back; a damaged file is an error.
func TestReadVAPID(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadVAPID(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("no file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, vapidFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("ReadVAPID made keys")
	}
	made, err := LoadOrCreateVAPID(dir)
	if err != nil {
		t.Fatal(err)
	}
	if read, err := ReadVAPID(dir); err != nil || read != made {
		t.Fatalf("read back %+v %v, made %+v", read, err, made)
	}
	if err := os.WriteFile(filepath.Join(dir, vapidFile), []byte(`{"publicKey":"x","privateKey":"y"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadVAPID(dir); err == nil {
		t.Fatal("a damaged file passed")
	}
}
