package billing

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// BenchmarkGetRates200k is getRates through the router on a tariff of 200,000 entries
// (200,000 directions) on SQLite: the whole tariff (today's answer without limit), a page
// of 100 at the start and deep in it, and a search.
func BenchmarkGetRates200k(b *testing.B) {
	e, _ := benchEnv(b)
	ctx := context.Background()
	e.ok(e.do(e.web, "addRoute", admin("route", "carrier", "type", "sip", "sip_server", "10.0.0.1")))
	e.ok(e.do(e.web, "addRates", admin("name", "big")))
	var id int64
	if err := e.s.DB.Q().Get(ctx, &id, `SELECT id FROM rates WHERE name = 'big'`); err != nil {
		b.Fatal(err)
	}
	var deck strings.Builder
	deck.WriteString("prefix;description;rate\n")
	for i := range 200_000 {
		fmt.Fprintf(&deck, "%d;Zone %d;0,%04d\n", 1_000_000+i, i, 1+i%9000)
	}
	if _, err := ImportDeck(ctx, e.s.DB, DeckSpec{RatesID: id, Route: "carrier"}, strings.NewReader(deck.String()), nil); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		args []string
	}{
		{"all", nil},
		{"limit=100", []string{"limit", "100"}},
		{"limit=100,offset=150000", []string{"limit", "100", "offset", "150000"}},
		{"limit=100,search", []string{"limit", "100", "search", "zone 1999"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			params := admin(append([]string{"id", fmt.Sprint(id)}, c.args...)...)
			var size int
			b.ReportAllocs()
			for b.Loop() {
				code, body := raw(e.h, e.web, "getRates", params)
				if code != 200 || !strings.HasPrefix(body, `{"result":true`) {
					b.Fatalf("%d %.200s", code, body)
				}
				size = len(body)
			}
			b.ReportMetric(float64(size), "bytes/answer")
		})
	}
}
