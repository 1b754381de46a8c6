package payment

import (
	"fmt"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/dpaas/dpaas/internal/kv"
	"github.com/dpaas/dpaas/internal/kv/kvtest"
)

// BenchmarkAcceptConcurrent measures durable Accepts from 16 concurrent
// payers, each on its own channel to one payee whose vouchers are synced
// to a Pebble database on disk (b.TempDir()); concurrent Accepts share
// fsyncs. "accept" hands the payee pre-signed vouchers; "pay+accept" has
// each payer sign (Channel.Pay, itself durable in an on-disk database)
// then the payee accept, as through the Node. It reports vouchers/s and
// the process CPU time per voucher (user+system, all goroutines), and,
// measured just before, how many 4 KiB overwrites a second the disk makes
// durable (disk-syncs/s): on this shared machine that moves by a factor
// of several within minutes and bounds every durable write.
func BenchmarkAcceptConcurrent(b *testing.B) {
	for _, mode := range []string{"accept", "pay+accept"} {
		b.Run(mode, func(b *testing.B) { benchAccept(b, 16, mode == "pay+accept", nil) })
	}
}

// benchAccept runs payers concurrent payers against one payee whose
// database is opened with opts (nil: defaults) in a fresh directory.
func benchAccept(b *testing.B, payers int, pay bool, opts *kv.Options) {
	d := newDev(b)
	ctx := testCtx(b)
	pdb, err := kv.Open(b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer pdb.Close()
	psp, err := pdb.Space("payment")
	if err != nil {
		b.Fatal(err)
	}
	payee := openFunded(b, d, Config{Space: psp}, nil)
	defer payee.Close()
	db, err := kv.Open(b.TempDir(), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	chans := make([]*Channel, payers)
	for i := range chans {
		sp, err := db.Space(fmt.Sprintf("payer%d", i))
		if err != nil {
			b.Fatal(err)
		}
		payer := openFunded(b, d, Config{Space: sp}, tokens(1_000_000))
		if chans[i], err = payer.OpenChannel(ctx, payee.Account(), tokens(1_000_000), time.Hour); err != nil {
			b.Fatal(err)
		}
	}
	disk := -1.0
	if opts == nil {
		disk = kvtest.DiskSyncRate(b, pdb.Dir(), 200*time.Millisecond)
	}
	per := (b.N + payers - 1) / payers
	var signed [][]Voucher
	if !pay {
		signed = make([][]Voucher, payers)
		for i, c := range chans {
			for range per {
				v, err := c.Pay(tokens(1))
				if err != nil {
					b.Fatal(err)
				}
				signed[i] = append(signed[i], v)
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, payers)
	syncs0 := walSyncs(pdb)
	cpu0 := kvtest.CPUTime()
	b.ResetTimer()
	start := time.Now()
	for i, c := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range per {
				var v Voucher
				if pay {
					var err error
					if v, err = c.Pay(tokens(1)); err != nil {
						errs <- err
						return
					}
				} else {
					v = signed[i][j]
				}
				if err := payee.Accept(ctx, v); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu := kvtest.CPUTime() - cpu0
	syncs := walSyncs(pdb) - syncs0
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	n := per * payers
	b.ReportMetric(float64(n)/elapsed.Seconds(), "vouchers/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), "CPU-us/voucher")
	if disk >= 0 {
		b.ReportMetric(disk, "disk-syncs/s")
	}
	if syncs > 0 {
		b.ReportMetric(float64(n)/float64(syncs), "vouchers/sync")
	}
}

// walSyncs is how many times the database has synced its log.
func walSyncs(db *kv.DB) uint64 {
	h := db.Pebble().Metrics().LogWriter.FsyncLatency
	if h == nil {
		return 0
	}
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		return 0
	}
	return m.GetHistogram().GetSampleCount()
}
