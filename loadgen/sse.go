package loadgen

import (
	"bufio"
	"io"
	"strings"
)

// SSEEvent is one event of a text/event-stream.
type SSEEvent struct {
	ID, Event, Data string
}

// ReadSSE reads the events of an SSE stream from r, calling fn for each,
// until r ends, fails, or fn returns an error (which it returns). Comment
// lines (keep-alives) are skipped; lines longer than 1 MB end the read.
func ReadSSE(r io.Reader, fn func(SSEEvent) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var ev SSEEvent
	var data []string
	for sc.Scan() {
		l := sc.Text()
		if l == "" {
			if data != nil || ev.Event != "" {
				ev.Data = strings.Join(data, "\n")
				if err := fn(ev); err != nil {
					return err
				}
			}
			ev, data = SSEEvent{}, nil
			continue
		}
		if strings.HasPrefix(l, ":") {
			continue
		}
		k, v, _ := strings.Cut(l, ":")
		v = strings.TrimPrefix(v, " ")
		switch k {
		case "id":
			ev.ID = v
		case "event":
			ev.Event = v
		case "data":
			data = append(data, v)
		}
	}
	return sc.Err()
}
