package blockxfer

import (
	"bytes"
	"testing"
)

// FuzzReadCID feeds arbitrary holdings and blocks requests to the decoder.
func FuzzReadCID(f *testing.F) {
	c := rawBlock("x").Cid()
	f.Add(append([]byte{byte(len(c.Bytes()))}, c.Bytes()...))
	f.Add([]byte{0x80, 0x80, 0x80})
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := ReadCID(bytes.NewReader(in))
		if err == nil && !got.Defined() {
			t.Fatal("accepted an undefined CID")
		}
	})
}
