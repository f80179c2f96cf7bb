package broker

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Log values from the network are cut to these many bytes: a client id
// or topic can be 64 KB, and anyone may send one before authenticating.
const (
	maxLogValue = 64
	maxLogError = 200
)

// SummarizeLog wraps h so that a flood of the same log line cannot fill a
// disk: the first record of each message is written, further ones within
// every are counted, and one line per message and interval then says how
// many there were, with the attributes of the last. String values are cut
// to 64 bytes (errors to 200) and a packet attribute (mochi's "pk", which
// would carry the whole payload) is reduced to its type and topic. When
// only is given, other messages are written as they come (still cut).
func SummarizeLog(h slog.Handler, every time.Duration, only ...string) *LogSummary {
	s := &LogSummary{every: every, now: time.Now, afterFunc: time.AfterFunc, kinds: map[string]*logKind{}}
	if len(only) > 0 {
		s.only = map[string]bool{}
		for _, m := range only {
			s.only[m] = true
		}
	}
	s.root = &summaryHandler{inner: h, sum: s}
	return s
}

// LogSummary is the state shared by a summarising handler and the handlers
// derived from it with WithAttrs and WithGroup.
type LogSummary struct {
	every     time.Duration
	only      map[string]bool
	now       func() time.Time
	afterFunc func(time.Duration, func()) *time.Timer
	root      *summaryHandler

	mu    sync.Mutex
	kinds map[string]*logKind
}

type logKind struct {
	start time.Time
	n     int          // records held back since start
	last  slog.Record  // the last of them
	h     slog.Handler // the handler it came through (its With attributes)
	timer *time.Timer
}

// maxKinds bounds the summary table; messages are constants in code, so
// this is only a guard.
const maxKinds = 512

// Handler is the summarising handler.
func (s *LogSummary) Handler() slog.Handler { return s.root }

// Flush writes the pending summaries now (at shutdown).
func (s *LogSummary) Flush() {
	s.mu.Lock()
	msgs := make([]string, 0, len(s.kinds))
	for m := range s.kinds {
		msgs = append(msgs, m)
	}
	s.mu.Unlock()
	for _, m := range msgs {
		s.flush(m)
	}
}

func (s *LogSummary) flush(msg string) {
	s.mu.Lock()
	k := s.kinds[msg]
	if k == nil {
		s.mu.Unlock()
		return
	}
	if k.timer != nil {
		k.timer.Stop()
		k.timer = nil
	}
	if k.n == 0 {
		s.mu.Unlock()
		return
	}
	now := s.now()
	r, h := s.summary(msg, k, now), k.h
	k.n, k.start, k.last, k.h = 0, now, slog.Record{}, nil
	s.mu.Unlock()
	_ = h.Handle(context.Background(), r)
}

// summary is the line standing for k's held-back records. Called with mu.
func (s *LogSummary) summary(msg string, k *logKind, now time.Time) slog.Record {
	window := now.Sub(k.start).Round(time.Second)
	if window < time.Second {
		window = time.Second
	}
	r := slog.NewRecord(now, k.last.Level, fmt.Sprintf("%s: %d more in the last %s", msg, k.n, window), 0)
	var last []any
	k.last.Attrs(func(a slog.Attr) bool { last = append(last, a); return true })
	r.AddAttrs(slog.Int("count", k.n), slog.Group("last", last...))
	return r
}

func (s *LogSummary) handle(ctx context.Context, h slog.Handler, r slog.Record) error {
	if s.only != nil && !s.only[r.Message] {
		return h.Handle(ctx, r)
	}
	now := s.now()
	s.mu.Lock()
	k := s.kinds[r.Message]
	if k == nil && len(s.kinds) >= maxKinds {
		s.mu.Unlock()
		return h.Handle(ctx, r)
	}
	if k == nil || now.Sub(k.start) >= s.every {
		// A new interval: what was held back is told, this one is written.
		var sum *slog.Record
		var sh slog.Handler
		if k == nil {
			k = &logKind{}
			s.kinds[r.Message] = k
		} else if k.n > 0 {
			rec := s.summary(r.Message, k, now)
			sum, sh = &rec, k.h
		}
		if k.timer != nil {
			k.timer.Stop()
			k.timer = nil
		}
		k.start, k.n, k.last, k.h = now, 0, slog.Record{}, nil
		s.mu.Unlock()
		if sum != nil {
			_ = sh.Handle(ctx, *sum)
		}
		return h.Handle(ctx, r)
	}
	k.n++
	k.last, k.h = r.Clone(), h
	if k.timer == nil {
		msg := r.Message
		k.timer = s.afterFunc(k.start.Add(s.every).Sub(now), func() { s.flush(msg) })
	}
	s.mu.Unlock()
	return nil
}

type summaryHandler struct {
	inner slog.Handler
	sum   *LogSummary
}

func (h *summaryHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.inner.Enabled(ctx, l)
}

func (h *summaryHandler) WithAttrs(as []slog.Attr) slog.Handler {
	out := make([]slog.Attr, 0, len(as))
	for _, a := range as {
		out = append(out, clipAttr(a))
	}
	return &summaryHandler{inner: h.inner.WithAttrs(out), sum: h.sum}
}

func (h *summaryHandler) WithGroup(name string) slog.Handler {
	return &summaryHandler{inner: h.inner.WithGroup(name), sum: h.sum}
}

func (h *summaryHandler) Handle(ctx context.Context, r slog.Record) error {
	c := slog.NewRecord(r.Time, r.Level, clip(r.Message, maxLogError), r.PC)
	r.Attrs(func(a slog.Attr) bool { c.AddAttrs(clipAttr(a)); return true })
	return h.sum.handle(ctx, h.inner, c)
}

// clipAttr cuts a value that may come from the network.
func clipAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(clip(v.String(), maxLogValue))
	case slog.KindGroup:
		g := v.Group()
		out := make([]any, 0, len(g))
		for _, x := range g {
			out = append(out, clipAttr(x))
		}
		a = slog.Group(a.Key, out...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case packets.Packet:
			a = slog.Group(a.Key, "type", packets.PacketNames[x.FixedHeader.Type], "topic", clip(x.TopicName, maxLogValue),
				"bytes", len(x.Payload))
		case *packets.Packet:
			a = clipAttr(slog.Any(a.Key, *x))
		case error:
			a.Value = slog.StringValue(clip(x.Error(), maxLogError))
		case []byte:
			a.Value = slog.StringValue(clip(string(x), maxLogValue))
		default:
			a.Value = slog.StringValue(clip(fmt.Sprint(x), maxLogError))
		}
	default:
		a.Value = v
	}
	return a
}

// clip cuts s to at most n bytes on a rune boundary and says how much was
// left out.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return fmt.Sprintf("%s…(+%d bytes)", s[:cut], len(s)-cut)
}
