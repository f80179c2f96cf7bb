package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/depotcc/depot/bridge"
	"github.com/nutsdb/nutsdb"
)

// The history journal. A commit files its fixes as one record (bucket
// gpsjrn) instead of one record per fix:
//
//	gpsjrn  be64(journal seq) -> 0x01 then entries: kind 'r' + uvarint
//	        length + route id, or kind 'd' (a driver on no route), then the
//	        fix in the block encoding (blocks.go)
//
// nutsdb holds every key in memory with a record of ~150 bytes, indexes it
// in a B-tree and writes a header and a CRC for it, and the fold deleted
// each one again: at 10,000 fixes/s a record per fix was 10,000 puts and
// 10,000 deletions a second and ~700,000 keys in memory, whose pointers
// the collector followed at every cycle. A record per commit is about a
// hundred a second.
//
// Until a fix's minute is folded it is read from memory (pendingFixes),
// which holds every fix of every journal record the store has; Open reads
// the journal back into it after a restart or a crash. A record is deleted
// once all its fixes' minutes are folded; one that a crash left behind
// after its minutes were folded is folded again, which changes nothing
// (the merge keeps one fix per time and driver).
const bGPSJournal = "gpsjrn"

const journalV1 = 1

// journalMax bounds the fixes of one record (a commit holds at most
// bridge's maxBatch, 2,000: one record).
const journalMax = 4096

var errBadJournal = errors.New("damaged history journal record")

// maxJournalSeq bounds the seqs Open believes: 2^48 commits is 8,900
// years at a thousand a second.
const maxJournalSeq = 1 << 48

// appendJournal appends fixes to a journal record (started with journalV1).
func appendJournal(b []byte, fixes []bridge.HistoryFix) []byte {
	for _, h := range fixes {
		if h.RouteID != "" {
			b = append(b, 'r')
			b = binary.AppendUvarint(b, uint64(len(h.RouteID)))
			b = append(b, h.RouteID...)
		} else {
			b = append(b, 'd')
		}
		b = appendBlockFix(b, h.Fix)
	}
	return b
}

// decodeJournal reads a journal record back.
func decodeJournal(b []byte) ([]bridge.HistoryFix, error) {
	if len(b) == 0 || b[0] != journalV1 {
		return nil, errBadJournal
	}
	b = b[1:]
	var out []bridge.HistoryFix
	for len(b) > 0 {
		var h bridge.HistoryFix
		switch b[0] {
		case 'r':
			n, w := binary.Uvarint(b[1:])
			if w <= 0 || n == 0 || n > uint64(len(b)-1-w) {
				return nil, errBadJournal
			}
			h.RouteID = string(b[1+w : 1+w+int(n)])
			b = b[1+w+int(n):]
		case 'd':
			b = b[1:]
		default:
			return nil, errBadJournal
		}
		f, rest, err := decodeBlockFix(b)
		if err != nil {
			return nil, errBadJournal
		}
		h.Fix, b = f, rest
		out = append(out, h)
	}
	return out, nil
}

// putJournal files fixes in tx as journal records, one per minute of
// device time they hold, and returns them (their seqs and minutes) for
// the caller to hand to pending once the transaction is committed. A
// record goes when its minute is folded: one that also held a fix from a
// handheld whose clock runs minutes ahead would keep all the others on
// disk, and read back at every Open, until that fix's minute closed.
func (s *DB) putJournal(tx *nutsdb.Tx, fixes []bridge.HistoryFix) ([]journalRef, error) {
	var refs []journalRef
	put := func(part []bridge.HistoryFix) error {
		v := appendJournal(append(make([]byte, 0, 1+len(part)*(blockFixed+16)), journalV1), part)
		ref := refOf(s.jseq.Add(1), part)
		if err := tx.Put(bGPSJournal, be64(ref.seq), v, nutsdb.Persistent); err != nil {
			return fmt.Errorf("put history journal: %w", err)
		}
		refs = append(refs, ref)
		return nil
	}
	for len(fixes) > 0 {
		// Most commits hold one minute (two across its turn): the fixes
		// of the first minute, in order, then the rest.
		m := minuteOf(fixes[0].Fix.TS)
		var part, rest []bridge.HistoryFix
		for i, h := range fixes {
			if minuteOf(h.Fix.TS) != m {
				if rest == nil {
					part = append(part, fixes[:i]...)
				}
				rest = append(rest, h)
			} else if rest != nil {
				part = append(part, h)
			}
		}
		if rest == nil {
			part = fixes
		}
		for len(part) > 0 {
			n := min(len(part), journalMax)
			if err := put(part[:n]); err != nil {
				return nil, err
			}
			part = part[n:]
		}
		fixes = rest
	}
	return refs, nil
}

