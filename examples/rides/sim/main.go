// Command sim drives the rides DApp's HTTP API with simulated passengers
// and drivers on a local cluster, and reports rides per second, the time
// from a request to its appearance on a driver's live feed, and whether
// every instance ends up holding identical rides.
//
//	go run ./examples/rides/sim -passengers 1000 -drivers 200 -instances 3
//
// Each driver holds a live feed (server-sent events) on one instance, as
// its page would. Each ride is requested by a passenger on a random
// instance, watched for by one random driver's feed, then accepted,
// confirmed, and driven to completion, each step signed by its user and
// sent to that user's instance. Escrow transactions are left out: the
// confirm names a synthetic deal (the validator checks signatures and
// roles, not the chain), so the figures are the DApp's, not the dev
// chain's.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ethereum/go-ethereum/common"
	"github.com/ethereum/go-ethereum/crypto"

	"github.com/dpaas/dpaas/examples/rides/cluster"
	"github.com/dpaas/dpaas/examples/rides/ride"
	"github.com/dpaas/dpaas/examples/rides/server"
)

func main() {
	var c config
	flag.IntVar(&c.passengers, "passengers", 1000, "simulated passengers")
	flag.IntVar(&c.drivers, "drivers", 200, "simulated drivers, each with a live feed")
	flag.IntVar(&c.instances, "instances", 3, "instances of the DApp")
	flag.DurationVar(&c.duration, "duration", 30*time.Second, "how long to start rides")
	flag.Float64Var(&c.rate, "rate", 20, "rides started per second (0: as fast as -concurrency allows)")
	flag.IntVar(&c.concurrency, "concurrency", 64, "rides in flight at most")
	flag.Uint64Var(&c.seed, "seed", 0, "random seed (0: from the clock)")
	flag.Parse()
	if c.seed == 0 {
		c.seed = uint64(time.Now().UnixNano())
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, c, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "sim:", err)
		os.Exit(1)
	}
}

type config struct {
	passengers, drivers, instances, concurrency int
	duration                                    time.Duration
	rate                                        float64
	seed                                        uint64
}

type user struct {
	key  *ecdsa.PrivateKey
	addr common.Address
	at   int // the instance this user talks to

	mu     sync.Mutex
	window uint64
	used   int
}

type sim struct {
	c       config
	domain  ride.Domain
	urls    []string
	client  *http.Client
	pass    []*user
	drivers []*user

	mu      sync.Mutex
	waiting map[string]chan time.Time // ride ID -> its watching driver's signal
	watcher map[string]int            // ride ID -> the driver watching for it
	lat     []time.Duration

	clockMu sync.Mutex
	last    uint64

	started, completed, actions, retries, failed, lagged atomic.Int64
}

