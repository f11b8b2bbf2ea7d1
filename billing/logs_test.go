package billing

import (
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/narayana/narayanad/apierr"
)

// logIDs lists the ids of a getLogs answer, in order.
func logIDs(t *testing.T, a answer) string {
	t.Helper()
	var ids []string
	for _, r := range objs(t, a) {
		ids = append(ids, jstr(r["id"]))
	}
	return strings.Join(ids, ",")
}

// day is Unix seconds of a UTC date and time.
func day(s string) int64 {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		panic(err)
	}
	return t.Unix()
}

// TestGetLogsRange: from and to (UTC, both included, a day meaning all of it), offset and
// limit, on top of today's newest-first answer; bad values change nothing and say why.
func TestGetLogsRange(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		callUser(t, e, s, "alice", "10001", "100")
		for i := range 6 {
			e.ast("callFinish", "10001", "destination", "79010000001", "uniqueid", fmt.Sprint("r", i), "length", "60", "status", "ANSWER")
		}
		// Six calls on six days, two per day at the ends of January 31 (UTC).
		for i, at := range []string{"2026-01-30 23:59:59", "2026-01-31 00:00:00", "2026-01-31 12:00:00",
			"2026-01-31 23:59:59", "2026-02-01 00:00:00", "2026-02-02 10:00:00"} {
			execSQL(t, e.s.DB, `UPDATE call_log SET created_at = ? WHERE uniqueid = ?`, day(at), fmt.Sprint("r", i))
		}
		all := e.ok(e.do(e.web, "getLogs", user("alice")))
		ids := strings.Split(logIDs(t, all), ",")
		if len(ids) != 6 {
			t.Fatalf("getLogs: %s", all.Body)
		}
		want := func(from, to int) string { return strings.Join(ids[from:to], ",") } // ids is newest first
		for _, c := range []struct {
			args []string
			want string
		}{
			{[]string{"from", "2026-01-31", "to", "2026-01-31"}, want(2, 5)},
			{[]string{"from", "2026-01-31 12:00:00"}, want(0, 4)},
			{[]string{"to", "2026-01-31 00:00:00"}, want(4, 6)},
			{[]string{"from", "2026-01-31", "to", "2026-02-01", "limit", "2"}, want(1, 3)},
			{[]string{"from", "2026-01-31", "to", "2026-02-01", "limit", "2", "offset", "2"}, want(3, 5)},
			{[]string{"offset", "5"}, want(5, 6)},
			{[]string{"offset", "6"}, ""},
			{[]string{"from", "2027-01-01"}, ""},
		} {
			if got := logIDs(t, e.ok(e.do(e.web, "getLogs", user("alice", c.args...)))); got != c.want {
				t.Errorf("%v: %s, want %s", c.args, got, c.want)
			}
		}
		if r := objs(t, e.ok(e.do(e.web, "getLogs", user("alice", "from", "2026-02-02"))))[0]; r["date"] != "2026-02-02 10:00:00" {
			t.Fatalf("date: %v", r["date"])
		}
		for _, args := range [][]string{{"from", "31.01.2026"}, {"to", "2026-02-30"}, {"from", "2026-02-02", "to", "2026-02-01"},
			{"offset", "-1"}, {"limit", "100001"}, {"offset", "x"}} {
			e.fails(e.do(e.web, "getLogs", user("alice", args...)), apierr.InvalidArgument, 400)
		}
	})
}

