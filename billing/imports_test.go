package billing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/billing/rating"
)

// count runs a counting query (or one reading a single number).
func (e *env) count(query string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.s.DB.Q().Get(context.Background(), &n, query, args...); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// lineOf is the line a failed import names, 0 when its error is no *rating.LineError.
func lineOf(err error) int {
	var le *rating.LineError
	if errors.As(err, &le) {
		return le.Line
	}
	return 0
}

func TestImportDirections(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		d := e.s.DB
		// A good file; spaces, +, 00 and dashes in codes are normalised; a repeated code: the
		// last row wins. progress hears every row.
		var seen []int
		v0 := e.ratingVersion()
		n, err := ImportDirections(ctx, d, strings.NewReader("id,code,direction,min_len,max_len\n"+
			"1,7,Russia,,\n"+
			"2,+7 927,Russia Mobile,11,11\n"+
			"2,00-79,Russia Mobile,10,12\n"+
			"3,49,Germany,0,0\n"+
			"3,49,Germany Fixed,5,15\n"), func(rows int) { seen = append(seen, rows) })
		if err != nil || n != 5 {
			t.Fatalf("import: %d rows, %v", n, err)
		}
		if fmt.Sprint(seen) != "[1 2 3 4 5]" {
			t.Fatalf("progress: %v", seen)
		}
		if n := e.count(`SELECT count(*) FROM directions`); n != 4 {
			t.Fatalf("%d directions", n)
		}
		if e.count(`SELECT count(*) FROM directions WHERE code = '49' AND name = 'Germany Fixed' AND min_len = 5 AND max_len = 15`) != 1 {
			t.Fatal("last row of a repeated code did not win")
		}
		if e.count(`SELECT count(*) FROM directions WHERE code IN ('7927', '79') AND id = 2`) != 2 {
			t.Fatal("codes not normalised")
		}
		if e.count(`SELECT count(*) FROM directions WHERE code = '7' AND min_len = 0 AND max_len = 32`) != 1 {
			t.Fatal("empty lengths not defaulted")
		}
		if e.ratingVersion() <= v0 {
			t.Fatal("import did not bump the rating version")
		}

		// Upsert by code: changed rows change, new rows arrive, others stay.
		if _, err := ImportDirections(ctx, d, strings.NewReader("id,code,direction,min_len,max_len\n1,7,Russia Fixed,,\n4,33,France,,\n"), nil); err != nil {
			t.Fatal(err)
		}
		if e.count(`SELECT count(*) FROM directions`) != 5 || e.count(`SELECT count(*) FROM directions WHERE code = '7' AND name = 'Russia Fixed'`) != 1 {
			t.Fatal("upsert")
		}

		// A bad row: its line number, and nothing of the file applied, even rows before it in
		// earlier batches (a full batch is 1000 rows).
		var big strings.Builder
		big.WriteString("id,code,direction,min_len,max_len\n")
		for i := 0; i < 2500; i++ {
			fmt.Fprintf(&big, "%d,9%d,Bulk,,\n", 100+i, 1000+i)
		}
		big.WriteString("5,1,Changed,,\n")
		big.WriteString("x,44,UK,,\n") // line 2503
		v1 := e.ratingVersion()
		if _, err := ImportDirections(ctx, d, strings.NewReader(big.String()), nil); lineOf(err) != 2503 {
			t.Fatalf("bad row: %v", err)
		}
		if e.count(`SELECT count(*) FROM directions`) != 5 || e.ratingVersion() != v1 {
			t.Fatal("a failed import changed the database")
		}
		for _, body := range []string{"", "code,id\n1,2\n", "id,code,direction,min_len,max_len\n1,7,R,9,3\n",
			"id,code,direction,min_len,max_len\n1,,R,,\n", "id,code,direction,min_len,max_len\n1,7,R\n"} {
			if _, err := ImportDirections(ctx, d, strings.NewReader(body), nil); lineOf(err) == 0 {
				t.Fatalf("%q: %v, want a line error", body, err)
			}
		}
		if e.count(`SELECT count(*) FROM directions`) != 5 || e.ratingVersion() != v1 {
			t.Fatal("a failed import changed the database")
		}
	})
}