func run(ctx context.Context, c config, out io.Writer) error {
	fmt.Fprintf(out, "sim: %d passengers, %d drivers, %d instances, rate %.0f rides/s, %s, seed %d\n",
		c.passengers, c.drivers, c.instances, c.rate, c.duration, c.seed)
	d, err := cluster.StartDemo(ctx, cluster.DemoConfig{Instances: c.instances, NoUsers: true})
	if err != nil {
		return err
	}
	defer d.Close()
	s := &sim{c: c, domain: server.DomainOf(d.Instances[0].Node.Manifest()), waiting: map[string]chan time.Time{}, watcher: map[string]int{},
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}}
	for _, in := range d.Instances {
		s.urls = append(s.urls, in.Server.URL())
	}
	rng := rand.New(rand.NewPCG(c.seed, 1))
	mk := func(n int) []*user {
		us := make([]*user, n)
		for i := range us {
			k, err := crypto.GenerateKey()
			if err != nil {
				panic(err)
			}
			us[i] = &user{key: k, addr: crypto.PubkeyToAddress(k.PublicKey), at: rng.IntN(c.instances)}
		}
		return us
	}
	s.pass, s.drivers = mk(c.passengers), mk(c.drivers)
	// A passenger with no completed ride must hold the fare to request one
	// (server.TrustedRides): the dev chain's faucet funds them.
	for _, p := range s.pass {
		if err := d.Chain.Fund(ctx, p.addr, big.NewInt(1_000_000)); err != nil {
			return fmt.Errorf("fund passenger %s: %w", p.addr, err)
		}
	}
	if err := s.waitMirrors(ctx); err != nil {
		return err
	}
	fctx, cancelFeeds := context.WithCancel(ctx)
	var feeds sync.WaitGroup
	ready := make(chan struct{}, c.drivers)
	for i, dr := range s.drivers {
		feeds.Go(func() { s.feed(fctx, i, dr, ready) })
	}
	for range c.drivers {
		select {
		case <-ready:
		case <-ctx.Done():
			cancelFeeds()
			return ctx.Err()
		}
	}
	fmt.Fprintf(out, "sim: %d driver feeds open; starting rides\n", c.drivers)

	sem := make(chan struct{}, c.concurrency)
	var rides sync.WaitGroup
	begin := time.Now()
	end := begin.Add(c.duration)
	var next time.Time = begin
	n := 0
	for time.Now().Before(end) && ctx.Err() == nil {
		if c.rate > 0 {
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			next = next.Add(time.Duration(float64(time.Second) / c.rate))
		}
		sem <- struct{}{}
		p := s.pass[n%len(s.pass)]
		dr := rng.IntN(len(s.drivers))
		at := rng.IntN(c.instances)
		n++
		rides.Go(func() {
			defer func() { <-sem }()
			if err := s.ride(ctx, p, dr, at); err != nil {
				s.failed.Add(1)
				if s.failed.Load() <= 5 {
					fmt.Fprintln(out, "sim: ride failed:", err)
				}
			}
		})
	}
	issued := time.Since(begin)
	rides.Wait()
	all := time.Since(begin)
	cancelFeeds()
	feeds.Wait()

	s.mu.Lock()
	lat := slices.Clone(s.lat)
	s.mu.Unlock()
	slices.Sort(lat)
	q := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	fmt.Fprintf(out, "rides: %d started, %d completed, %d failed in %.1fs (starting for %.1fs)\n", s.started.Load(), s.completed.Load(), s.failed.Load(), all.Seconds(), issued.Seconds())
	fmt.Fprintf(out, "throughput: %.1f rides/s completed, %.1f signed actions/s accepted; %d retries while a step's parent was still on its way\n",
		float64(s.completed.Load())/all.Seconds(), float64(s.actions.Load())/all.Seconds(), s.retries.Load())
	fmt.Fprintf(out, "request -> visible on the watching driver's feed (%d rides): p50 %s, p90 %s, p99 %s, max %s\n",
		len(lat), q(0.50).Round(100*time.Microsecond), q(0.90).Round(100*time.Microsecond), q(0.99).Round(100*time.Microsecond), q(1).Round(100*time.Microsecond))
	fmt.Fprintf(out, "feeds that fell behind and reloaded: %d\n", s.lagged.Load())
	same, n2, err := s.converged(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "final check: every instance holds %d rides, identical: %v\n", n2, same)
	if !same {
		return errors.New("instances differ")
	}
	return nil
}

func (s *sim) now() uint64 {
	s.clockMu.Lock()
	defer s.clockMu.Unlock()
	t := uint64(time.Now().UnixMilli())
	if t <= s.last {
		t = s.last + 1
	}
	s.last = t
	return t
}

// slot picks the passenger's next free rate-limit slot, waiting for the
// next window when the passenger used them all.
func (s *sim) slot(ctx context.Context, p *user) (uint64, int, error) {
	for {
		ts := s.now()
		p.mu.Lock()
		if w := ts / ride.Window; w != p.window {
			p.window, p.used = w, 0
		}
		if p.used < ride.RateLimit {
			p.used++
			slot := p.used - 1
			p.mu.Unlock()
			return ts, slot, nil
		}
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		case <-time.After(time.Duration(ride.Window-ts%ride.Window) * time.Millisecond):
		}
	}
}