// TestGetRatesPaging: offset, limit and search page a tariff by direction, and without
// them getRates answers every direction as before.
func TestGetRatesPaging(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		if _, err := AddSIPServer(ctx, e.s.DB.Q(), SIPServerSpec{Name: "sip1", Address: "10.0.0.1"}); err != nil {
			t.Fatal(err)
		}
		e.ok(e.do(e.web, "addRoute", admin("route", "a", "type", "sip", "sip_server", "10.0.0.1")))
		e.ok(e.do(e.web, "addRoute", admin("route", "b", "type", "sip", "sip_server", "10.0.0.1")))
		e.ok(e.do(e.web, "addRates", admin("name", "t")))
		deck := "prefix;description;rate\n7;Russia;0,1\n79;Russia Mobile;0,2\n44;United Kingdom;0,05\n447;United Kingdom Mobile;0,15\n49;Germany;0,03\n33;France 100%_off;0,04\n"
		if _, err := ImportDeck(ctx, e.s.DB, DeckSpec{RatesID: 1, Route: "a"}, strings.NewReader(deck), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := ImportDeck(ctx, e.s.DB, DeckSpec{RatesID: 1, Route: "b", Priority: 2}, strings.NewReader("7;Russia;0,11\n"), nil); err != nil {
			t.Fatal(err)
		}
		names := func(kv ...string) string {
			t.Helper()
			var out []string
			for _, d := range objs(t, e.ok(e.do(e.web, "getRates", admin(append([]string{"id", "1"}, kv...)...)))) {
				out = append(out, fmt.Sprintf("%v/%d", d["direction"], len(d["routing"].([]any))))
			}
			return strings.Join(out, ",")
		}
		for _, c := range []struct {
			args []string
			want string
		}{
			{nil, "Russia/2,Russia Mobile/1,United Kingdom/1,United Kingdom Mobile/1,Germany/1,France 100%_off/1"},
			{[]string{"limit", "2"}, "Russia/2,Russia Mobile/1"},
			{[]string{"limit", "2", "offset", "2"}, "United Kingdom/1,United Kingdom Mobile/1"},
			{[]string{"offset", "5"}, "France 100%_off/1"},
			{[]string{"offset", "9"}, ""},
			{[]string{"search", "MOBILE"}, "Russia Mobile/1,United Kingdom Mobile/1"},
			{[]string{"search", "mobile", "offset", "1"}, "United Kingdom Mobile/1"},
			{[]string{"search", "%"}, "France 100%_off/1"},
			{[]string{"search", "0_"}, ""},
			{[]string{"search", "%_"}, "France 100%_off/1"},
		} {
			if got := names(c.args...); got != c.want {
				t.Errorf("%v: %s, want %s", c.args, got, c.want)
			}
		}
		e.fails(e.do(e.web, "getRates", admin("id", "1", "limit", "0")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "getRates", admin("id", "1", "offset", "-2")), apierr.InvalidArgument, 400)
	})
}

// TestGetUsersPaging: offset, limit and search (in the username) over the users the caller
// manages.
func TestGetUsersPaging(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		for _, n := range []string{"anna", "boris", "anatoly", "vera", "ivan_x", "ivanx"} {
			e.register(admin(), n, 11)
		}
		names := func(kv ...string) string {
			t.Helper()
			var out []string
			for _, u := range objs(t, e.ok(e.do(e.web, "getUsers", admin(kv...)))) {
				out = append(out, fmt.Sprint(u["username"]))
			}
			return strings.Join(out, ",")
		}
		for _, c := range []struct {
			args []string
			want string
		}{
			{nil, "anna,boris,anatoly,vera,ivan_x,ivanx"},
			{[]string{"limit", "2", "offset", "1"}, "boris,anatoly"},
			{[]string{"search", "AN"}, "anna,anatoly,ivan_x,ivanx"},
			{[]string{"search", "an", "limit", "1", "offset", "1"}, "anatoly"},
			{[]string{"search", "n_"}, "ivan_x"},
			{[]string{"search", "zz"}, ""},
		} {
			if got := names(c.args...); got != c.want {
				t.Errorf("%v: %s, want %s", c.args, got, c.want)
			}
		}
		e.fails(e.do(e.web, "getUsers", admin("limit", "-1")), apierr.InvalidArgument, 400)
	})
}

