package billing

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
	"github.com/narayana/narayanad/money"
)

// ecbServer serves testdata/eurofxref-daily.xml on loopback, or fails when broken is set.
func ecbServer(t *testing.T, broken *bool) *httptest.Server {
	t.Helper()
	file, err := os.ReadFile("testdata/eurofxref-daily.xml")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if broken != nil && *broken {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		w.Write(file)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func course(t *testing.T, e *env, code string) money.Micro {
	t.Helper()
	var m money.Micro
	if err := e.s.DB.Q().Get(context.Background(), &m, `SELECT eur_course FROM currencies WHERE code = ?`, code); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRatesFromECB: each run sets eur_course of the currencies the ECB file lists; a
// failed fetch keeps the old rates and says why.
func TestRatesFromECB(t *testing.T) {
	dbtest.EachEmpty(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		broken := false
		srv := ecbServer(t, &broken)
		e := mailEnv(t, d, func(c *Config) { c.RatesSource = srv.URL + "/eurofxref-daily.xml" })
		rub := course(t, e, "RUB")
		rep, err := e.s.RunMaintenance(ctx, "test")
		if err != nil || rep.Rates != 1 || len(rep.Errors) != 0 {
			t.Fatalf("run: %+v %v", rep, err)
		}
		if got := course(t, e, "USD"); got.String() != "1.0304" {
			t.Fatalf("USD %s, want 1.0304", got)
		}
		if a := e.ok(e.do(e.web, "getCourse", admin("currency", "USD"))); !strings.Contains(a.Body, "1.0304") {
			t.Fatalf("getCourse: %s", a.Body)
		}
		if course(t, e, "RUB") != rub || course(t, e, "EUR") != money.One {
			t.Fatal("a currency the file does not list changed")
		}
		// Again: nothing to change.
		if rep, _ := e.s.RunMaintenance(ctx, "test"); rep.Rates != 0 {
			t.Fatalf("second run changed %d rates", rep.Rates)
		}
		e.ok(e.do(e.web, "updateCurrency", admin("currency", "USD", "eur_course", "1.2")))
		broken = true
		rep, err = e.s.RunMaintenance(ctx, "test")
		if err != nil || rep.Rates != 0 || len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0], "503") ||
			!strings.Contains(rep.Errors[0], "old rates stay") {
			t.Fatalf("failed fetch: %+v %v", rep, err)
		}
		if got := course(t, e, "USD"); got.String() != "1.2" {
			t.Fatalf("USD %s after a failed fetch, want the old 1.2", got)
		}
	})
}

// TestMaintenanceOneRunner: two daemons on one database (two pools, as two processes
// have): while one holds the schedule the other skips its round; then it runs.
func TestMaintenanceOneRunner(t *testing.T) {
	for _, dialect := range []db.Dialect{db.SQLite, db.Postgres} {
		t.Run(string(dialect), func(t *testing.T) {
			ctx := context.Background()
			open := samePool(t, dialect)
			d1 := open()
			e1 := newEnv(t, d1)
			s2 := New(open(), testConfig(), slog.New(slog.NewTextHandler(io.Discard, nil)))
			e1.register(admin(), "alice", 11, "balance", "10")
			e1.ok(e1.do(e1.web, "addDID", admin("did", "7800000001", "owner", "alice", "cost", "3",
				"expiration", time.Now().Add(-time.Hour).UTC().Format(timeLayout))))

			if holder, err := e1.s.takeLease(ctx); err != nil || holder != "" {
				t.Fatalf("first daemon's lease: %q %v", holder, err)
			}
			rep, err := s2.RunMaintenance(ctx, "test")
			if err != nil || !rep.Skipped || rep.Holder != e1.s.runnerID() {
				t.Fatalf("second daemon ran while the first held it: %+v %v", rep, err)
			}
			if bal, _, _ := balanceOf(t, d1, "alice"); bal.String() != "10" {
				t.Fatalf("the skipped round charged: %s", bal)
			}
			st, _ := s2.Status(ctx)
			if st.Running != e1.s.runnerID() {
				t.Fatalf("status while held: %+v", st)
			}
			if err := e1.s.releaseLease(ctx, "test", &MaintenanceReport{}); err != nil {
				t.Fatal(err)
			}
			// Both at once: the DID is renewed once, whoever ran.
			done := make(chan *MaintenanceReport, 2)
			for _, s := range []*Service{e1.s, s2} {
				go func(s *Service) {
					rep, err := s.RunMaintenance(ctx, "test")
					if err != nil {
						t.Error(err)
					}
					done <- rep
				}(s)
			}
			ran := 0
			for i := 0; i < 2; i++ {
				if rep := <-done; rep != nil && !rep.Skipped {
					ran++
				}
			}
			if ran == 0 {
				t.Fatal("nobody ran")
			}
			if bal, _, _ := balanceOf(t, d1, "alice"); bal.String() != "7" {
				t.Fatalf("balance %s after the DID's renewal, want 7", bal)
			}
			if st, _ := s2.Status(ctx); st.Running != "" || st.Report == nil || st.LastFinished == "" {
				t.Fatalf("status after: %+v", st)
			}
		})
	}
}

