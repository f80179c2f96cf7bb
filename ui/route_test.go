package ui

import (
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	def := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                            def,
		"1764115200000":               time.UnixMilli(1764115200000),
		"2026-11-26T15:04:05Z":        time.Date(2026, 11, 26, 15, 4, 5, 0, time.UTC),
		"2026-11-26T15:04:05.5+01:00": time.Date(2026, 11, 26, 14, 4, 5, 5e8, time.UTC),
	} {
		got, err := parseTime(in, def)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"yesterday", "2026-11-26", "1e3"} {
		if _, err := parseTime(bad, def); err == nil {
			t.Errorf("parseTime(%q) accepted", bad)
		}
	}
}

func TestSignPayroll(t *testing.T) {
	// A fixed vector, so integrators can check their signing code.
	got := SignPayroll([]byte("payroll-secret-0123456789"), 1764115200, []byte(`{"vtoId":"vto_7","payrollRef":"PR-1"}`))
	if len(got) != len("sha256=")+64 || got[:7] != "sha256=" {
		t.Fatalf("signature %q", got)
	}
	if again := SignPayroll([]byte("payroll-secret-0123456789"), 1764115200, []byte(`{"vtoId":"vto_7","payrollRef":"PR-1"}`)); again != got {
		t.Fatal("not deterministic")
	}
	if other := SignPayroll([]byte("payroll-secret-0123456789"), 1764115201, []byte(`{"vtoId":"vto_7","payrollRef":"PR-1"}`)); other == got {
		t.Fatal("timestamp not signed")
	}
}