func refOf(seq uint64, fixes []bridge.HistoryFix) journalRef {
	r := journalRef{seq: seq, oldest: minuteOf(fixes[0].Fix.TS), newest: minuteOf(fixes[0].Fix.TS)}
	for _, h := range fixes[1:] {
		m := minuteOf(h.Fix.TS)
		r.oldest, r.newest = min(r.oldest, m), max(r.newest, m)
	}
	return r
}

// loadJournal reads the journal into pending at Open.
func (s *DB) loadJournal(tx *nutsdb.Tx) error {
	keys, vals, err := getAll(tx, bGPSJournal)
	if err != nil {
		return err
	}
	for i, k := range keys {
		if len(k) != 8 {
			continue
		}
		seq := binary.BigEndian.Uint64(k)
		if seq > maxJournalSeq {
			// Not a key this store writes (seqs count commits): taking it
			// as the newest would wrap the next seq onto live records.
			s.Log.Error("history journal record with an impossible key; kept, not folded", "seq", seq)
			continue
		}
		s.jseq.Store(max(s.jseq.Load(), seq))
		fixes, err := decodeJournal(vals[i])
		if err != nil {
			// nutsdb checked the record's CRC, so this is a bug, not a
			// torn write: keep the record for a person to look at.
			s.Log.Error("history journal record unreadable; kept, not folded", "seq", seq, "err", err)
			continue
		}
		if len(fixes) == 0 {
			continue
		}
		s.pending.add(fixes, []journalRef{refOf(seq, fixes)})
	}
	return nil
}

// dropJournal deletes journal records whose fixes are all folded, a few
// hundred per transaction.
func (s *DB) dropJournal(seqs []uint64) error {
	for len(seqs) > 0 {
		n := min(len(seqs), 500)
		err := s.db.Update(func(tx *nutsdb.Tx) error {
			for _, seq := range seqs[:n] {
				if err := tx.Delete(bGPSJournal, be64(seq)); err != nil && !notFound(err) {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("delete folded history journal: %w", err)
		}
		s.pending.forgetJournal(seqs[:n])
		seqs = seqs[n:]
	}
	return nil
}

// trimJournal drops from the journal the fixes of minutes before cut,
// which retention took from their blocks: a record that also holds newer
// minutes would otherwise bring them back at the next Open. Such records
// are rare (a fix that came hours late beside live ones); each is
// rewritten in its own transaction.
func (s *DB) trimJournal(cut int64) error {
	for _, r := range s.pending.journalBefore(cut) {
		var left []bridge.HistoryFix
		err := s.db.Update(func(tx *nutsdb.Tx) error {
			v, err := tx.Get(bGPSJournal, be64(r.seq))
			if err != nil {
				if notFound(err) {
					return nil
				}
				return err
			}
			fixes, err := decodeJournal(v)
			if err != nil {
				return err
			}
			left = slices.DeleteFunc(fixes, func(h bridge.HistoryFix) bool { return minuteOf(h.Fix.TS) < cut })
			if len(left) == 0 {
				return tx.Delete(bGPSJournal, be64(r.seq))
			}
			return tx.Put(bGPSJournal, be64(r.seq), appendJournal([]byte{journalV1}, left), nutsdb.Persistent)
		})
		if err != nil {
			return fmt.Errorf("trim history journal: %w", err)
		}
		if len(left) == 0 {
			s.pending.forgetJournal([]uint64{r.seq})
		} else {
			s.pending.setJournal(refOf(r.seq, left))
		}
	}
	return nil
}
