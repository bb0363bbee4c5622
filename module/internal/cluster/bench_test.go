package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	_ "github.com/pberkel/caddy-storage-redis"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/wecomgate/wecomgate/module/internal/testredis"
)

// redisStorage is Caddy's Redis storage module on addr, provisioned as a
// config would.
func redisStorage(tb testing.TB, addr string) certmagic.Storage {
	tb.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	tb.Cleanup(cancel)
	mod, err := ctx.LoadModuleByID("caddy.storage.redis", json.RawMessage(fmt.Sprintf(`{"address":[%q],"key_prefix":"wg"}`, addr)))
	if err != nil {
		tb.Fatal(err)
	}
	st, err := mod.(caddy.StorageConverter).CertMagicStorage()
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

// counting counts the bytes a storage answers (keys listed, values loaded).
type counting struct {
	certmagic.Storage
	bytes, calls atomic.Int64
}

func (c *counting) List(ctx context.Context, dir string, rec bool) ([]string, error) {
	keys, err := c.Storage.List(ctx, dir, rec)
	c.calls.Add(1)
	for _, k := range keys {
		c.bytes.Add(int64(len(k)))
	}
	return keys, err
}

func (c *counting) Load(ctx context.Context, key string) ([]byte, error) {
	b, err := c.Storage.Load(ctx, key)
	c.calls.Add(1)
	c.bytes.Add(int64(len(b)))
	return b, err
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRedis200k measures the issue-14 targets on a real Redis holding
// 200,000 live logouts spread over the last 24 h: how long a new instance
// takes to load them, what one poll costs, and how long a logout takes to
// reach another instance polling every 5 s (20 logouts).
//
//	go test -run '^$' -bench Redis200k -benchtime 50x ./module/internal/cluster/
func BenchmarkRedis200k(b *testing.B) {
	rs := testredis.Start(b)
	st := redisStorage(b, rs.Addr())
	c := &clock{t: time.Now()}
	const live = 200_000
	start := c.Now()

	// Written straight into the minute folders, as a day of logouts would
	// have left them.
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(32)
	for i := range live {
		g.Go(func() error {
			at := start.Add(-time.Duration(i) * 24 * time.Hour / live)
			ev := Event{Kind: SessionEnded, Subject: fmt.Sprintf("%016x", i), At: at, Expires: at.Add(24*time.Hour + time.Minute)}
			return st.Store(ctx, ev.keyIn(minuteName(at)), []byte("1"))
		})
	}
	if err := g.Wait(); err != nil {
		b.Fatal(err)
	}

	cs := &counting{Storage: st}
	t0, cpu0 := time.Now(), cpuTime()
	s := newState(zap.NewNop(), c.Now)
	s.lend(cs, nil)
	s.Sync(context.Background())
	startWall, startCPU := time.Since(t0), cpuTime()-cpu0
	if n := s.events.len(); n != live {
		b.Fatalf("the new instance loaded %d events, want %d", n, live)
	}
	b.Logf("Redis, %d live logouts: a new instance loads them in %v (%v CPU, %d storage calls, %.1f MB of keys)",
		live, startWall.Round(time.Millisecond), startCPU.Round(time.Millisecond), cs.calls.Load(), float64(cs.bytes.Load())/1e6)

	// Polls, each 5 s later with 3 logouts a minute arriving meanwhile
	// (a million a day across the cluster would be about 700).
	cs.bytes.Store(0)
	cs.calls.Store(0)
	other := newState(zap.NewNop(), c.Now)
	other.lend(st, nil)
	b.ResetTimer()
	cpu0 = cpuTime()
	for i := range b.N {
		b.StopTimer()
		c.Add(DefaultPoll)
		if i%4 == 0 {
			other.Publish(context.Background(), Event{Kind: SessionEnded, Subject: "new" + strconv.Itoa(i), At: c.Now(), Expires: c.Now().Add(24 * time.Hour)})
		}
		b.StartTimer()
		s.Sync(context.Background())
	}
	b.StopTimer()
	cpu := (cpuTime() - cpu0) / time.Duration(b.N)
	b.ReportMetric(float64(cpu.Microseconds())/1000, "ms-CPU/poll")
	b.ReportMetric(float64(cs.bytes.Load())/float64(b.N)/1000, "KB-read/poll")
	b.Logf("Redis, %d live logouts: one poll costs %.2f ms CPU and reads %.1f KB in %.1f storage calls (mean over %d polls, upkeep included)",
		live, float64(cpu.Microseconds())/1000, float64(cs.bytes.Load())/float64(b.N)/1000, float64(cs.calls.Load())/float64(b.N), b.N)

	// Propagation: two instances polling on their own every 5 s.
	real1, real2 := newState(zap.NewNop(), time.Now), newState(zap.NewNop(), time.Now)
	real1.lend(st, nil)
	real2.lend(st, nil)
	real2.Sync(context.Background())
	go real2.poll()
	defer real2.Destruct()
	var (
		mu    sync.Mutex
		delay []time.Duration
	)
	var wg sync.WaitGroup
	for i := range 20 {
		time.Sleep(time.Duration(250+((i*7919)%500)) * time.Millisecond) // spread over the poll phase
		sub := "prop" + strconv.Itoa(i)
		real1.Publish(context.Background(), Event{Kind: SessionEnded, Subject: sub, At: time.Now(), Expires: time.Now().Add(time.Hour)})
		sent := time.Now()
		wg.Go(func() {
			for {
				if _, ok := real2.Latest(SessionEnded, sub); ok {
					mu.Lock()
					delay = append(delay, time.Since(sent))
					mu.Unlock()
					return
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	slices.Sort(delay)
	b.Logf("Redis: a logout reached another instance (poll 5 s) after min %v, median %v, max %v (20 logouts)",
		delay[0].Round(10*time.Millisecond), delay[len(delay)/2].Round(10*time.Millisecond), delay[len(delay)-1].Round(10*time.Millisecond))
}
