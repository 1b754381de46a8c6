package delta

import (
	"errors"
	"testing"
)

func TestSortFieldsKeepsTheLastOfARepeatedName(t *testing.T) {
	fs := SortFields(Fields{{"b", []byte("1")}, {"a", []byte("2")}, {"b", []byte("3")}, {"c", []byte("4")}, {"a", []byte("5")}})
	want := Fields{{"a", []byte("5")}, {"b", []byte("3")}, {"c", []byte("4")}}
	if len(fs) != len(want) {
		t.Fatalf("got %q, want %q", fs, want)
	}
	for i := range want {
		if fs[i].Name != want[i].Name || string(fs[i].Value) != string(want[i].Value) {
			t.Fatalf("got %q, want %q", fs, want)
		}
	}
	if v, ok := fs.Get("b"); !ok || string(v) != "3" {
		t.Fatalf("Get(b) = %q, %v", v, ok)
	}
	if _, ok := fs.Get("z"); ok {
		t.Fatal("Get found a missing field")
	}
}

// TestUnsortedFieldsRefused: a Put whose fields are out of order or
// repeat a name is malformed (every replica must read one set of fields).
func TestUnsortedFieldsRefused(t *testing.T) {
	ok := &Delta{Seq: 1, HLC: 1, Ops: []Op{{Kind: Put, Collection: "c", ID: "d", Fields: Fields{{"a", []byte("1")}, {"b", []byte("2")}}}}}
	if err := ok.Validate(); err != nil {
		t.Fatalf("sorted fields: %v", err)
	}
	for _, fs := range []Fields{
		{{"b", []byte("1")}, {"a", []byte("2")}},
		{{"a", []byte("1")}, {"a", []byte("2")}},
	} {
		d := &Delta{Seq: 1, HLC: 1, Ops: []Op{{Kind: Put, Collection: "c", ID: "d", Fields: fs}}}
		if err := d.Validate(); !errors.Is(err, ErrMalformed) {
			t.Fatalf("check(%q) = %v, want ErrMalformed", fs, err)
		}
	}
}