// TestExportCalls: the CSV has getLogs' fields for the range, oldest first; bad dates are
// refused.
func TestExportCalls(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		callUser(t, e, s, "alice", "10001", "100")
		e.ok(e.do(e.web, "updateUser", admin("user", "alice", "timezone", "3")))
		e.ast("callPrepare", "10001", "destination", "79010000001", "uniqueid", "x1")
		e.ast("callFinish", "10001", "destination", "79010000001", "uniqueid", "x1", "length", "90", "status", "ANSWER")
		e.ast("callFinish", "10001", "destination", "4420777", "uniqueid", "x2", "length", "30", "status", "ANSWER")
		e.ast("callFinish", "10001", "destination", "4420777", "uniqueid", "x3", "length", "30", "status", "ANSWER")
		execSQL(t, e.s.DB, `UPDATE call_log SET created_at = ? WHERE uniqueid = 'x1'`, day("2026-03-01 10:00:00"))
		execSQL(t, e.s.DB, `UPDATE call_log SET created_at = ? WHERE uniqueid = 'x2'`, day("2026-03-31 23:00:00"))
		execSQL(t, e.s.DB, `UPDATE call_log SET created_at = ? WHERE uniqueid = 'x3'`, day("2026-04-01 00:00:00"))
		var out bytes.Buffer
		n, err := ExportCalls(context.Background(), e.s.DB, CallsExport{From: "2026-03-01", To: "2026-03-31"}, &out)
		if err != nil || n != 2 {
			t.Fatalf("export: %d %v", n, err)
		}
		recs, err := csv.NewReader(&out).ReadAll()
		if err != nil || len(recs) != 3 {
			t.Fatalf("csv: %v %q", err, out.String())
		}
		if strings.Join(recs[0], ",") != strings.Join(CallsHeader, ",") {
			t.Fatalf("header %v", recs[0])
		}
		row := map[string]string{}
		for i, h := range recs[0] {
			row[h] = recs[1][i]
		}
		if row["username"] != "alice" || row["sip_extension"] != "10001" || row["destination"] != "79010000001" || row["direction"] != "RussiaMobile" ||
			row["time"] != "90" || row["cost"] != "0.35" || row["displaycost"] != "0.35" || row["displaycurrency"] != "EUR" ||
			row["date"] != "2026-03-01 10:00:00" || row["clientdate"] != "2026-03-01 13:00:00" || row["over_grant"] != "false" ||
			row["granted"] == "" || !strings.Contains(row["debug"], "tariff=") {
			t.Fatalf("row %v", row)
		}
		if recs[2][14] != "2026-03-31 23:00:00" {
			t.Fatalf("second row %v", recs[2])
		}
		for _, spec := range []CallsExport{{From: "yesterday"}, {From: "2026-04-02", To: "2026-04-01"}, {Currency: "XXX"}} {
			if _, err := ExportCalls(context.Background(), e.s.DB, spec, io.Discard); err == nil {
				t.Fatalf("%+v accepted", spec)
			}
		}
	})
}

// TestExportCallsConstantMemory: exporting 200,000 records takes no more live heap than
// exporting 20,000 (the rows stream from rows.Next to the writer). The live heap is
// sampled after a GC every 5,000 rows written.
func TestExportCallsConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 200,000 call records")
	}
	eachEnv(t, func(t *testing.T, e *env) {
		s := seedCalls(t, e)
		callUser(t, e, s, "alice", "10001", "100")
		e.ast("callFinish", "10001", "destination", "79010000001", "uniqueid", "seed", "length", "60", "status", "ANSWER")
		// Copies of that record, one a second from 2026-03-01 (about 2.3 days for 200,000).
		execSQL(t, e.s.DB, `INSERT INTO call_log (user_id, account_id, username, extension, callerid, destination, direction,
			route, time, billed, cost, status, prior, info, debug, created_at)
			WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000)
			SELECT c.user_id, c.account_id, c.username, c.extension, c.callerid, c.destination, c.direction, c.route, c.time,
			c.billed, c.cost, c.status, c.prior, c.info, c.debug, ? + n.i FROM n, call_log c WHERE c.uniqueid = 'seed'`,
			day("2026-03-01 00:00:00"))
		peak := func(to string) (int, uint64) {
			w := &heapSampler{every: 5000}
			n, err := ExportCalls(context.Background(), e.s.DB, CallsExport{From: "2026-03-01", To: to}, w)
			if err != nil {
				t.Fatal(err)
			}
			return n, w.peak
		}
		nSmall, small := peak("2026-03-01 05:33:20") // 20,000 records
		nBig, big := peak("2026-03-31")
		t.Logf("live heap while exporting: %d records %.1f MB, %d records %.1f MB", nSmall, float64(small)/1e6, nBig, float64(big)/1e6)
		if nSmall != 20000 || nBig != 200000 {
			t.Fatalf("%d and %d records", nSmall, nBig)
		}
		if big > small+4<<20 {
			t.Fatalf("the export's live heap grew with the rows: %d bytes for 20,000, %d for 200,000", small, big)
		}
	})
}

