package billing

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
	"github.com/narayana/narayanad/keys"
)

// benchEnv is a daemon on a fresh SQLite file with the call-test rating data, for the
// in-process benchmarks (no HTTP sockets: the router is called directly).
func benchEnv(b *testing.B) (*env, rtSeed) {
	d := dbtest.OpenEmpty(b, db.SQLite)
	cfg := testConfig()
	if err := Bootstrap(context.Background(), d, cfg, adminName, md5hex("adminpw"), webKey); err != nil {
		b.Fatal(err)
	}
	s := New(d, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	e := &env{t: b, s: s, h: s.Handler(), web: webKey}
	seed := seedCalls(b, e)
	return e, seed
}

// BenchmarkBind is argument binding of a method with typed arguments and defaults.
func BenchmarkBind(b *testing.B) {
	s := New(nil, testConfig(), nil)
	m := s.Methods["registerUser"]
	params := map[string]string{"user": "alice", "web_password": md5hex("x"), "accesslevel": "11",
		"balance": "12.50", "sip_srtp": "yes", "login": "admin"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.bind(params); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGate is the key gate for a server key naming a user by SIP account: Admit
// (bans, cached key, source mask) then Authorize (user lookup, level, ownership).
func BenchmarkGate(b *testing.B) {
	e, s := benchEnv(b)
	callUser(b, e, s, "alice", "20001", "10")
	g := e.s.Gate
	ctx := context.Background()
	remote := netip.MustParseAddr("127.0.0.1")
	b.ReportAllocs()
	for b.Loop() {
		k, err := g.Admit(ctx, astKey, remote, false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := g.Authorize(ctx, k, keys.Request{Method: "callPrepare", Level: 50, AllowLocked: true, Login: "20001"}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCallPrepare is callPrepare through the router on SQLite, many users in
// parallel; BenchmarkCallCycle adds callFinish.
func BenchmarkCallPrepare(b *testing.B) { benchCalls(b, false) }
func BenchmarkCallCycle(b *testing.B)   { benchCalls(b, true) }

func benchCalls(b *testing.B, finish bool) {
	e, s := benchEnv(b)
	const users = 64
	for i := 0; i < users; i++ {
		callUser(b, e, s, fmt.Sprintf("u%d", i), fmt.Sprintf("%05d", 30000+i), "1000000")
	}
	runCalls(b, e, users, "74951234567", "65", finish)
}

// runCalls runs callPrepare (and with finish callFinish of length secs) through the router
// in parallel, for the users' extensions 30000 up, to destination.
func runCalls(b *testing.B, e *env, users int, destination, secs string, finish bool) {
	var n atomic.Int64
	b.ReportAllocs()
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			p := url.Values{"login": {fmt.Sprintf("%05d", 30000+i%int64(users))}, "destination": {destination},
				"uniqueid": {fmt.Sprintf("b%d", i)}}
			if _, body := raw(e.h, astKey, "callPrepare", p); body[:7] != "Allowed" {
				b.Fatal(body)
			}
			if finish {
				p.Set("length", secs)
				p.Set("status", "ANSWER")
				if _, body := raw(e.h, astKey, "callFinish", p); body[:5] != "Saved" {
					b.Fatal(body)
				}
			}
		}
	})
}
