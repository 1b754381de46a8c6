package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"testing"
)

var splitSeeds = []string{
	`{}`, ` { } `, `{"a":1}`, `{"a" : 1 , "b":"x,}"}`, `{"a":{"b":[1,{"c":"]}"}]},"d":null}`,
	`{"k\"ey":true,"k\u00e9":false}`, `{"a":1,"a":2}`, `{"b":1,"a":2,"b":3,"c":4,"a":5}`, "{\"\xff\":1}", `{"a":"\\"}`,
	`{"n":-1.5e10,"s":"é","arr":[ 1, 2 ]}`, `[1]`, `"s"`, `null`, `{"":1}`,
}

// TestSplitObjectMatchesUnmarshal checks the member splitter against
// encoding/json on tricky objects and non-objects.
func TestSplitObjectMatchesUnmarshal(t *testing.T) {
	for _, in := range splitSeeds {
		checkSplit(t, []byte(in))
	}
}

func FuzzSplitObject(f *testing.F) {
	for _, s := range splitSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if json.Valid(in) {
			checkSplit(t, in)
		}
	})
}

func checkSplit(t *testing.T, in []byte) {
	t.Helper()
	var want map[string]json.RawMessage
	werr := json.Unmarshal(in, &want)
	got, gerr := splitObject(in)
	if werr != nil || want == nil {
		if gerr == nil {
			t.Fatalf("%q: split %v, want an error", in, got)
		}
		return
	}
	if gerr != nil {
		t.Fatalf("%q: %v", in, gerr)
	}
	m := make(map[string][]byte, len(got))
	for i, f := range got {
		if i > 0 && got[i-1].Name >= f.Name {
			t.Fatalf("%q: split %q: not sorted by name, or a name repeats", in, got)
		}
		m[f.Name] = f.Value
	}
	if !maps.EqualFunc(m, want, func(a []byte, b json.RawMessage) bool { return bytes.Equal(a, b) }) {
		t.Fatalf("%q: split %q, want %q", in, got, want)
	}
}

// TestInternTableBounded: names come back equal to their bytes, the table
// stops growing at its bound, and long names are not kept.
func TestInternTableBounded(t *testing.T) {
	tab := newInternTable()
	for i := range internMax + 100 {
		name := fmt.Sprintf("field%d", i)
		if got := tab.get([]byte(name)); got != name {
			t.Fatalf("get(%q) = %q", name, got)
		}
	}
	if n := len(*tab.names.Load()); n != internMax {
		t.Fatalf("table holds %d names, want %d", n, internMax)
	}
	long := bytes.Repeat([]byte("x"), internMaxName+1)
	if got := tab.get(long); got != string(long) {
		t.Fatal("a long name came back changed")
	}
	if _, ok := (*tab.names.Load())[string(long)]; ok {
		t.Fatal("a long name was interned")
	}
	if n := testing.AllocsPerRun(100, func() { tab.get([]byte("field7")) }); n != 0 {
		t.Fatalf("an interned name costs %v allocations", n)
	}
}
