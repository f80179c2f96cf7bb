package bridge

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestRouteStatusFieldsCovered fails when a RouteStatus field is added
// without being carried by deltas (Diff, deltaFields, field, appendField)
// and by the hand-written encoders.
func TestRouteStatusFieldsCovered(t *testing.T) {
	base := RouteStatus{RouteID: "R1"}
	full := base
	typ := reflect.TypeOf(base)
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			t.Fatalf("RouteStatus.%s has no JSON name", f.Name)
		}
		cur := base
		setNonZero(t, f.Name, reflect.ValueOf(&cur).Elem().Field(i))
		setNonZero(t, f.Name, reflect.ValueOf(&full).Elem().Field(i))
		if name == "routeId" {
			continue // the route's identity: every delta carries it
		}
		if _, ok := Diff(base, cur).Map()[name]; !ok {
			t.Errorf("a change of RouteStatus.%s (%q) is not in its delta: add it to Diff, deltaFields, field and appendField", f.Name, name)
		}
	}

	type plain RouteStatus // encoding/json's own view, without our encoder
	want, _ := json.Marshal(plain(full))
	got, err := full.AppendJSON(nil)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("RouteStatus.AppendJSON with every field set:\n got %s\nwant %s", got, want)
	}
	d := Diff(RouteStatus{}, full)
	want, _ = json.Marshal(d.Map())
	if got, err := d.AppendJSON(nil); err != nil || !bytes.Equal(got, want) {
		t.Errorf("Delta.AppendJSON with every field changed:\n got %s\nwant %s", got, want)
	}
}

func setNonZero(t *testing.T, name string, v reflect.Value) {
	t.Helper()
	switch {
	case v.Type() == reflect.TypeOf(time.Time{}):
		v.Set(reflect.ValueOf(time.Date(2026, 11, 26, 15, 4, 5, 0, time.UTC)))
	case v.Kind() == reflect.String:
		v.SetString("x")
	case v.Kind() == reflect.Int:
		v.SetInt(7)
	case v.Kind() == reflect.Float64:
		v.SetFloat(1.5)
	default:
		t.Fatalf("RouteStatus.%s is a %s: teach this test a non-zero value for it", name, v.Type())
	}
}
