package main

import (
	"bytes"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestEnvFileUpToDate: packaging/depot.default, the package's
// /etc/default/depot, is what `depot env-file` prints, so a new or changed
// setting of `depot serve` cannot be missing from it. To update it:
//
//	go run ./cmd/depot env-file > packaging/depot.default
func TestEnvFileUpToDate(t *testing.T) {
	var out bytes.Buffer
	if err := run(t.Context(), []string{"env-file"}, nil, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "packaging", "depot.default")
	have, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, out.Bytes()) {
		t.Fatalf("%s differs from `depot env-file`; run\n\tgo run ./cmd/depot env-file > packaging/depot.default", path)
	}
	// Every flag of `depot serve` has its line.
	NewMain(io.Discard).flagSet().VisitAll(func(f *flag.Flag) {
		if !strings.Contains(out.String(), "\n#"+envKey(f.Name)+"="+f.DefValue+"\n") {
			t.Errorf("no line for --%s", f.Name)
		}
	})
}

// TestEnvFileDefaultsParse: every line of the env file, uncommented as it
// stands, is a valid setting that leaves `depot serve` exactly as its
// defaults do (the defaults shown are the real ones, in a form the flags
// read back).
func TestEnvFileDefaultsParse(t *testing.T) {
	var out bytes.Buffer
	if err := writeEnvFile(&out); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, line := range strings.Split(out.String(), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "#"), "=")
		if !strings.HasPrefix(line, "#DEPOT_") || !ok {
			continue
		}
		t.Setenv(k, v)
		keys = append(keys, k)
	}
	if len(keys) < 40 {
		t.Fatalf("only %d settings", len(keys))
	}
	fromEnv := NewMain(io.Discard)
	if err := fromEnv.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		os.Unsetenv(k) // t.Setenv puts back what was there after the test
	}
	plain := NewMain(io.Discard)
	if err := plain.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(fromEnv.Config, plain.Config) {
		t.Fatalf("the env file's defaults differ from the flags':\n%+v\n%+v", fromEnv.Config, plain.Config)
	}
}
