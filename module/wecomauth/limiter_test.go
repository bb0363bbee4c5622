package wecomauth

import (
	"fmt"
	"testing"
	"time"
)

func TestFailureLimiterWindowAndBound(t *testing.T) {
	l := newFailureLimiter(&LoginRate{Failures: 2})
	now := time.Unix(1000, 0)
	l.fail("1.2.3.4", now)
	if blocked, _ := l.blocked("1.2.3.4", now); blocked {
		t.Fatal("blocked after one failure of two")
	}
	l.fail("1.2.3.4", now)
	blocked, retry := l.blocked("1.2.3.4", now.Add(10*time.Second))
	if !blocked || retry != 50 {
		t.Fatalf("blocked=%v retry=%d, want blocked for 50 s", blocked, retry)
	}
	if blocked, _ := l.blocked("5.6.7.8", now); blocked {
		t.Fatal("another address blocked")
	}
	if blocked, _ := l.blocked("1.2.3.4", now.Add(time.Minute)); blocked {
		t.Fatal("still blocked in the next window")
	}

	// A flood from many addresses stays within maxTrackedIPs entries; the
	// addresses past it share one bucket.
	for i := range maxTrackedIPs + 1000 {
		l.fail(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), now.Add(time.Minute))
	}
	if n := len(l.counts); n > maxTrackedIPs+1 {
		t.Fatalf("limiter tracks %d entries", n)
	}
	if blocked, _ := l.blocked("192.0.2.1", now.Add(time.Minute)); !blocked {
		t.Error("an untracked address is not limited once the overflow bucket is full")
	}
}
