package delta

import (
	"fmt"
	"slices"
	"strings"
)

// Field is one top-level field of a Put: its name and its JSON value.
type Field struct {
	Name  string
	Value []byte
}

// Fields are the fields of a Put, sorted by name (bytewise), each name
// once. On the wire they are a dag-cbor map from name to value bytes.
type Fields []Field

// SortFields sorts fs by name in place and, where a name repeats, keeps
// only its last occurrence (as decoding a JSON object does). It returns
// the shortened slice.
func SortFields(fs Fields) Fields {
	if len(fs) < 2 {
		return fs
	}
	sorted := true
	for i := 1; i < len(fs); i++ {
		if fs[i-1].Name >= fs[i].Name {
			sorted = false
			break
		}
	}
	if sorted {
		return fs
	}
	// Stable, so the last of equal names stays last.
	slices.SortStableFunc(fs, func(a, b Field) int { return strings.Compare(a.Name, b.Name) })
	out := fs[:0]
	for i := range fs {
		if i+1 < len(fs) && fs[i+1].Name == fs[i].Name {
			continue
		}
		out = append(out, fs[i])
	}
	clear(fs[len(out):])
	return out
}

// Get returns the value of the field name.
func (fs Fields) Get(name string) ([]byte, bool) {
	i, ok := slices.BinarySearchFunc(fs, name, func(f Field, n string) int { return strings.Compare(f.Name, n) })
	if !ok {
		return nil, false
	}
	return fs[i].Value, true
}

// MarshalCBOR encodes fs as the map the wire format holds (the generic
// encoder; the delta encoder writes the same bytes without it).
func (fs Fields) MarshalCBOR() ([]byte, error) {
	m := make(map[string][]byte, len(fs))
	for _, f := range fs {
		m[f.Name] = f.Value
	}
	return encMode.Marshal(m)
}

// UnmarshalCBOR decodes the wire map, which must not repeat a name.
func (fs *Fields) UnmarshalCBOR(b []byte) error {
	var m map[string][]byte
	if err := decMode.Unmarshal(b, &m); err != nil {
		return err
	}
	if m == nil {
		return fmt.Errorf("fields are not a map")
	}
	out := make(Fields, 0, len(m))
	for k, v := range m {
		out = append(out, Field{Name: k, Value: v})
	}
	slices.SortFunc(out, func(a, b Field) int { return strings.Compare(a.Name, b.Name) })
	*fs = out
	return nil
}

// IsZero reports whether there are no fields: the wire omits them then.
func (fs Fields) IsZero() bool { return len(fs) == 0 }
