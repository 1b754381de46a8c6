package ride

import (
	"encoding/json"
	"testing"

	"github.com/ethereum/go-ethereum/crypto"
)

// FuzzCheck feeds the validator and the fold arbitrary writes and
// documents, as a peer or a web page may send them: they must answer with
// an error or a state, never panic, and an accepted write must fold.
func FuzzCheck(f *testing.F) {
	k, _ := crypto.GenerateKey()
	req := request(f, k, 1_800_000_000_000)
	v, _ := json.Marshal(req)
	doc, _ := json.Marshal(map[string]json.RawMessage{Field(testDomain.Digest(req)): v})
	f.Add(req.Ride, Field(testDomain.Digest(req)), v, []byte(nil))
	f.Add(req.Ride, "a_00", v, doc)
	f.Add("x-1-0", "a_", []byte(`{"kind":"accept","sig":"0x00"}`), []byte(`{"a_1":{}}`))
	f.Fuzz(func(t *testing.T, id, field string, value, before []byte) {
		a, err := testDomain.Check(id, "set", field, value, before)
		_, beforeErr := Fold(id, before)
		if err != nil || len(before) > 0 && beforeErr != nil {
			return // a replica's documents only hold what passed
		}
		d := map[string]json.RawMessage{}
		_ = json.Unmarshal(before, &d)
		raw, _ := json.Marshal(a)
		d[field] = raw
		b, _ := json.Marshal(d)
		if _, err := Fold(id, b); err != nil {
			t.Fatalf("accepted write does not fold: %v", err)
		}
	})
}
