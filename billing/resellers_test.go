package billing

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/money"
)

// resellerTariff makes a by_second tariff through the API with Russia (direction 1) at
// cost per minute via route1, and answers its id.
func resellerTariff(t testing.TB, e *env, s rtSeed, name, cost string) string {
	t.Helper()
	e.ok(e.do(e.web, "addRates", admin("name", name, "bill_type", "by_second")))
	var id int64
	if err := e.s.DB.Q().Get(context.Background(), &id, `SELECT id FROM rates WHERE name = ?`, name); err != nil {
		t.Fatal(err)
	}
	ids := strconv.FormatInt(id, 10)
	e.ok(e.do(e.web, "addDirection", admin("rates", ids, "direction", "1", "cost", cost, "route", strconv.FormatInt(s.route1, 10))))
	return ids
}

// resellerChain: top (22, buys at 0.03/min) manages corp (22, buys at 0.06/min), which
// manages its users (base tariff: 0.10/min + 0.05). Balances are given down the chain, so
// top's and corp's accounts pay for what they give.
func resellerChain(t testing.TB, e *env, s rtSeed, topBalance, corpBalance string) {
	t.Helper()
	carrier := resellerTariff(t, e, s, "carrier", "0.03")
	wholesale := resellerTariff(t, e, s, "wholesale", "0.06")
	e.register(admin(), "top", 22, "balance", topBalance)
	e.updateUser("top", "rates", carrier)
	e.register(user("top"), "corp", 22, "balance", corpBalance)
	e.updateUser("corp", "rates", wholesale)
}

func resellerUser(t testing.TB, e *env, s rtSeed, name, ext, balance string) {
	t.Helper()
	e.register(user("corp"), name, 11, "sip_server", "10.0.0.1", "sip_extension", ext, "balance", balance)
	e.updateUser(name, "rates", strconv.FormatInt(s.base.ID, 10))
}

// checkBooks: every account's balance is its ledger's sum.
func checkBooks(t *testing.T, d *db.DB, names ...string) {
	t.Helper()
	for _, n := range names {
		if bal, led, _ := balanceOf(t, d, n); bal != led {
			t.Fatalf("%s: balance %s, ledger %s", n, bal, led)
		}
	}
}

func TestResellerChain(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		resellerChain(t, e, s, "2", "0.6")
		resellerUser(t, e, s, "alice", "10001", "0.5") // corp keeps 0.10
		// alice: 0.45 / 0.10 = 270 s; corp: 0.10 / 0.06 = 100 s; top: 1.40 / 0.03: the shortest is corp's.
		a := e.ast("callPrepare", "10001", "destination", "74950000001", "uniqueid", "r1")
		if !strings.HasPrefix(a, "Allowed 100 ") {
			t.Fatalf("callPrepare: %q", a)
		}
		held := func(n string) money.Micro { _, _, h := balanceOf(t, e.s.DB, n); return h }
		if held("alice") != 216_667 || held("corp") != 100_000 || held("top") != 50_000 {
			t.Fatalf("reserved alice %s corp %s top %s", held("alice"), held("corp"), held("top"))
		}
		// corp holds all it has: its other users' calls are declined, alice's own too.
		if a := e.ast("callPrepare", "10001", "destination", "74950000001", "uniqueid", "r2"); a != "Declined "+apierr.InsufficientMoney {
			t.Fatalf("second call: %q", a)
		}
		// corp cannot give away what its users' calls hold.
		e.fails(e.do(e.web, "updateAccount", user("corp", "username", "alice", "balance", "0.51")), apierr.InsufficientMoney, 200)
		// A retried callPrepare replaces every level's reservation.
		if a := e.ast("callPrepare", "10001", "destination", "74950000001", "uniqueid", "r1"); !strings.HasPrefix(a, "Allowed 100 ") {
			t.Fatalf("retried callPrepare: %q", a)
		}
		// corp does not buy the UK: its users cannot call there.
		if a := e.ast("callPrepare", "10001", "destination", "441234567890"); a != "Declined "+apierr.Unroutable {
			t.Fatalf("UK: %q", a)
		}
		a = e.ast("callFinish", "10001", "destination", "74950000001", "uniqueid", "r1", "length", "61", "status", "ANSWER")
		if !strings.HasPrefix(a, "Saved ") {
			t.Fatalf("callFinish: %q", a)
		}
		// 61 s: alice 0.151667, corp 0.061, top 0.0305.
		for _, c := range []struct {
			name string
			want money.Micro
		}{{"alice", 500_000 - 151_667}, {"corp", 100_000 - 61_000}, {"top", 1_400_000 - 30_500}} {
			if bal, led, h := balanceOf(t, e.s.DB, c.name); bal != c.want || led != bal || h != 0 {
				t.Fatalf("%s: balance %s ledger %s held %s, want %s", c.name, bal, led, h, c.want)
			}
		}
		// A call without uniqueid settles its own levels too.
		if a := e.ast("callPrepare", "10001", "destination", "74950000002"); !strings.HasPrefix(a, "Allowed 39 ") { // corp: 0.039 / 0.06
			t.Fatalf("no uniqueid: %q", a)
		}
		e.ast("callFinish", "10001", "destination", "74950000002", "length", "10")
		if held("alice")+held("corp")+held("top") != 0 {
			t.Fatal("a call without uniqueid left a level reserved")
		}
		checkBooks(t, e.s.DB, "alice", "corp", "top")
		// The margin each reseller made, in getStats.
		st := e.ok(e.do(e.web, "getStats", user("corp", "financials", "true")))
		rs, _ := st.Response.(map[string]any)["resale"].(map[string]any)
		// sold 0.151667 + 0.066667, bought 0.061 + 0.01.
		if jstr(rs["calls"]) != "2" || jstr(rs["sold"]) != "0.218334" || jstr(rs["bought"]) != "0.071" || jstr(rs["margin"]) != "0.147334" {
			t.Fatalf("corp's resale: %v", rs)
		}
		st = e.ok(e.do(e.web, "getStats", user("top", "financials", "true")))
		rs, _ = st.Response.(map[string]any)["resale"].(map[string]any)
		if jstr(rs["sold"]) != "0.071" || jstr(rs["bought"]) != "0.0355" || jstr(rs["margin"]) != "0.0355" {
			t.Fatalf("top's resale: %v", rs)
		}
		if st := e.ok(e.do(e.web, "getStats", user("alice", "financials", "true"))); strings.Contains(st.Body, "resale") {
			t.Fatalf("a plain user sees resale: %s", st.Body)
		}
	})
}

