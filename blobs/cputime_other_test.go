//go:build !unix

package blobs

import "time"

// cpuTime is not measured here; benchmarks then report zero CPU.
func cpuTime() time.Duration { return 0 }
