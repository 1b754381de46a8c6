// Package nodekey keeps an instance's one secp256k1 key: created on first
// open, stored in the instance's directory readable by its owner only, and
// reloaded afterwards. The same key is the instance's libp2p identity and
// its Ethereum account.
package nodekey

import (
	"crypto/ecdsa"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	ethcrypto "github.com/ethereum/go-ethereum/crypto"
	p2pcrypto "github.com/libp2p/go-libp2p/core/crypto"
)

// FileName is the key file's name inside the instance directory.
const FileName = "node.key"

// ErrInsecure is returned when the key file can be read by group or others.
var ErrInsecure = errors.New("nodekey: key file is readable by others")

// LoadOrCreate returns the key stored in dir, creating it on first use. An
// empty dir returns a fresh key that is not stored.
func LoadOrCreate(dir string) (*ecdsa.PrivateKey, error) {
	if dir == "" {
		return generate()
	}
	path := filepath.Join(dir, FileName)
	k, err := load(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return k, err
	}
	k, err = generate()
	if err != nil {
		return nil, err
	}
	if err := save(path, k); err != nil {
		return nil, err
	}
	return k, nil
}

// ErrMismatch is returned by Use when dir already holds another key.
var ErrMismatch = errors.New("nodekey: the directory holds another key")

// Use makes k the key of dir: it is stored there if dir holds none, and
// must equal the stored key otherwise. An empty dir stores nothing.
func Use(dir string, k *ecdsa.PrivateKey) error {
	if dir == "" {
		return nil
	}
	path := filepath.Join(dir, FileName)
	stored, err := load(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return save(path, k)
	case err != nil:
		return err
	case !stored.Equal(k):
		return fmt.Errorf("%w: %s", ErrMismatch, path)
	}
	return nil
}

// Libp2p converts the key to its libp2p form.
func Libp2p(k *ecdsa.PrivateKey) (p2pcrypto.PrivKey, error) {
	pk, err := p2pcrypto.UnmarshalSecp256k1PrivateKey(ethcrypto.FromECDSA(k))
	if err != nil {
		return nil, fmt.Errorf("nodekey: convert to libp2p key: %w", err)
	}
	return pk, nil
}

func generate() (*ecdsa.PrivateKey, error) {
	k, err := ethcrypto.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("nodekey: generate: %w", err)
	}
	return k, nil
}

func load(path string) (*ecdsa.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("nodekey: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("nodekey: %s has mode %#o, want 0600: %w", path, fi.Mode().Perm(), ErrInsecure)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("nodekey: read %s: %w", path, err)
	}
	b, err := hex.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("nodekey: %s is not a hex-encoded key: %w", path, err)
	}
	k, err := ethcrypto.ToECDSA(b)
	if err != nil {
		return nil, fmt.Errorf("nodekey: %s does not hold a secp256k1 key: %w", path, err)
	}
	return k, nil
}

// save writes the key so that a crash never leaves a half-written file in
// place: it goes to a temporary file first, is synced, then renamed.
func save(path string, k *ecdsa.PrivateKey) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), FileName+".tmp*")
	if err != nil {
		return fmt.Errorf("nodekey: create: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("nodekey: chmod: %w", err)
	}
	if _, err := tmp.WriteString(hex.EncodeToString(ethcrypto.FromECDSA(k)) + "\n"); err != nil {
		tmp.Close()
		return fmt.Errorf("nodekey: write: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("nodekey: sync: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("nodekey: close: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("nodekey: install: %w", err)
	}
	return nil
}
