package main

import "testing"

func TestConnCaps(t *testing.T) {
	for _, c := range []struct {
		limit      uint64
		mqtt, http int
	}{
		{300, 129, 43},
		{1024, 672, 224},
		{1 << 20, 20000, 10000},
		{100, 16, 16},
	} {
		m, h := connCaps(c.limit)
		if m != c.mqtt || h != c.http {
			t.Errorf("limit %d: mqtt %d http %d, want %d %d", c.limit, m, h, c.mqtt, c.http)
		}
		if c.limit > 200 && uint64(m+h+fdReserve) > c.limit {
			t.Errorf("limit %d: caps %d+%d+%d exceed it", c.limit, m, h, fdReserve)
		}
	}
}
