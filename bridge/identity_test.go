package bridge

import "testing"

func TestACL(t *testing.T) {
	drv := Identity{RoleDriver, "D1"}
	disp := Identity{RoleDispatcher, "ana"}
	adm := Identity{RoleAdmin, "admin"}
	tests := []struct {
		who   Identity
		topic string
		write bool
		want  bool
	}{
		{drv, "depot/X/drivers/D1/gps", true, true},
		{drv, "depot/X/drivers/D1/presence", true, true},
		{drv, "depot/X/drivers/D1/reply", true, true},
		{drv, "depot/X/drivers/D1/inbox", true, false},
		{drv, "depot/X/drivers/D2/gps", true, false},
		{drv, "depot/X/drivers/D10/gps", true, false},
		{drv, "depot/X/drivers/D1/gps/x", true, false},
		{drv, "depot/Y/drivers/D1/gps", true, false},
		{drv, "depot/X/events", true, false},
		{drv, "depot/X/drivers/D1/inbox", false, true},
		{drv, "depot/X/drivers/D2/inbox", false, false},
		{drv, "depot/X/drivers/D1/#", false, false},
		{drv, "depot/X/drivers/+/inbox", false, false},
		{drv, "depot/X/events", false, false},
		{drv, "#", false, false},
		{disp, "depot/X/#", false, true},
		{disp, "depot/X/events", false, true},
		{disp, "depot/X/routes/+/state", false, true},
		{disp, "depot/X/drivers/D1/gps", false, true},
		{disp, "depot/Y/#", false, false},
		{disp, "#", false, false},
		{disp, "depot/#", false, false},
		{disp, "$SYS/#", false, false},
		{disp, "depot/X/drivers/D1/inbox", true, false},
		{disp, "depot/X/events", true, false},
		{adm, "$SYS/#", false, true},
		{adm, "$SYS/broker/clients", false, true},
		{adm, "depot/X/#", false, true},
		{adm, "depot/X/events", true, false},
		{Identity{"ghost", "x"}, "depot/X/events", false, false},
	}
	for _, tt := range tests {
		if got := tt.who.Allowed("X", tt.topic, tt.write); got != tt.want {
			t.Errorf("%s write=%v %q: %v, want %v", tt.who, tt.write, tt.topic, got, tt.want)
		}
	}
}

func TestClientIDBinding(t *testing.T) {
	drv := Identity{RoleDriver, "D1"}
	for id, want := range map[string]bool{"drv-D1": true, "drv-D1-phone": true, "drv-D10": false, "drv-D2": false, "dash-D1": false, "": false} {
		if got := drv.ClientIDAllowed(id); got != want {
			t.Errorf("driver D1 client id %q: %v", id, got)
		}
	}
	disp := Identity{RoleDispatcher, "ana"}
	for id, want := range map[string]bool{"dash-ana": true, "dash-ana-3f2a": true, "dash-anabel": false, "drv-ana": false} {
		if got := disp.ClientIDAllowed(id); got != want {
			t.Errorf("dispatcher ana client id %q: %v", id, got)
		}
	}
}

func TestParseIdentity(t *testing.T) {
	for s, ok := range map[string]bool{"driver:D1": true, "admin:root": true, "dispatcher:a:b": true, "driver:": false, "x:y": false, "": false, "open:x": false} {
		id, got := ParseIdentity(s)
		if got != ok || (ok && id.String() != s) {
			t.Errorf("ParseIdentity(%q) = %v, %v", s, id, got)
		}
	}
}