func TestImportExportRates(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		d := e.s.DB
		if _, err := ImportDirections(ctx, d, strings.NewReader("id,code,direction,min_len,max_len\n1,7,Russia,,\n2,49,Germany,,\n"), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := AddSIPServer(ctx, d.Q(), SIPServerSpec{Name: "sip1", Address: "10.0.0.1"}); err != nil {
			t.Fatal(err)
		}
		e.ok(e.do(e.web, "addRoute", admin("route", "r1", "type", "sip", "sip_server", "10.0.0.1")))
		e.ok(e.do(e.web, "addRoute", admin("route", "r2", "type", "sip", "sip_server", "10.0.0.1")))
		e.ok(e.do(e.web, "addRates", admin("name", "base")))
		routes := objs(t, e.ok(e.do(e.web, "getRoutes", admin())))
		if len(routes) != 2 {
			t.Fatalf("routes: %v", routes)
		}
		r1, r2 := jstr(routes[0]["id"]), jstr(routes[1]["id"])
		if routes[0]["route"] != "r1" {
			r1, r2 = r2, r1
		}
		id := int64(e.count(`SELECT id FROM rates WHERE name = 'base'`))
		export := func() string {
			t.Helper()
			var out bytes.Buffer
			if err := ExportRates(ctx, d, id, &out); err != nil {
				t.Fatal(err)
			}
			return out.String()
		}
		importRates := func(replace bool, body string) (int, error) {
			return ImportRates(ctx, d, id, replace, strings.NewReader(strings.NewReplacer("R1", r1, "R2", r2).Replace(body)), nil)
		}

		// Import, then the same file again (an upsert), then export: the file comes back.
		file := "direction,cost,route,priority\n1,0.1,R1,\n1,0.25,R2,2\n2,0.000001,R1,1\n"
		v0 := e.ratingVersion()
		for range 2 {
			if n, err := importRates(false, file); err != nil || n != 3 {
				t.Fatalf("import rates: %d, %v", n, err)
			}
		}
		if e.ratingVersion() <= v0 {
			t.Fatal("import did not bump the rating version")
		}
		if e.entryCost(int(id), 1, 2) != 250000 {
			t.Fatal("import rates")
		}
		want := strings.NewReplacer("R1", r1, "R2", r2).Replace("direction,cost,route,priority\n1,0.1,R1,1\n1,0.25,R2,2\n2,0.000001,R1,1\n")
		if got := export(); got != want {
			t.Fatalf("export:\n%s\nwant:\n%s", got, want)
		}

		// Bad rows name their line, and a failed import changes no entry.
		v1 := e.ratingVersion()
		for body, line := range map[string]int{
			"direction,cost,route,priority\n1,0.5,R1,1\n1,0.1,999,1\n": 3, // no route
			"direction,cost,route,priority\n77,0.1,R1,1\n":             2, // no direction
			"direction,cost,route,priority\n1,-0.1,R1,1\n":             2,
			"direction,cost,route,priority\n1,0.1,R1,0\n":              2,
			"direction,cost,route,priority\n1,0.5,R1,1\n1,abc,R1,1\n":  3,
		} {
			if _, err := importRates(false, body); lineOf(err) != line {
				t.Fatalf("%q: %v, want line %d", body, err, line)
			}
		}
		if _, err := importRates(false, "direction,cost,route,priority\n1,0.1,999,1\n"); err == nil || !strings.Contains(err.Error(), "no route 999") {
			t.Fatalf("unknown route: %v", err)
		}
		if _, err := importRates(false, "direction,cost,route,priority\n77,0.1,R1,1\n"); err == nil || !strings.Contains(err.Error(), "no direction 77") {
			t.Fatalf("unknown direction: %v", err)
		}
		if export() != want || e.ratingVersion() != v1 {
			t.Fatal("a failed rates import changed the database")
		}

		// An unknown tariff: E_NOT_EXIST, for the import and the export.
		if _, err := ImportRates(ctx, d, id+100, false, strings.NewReader(file), nil); apierr.Code(err) != apierr.NotExist {
			t.Fatalf("import into an unknown tariff: %v", err)
		}
		if err := ExportRates(ctx, d, id+100, &bytes.Buffer{}); apierr.Code(err) != apierr.NotExist {
			t.Fatalf("export of an unknown tariff: %v", err)
		}

		// replace drops the entries the file does not have.
		if _, err := importRates(true, "direction,cost,route,priority\n2,1,R2,1\n"); err != nil {
			t.Fatal(err)
		}
		if got, want := export(), "direction,cost,route,priority\n2,1,"+r2+",1\n"; got != want {
			t.Fatalf("after replace: %q, want %q", got, want)
		}
	})
}