// TestSimulatedMonth moves the daemon's clock through a month's end: DID expiries, a
// low balance, a postpaid account's calls and its invoice, exchange rates and mail; on
// both databases. Calls happen now (the call path books at the wall clock), so the
// simulated month is the current one and the clock moves to the next.
func TestSimulatedMonth(t *testing.T) {
	dbtest.EachEmpty(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		st := newSMTPTest(t)
		st.start(t, "starttls")
		srv := ecbServer(t, nil)
		e := mailEnv(t, d, func(c *Config) {
			st.configure(c, "starttls")
			c.RatesSource = srv.URL
			c.OperatorName = "Narayana Telecom"
			c.VATPercent = 20 * money.One
		})
		start := time.Now().UTC()
		clock := start
		e.s.Now = func() time.Time { return clock }
		seed := seedCalls(t, e)

		// pat: postpaid with a credit limit of 20, russian; lena: prepaid, notified below 5.
		callUser(t, e, seed, "pat", "20001", "0", "language", "russian")
		e.ok(e.do(e.web, "updateAccount", admin("username", "pat", "postpaid", "1", "overdraft", "20",
			"billing_name", "ООО Ромашка", "billing_email", "pat@example.com")))
		callUser(t, e, seed, "lena", "20002", "6")
		e.updateUser("lena", "notify_email", "lena@example.com", "notify_balance", "1", "notify_balance_limit", "5",
			"notify_did", "3")
		e.register(admin(), "bob", 11, "balance", "1")

		monthEnd := time.Date(start.Year(), start.Month()+1, 1, 0, 0, 0, 0, time.UTC)
		exp := func(t time.Time) string { return t.UTC().Format(timeLayout) }
		// Before month end, and after now even when the test runs in a month's last hours.
		beforeEnd := func(d time.Duration) time.Time {
			if at := monthEnd.Add(-d); at.After(start.Add(time.Second)) {
				return at
			}
			return start.Add(time.Second)
		}
		// pat's number renews at month end (rent 2 on credit); lena's ends in two days and
		// she cannot pay it: one notice; bob's expires and he cannot pay: disabled.
		e.ok(e.do(e.web, "addDID", admin("did", "7800000001", "owner", "pat", "cost", "2", "expiration", exp(beforeEnd(2*time.Hour)))))
		e.ok(e.do(e.web, "addDID", admin("did", "7800000002", "owner", "lena", "cost", "10", "expiration", exp(clock.Add(48*time.Hour)))))
		e.ok(e.do(e.web, "addDID", admin("did", "7800000003", "owner", "bob", "cost", "5", "expiration", exp(beforeEnd(time.Hour)))))

		// Calls: the postpaid account goes below zero, up to its credit limit.
		for i, length := range []string{"60", "120"} {
			uid := "pat" + itoa(i)
			if a := e.ast("callPrepare", "20001", "destination", "79010000001", "uniqueid", uid); !strings.HasPrefix(a, "Allowed") {
				t.Fatalf("postpaid call declined: %q", a)
			}
			e.ast("callFinish", "20001", "destination", "79010000001", "length", length, "status", "ANSWER", "uniqueid", uid)
		}
		e.ast("callPrepare", "20001", "destination", "74950000001", "uniqueid", "pat9")
		e.ast("callFinish", "20001", "destination", "74950000001", "length", "30", "status", "ANSWER", "uniqueid", "pat9")
		// lena's call takes her below her notice limit of 5.
		e.ast("callPrepare", "20002", "destination", "79010000001", "uniqueid", "lena1")
		e.ast("callFinish", "20002", "destination", "79010000001", "length", "600", "status", "ANSWER", "uniqueid", "lena1")

		// Day one: rates, lena's two notices.
		rep, err := e.s.RunMaintenance(ctx, "test")
		if err != nil || rep.Rates != 1 || rep.Notices != 2 || rep.PostpaidInvoices != 0 || len(rep.Errors) != 0 {
			t.Fatalf("first run: %+v %v", rep, err)
		}
		// Month end: renewals and the disabled numbers (lena's too when it ends first: the
		// test may run in a month's last days); nothing told twice.
		clock = monthEnd.Add(-time.Minute)
		disabled := 1
		if !start.Add(48 * time.Hour).After(clock) {
			disabled = 2
		}
		if rep, err = e.s.RunMaintenance(ctx, "test"); err != nil || rep.DIDRents != 1 || rep.DIDsDisabled != disabled ||
			rep.Notices != 0 || rep.PostpaidInvoices != 0 {
			t.Fatalf("month end: %+v %v", rep, err)
		}
		// The next month begins: pat's invoice for the month, once.
		clock = monthEnd.Add(30 * time.Minute)
		if rep, err = e.s.RunMaintenance(ctx, "test"); err != nil || rep.PostpaidInvoices != 1 || rep.Notices != 1 || rep.DIDRents != 0 {
			t.Fatalf("month start: %+v %v", rep, err)
		}
		if rep, err = e.s.RunMaintenance(ctx, "test"); err != nil || rep.PostpaidInvoices != 0 || rep.Notices != 0 ||
			rep.DIDRents != 0 || rep.DIDsDisabled != 0 || rep.Rates != 0 {
			t.Fatalf("a second run changed something: %+v %v", rep, err)
		}
		if res, err := e.s.SendMail(ctx); err != nil || res.Sent != 3 {
			t.Fatalf("send: %+v %v", res, err)
		}

		// What pat owes: calls 0.25 + 0.45 + 0.1 (+ switch 0.05 each) and the rent 2.
		patCalls := ratCharge(seed.base, 200_000, 60, false) + ratCharge(seed.base, 200_000, 120, false) +
			ratCharge(seed.base, 100_000, 30, false)
		owed := patCalls + 2*money.One
		bal, led, _ := balanceOf(t, d, "pat")
		if bal != -owed || led != bal {
			t.Fatalf("pat's balance %s (ledger %s), want %s", bal, led, -owed)
		}
		invs := e.ok(e.do(e.web, "getInvoices", user("pat")))
		list, _ := invs.Response.([]any)
		if len(list) != 1 {
			t.Fatalf("getInvoices: %s", invs.Body)
		}
		inv := list[0].(map[string]any)
		if inv["period"] != start.Format("2006-01") || inv["amount"].(interface{ String() string }).String() != owed.String() ||
			inv["method"] != "postpaid" {
			t.Fatalf("invoice: %s", invs.Body)
		}
		var dids []struct {
			DID     string `db:"did"`
			Enabled int    `db:"enabled"`
			Notify  int    `db:"renew_notify"`
		}
		if err := e.s.DB.Q().Select(ctx, &dids, `SELECT did, enabled, renew_notify FROM dids ORDER BY did`); err != nil {
			t.Fatal(err)
		}
		if dids[0].Enabled != 1 || dids[1].Notify != 1 || dids[1].Enabled != 2-disabled || dids[2].Enabled != 0 {
			t.Fatalf("DIDs: %+v", dids)
		}

		// The mail: lena's two in english, pat's invoice in russian with its PDF.
		got := st.box.all()
		subjects := map[string]readMail{}
		for _, g := range got {
			m := parseMail(t, g)
			subjects[m.To+" "+m.Subject] = m
		}
		lena, err := userByName(ctx, d.Q(), "lena")
		if err != nil {
			t.Fatal(err)
		}
		var invoiceMail readMail
		for key, m := range subjects {
			switch {
			case key == "lena@example.com Low balance on account "+itoa(int(lena.Number)):
			case strings.HasPrefix(key, "lena@example.com Number 7800000002 expires on "):
			case strings.HasPrefix(key, "pat@example.com Счёт "):
				invoiceMail = m
			default:
				t.Fatalf("unexpected message %q", key)
			}
		}
		if len(subjects) != 3 || len(got) != 3 {
			t.Fatalf("%d messages: %v", len(got), subjects)
		}
		var pdf []byte
		for _, b := range invoiceMail.Attachments {
			pdf = b
		}
		if text, ok := pdfText(t, pdf); ok {
			for _, want := range []string{"ООО Ромашка", "Narayana Telecom", "Звонки: RussiaMobile", "Звонки: Russia",
				"Аренда номеров", "в т.ч. НДС 20%", "Оплатить до", moneyText(owed)} {
				if !strings.Contains(text, want) {
					t.Fatalf("the invoice lacks %q:\n%s", want, text)
				}
			}
		}
		checkLedger(t, e)
	})
}

