package billing

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
	"github.com/narayana/narayanad/money"
)

// payEnv is newEnv with settings changed by set.
func payEnv(t *testing.T, d *db.DB, set func(c *Config)) *env {
	t.Helper()
	cfg := testConfig()
	set(&cfg)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := Bootstrap(context.Background(), d, cfg, adminName, md5hex("adminpw"), webKey); err != nil {
		t.Fatal(err)
	}
	s := New(d, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	return &env{t: t, s: s, h: s.Handler(), web: webKey}
}

// count answers a COUNT(*) query.
func count(t *testing.T, e *env, query string, args ...any) int {
	t.Helper()
	var n int
	if err := e.s.DB.Q().Get(context.Background(), &n, query, args...); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestBankPayments(t *testing.T) {
	dbtest.EachEmpty(t, func(t *testing.T, d *db.DB) {
		e := payEnv(t, d, func(c *Config) {
			c.OperatorName = "Narayana Telecom"
			c.OperatorBank = `IBAN DE00 1234 5678\nBIC TESTDEFF`
			c.BankCommission = 2 * money.One
			c.BankVAT = 20 * money.One
			// Mail on, but nothing sends it (New starts no sender): the outbox row is the check.
			c.SMTPHost, c.SMTPFrom = "127.0.0.1", "billing@example.com"
		})
		e.register(admin(), "alice", 11)
		e.register(admin(), "bob", 11)
		e.ok(e.do(e.web, "updateAccount", admin("username", "alice", "billing_email", "alice@example.com")))

		a := e.ok(e.do(e.web, "getPaymentMethods", nil))
		if field(a, "public") != `{"Bank transfer":"bank"}` || field(a, "default") != `{"Bank transfer":"bank"}` ||
			field(a, "private") != "{}" {
			t.Fatalf("getPaymentMethods: %s", a.Body)
		}

		// The default method is the bank: 100 EUR + 2% commission + 20% VAT on both.
		a = e.ok(e.do(e.web, "createInvoice", user("alice", "payment_amount", "100")))
		id := field(a, "transaction")
		if field(a, "invoice") != id || field(a, "pay_amount") != "122.4" || field(a, "currency") != "EUR" ||
			field(a, "comission") != "2" || field(a, "vat") != "20" ||
			field(a, "bank_details") != "IBAN DE00 1234 5678, BIC TESTDEFF" || field(a, "reference") != "Invoice "+id ||
			field(a, "pdf") != "viewInvoice?invoice="+id || !strings.Contains(field(a, "msg"), "122.40 EUR") {
			t.Fatalf("createInvoice: %s", a.Body)
		}
		a = e.ok(e.do(e.web, "getInvoiceInfo", user("alice", "invoice", id)))
		if field(a, "handler") != "bank" || field(a, "bank") != "true" || field(a, "amount") != "100" || field(a, "status") != "0" {
			t.Fatalf("getInvoiceInfo: %s", a.Body)
		}
		// Its PDF is queued to the account's billing_email, once.
		var queued []struct {
			To      string `db:"recipient"`
			Subject string `db:"subject"`
			Body    string `db:"body"`
			Attach  string `db:"attach_name"`
		}
		if err := e.s.DB.Q().Select(context.Background(), &queued, `SELECT recipient, subject, body, attach_name FROM outbox`); err != nil {
			t.Fatal(err)
		}
		if len(queued) != 1 || queued[0].To != "alice@example.com" || queued[0].Subject != "Invoice "+id ||
			queued[0].Attach != "invoice-"+id+".pdf" || !strings.Contains(queued[0].Body, "122.40 EUR") {
			t.Fatalf("outbox: %+v", queued)
		}
		body := pdfOf(t, e, "viewInvoice", user("alice", "invoice", id))
		for _, want := range []string{"Narayana Telecom", "IBAN DE00 1234 5678, BIC TESTDEFF", "Payment reference: Invoice " + id,
			"100.00", "Commission 2%", "2.00", "VAT 20%", "20.40", "122.40", "Status: unpaid"} {
			if !strings.Contains(body, want) {
				t.Fatalf("bank invoice PDF lacks %q", want)
			}
		}

		// Nobody confirms a bank transfer through the level-0 callback.
		e.fails(e.do(e.web, "finishInvoice", url.Values{"invoice": {id}}), apierr.InsufficientAccess, 200)
		e.fails(e.do(e.web, "finishInvoice", url.Values{"handler": {"bank"}}), apierr.InsufficientAccess, 200)
		// Nor does its owner, nor an administrator for an invoice that is not there.
		e.fails(e.do(e.web, "payInvoice", user("alice", "invoice", id)), apierr.InsufficientAccess, 200)
		e.fails(e.do(e.web, "payInvoice", admin("invoice", "99999")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "payInvoice", admin()), apierr.MissingArgument, 400)
		if b, _, _ := balanceOf(t, e.s.DB, "alice"); b != 0 {
			t.Fatalf("balance before the transfer: %s", b)
		}

		// The administrator marks it paid: credited once, however often.
		for i := 0; i < 3; i++ {
			if a := e.ok(e.do(e.web, "payInvoice", admin("invoice", id, "reference", "STMT-7"))); a.Body != `{"result":true,"response":true}`+"\n" {
				t.Fatalf("payInvoice: %q", a.Body)
			}
			if b, _, _ := balanceOf(t, e.s.DB, "alice"); b != 100*money.One {
				t.Fatalf("balance after payInvoice %d: %s", i+1, b)
			}
		}
		if n := count(t, e, `SELECT COUNT(*) FROM ledger WHERE kind = ? AND ref = ?`, KindInvoice, "invoice:"+id); n != 1 {
			t.Fatalf("%d ledger rows for one invoice", n)
		}
		a = e.ok(e.do(e.web, "getInvoiceInfo", user("alice", "invoice", id)))
		if field(a, "status") != "1" || !strings.Contains(field(a, "txdata"), "STMT-7") {
			t.Fatalf("paid invoice: %s", a.Body)
		}
		if body := pdfOf(t, e, "viewInvoice", user("alice", "invoice", id)); !strings.Contains(body, "Status: paid") ||
			strings.Contains(body, "Payment reference") {
			t.Fatal("a paid bank invoice still asks for the transfer")
		}
		e.fails(e.do(e.web, "deleteInvoice", admin("invoice", id)), apierr.DataAbort, 200)

		// Amounts in another currency are converted; bob's own invoice is not alice's.
		a = e.ok(e.do(e.web, "createInvoice", user("bob", "payment_amount", "10", "payment_method", "bank")))
		e.fails(e.do(e.web, "getInvoiceInfo", user("alice", "invoice", field(a, "transaction"))), apierr.DoesNotBelongToYou, 200)
		checkLedger(t, e)
	})
}

// TestNoBuiltinPayments: without operator_bank and stripe_secret_key nothing is offered,
// and the Stripe webhook is not there.
func TestNoBuiltinPayments(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.register(admin(), "alice", 11)
		e.fails(e.do(e.web, "createInvoice", user("alice", "payment_amount", "10", "payment_method", "bank")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "createInvoice", user("alice", "payment_amount", "10", "payment_method", "stripe")), apierr.NotExist, 200)
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, StripeWebhookPath, strings.NewReader("{}")))
		if rec.Code != http.StatusNotFound {
			t.Fatalf("webhook without stripe: %d", rec.Code)
		}
	})
}