func TestImportDeck(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		d := e.s.DB
		if _, err := AddSIPServer(ctx, d.Q(), SIPServerSpec{Name: "sip1", Address: "10.0.0.1"}); err != nil {
			t.Fatal(err)
		}
		e.ok(e.do(e.web, "addRoute", admin("route", "carrierA", "type", "sip", "sip_server", "10.0.0.1")))
		e.ok(e.do(e.web, "addRoute", admin("route", "carrierB", "type", "sip", "sip_server", "10.0.0.1")))
		e.ok(e.do(e.web, "addRates", admin("name", "retail")))
		rates := int64(e.count(`SELECT id FROM rates WHERE name = 'retail'`))
		routeA := e.count(`SELECT id FROM routes WHERE name = 'carrierA'`)
		// An existing direction whose name the deck uses keeps its id; new ones go above the
		// highest id.
		if _, err := ImportDirections(ctx, d, strings.NewReader("id,code,direction,min_len,max_len\n500,4930,Germany - Fixed,10,12\n"), nil); err != nil {
			t.Fatal(err)
		}
		deck, err := os.ReadFile("../testdata/decks/carrier.csv")
		if err != nil {
			t.Fatal(err)
		}
		spec := DeckSpec{RatesID: rates, Route: "carrierA"}
		v0 := e.ratingVersion()
		res, err := ImportDeck(ctx, d, spec, bytes.NewReader(deck), nil)
		if err != nil {
			t.Fatal(err)
		}
		if res != (DeckResult{Rows: 395, Directions: 31, NewDirections: 30}) {
			t.Fatalf("result %+v", res)
		}
		if e.ratingVersion() != v0+1 {
			t.Fatalf("rating version %d after %d: want one bump", e.ratingVersion(), v0)
		}
		if n := e.count(`SELECT count(*) FROM directions`); n != 395 {
			t.Fatalf("%d direction codes", n)
		}
		if e.count(`SELECT count(DISTINCT id) FROM directions WHERE id > 500`) != 30 || e.count(`SELECT MAX(id) FROM directions`) != 530 {
			t.Fatal("new directions are not numbered above the highest id")
		}
		// 4930 was Germany - Fixed already: it keeps its lengths; the deck's codes of that
		// description join direction 500.
		if e.count(`SELECT count(*) FROM directions WHERE id = 500 AND name = 'Germany - Fixed'`) != 11 ||
			e.count(`SELECT min_len FROM directions WHERE code = '4930'`) != 10 {
			t.Fatal("Germany - Fixed")
		}
		// The tariff through the API: one direction per description, its rate, the route.
		view := objs(t, e.ok(e.do(e.web, "getRates", admin("id", fmt.Sprint(rates)))))
		if len(view) != 31 {
			t.Fatalf("getRates: %d directions", len(view))
		}
		found := false
		for _, v := range view {
			if v["direction"] == "Korea, Republic of" {
				found = true
				r := v["routing"].([]any)[0].(map[string]any)
				if jstr(r["cost"]) != "0.013" || jstr(r["route"]) != fmt.Sprint(routeA) || jstr(r["priority"]) != "1" {
					t.Fatalf("Korea: %v", r)
				}
			}
		}
		if !found {
			t.Fatalf("no Korea in %v", view)
		}
		// The tariff now rates a call: the longest prefix wins.
		if e.count(`SELECT e.cost FROM rate_entries e JOIN directions d ON d.id = e.direction_id WHERE d.code = '79900' OR d.code = '7990'`) != 31000 {
			t.Fatal("Russia - Mobile")
		}

		// The same deck again changes nothing but the version; a second route's deck at
		// priority 2 adds failover entries beside the first.
		if res, err := ImportDeck(ctx, d, spec, bytes.NewReader(deck), nil); err != nil || res.NewDirections != 0 {
			t.Fatalf("again: %+v %v", res, err)
		}
		if _, err := ImportDeck(ctx, d, DeckSpec{RatesID: rates, Route: "carrierB", Priority: 2},
			strings.NewReader("prefix,description,rate\n49,Germany - Fixed,0.006\n"), nil); err != nil {
			t.Fatal(err)
		}
		if e.count(`SELECT count(*) FROM rate_entries WHERE rates_id = ?`, rates) != 32 {
			t.Fatal("carrierB's entry")
		}

		// Bad decks: the line, and nothing applied (not even the rows of earlier batches).
		before := e.count(`SELECT count(*) FROM rate_entries`) + e.count(`SELECT count(*) FROM directions`)
		v1 := e.ratingVersion()
		var big strings.Builder
		big.WriteString("Prefix;Destination;Rate\n")
		for i := 0; i < 2500; i++ {
			fmt.Fprintf(&big, "99%d;Bulk %d;0,01\n", 1000+i, i)
		}
		bad := big.String() + "99;Bulk 7;0,02\n" // line 2502: another rate for Bulk 7
		for body, line := range map[string]int{
			bad:                             2502,
			big.String() + "99;Bulk;zero\n": 2502,
			"Prefix;Destination;Rate\n49;Germany;0,0049\n4x;Germany;0,0049\n": 3,
			"": 1,
		} {
			_, err := ImportDeck(ctx, d, spec, strings.NewReader(body), nil)
			if lineOf(err) != line {
				t.Fatalf("line %d: %v", line, err)
			}
		}
		if _, err := ImportDeck(ctx, d, spec, strings.NewReader(bad), nil); err == nil || !strings.Contains(err.Error(), `"Bulk 7" costs 0.02 here but 0.01 at line 9`) {
			t.Fatalf("two rates: %v", err)
		}
		for _, s := range []DeckSpec{{RatesID: rates, Route: "nowhere"}, {RatesID: rates + 100, Route: "carrierA"}} {
			if _, err := ImportDeck(ctx, d, s, bytes.NewReader(deck), nil); apierr.Code(err) != apierr.NotExist {
				t.Fatalf("%+v: %v", s, err)
			}
		}
		if _, err := ImportDeck(ctx, d, DeckSpec{RatesID: rates, Route: "carrierA", Priority: -1}, bytes.NewReader(deck), nil); apierr.Code(err) != apierr.InvalidArgument {
			t.Fatalf("priority -1: %v", err)
		}
		if e.count(`SELECT count(*) FROM rate_entries`)+e.count(`SELECT count(*) FROM directions`) != before || e.ratingVersion() != v1 {
			t.Fatal("a failed deck import changed the database")
		}

		// Replace: the route's entries the deck does not price go; the other route's stay.
		if _, err := ImportDeck(ctx, d, DeckSpec{RatesID: rates, Route: fmt.Sprint(routeA), Replace: true},
			strings.NewReader("7;Russia - Fixed;0,02\n"), nil); err != nil {
			t.Fatal(err)
		}
		if e.count(`SELECT count(*) FROM rate_entries WHERE rates_id = ?`, rates) != 2 {
			t.Fatal("replace")
		}

		// export directions writes what import directions reads back.
		var out bytes.Buffer
		if err := ExportDirections(ctx, d, &out); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(out.String(), "id,code,direction,min_len,max_len\n530,1,United States,0,32\n") || !strings.Contains(out.String(), "\n500,4930,Germany - Fixed,10,12\n") ||
			!strings.Contains(out.String(), `"Korea, Republic of"`) {
			t.Fatalf("export: %.300s", out.String())
		}
		n, err := ImportDirections(ctx, d, bytes.NewReader(out.Bytes()), nil)
		if err != nil || n != 395 {
			t.Fatalf("round trip: %d %v", n, err)
		}
	})
}
