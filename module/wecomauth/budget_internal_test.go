package wecomauth

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/wecomgate/wecomgate/module/internal/cluster"
)

// The budget's claims, played out: instances that join, leave, crash and
// restart around one storage of heartbeats, each spending all it may at
// every step, while WeCom's own count (every call ever made, in its
// window) is checked at every step. The heartbeats follow the cluster
// package's order: claims written, the others read, then Read.
func TestBudgetClaimsNeverExceedTheQuota(t *testing.T) {
	limits := []QuotaLimit{
		{Calls: 200, Window: caddy.Duration(time.Minute)},
		{Calls: 1000, Window: caddy.Duration(10 * time.Minute)},
	}
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			w := newBudgetWorld(t, limits, seed)
			for range 3 {
				w.start()
			}
			for step := range 2 * 3600 { // two hours, a second a step
				w.tick(step)
			}
			t.Logf("%d calls in two hours", w.spent)
			if w.spent < 4000 {
				t.Errorf("%d calls in two hours, want at least 4000 of the 12,000 the 10-minute quota allows (a third, with instances crashing every few minutes): the shares starve", w.spent)
			}
		})
	}
}

// A lone instance reaches its share (the quota less the reserve) within
// a few heartbeats, and one that joins gets the reserve at once and its
// even part once the other has seen it.
func TestBudgetSharesGrowAndSplit(t *testing.T) {
	limits := []QuotaLimit{{Calls: 1000, Window: caddy.Duration(time.Minute)}}
	w := newBudgetWorld(t, limits, 1)
	a := w.start()
	w.beat(a)
	if g := w.granted(a); g != 950 {
		t.Fatalf("lone instance's first grant %d, want 950 (1000 less the reserve)", g)
	}
	b := w.start()
	w.beat(b)
	if g := w.granted(b); g != 50 {
		t.Fatalf("joining instance's grant %d, want the reserve 50", g)
	}
	for range 6 { // b's share doubles a beat, once a has made room
		w.beat(a)
		w.beat(b)
	}
	if ga, gb := w.granted(a), w.granted(b); ga != 475 || gb != 475 {
		t.Fatalf("grants %d and %d, want 475 each", ga, gb)
	}
	// One leaves having spent 300: the other grows only into what the
	// leaver did not spend, until the window has passed.
	for range 300 {
		w.spend(b)
	}
	w.leave(b)
	for range 6 {
		w.beat(a)
	}
	if g := w.granted(a); g != 650 {
		t.Fatalf("grant after the other left having spent 300: %d, want 650", g)
	}
	w.now = w.now.Add(time.Minute + 2*w.quiet + time.Second) // its window, and a hold for calls under way
	w.mono = w.mono.Add(time.Minute + 2*w.quiet + time.Second)
	for range 2 {
		w.beat(a)
	}
	if g := w.granted(a); g != 950 {
		t.Fatalf("grant a window after the other left: %d, want 950", g)
	}
}

// An instance cut off from storage goes on a hold (two Quiet spans: a
// poll that hangs is no reason to stop) and then stops spending: the
// others count what it may have spent that long, and no longer.
func TestBudgetQuietInstanceStops(t *testing.T) {
	limits := []QuotaLimit{{Calls: 1000, Window: caddy.Duration(time.Minute)}}
	w := newBudgetWorld(t, limits, 1)
	a := w.start()
	w.beat(a)
	w.mono = w.mono.Add(2 * w.quiet)
	if !w.spend(a) {
		t.Fatal("refused a call within the quiet time")
	}
	w.mono = w.mono.Add(time.Second)
	if w.spend(a) {
		t.Fatal("spent past the quiet time without a heartbeat")
	}
}

type budgetWorld struct {
	t      *testing.T
	rng    *rand.Rand
	limits []QuotaLimit
	now    time.Time // the handlers' clock
	mono   time.Time // the machines' clock
	quiet  time.Duration
	poll   time.Duration
	insts  []*budgetInst
	// records: instance → its heartbeat as stored.
	records map[*budgetInst]budgetRecord
	calls   []time.Time // every call WeCom saw
	spent   int
}

type budgetInst struct {
	b       *budgets
	phase   int // its second of the poll
	crashed bool
	left    bool
	mute    bool // cut off from storage: spends, no heartbeats
	beaten  bool
	// A heartbeat under way: claims written, the others to be read at
	// readAt (storage is slow; others act meanwhile).
	writing bool
	readAt  int
	claims  map[string]cluster.Claim
	// What this instance knows of the others, as the cluster's peers.
	known map[*budgetInst]*knownRecord
}

type budgetRecord struct {
	written time.Time
	left    bool
	claims  map[string]cluster.Claim
}

type knownRecord struct {
	rec      budgetRecord
	seen     time.Time // when this reader saw it move
	vanished bool
}

const budgetKey = "wwcorp\x00user/get"

func newBudgetWorld(t *testing.T, limits []QuotaLimit, seed uint64) *budgetWorld {
	poll := 5 * time.Second
	return &budgetWorld{
		t: t, rng: rand.New(rand.NewPCG(seed, 1)), limits: limits,
		now: time.Unix(1_800_000_000, 0), mono: time.Unix(1_000, 0),
		poll: poll, quiet: 3 * poll, records: map[*budgetInst]budgetRecord{},
	}
}