// stripeMock builds the official stripe-mock (a tool of go.mod) into a temporary folder
// and starts it on loopback; it answers its HTTP address.
func stripeMock(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "stripe-mock")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/stripe/stripe-mock").CombinedOutput(); err != nil {
		t.Fatalf("go build github.com/stripe/stripe-mock: %v: %s", err, out)
	}
	cmd := exec.Command(bin, "-http-addr", "127.0.0.1:", "-https-addr", "127.0.0.1:")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "Listening for HTTP at address: "); ok {
				addr <- a
			}
		}
	}()
	select {
	case a := <-addr:
		return a
	case <-time.After(30 * time.Second):
		t.Fatal("stripe-mock did not start listening")
	}
	return ""
}

const whsec = "whsec_test_secret"

// stripeEvent is a Checkout Session event as Stripe posts it.
func stripeEvent(id, typ, session, invoice, status string, amount int64) []byte {
	b, _ := json.Marshal(map[string]any{"id": id, "object": "event", "api_version": "2025-03-31.basil", "type": typ,
		"data": map[string]any{"object": map[string]any{"id": session, "object": "checkout.session",
			"client_reference_id": invoice, "payment_status": status, "amount_total": amount, "currency": "eur"}}})
	return b
}

// postWebhook posts a payload signed with secret (at ts; zero: now) to the webhook route.
func postWebhook(e *env, payload []byte, secret string, ts time.Time) (int, string) {
	sp := webhook.GenerateTestSignedPayload(&webhook.UnsignedPayload{Payload: payload, Secret: secret, Timestamp: ts})
	req := httptest.NewRequest(http.MethodPost, StripeWebhookPath, strings.NewReader(string(payload)))
	req.Header.Set("Stripe-Signature", sp.Header)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

func TestStripePayments(t *testing.T) {
	mock := stripeMock(t)
	dbtest.EachEmpty(t, func(t *testing.T, d *db.DB) {
		e := payEnv(t, d, func(c *Config) {
			c.StripeSecretKey, c.StripeWebhookSecret = "sk_test_123", whsec
			c.StripeSuccessURL = "https://shop.example/paid?invoice={INVOICE}"
			c.StripeAPIURL = "http://" + mock
			c.StripeCommission = 3 * money.One
		})
		e.register(admin(), "alice", 11)
		balance := func() money.Micro {
			b, _, _ := balanceOf(t, e.s.DB, "alice")
			return b
		}
		a := e.ok(e.do(e.web, "getPaymentMethods", nil))
		if field(a, "public") != `{"Bank card":"stripe"}` || field(a, "default") != `{"Bank card":"stripe"}` {
			t.Fatalf("getPaymentMethods: %s", a.Body)
		}

		// createInvoice opens a Checkout Session (at stripe-mock) and answers its URL.
		a = e.ok(e.do(e.web, "createInvoice", user("alice", "payment_amount", "10", "payment_method", "stripe")))
		id := field(a, "transaction")
		if !strings.HasPrefix(field(a, "url"), "https://checkout.stripe.com/") || field(a, "pay_amount") != "10.3" ||
			field(a, "comission") != "3" {
			t.Fatalf("createInvoice: %s", a.Body)
		}
		inv, err := invoiceByID(context.Background(), e.s.DB.Q(), mustInt(t, id))
		if err != nil {
			t.Fatal(err)
		}
		sid := inv.ProviderRef
		if !strings.HasPrefix(sid, "cs_") || inv.Handler != PayStripe || inv.Status != InvoiceUnpaid {
			t.Fatalf("stored invoice: %+v", inv)
		}
		paid := stripeEvent("evt_1", "checkout.session.completed", sid, id, "paid", 1030)

		// A bad signature, a stale one, or none is refused and changes nothing.
		for _, try := range []struct {
			secret string
			ts     time.Time
		}{{"whsec_wrong", time.Time{}}, {whsec, time.Now().Add(-10 * time.Minute)}} {
			if code, _ := postWebhook(e, paid, try.secret, try.ts); code != http.StatusBadRequest {
				t.Fatalf("webhook with a bad signature: %d", code)
			}
		}
		rec := httptest.NewRecorder()
		e.h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, StripeWebhookPath, strings.NewReader(string(paid))))
		if rec.Code != http.StatusBadRequest || balance() != 0 {
			t.Fatalf("unsigned webhook: %d, balance %s", rec.Code, balance())
		}

		// finishInvoice asks Stripe: the session is not paid yet, nothing changes.
		if code, _, body := getRaw(e, "finishInvoice", url.Values{"invoice": {id}}); code != 200 || body != "unpaid" || balance() != 0 {
			t.Fatalf("finishInvoice before payment: %d %q", code, body)
		}

		// The paid event, delivered eight times at once and then again: credited once.
		var wg sync.WaitGroup
		codes := make([]int, 8)
		for i := range codes {
			wg.Add(1)
			go func() { defer wg.Done(); codes[i], _ = postWebhook(e, paid, whsec, time.Time{}) }()
		}
		wg.Wait()
		for _, c := range codes {
			if c != http.StatusOK {
				t.Fatalf("concurrent deliveries: %v", codes)
			}
		}
		if code, body := postWebhook(e, paid, whsec, time.Time{}); code != 200 || body != "paid already" {
			t.Fatalf("replayed event: %d %q", code, body)
		}
		if code, _ := postWebhook(e, stripeEvent("evt_2", "checkout.session.async_payment_succeeded", sid, id, "paid", 1030),
			whsec, time.Time{}); code != 200 {
			t.Fatalf("second event: %d", code)
		}
		if b := balance(); b != 10*money.One {
			t.Fatalf("balance after the payment: %s", b)
		}
		if n := count(t, e, `SELECT COUNT(*) FROM ledger WHERE kind = ? AND ref = ?`, KindInvoice, "invoice:"+id); n != 1 {
			t.Fatalf("%d ledger rows for one invoice", n)
		}
		a = e.ok(e.do(e.web, "getInvoiceInfo", user("alice", "invoice", id)))
		if field(a, "status") != "1" || !strings.Contains(field(a, "txdata"), "evt_1") {
			t.Fatalf("paid invoice: %s", a.Body)
		}
		if code, _, body := getRaw(e, "finishInvoice", url.Values{"invoice": {id}}); code != 200 || body != "paid" {
			t.Fatalf("finishInvoice after payment: %d %q", code, body)
		}

		// Events that are not ours change nothing: an unknown session, another invoice's
		// session, a paid amount that differs, an event of another kind.
		a = e.ok(e.do(e.web, "createInvoice", user("alice", "payment_amount", "20")))
		id2 := field(a, "transaction")
		inv2, err := invoiceByID(context.Background(), e.s.DB.Q(), mustInt(t, id2))
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range []struct {
			payload []byte
			want    string
		}{
			{stripeEvent("evt_3", "checkout.session.completed", "cs_test_unknown", id2, "paid", 2060), "unknown session"},
			{stripeEvent("evt_4", "checkout.session.completed", sid, id2, "paid", 2060), "unknown session"},
			{stripeEvent("evt_5", "checkout.session.completed", inv2.ProviderRef, "99999", "paid", 2060), "unknown session"},
			{stripeEvent("evt_6", "checkout.session.completed", inv2.ProviderRef, id2, "paid", 1030), "amount differs"},
			{stripeEvent("evt_7", "checkout.session.completed", inv2.ProviderRef, id2, "unpaid", 2060), "not paid yet"},
			{stripeEvent("evt_8", "customer.created", inv2.ProviderRef, id2, "paid", 2060), "ignored"},
		} {
			if code, body := postWebhook(e, ev.payload, whsec, time.Time{}); code != 200 || body != ev.want {
				t.Fatalf("event %s: %d %q, want %q", ev.payload, code, body, ev.want)
			}
		}
		if b := balance(); b != 10*money.One {
			t.Fatalf("balance after foreign events: %s", b)
		}
		// The session expires unpaid: so does the invoice; a late event of it still pays.
		if code, body := postWebhook(e, stripeEvent("evt_9", "checkout.session.expired", inv2.ProviderRef, id2, "unpaid", 2060),
			whsec, time.Time{}); code != 200 || body != "expired" {
			t.Fatalf("expired session: %d %q", code, body)
		}
		if code, body := postWebhook(e, stripeEvent("evt_10", "checkout.session.completed", inv2.ProviderRef, id2, "paid", 2060),
			whsec, time.Time{}); code != 200 || body != "credited" || balance() != 30*money.One {
			t.Fatalf("late payment: %d %q, balance %s", code, body, balance())
		}

		// Stripe unreachable: E_TRANSACTION_FAILED and no invoice left behind.
		before := invoiceCount(t, e)
		e.s.Config.StripeAPIURL = "http://127.0.0.1:1"
		e.fails(e.do(e.web, "createInvoice", user("alice", "payment_amount", "5")), apierr.TransactionFailed, 200)
		if n := invoiceCount(t, e); n != before {
			t.Fatalf("%d invoices after a failed checkout, want %d", n, before)
		}
		checkLedger(t, e)
	})
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	if err := json.Unmarshal([]byte(s), &n); err != nil {
		t.Fatal(err)
	}
	return n
}
