package nodekey

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func TestCreateThenReload(t *testing.T) {
	dir := t.TempDir()
	k1, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %#o, want 0600", fi.Mode().Perm())
	}
	k2, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if ethcrypto.PubkeyToAddress(k1.PublicKey) != ethcrypto.PubkeyToAddress(k2.PublicKey) {
		t.Fatal("reloaded key differs")
	}
	p1, err := Libp2p(k1)
	if err != nil {
		t.Fatal(err)
	}
	id1, _ := peer.IDFromPrivateKey(p1)
	p2, _ := Libp2p(k2)
	id2, _ := peer.IDFromPrivateKey(p2)
	if id1 != id2 {
		t.Fatal("peer IDs differ")
	}
}

func TestBadKeyFiles(t *testing.T) {
	for name, tc := range map[string]struct {
		content string
		mode    os.FileMode
		want    error
	}{
		"world readable": {"00", 0o644, ErrInsecure},
		"not hex":        {"zz", 0o600, nil},
		"not a key":      {"0000", 0o600, nil},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, FileName)
			if err := os.WriteFile(path, []byte(tc.content), tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadOrCreate(dir)
			if err == nil {
				t.Fatal("bad key file accepted")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}
