//go:build race

package blobs

// Under the race detector everything runs several times slower, so the
// cluster tests move smaller blobs; without it they move the sizes the
// issue names.
const (
	bigBlob   = 8 << 20
	raceBuild = true
)