func (w *budgetWorld) start() *budgetInst {
	b := newBudgets("http://wecom")
	b.mono = func() time.Time { return w.mono }
	b.api(budgetKey, w.limits)
	in := &budgetInst{b: b, phase: w.rng.IntN(int(w.poll / time.Second)), known: map[*budgetInst]*knownRecord{}}
	w.insts = append(w.insts, in)
	return in
}

func (w *budgetWorld) hold() time.Duration { return 2 * w.quiet }

// beat is one whole heartbeat of in, at once.
func (w *budgetWorld) beat(in *budgetInst) {
	w.write(in)
	w.read(in)
}

// write is a heartbeat's first half: the claims stored (after a first
// read, the first time).
func (w *budgetWorld) write(in *budgetInst) {
	if !in.beaten {
		in.b.Read(w.now, w.peers(in), w.hold())
		in.beaten = true
	}
	in.claims = in.b.Claims(w.now)
	w.records[in] = budgetRecord{written: w.now, claims: in.claims}
	in.writing = true
}

// read is its second half: the others read, and the record written again
// where the grant came out lower than the claim.
func (w *budgetWorld) read(in *budgetInst) {
	in.writing = false
	in.b.Read(w.now, w.peers(in), w.hold())
	if granted := in.b.Granted(w.now); cluster.Lowered(in.claims, granted) {
		w.records[in] = budgetRecord{written: w.records[in].written, claims: granted}
	}
}

// peers reads the records into in's memory, as the cluster's peers do: a
// record seen to move is live from then; one no longer there is kept,
// gone, with its claims, as long as they may count.
func (w *budgetWorld) peers(in *budgetInst) []cluster.Peer {
	for other, r := range w.records {
		if other == in {
			continue
		}
		k := in.known[other]
		if k == nil || k.vanished || k.rec.written != r.written || k.rec.left != r.left {
			k = &knownRecord{seen: w.now}
			in.known[other] = k
		}
		k.rec = r
	}
	var peers []cluster.Peer
	for other, k := range in.known {
		if _, ok := w.records[other]; !ok {
			k.vanished = true
		}
		if w.now.Sub(k.seen) > 10*time.Minute+w.hold()+time.Duration(w.limits[len(w.limits)-1].Window) {
			delete(in.known, other)
			continue
		}
		peers = append(peers, cluster.Peer{
			Live:   !k.rec.left && !k.vanished && w.now.Sub(k.seen) <= w.quiet,
			Left:   k.rec.left,
			Seen:   k.seen,
			Claims: k.rec.claims,
		})
	}
	return peers
}

func (w *budgetWorld) leave(in *budgetInst) {
	claims := in.b.Leave(w.now)
	w.records[in] = budgetRecord{written: w.now, left: true, claims: claims}
	in.left = true
}

func (w *budgetWorld) granted(in *budgetInst) int {
	in.b.mu.Lock()
	defer in.b.mu.Unlock()
	return in.b.apis[budgetKey].granted[time.Duration(w.limits[0].Window)]
}

// spend makes one call if in's budget allows it, as spend does.
func (w *budgetWorld) spend(in *budgetInst) bool {
	in.b.mu.Lock()
	defer in.b.mu.Unlock()
	a := in.b.api(budgetKey, w.limits)
	if _, ok := in.b.roomLocked(a, prioLogin, w.now); !ok {
		return false
	}
	for _, win := range a.windows {
		win.add(w.now)
	}
	w.calls = append(w.calls, w.now)
	w.spent++
	return true
}

func (w *budgetWorld) tick(step int) {
	// Now and then an instance joins, leaves, crashes, goes mute or
	// comes back, or storage loses every record; a crashed or left one
	// may restart as a new instance.
	if w.rng.IntN(120) == 0 {
		var running []*budgetInst
		for _, in := range w.insts {
			if !in.crashed && !in.left {
				running = append(running, in)
			}
		}
		switch r := w.rng.IntN(6); {
		case r == 0 || len(running) == 0:
			w.start()
		case r == 1:
			w.leave(running[w.rng.IntN(len(running))])
		case r == 2:
			running[w.rng.IntN(len(running))].crashed = true
		case r == 3:
			in := running[w.rng.IntN(len(running))]
			in.mute = !in.mute
		case r == 4 && w.rng.IntN(4) == 0:
			clear(w.records) // FLUSHALL
		default:
			if len(running) < 6 {
				w.start()
			}
		}
	}
	for _, in := range w.insts {
		if in.crashed || in.left {
			continue
		}
		switch {
		case in.writing && step >= in.readAt:
			w.read(in)
		case !in.writing && !in.mute && step%int(w.poll/time.Second) == in.phase:
			w.write(in)
			in.readAt = step + w.rng.IntN(3) // the others' records load 0–2 s later
			if in.readAt == step {
				w.read(in)
			}
		}
		for range w.rng.IntN(20) {
			w.spend(in)
		}
	}
	longest := time.Duration(w.limits[len(w.limits)-1].Window)
	for len(w.calls) > 0 && w.now.Sub(w.calls[0]) >= longest {
		w.calls = w.calls[1:]
	}
	for _, l := range w.limits {
		win, n := time.Duration(l.Window), 0
		for _, c := range w.calls {
			if w.now.Sub(c) < win {
				n++
			}
		}
		if n > l.Calls {
			w.t.Fatalf("step %d: WeCom counted %d calls in the last %v, over the quota of %d", step, n, win, l.Calls)
		}
	}
	w.now = w.now.Add(time.Second)
	w.mono = w.mono.Add(time.Second)
}