func (s *sim) ride(ctx context.Context, p *user, watcher, at int) error {
	ts, slot, err := s.slot(ctx, p)
	if err != nil {
		return err
	}
	id := ride.RideID(p.addr, ts, slot)
	req := ride.Action{Kind: ride.KindRequest, Ride: id, TS: ts, Data: `{"from":{"x":120,"y":300},"to":{"x":870,"y":640},"fare":"300"}`}
	if err := s.domain.Sign(&req, p.key); err != nil {
		return err
	}
	seen := make(chan time.Time, 1)
	s.mu.Lock()
	s.waiting[id], s.watcher[id] = seen, watcher
	s.mu.Unlock()
	t0 := time.Now()
	s.started.Add(1)
	if err := s.post(ctx, at, req); err != nil {
		return err
	}
	var tv time.Time
	select {
	case tv = <-seen:
	case <-time.After(30 * time.Second):
		return fmt.Errorf("ride %s never reached driver %d's feed", id, watcher)
	case <-ctx.Done():
		return ctx.Err()
	}
	s.mu.Lock()
	s.lat = append(s.lat, tv.Sub(t0))
	s.mu.Unlock()
	d := s.drivers[watcher]
	step := func(u *user, kind string, parent ride.Action, data string) (ride.Action, error) {
		a := ride.Action{Kind: kind, Ride: id, TS: s.now(), Parent: s.domain.Digest(parent), Data: data}
		if err := s.domain.Sign(&a, u.key); err != nil {
			return a, err
		}
		return a, s.post(ctx, u.at, a)
	}
	acc, err := step(d, ride.KindAccept, req, "")
	if err != nil {
		return err
	}
	deal := crypto.Keccak256Hash([]byte(id)) // synthetic: no chain in the simulation
	if _, err := step(p, ride.KindConfirm, acc, `{"escrow":"`+deal.Hex()+`"}`); err != nil {
		return err
	}
	for _, k := range []string{ride.KindArrive, ride.KindStart, ride.KindComplete} {
		if _, err := step(d, k, acc, ""); err != nil {
			return err
		}
	}
	s.completed.Add(1)
	return nil
}

// post sends an action to instance i, retrying while the instance does
// not hold the action's parent yet (it is on its way from another one).
func (s *sim) post(ctx context.Context, i int, a ride.Action) error {
	body, _ := json.Marshal(a)
	deadline := time.Now().Add(20 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.urls[i]+"/api/actions", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := s.client.Do(req)
		if err != nil {
			return err
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			s.actions.Add(1)
			return nil
		}
		if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(msg, []byte("not in ride")) || time.Now().After(deadline) {
			return fmt.Errorf("%s on instance %d: %d %s", a.Kind, i, resp.StatusCode, msg)
		}
		s.retries.Add(1)
		time.Sleep(5 * time.Millisecond)
	}
}

// feed is driver i's live feed on its instance: it reports the first
// sight of each ride it watches for.
func (s *sim) feed(ctx context.Context, i int, d *user, ready chan<- struct{}) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.urls[d.at]+"/api/events?open=1&user="+d.addr.Hex(), nil)
	resp, err := s.client.Do(req)
	if err != nil {
		ready <- struct{}{}
		return
	}
	defer resp.Body.Close()
	ready <- struct{}{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte("data: ")) {
			continue
		}
		if bytes.Contains(line, []byte(`"type":"reload"`)) {
			s.lagged.Add(1)
			continue
		}
		// Cheap: find the ride's ID without decoding the whole state.
		_, rest, ok := bytes.Cut(line, []byte(`"id":"`))
		if !ok {
			continue
		}
		id, _, ok := bytes.Cut(rest, []byte(`"`))
		if !ok {
			continue
		}
		now := time.Now()
		s.mu.Lock()
		if s.watcher[string(id)] == i {
			if ch, ok := s.waiting[string(id)]; ok {
				ch <- now
				delete(s.waiting, string(id))
				delete(s.watcher, string(id))
			}
		}
		s.mu.Unlock()
	}
}

func (s *sim) waitMirrors(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for _, u := range s.urls {
		for {
			var ms []server.Mirror
			if err := s.get(ctx, u+"/api/mirrors", &ms); err == nil && len(ms) == len(s.urls) {
				break
			}
			if time.Now().After(deadline) {
				return errors.New("instances did not find each other")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

func (s *sim) get(ctx context.Context, url string, v any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %d", url, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// converged waits until every instance serves the same rides, byte for
// byte, or 60 seconds have passed.
func (s *sim) converged(ctx context.Context) (bool, int, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		var first []byte
		same, n := true, 0
		for _, u := range s.urls {
			var rs []json.RawMessage
			if err := s.get(ctx, u+"/api/rides?limit=1000000", &rs); err != nil {
				return false, 0, err
			}
			b, _ := json.Marshal(rs) // newest first, ties by ID: a total order
			if first == nil {
				first, n = b, len(rs)
			} else if !bytes.Equal(first, b) {
				same = false
			}
		}
		if same || time.Now().After(deadline) {
			return same, n, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
}
