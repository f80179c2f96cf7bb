package bridge

import (
	"bytes"
	"strconv"
)

// wireFixNames are wireFix's JSON names, in decodeFast's order.
var wireFixNames = [...][]byte{[]byte("lat"), []byte("lng"), []byte("ts"), []byte("acc"), []byte("spd"), []byte("hdg"), []byte("batt")}

// decodeFast decodes p into w exactly as json.Unmarshal would, for the
// shape handhelds send: one flat object whose keys are plain ASCII and
// whose values are numbers, strings without escapes, true, false or null.
// w's pointers point into vals. It reports false for anything else (a
// nested value, an escape, a syntax error, one of w's fields given as
// anything but a number or null), and leaves w to be decoded by
// json.Unmarshal, which then also says what is wrong. At 10,000 fixes a
// second encoding/json was 4.8 % of the appliance's CPU. FuzzDecodeFast
// holds it to encoding/json's answers.
func decodeFast(p []byte, w *wireFix, vals *[len(wireFixNames)]float64) bool {
	ptrs := [len(wireFixNames)]**float64{&w.Lat, &w.Lng, &w.TS, &w.Acc, &w.Spd, &w.Hdg, &w.Batt}
	i := skipSpace(p, 0)
	if i >= len(p) || p[i] != '{' {
		return false
	}
	i = skipSpace(p, i+1)
	if i < len(p) && p[i] == '}' {
		return skipSpace(p, i+1) == len(p)
	}
	for {
		// A key: ASCII, no escape, matched as encoding/json does (its
		// case-insensitive match is bytes.EqualFold).
		if i >= len(p) || p[i] != '"' {
			return false
		}
		start := i + 1
		if i = skipString(p, start); i < 0 {
			return false
		}
		key := p[start : i-1]
		for _, c := range key {
			if c >= 0x80 {
				return false // Unicode folding (K, ſ) is encoding/json's to judge
			}
		}
		field := -1
		for k, name := range wireFixNames {
			if bytes.EqualFold(key, name) {
				field = k
				break
			}
		}
		if i = skipSpace(p, i); i >= len(p) || p[i] != ':' {
			return false
		}
		if i = skipSpace(p, i+1); i >= len(p) {
			return false
		}
		switch c := p[i]; {
		case c == '-' || c >= '0' && c <= '9':
			end := skipNumber(p, i)
			if end < 0 {
				return false
			}
			if field >= 0 {
				v, err := strconv.ParseFloat(string(p[i:end]), 64)
				if err != nil {
					return false
				}
				vals[field] = v
				*ptrs[field] = &vals[field]
			}
			i = end
		case c == '"':
			if field >= 0 {
				return false
			}
			if i = skipString(p, i+1); i < 0 {
				return false
			}
		case c == 'n' && bytes.HasPrefix(p[i:], []byte("null")):
			if field >= 0 {
				*ptrs[field] = nil // as encoding/json sets a pointer for null
			}
			i += 4
		case c == 't' && bytes.HasPrefix(p[i:], []byte("true")) && field < 0:
			i += 4
		case c == 'f' && bytes.HasPrefix(p[i:], []byte("false")) && field < 0:
			i += 5
		default:
			return false
		}
		i = skipSpace(p, i)
		switch {
		case i < len(p) && p[i] == ',':
			i = skipSpace(p, i+1)
		case i < len(p) && p[i] == '}':
			return skipSpace(p, i+1) == len(p)
		default:
			return false
		}
	}
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(p []byte, i int) int {
	for i < len(p) && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the closing quote of a string whose
// first byte is at i, or -1 for an escape, a control byte or no end.
func skipString(p []byte, i int) int {
	for ; i < len(p); i++ {
		switch c := p[i]; {
		case c == '"':
			return i + 1
		case c == '\\' || c < 0x20:
			return -1
		}
	}
	return -1
}

// skipNumber returns the index after a JSON number starting at i, or -1
// if none starts there.
func skipNumber(p []byte, i int) int {
	digits := func(i int) int {
		for i < len(p) && p[i] >= '0' && p[i] <= '9' {
			i++
		}
		return i
	}
	if i < len(p) && p[i] == '-' {
		i++
	}
	switch {
	case i < len(p) && p[i] == '0':
		i++
	case i < len(p) && p[i] >= '1' && p[i] <= '9':
		i = digits(i)
	default:
		return -1
	}
	if i < len(p) && p[i] == '.' {
		if j := digits(i + 1); j > i+1 {
			i = j
		} else {
			return -1
		}
	}
	if i < len(p) && (p[i] == 'e' || p[i] == 'E') {
		i++
		if i < len(p) && (p[i] == '+' || p[i] == '-') {
			i++
		}
		if j := digits(i); j > i {
			i = j
		} else {
			return -1
		}
	}
	return i
}
