package storage

import (
	"bytes"
	"encoding/binary"
	"sync"

	"github.com/depotcc/depot/bridge"
)

// pendingFixes remembers, by owner and minute, the fixes this process
// stored as single records and has not folded yet, in the block encoding
// (~75 bytes a fix, no pointers for the collector to follow). With it the
// fold writes a closed minute's block without reading its singles back:
// that read is a pread and, in nutsdb, a stat of the data file per fix,
// and at 10,000 fixes/s it was a quarter of the appliance's CPU.
//
// Singles written before this process opened the store (a restart, a
// crash) are not in it: owners that had any at Open are in old, with the
// newest minute they had, and their minutes up to it are folded by
// reading the store, as before. Folding a minute twice, once from the
// store and once from memory, gives the same block but for which of two
// copies of a redelivered fix it keeps (deleting a deleted single is
// allowed, and merging keeps one fix per time and driver).
type pendingFixes struct {
	mu  sync.Mutex
	m   map[ownerMinute][]byte
	old map[historyOwner]int64
}

type ownerMinute struct {
	owner  historyOwner
	minute int64
}

func ownerOf(h bridge.HistoryFix) historyOwner {
	if h.RouteID != "" {
		return historyOwner{routeID: h.RouteID}
	}
	return historyOwner{driverID: h.Fix.DriverID}
}

// add records fixes just committed.
func (p *pendingFixes) add(fixes []bridge.HistoryFix) {
	if len(fixes) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[ownerMinute][]byte{}
	}
	for _, h := range fixes {
		k := ownerMinute{ownerOf(h), minuteOf(h.Fix.TS)}
		p.m[k] = appendBlockFix(p.m[k], h.Fix)
	}
}

// closed returns the minutes before cut that are held, with how many bytes
// of each were taken (fixes added later stay for the next fold).
func (p *pendingFixes) closed(cut int64) map[ownerMinute][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[ownerMinute][]byte{}
	for k, b := range p.m {
		if k.minute < cut {
			out[k] = b[:len(b):len(b)]
		}
	}
	return out
}

// done forgets what a fold took of k.
func (p *pendingFixes) done(k ownerMinute, taken []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b := p.m[k]
	if len(b) <= len(taken) {
		delete(p.m, k)
		return
	}
	p.m[k] = bytes.Clone(b[len(taken):])
}

// oldOwners returns the owners with singles from before Open and the
// newest minute each had then.
func (p *pendingFixes) oldOwners() map[historyOwner]int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[historyOwner]int64, len(p.old))
	for o, m := range p.old {
		out[o] = m
	}
	return out
}

// forgetOld says o's singles from before Open are all folded.
func (p *pendingFixes) forgetOld(o historyOwner) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.old, o)
}

// loadOld records the owners of the single records already in the store
// (their keys, which nutsdb holds in memory).
func (p *pendingFixes) loadOld(keys [][]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.old = map[historyOwner]int64{}
	for _, k := range keys {
		o, ts, ok := parseHistoryKey(k)
		if !ok {
			continue
		}
		if old, ok := p.old[o]; !ok || minuteOf(ts) > old {
			p.old[o] = minuteOf(ts)
		}
	}
}

// parseHistoryKey splits a single record's key (historyKey) into its owner
// and device time.
func parseHistoryKey(k []byte) (historyOwner, int64, bool) {
	i := bytes.IndexByte(k, 0)
	if i < 2 || len(k) < i+1+8 {
		return historyOwner{}, 0, false
	}
	ts := int64(binary.BigEndian.Uint64(k[i+1:]))
	switch string(k[:2]) {
	case "r/":
		return historyOwner{routeID: string(k[2:i])}, ts, true
	case "d/":
		return historyOwner{driverID: string(k[2:i])}, ts, true
	}
	return historyOwner{}, 0, false
}
