//go:build !race

package blobs

const (
	bigBlob   = 64 << 20
	raceBuild = false
)
