package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strconv"
)

// Values are compared and indexed through one order-preserving byte
// encoding, so an index range scan and a full scan always agree: a query
// condition is evaluated on encoded bytes in both cases.
const (
	typeNull   byte = 0x01
	typeFalse  byte = 0x02
	typeTrue   byte = 0x03
	typeNumber byte = 0x04
	typeString byte = 0x05
	typeOther  byte = 0x06 // arrays and objects: equality only, never indexed
)

var errNotJSON = errors.New("not a JSON value")

// encodeValue turns one raw JSON value into its ordered key form.
func encodeValue(raw []byte) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil, errNotJSON
	}
	switch c := raw[0]; {
	case c == 'n':
		return []byte{typeNull}, nil
	case c == 'f':
		return []byte{typeFalse}, nil
	case c == 't':
		return []byte{typeTrue}, nil
	case c == '"':
		s := raw[1 : len(raw)-1]
		if bytes.IndexByte(s, '\\') >= 0 {
			var str string
			if err := json.Unmarshal(raw, &str); err != nil {
				return nil, err
			}
			s = []byte(str)
		}
		out := make([]byte, 0, len(s)+3)
		out = append(out, typeString)
		out = appendEscaped(out, s)
		return append(out, 0x00, 0x01), nil
	case c == '-' || (c >= '0' && c <= '9'):
		f, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return nil, err
		}
		return appendFloat([]byte{typeNumber}, f), nil
	case c == '[' || c == '{':
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, err
		}
		canon, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		return append([]byte{typeOther}, canon...), nil
	}
	return nil, errNotJSON
}

func appendEscaped(out, s []byte) []byte {
	for _, b := range s {
		out = append(out, b)
		if b == 0 {
			out = append(out, 0xff)
		}
	}
	return out
}

func appendFloat(out []byte, f float64) []byte {
	if f == 0 {
		f = 0 // -0 sorts and compares as 0
	}
	bits := math.Float64bits(f)
	if bits&(1<<63) != 0 {
		bits = ^bits
	} else {
		bits |= 1 << 63
	}
	return binary.BigEndian.AppendUint64(out, bits)
}

// decodeKeyValue returns the JSON value an encoded key stands for, for
// group keys.
func decodeKeyValue(k []byte) any {
	if len(k) == 0 {
		return nil
	}
	switch k[0] {
	case typeFalse:
		return false
	case typeTrue:
		return true
	case typeNumber:
		if len(k) < 9 {
			return nil
		}
		bits := binary.BigEndian.Uint64(k[1:9])
		if bits&(1<<63) != 0 {
			bits &^= 1 << 63
		} else {
			bits = ^bits
		}
		return math.Float64frombits(bits)
	case typeString:
		var out []byte
		for i := 1; i < len(k); i++ {
			if k[i] == 0 {
				if i+1 < len(k) && k[i+1] == 0xff {
					out = append(out, 0)
					i++
					continue
				}
				break
			}
			out = append(out, k[i])
		}
		return string(out)
	case typeOther:
		var v any
		_ = json.Unmarshal(k[1:], &v)
		return v
	}
	return nil
}

// keyValueLen returns the length of the encoded value at the start of k.
func keyValueLen(k []byte) int {
	if len(k) == 0 {
		return 0
	}
	switch k[0] {
	case typeNumber:
		return min(9, len(k))
	case typeString:
		for i := 1; i+1 < len(k); i++ {
			if k[i] == 0 {
				if k[i+1] == 0x01 {
					return i + 2
				}
				i++
			}
		}
		return len(k)
	case typeOther:
		return len(k)
	}
	return 1
}

// lookup returns the raw JSON value at a dotted path in a JSON object.
func lookup(doc []byte, path string) ([]byte, bool) {
	for {
		seg, rest, more := cutDot(path)
		v, ok := objectField(doc, seg)
		if !ok || !more {
			return v, ok
		}
		doc, path = v, rest
	}
}

func cutDot(p string) (string, string, bool) {
	for i := 0; i < len(p); i++ {
		if p[i] == '.' {
			return p[:i], p[i+1:], true
		}
	}
	return p, "", false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\t' || b[i] == '\r') {
		i++
	}
	return i
}

// objectField scans a JSON object for one key without decoding the rest.
func objectField(b []byte, key string) ([]byte, bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i++
	for {
		i = skipSpace(b, i)
		if i >= len(b) || b[i] == '}' {
			return nil, false
		}
		if b[i] == ',' {
			i++
			continue
		}
		if b[i] != '"' {
			return nil, false
		}
		kend := skipString(b, i)
		if kend < 0 {
			return nil, false
		}
		k := b[i+1 : kend-1]
		match := string(k) == key
		if !match && bytes.IndexByte(k, '\\') >= 0 {
			var s string
			match = json.Unmarshal(b[i:kend], &s) == nil && s == key
		}
		i = skipSpace(b, kend)
		if i >= len(b) || b[i] != ':' {
			return nil, false
		}
		i = skipSpace(b, i+1)
		vend := skipValue(b, i)
		if vend < 0 {
			return nil, false
		}
		if match {
			return b[i:vend], true
		}
		i = vend
	}
}

// skipString returns the index just past the string starting at b[i].
func skipString(b []byte, i int) int {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1
		}
	}
	return -1
}

// skipValue returns the index just past the JSON value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				j = skipString(b, j) - 1
				if j < 0 {
					return -1
				}
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1
				}
			}
		}
		return -1
	default:
		j := i
		for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\n' && b[j] != '\t' && b[j] != '\r' {
			j++
		}
		return j
	}
}

// canonicalJSON re-encodes a value compactly with sorted object keys, so
// equal values have equal bytes (set elements compare by bytes).
func canonicalJSON(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return canonicalRaw(b)
}

func canonicalRaw(raw []byte) ([]byte, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var x any
	if err := d.Decode(&x); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errNotJSON
	}
	return json.Marshal(x)
}