// TestPostpaidInvoiceForAccountant: the monthly invoice shows what an accountant needs
// (checked in the text pdftotext reads), in the user's currency, and is paid like any
// invoice through a payment handler; it is never issued twice for one month.
func TestPostpaidInvoiceForAccountant(t *testing.T) {
	dbtest.EachEmpty(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		e, _ := scriptEnv(t, d, map[string]string{"payment.lua": paymentScript})
		c := &e.s.Config
		c.OperatorName, c.OperatorAddress, c.OperatorTaxID = "Narayana Telecom GmbH", `Main St 1\n10115 Berlin`, "DE123456789"
		c.OperatorBank, c.VATPercent, c.InvoiceDueDays = "IBAN DE02 1001 0010 0123 4567 89", 19*money.One, 10
		e.register(admin(), "max", 11, "currency", "USD")
		e.ok(e.do(e.web, "updateAccount", admin("username", "max", "postpaid", "1", "overdraft", "100",
			"billing_name", "Max Mustermann", "billing_address", "Lindenweg 5, Hamburg", "billing_email", "max@example.com")))
		u, err := userByName(ctx, d.Q(), "max")
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		last := time.Date(now.Year(), now.Month(), 1, 12, 0, 0, 0, time.UTC).AddDate(0, -1, 0)
		if err := d.InTx(ctx, func(tx *db.Tx) error {
			if err := postAt(ctx, tx, last, u.Number, -3*money.One, KindCall, "call:0", "", 0); err != nil {
				return err
			}
			return postAt(ctx, tx, last, u.Number, -2*money.One, KindDID, "did:7800", "", 0)
		}); err != nil {
			t.Fatal(err)
		}
		for run := 0; run < 2; run++ {
			rep, err := e.s.RunMaintenance(ctx, "test")
			if err != nil || rep.PostpaidInvoices != 1-run {
				t.Fatalf("run %d: %+v %v", run, rep, err)
			}
		}
		invs := e.ok(e.do(e.web, "getInvoices", user("max")))
		list, _ := invs.Response.([]any)
		if len(list) != 1 {
			t.Fatalf("getInvoices: %s", invs.Body)
		}
		id := fmt.Sprint(list[0].(map[string]any)["id"])
		pdf := pdfOf(t, e, "viewInvoice", user("max", "invoice", id))
		text, ok := pdfText(t, []byte(pdf))
		if !ok {
			t.Skip("pdftotext (Debian package poppler-utils) is not installed: the invoice's text is not checked")
		}
		x, _ := e.s.exchange(ctx, "USD")
		total := x.display(3*money.One) + x.display(2*money.One)
		vat := money.Micro(money.MulDiv(int64(total), 19, 119)).Round(2)
		for _, want := range []string{"Invoice No. " + id, "Narayana Telecom GmbH", "Main St 1", "10115 Berlin",
			"Tax ID: DE123456789", "IBAN DE02 1001 0010 0123 4567 89", "Max Mustermann", "Lindenweg 5, Hamburg",
			"Account " + itoa(int(u.Number)), "Payment due: " + time.Now().UTC().AddDate(0, 0, 10).Format("2006-01-02"),
			"Period: " + last.Format("2006-01") + "-01", "Calls", "DID rent", "Amount, USD", "Total, USD " + "",
			total.Fixed(2), "incl. VAT 19%", vat.Fixed(2), "Charged in EUR: 5.00", "Status: unpaid"} {
			if !strings.Contains(text, want) {
				t.Fatalf("the invoice lacks %q:\n%s", want, text)
			}
		}
		// Paid through the card handler like any invoice: the account gets the amount back.
		a := e.ok(e.do(e.web, "finishInvoice", kv("handler", "card", "order", id, "state", "paid", "sig", "good", "sum", "5")))
		if a.Body != "OK"+id {
			t.Fatalf("finishInvoice: %s", a.Body)
		}
		if bal, _, _ := balanceOf(t, d, "max"); bal != 0 {
			t.Fatalf("balance after paying %s", bal)
		}
		if text, _ := pdfText(t, []byte(pdfOf(t, e, "viewInvoice", user("max", "invoice", id)))); !strings.Contains(text, "Status: paid") {
			t.Fatalf("paid invoice:\n%s", text)
		}
		checkLedger(t, e)
	})
}