// TestResellerConcurrency: many users of one reseller call at once through two daemons on
// one database; no level spends more than it has, and the books balance.
func TestResellerConcurrency(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			open := samePool(t, dialect)
			e := newEnv(t, open())
			s2, err := Start(context.Background(), open(), testConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err != nil {
				t.Fatal(err)
			}
			defer s2.Close()
			s := seedCalls(t, e)
			resellerChain(t, e, s, "3", "2.5") // top keeps 0.50, corp 0.50 after its users' 2.00
			names := []string{"corp", "top"}
			for i := range 8 {
				resellerUser(t, e, s, fmt.Sprintf("u%d", i), strconv.Itoa(10100+i), "0.25")
				names = append(names, fmt.Sprintf("u%d", i))
			}
			if err := s2.reloadRating(context.Background(), true); err != nil { // the tariffs made through daemon 1
				t.Fatal(err)
			}
			hs := []http.Handler{e.h, s2.Handler()}
			var wg sync.WaitGroup
			var mu sync.Mutex
			var calls []prepared
			for i := range 64 {
				wg.Add(1)
				go func(i int) {
					defer wg.Done()
					ext, uid := strconv.Itoa(10100+i%8), fmt.Sprintf("k%d", i)
					_, body := raw(hs[i%2], astKey, "callPrepare", kv("login", ext, "destination", "74950000001", "uniqueid", uid))
					if f := fields(body); f[0] == "Allowed" {
						secs, _ := strconv.Atoi(f[1])
						mu.Lock()
						calls = append(calls, prepared{uid: uid, secs: secs, line: ext})
						mu.Unlock()
					} else if body != "Declined "+apierr.InsufficientMoney {
						t.Errorf("callPrepare: %q", body)
					}
				}(i)
			}
			wg.Wait()
			for _, n := range names {
				if bal, _, h := balanceOf(t, e.s.DB, n); h > bal {
					t.Fatalf("%s holds %s of %s", n, h, bal)
				}
			}
			total := 0
			for _, c := range calls {
				total += c.secs
			}
			// corp's 0.50 at 0.06/min buys 500 s in all, whatever its users hold.
			if total > 500 || total < 480 {
				t.Fatalf("granted %d s in all; corp pays 500", total)
			}
			t.Logf("%d of 64 calls granted, %d s", len(calls), total)
			for i, c := range calls {
				wg.Add(1)
				go func(i int, c prepared) {
					defer wg.Done()
					raw(hs[(i+1)%2], astKey, "callFinish", kv("login", c.line, "destination", "74950000001", "uniqueid", c.uid,
						"length", strconv.Itoa(c.secs*(i%5)/4+i%3)))
				}(i, c)
			}
			wg.Wait()
			checkBooks(t, e.s.DB, names...)
			for _, n := range names {
				if bal, _, h := balanceOf(t, e.s.DB, n); bal < 0 || h != 0 {
					t.Fatalf("%s: balance %s, held %s", n, bal, h)
				}
			}
		})
	}
}
