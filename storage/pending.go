package storage

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"slices"
	"sync"

	"github.com/depotcc/depot/bridge"
)

// pendingFixes holds, by owner and minute, the fixes in the history
// journal (journal.go) that are not folded yet, in the block encoding
// (~75 bytes a fix, no pointers for the collector to follow). History
// reads them from here, and the fold writes a closed minute's block from
// here without reading anything back.
//
// It also knows each journal record's newest minute: a record can go once
// the fold has taken every minute up to it.
//
// Single records (one per fix, bucket gps) are what a store of format 2
// or older filed fixes as. Owners that had any at Open are in old, with
// the newest minute they had, and their minutes up to it are folded by
// reading the store. Folding a minute from both gives one block (the
// merge keeps one fix per time and driver).
type pendingFixes struct {
	mu  sync.Mutex
	m   map[historyOwner]map[int64][]byte
	jrn map[uint64]journalRef
	old map[historyOwner]int64
}

type ownerMinute struct {
	owner  historyOwner
	minute int64
}

// journalRef is a journal record as pending knows it: its seq and the
// oldest and newest minute of its fixes.
type journalRef struct {
	seq            uint64
	oldest, newest int64
}

func ownerOf(h bridge.HistoryFix) historyOwner {
	if h.RouteID != "" {
		return historyOwner{routeID: h.RouteID}
	}
	return historyOwner{driverID: h.Fix.DriverID}
}

// add records fixes just committed and the journal records that hold them.
func (p *pendingFixes) add(fixes []bridge.HistoryFix, refs []journalRef) {
	if len(fixes) == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.m == nil {
		p.m = map[historyOwner]map[int64][]byte{}
		p.jrn = map[uint64]journalRef{}
	}
	for _, h := range fixes {
		o := ownerOf(h)
		om := p.m[o]
		if om == nil {
			om = map[int64][]byte{}
			p.m[o] = om
		}
		m := minuteOf(h.Fix.TS)
		om[m] = appendBlockFix(om[m], h.Fix)
	}
	for _, r := range refs {
		p.jrn[r.seq] = r
	}
}

// closed returns the minutes before cut that are held, with how many bytes
// of each were taken (fixes added later stay for the next fold), and the
// journal records that hold nothing else: once these minutes are folded,
// they can go.
func (p *pendingFixes) closed(cut int64) (map[ownerMinute][]byte, []uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[ownerMinute][]byte{}
	for o, om := range p.m {
		for m, b := range om {
			if m < cut {
				out[ownerMinute{o, m}] = b[:len(b):len(b)]
			}
		}
	}
	var done []uint64
	for seq, r := range p.jrn {
		if r.newest < cut {
			done = append(done, seq)
		}
	}
	slices.Sort(done)
	return out, done
}

// done forgets what a fold took of k.
func (p *pendingFixes) done(k ownerMinute, taken []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	om := p.m[k.owner]
	b := om[k.minute]
	if len(b) > len(taken) {
		om[k.minute] = bytes.Clone(b[len(taken):])
		return
	}
	delete(om, k.minute)
	if len(om) == 0 {
		delete(p.m, k.owner)
	}
}

// forgetJournal says journal records are deleted.
func (p *pendingFixes) forgetJournal(seqs []uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, s := range seqs {
		delete(p.jrn, s)
	}
}

// journalBefore returns the journal records with fixes of minutes before
// cut.
func (p *pendingFixes) journalBefore(cut int64) []journalRef {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []journalRef
	for _, r := range p.jrn {
		if r.oldest < cut {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b journalRef) int { return cmp.Compare(a.seq, b.seq) })
	return out
}

// setJournal records what is left of a journal record.
func (p *pendingFixes) setJournal(r journalRef) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.jrn[r.seq]; ok {
		p.jrn[r.seq] = r
	}
}

// of returns o's held minutes from m0 to m1 (their bytes, which nothing
// changes in place).
func (p *pendingFixes) of(o historyOwner, m0, m1 int64) [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out [][]byte
	for m, b := range p.m[o] {
		if m >= m0 && m <= m1 {
			out = append(out, b[:len(b):len(b)])
		}
	}
	return out
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
