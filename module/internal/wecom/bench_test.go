package wecom_test

import (
	"context"
	"testing"
)

// BenchmarkGetUserCachedToken measures one user/get against the simulator
// over loopback with the token already cached: the cost of a recheck.
func BenchmarkGetUserCachedToken(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	if _, err := e.c.Token(ctx, e.corp); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.c.GetUser(ctx, e.corp, "alice"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetUserCachedTokenParallel(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	if _, err := e.c.Token(ctx, e.corp); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.c.GetUser(ctx, e.corp, "alice"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkTokenCached is the cache hit alone.
func BenchmarkTokenCached(b *testing.B) {
	e := newEnv(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.c.Token(ctx, e.corp); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
