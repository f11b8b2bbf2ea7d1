package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
)

func TestImportDirectionsAndRates(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) { testImports(t, dbtest.DSN(t, dialect)) })
	}
}

func testImports(t *testing.T, dsn string) {
	ctx := context.Background()
	dir := t.TempDir()
	var out, errb bytes.Buffer
	cli := func(args ...string) error {
		out.Reset()
		errb.Reset()
		return run(ctx, args, &out, &errb)
	}
	if err := cli("init", "--db", dsn, "--admin-user", "root", "--admin-password", "pw", "--api-key", "0123456789abc"); err != nil {
		t.Fatal(err, errb.String())
	}
	d, err := db.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	q := d.Q()
	count := func(query string, args ...any) int {
		t.Helper()
		var n int
		if err := q.Get(ctx, &n, query, args...); err != nil {
			t.Fatal(err)
		}
		return n
	}
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	version := func() int { return count(`SELECT version FROM rating_version`) }

	// What the imports do to the database is billing's (billing/imports_test.go); here, the
	// commands: their files, flags, output and messages.
	good := file("good.csv", "id,code,direction,min_len,max_len\n"+
		"1,7,Russia,,\n"+
		"2,+7 927,Russia Mobile,11,11\n"+
		"2,00-79,Russia Mobile,10,12\n"+
		"3,49,Germany,0,0\n"+
		"3,49,Germany Fixed,5,15\n")
	v0 := version()
	if err := cli("import", "directions", "--db", dsn, good); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "imported 5 directions") || errb.Len() != 0 {
		t.Fatalf("output %q, stderr %q (no progress off a terminal)", out.String(), errb.String())
	}
	if n := count(`SELECT count(*) FROM directions`); n != 4 || version() <= v0 {
		t.Fatalf("%d directions, rating version %d after %d", n, version(), v0)
	}

	// A bad row: the file and its line, and nothing of the file applied.
	v1 := version()
	err = cli("import", "directions", "--db", dsn, file("bad.csv", "id,code,direction,min_len,max_len\n5,1,Changed,,\nx,44,UK,,\n"))
	if err == nil || !strings.Contains(err.Error(), "bad.csv:3:") || !strings.Contains(err.Error(), "nothing imported") {
		t.Fatalf("bad row: %v", err)
	}
	if count(`SELECT count(*) FROM directions`) != 4 || version() != v1 {
		t.Fatal("a failed import changed the database")
	}
	if err := cli("import", "directions", "--db", dsn, file("empty.csv", "")); err == nil || !strings.Contains(err.Error(), "empty.csv:1:") {
		t.Fatalf("empty file: %v", err)
	}
	if err := cli("import", "directions", "--db", dsn, filepath.Join(dir, "missing.csv")); err == nil {
		t.Fatal("missing file accepted")
	}
	if err := cli("import", "directions", "--db", dsn); err == nil {
		t.Fatal("no file accepted")
	}

	// Rates: import, flags after the file, a bad row, an unknown tariff, export, --replace.
	if _, err := q.Exec(ctx, `INSERT INTO routes (name) VALUES ('r1'), ('r2')`); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Exec(ctx, `INSERT INTO rates (name, bill_type) VALUES ('base', 'byminute')`); err != nil {
		t.Fatal(err)
	}
	rates := file("rates.csv", "direction,cost,route,priority\n1,0.1,1,\n1,0.25,2,2\n2,0.000001,1,1\n")
	if err := cli("import", "rates", "--db", dsn, "--rates", "1", rates); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "imported 3 entries of tariff 1") || count(`SELECT count(*) FROM rate_entries WHERE rates_id = 1`) != 3 {
		t.Fatalf("import rates: %q", out.String())
	}
	if err := cli("import", "rates", "--db", dsn, rates, "--rates", "1"); err != nil { // flags after the file
		t.Fatal(err)
	}
	err = cli("import", "rates", "--db", dsn, "--rates", "1", file("r.csv", "direction,cost,route,priority\n1,0.5,1,1\n1,0.1,9,1\n"))
	if err == nil || !strings.Contains(err.Error(), "r.csv:3: no route 9") {
		t.Fatalf("bad rates row: %v", err)
	}
	if count(`SELECT cost FROM rate_entries WHERE direction_id = 1 AND priority = 1`) != 100000 {
		t.Fatal("a failed rates import changed an entry")
	}
	if err := cli("import", "rates", "--db", dsn, "--rates", "9", rates); err == nil {
		t.Fatal("unknown tariff accepted")
	}
	if err := cli("import", "rates", "--db", dsn, rates); err == nil {
		t.Fatal("no --rates accepted")
	}
	if err := cli("export", "rates", "--db", dsn, "--rates", "1"); err != nil {
		t.Fatal(err)
	}
	if want := "direction,cost,route,priority\n1,0.1,1,1\n1,0.25,2,2\n2,0.000001,1,1\n"; out.String() != want {
		t.Fatalf("export:\n%s\nwant:\n%s", out.String(), want)
	}
	// --replace drops the entries the file does not have.
	if err := cli("import", "rates", "--db", dsn, "--rates", "1", "--replace", file("one.csv", "direction,cost,route,priority\n2,1,2,1\n")); err != nil {
		t.Fatal(err)
	}
	if err := cli("export", "rates", "--db", dsn, "--rates", "1"); err != nil || out.String() != "direction,cost,route,priority\n2,1,2,1\n" {
		t.Fatalf("after --replace: %v %q", err, out.String())
	}
	if err := cli("export", "rates", "--db", dsn, "--rates", "9"); err == nil {
		t.Fatal("export of an unknown tariff")
	}
}