// heapSampler is an io.Writer that discards and records the live heap (after a GC) every
// `every` lines.
type heapSampler struct {
	every, lines int
	peak         uint64
}

func (h *heapSampler) Write(p []byte) (int, error) {
	before := h.lines / h.every
	h.lines += bytes.Count(p, []byte{'\n'})
	if h.lines/h.every != before {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		h.peak = max(h.peak, m.HeapAlloc)
	}
	return len(p), nil
}

// TestGetAccountsPaging: getAccounts pages like getUsers and searches usernames and
// billing names.
func TestGetAccountsPaging(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		for _, n := range []string{"anna", "boris", "vera"} {
			e.register(admin(), n, 11)
		}
		e.ok(e.do(e.web, "updateAccount", admin("username", "vera", "billing_name", "Annex Ltd")))
		users := func(kv ...string) string {
			t.Helper()
			var out []string
			for _, a := range objs(t, e.ok(e.do(e.web, "getAccounts", admin(kv...)))) {
				out = append(out, fmt.Sprint(a["users"]))
			}
			return strings.Join(out, ",")
		}
		for _, c := range []struct {
			args []string
			want string
		}{
			{nil, "[admin],[anna],[boris],[vera]"},
			{[]string{"limit", "2", "offset", "1"}, "[anna],[boris]"},
			{[]string{"search", "ANN"}, "[anna],[vera]"}, // a username, a billing name
			{[]string{"search", "zz"}, ""},
		} {
			if got := users(c.args...); got != c.want {
				t.Errorf("%v: %s, want %s", c.args, got, c.want)
			}
		}
		e.fails(e.do(e.web, "getAccounts", admin("offset", "-1")), apierr.InvalidArgument, 400)
	})
}

// TestGetExtensionsPaging: getExtensions pages and searches by number or caller ID.
func TestGetExtensionsPaging(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.addServer("pbx", "10.0.0.9")
		for i, n := range []string{"anna", "boris", "vera"} {
			e.register(admin(), n, 11, "sip_server", "10.0.0.9", "sip_extension", fmt.Sprint(10001+i))
		}
		exts := func(kv ...string) string {
			t.Helper()
			var out []string
			for _, x := range objs(t, e.ok(e.do(e.web, "getExtensions", admin(append([]string{"all", "true"}, kv...)...)))) {
				out = append(out, fmt.Sprint(x["sip_extension"]))
			}
			return strings.Join(out, ",")
		}
		for _, c := range []struct {
			args []string
			want string
		}{
			{nil, "10001,10002,10003"},
			{[]string{"limit", "1", "offset", "1"}, "10002"},
			{[]string{"search", "003"}, "10003"},
		} {
			if got := exts(c.args...); got != c.want {
				t.Errorf("%v: %s, want %s", c.args, got, c.want)
			}
		}
		e.fails(e.do(e.web, "getExtensions", admin("limit", "0")), apierr.InvalidArgument, 400)
	})
}
