package billing

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
	"github.com/narayana/narayanad/money"
)

// paymentScript registers two payment handlers: a card provider that signs its
// callbacks, and a private bank transfer whose confirmation is always good.
const paymentScript = `
narayana.handler("payment", "card", function(p)
  if p.action == "info" then
    return { title = "Bank card", default = true, minimum = narayana.money.parse("1"),
      maximum = narayana.money.parse("1000"), start_minimum = "5" }
  elseif p.action == "create" then
    return { url = "https://pay.example/checkout", method = "post", msg = "pay within 3 days", comission = "2.5",
      parameters = { order = tostring(p.invoice), sum = narayana.money.format(p.amount, 2) },
      txdata = { ref = "x" .. p.invoice } }
  end
  if p.params.sig ~= "good" then narayana.fail("E_AUTH_FAILED", "bad signature") end
  local amount = nil
  if p.params.sum then amount = narayana.money.parse(p.params.sum) end
  return { invoice = tonumber(p.params.order), paid = p.params.state == "paid", amount = amount,
    answer = "OK" .. p.params.order, txdata = { provider_id = "P" .. p.params.order } }
end)
narayana.handler("payment", "wire", function(p)
  if p.action == "info" then return { title = "Bank transfer", private = true, bank = true } end
  if p.action == "create" then return { msg = "IBAN XX00 0000" } end
  return { paid = true }
end)
`

// getRaw sends a GET through the router and returns the status, content type and body.
func getRaw(e *env, method string, params url.Values) (int, string, string) {
	req := httptest.NewRequest(http.MethodGet, "/billing/api/2.2/"+e.web+"/"+method+"?"+params.Encode(), nil)
	req.RemoteAddr = "127.0.0.1:40000"
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	return rec.Code, rec.Header().Get("Content-Type"), rec.Body.String()
}

// pdfOf fetches a PDF answer and fails unless it is one.
func pdfOf(t *testing.T, e *env, method string, params url.Values) string {
	t.Helper()
	code, ct, body := getRaw(e, method, params)
	if code != 200 || ct != "application/pdf" || !strings.HasPrefix(body, "%PDF") {
		t.Fatalf("%s: %d %s %.200q", method, code, ct, body)
	}
	return body
}

func invoiceCount(t *testing.T, e *env) int {
	t.Helper()
	var n int
	if err := e.s.DB.Q().Get(context.Background(), &n, `SELECT COUNT(*) FROM invoices`); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestInvoicesAndPayments(t *testing.T) {
	dbtest.EachEmpty(t, func(t *testing.T, d *db.DB) {
		e, _ := scriptEnv(t, d, map[string]string{"payment.lua": paymentScript})
		ctx := context.Background()
		q := e.s.DB.Q()
		e.register(admin(), "alice", 11)
		e.register(admin(), "bob", 11)
		e.register(admin(), "ivan", 11, "currency", "RUB")

		// The list needs no user.
		a := e.ok(e.do(e.web, "getPaymentMethods", nil))
		if field(a, "public") != `{"Bank card":"card"}` || field(a, "private") != `{"Bank transfer":"wire"}` ||
			field(a, "default") != `{"Bank card":"card"}` {
			t.Fatalf("getPaymentMethods: %s", a.Body)
		}

		// Bounds from the handler's info; bad input leaves no invoice.
		e.fails(e.do(e.web, "createInvoice", user("alice", "payment_amount", "0.5")), apierr.MinimalPayment, 200)
		e.fails(e.do(e.web, "createInvoice", user("alice", "payment_amount", "2000")), apierr.MaximumPayment, 200)
		e.fails(e.do(e.web, "createInvoice", user("alice", "payment_amount", "3")), apierr.MinimalStartPayment, 200)
		e.fails(e.do(e.web, "createInvoice", user("alice")), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "createInvoice", user("alice", "payment_amount", "-5")), apierr.InvalidArgument, 400)
		e.fails(e.do(e.web, "createInvoice", user("alice", "payment_amount", "10", "payment_method", "cash")), apierr.NotExist, 200)
		if n := invoiceCount(t, e); n != 0 {
			t.Fatalf("%d invoices after refused calls", n)
		}

		// An invoice through the default handler.
		a = e.ok(e.do(e.web, "createInvoice", user("alice", "payment_amount", "10", "payment_type", "visa")))
		id := field(a, "transaction")
		if field(a, "url") != "https://pay.example/checkout" || field(a, "method") != "POST" || field(a, "order") != id ||
			field(a, "sum") != "10.00" || field(a, "comission") != "2.5" || field(a, "msg") != "pay within 3 days" {
			t.Fatalf("createInvoice: %s", a.Body)
		}
		a = e.ok(e.do(e.web, "getInvoiceInfo", user("alice", "invoice", id)))
		if field(a, "status") != "0" || field(a, "amount") != "10" || field(a, "handler") != "card" || field(a, "method") != "visa" ||
			field(a, "owner") != "alice" || field(a, "validthru") == "" {
			t.Fatalf("getInvoiceInfo: %s", a.Body)
		}
		// RUB user: the amount is converted to the system currency, displayamount back.
		a = e.ok(e.do(e.web, "createInvoice", user("ivan", "payment_amount", "980")))
		a = e.ok(e.do(e.web, "getInvoiceInfo", user("ivan", "id", field(a, "transaction"))))
		if field(a, "amount") != "10" || field(a, "displayamount") != "980" {
			t.Fatalf("RUB invoice: %s", a.Body)
		}

		// The provider's callback: a bad signature changes nothing.
		e.fails(e.do(e.web, "finishInvoice", url.Values{"handler": {"card"}, "order": {id}, "sig": {"bad"}, "state": {"paid"}}),
			apierr.AuthFailed, 200)
		if b, _, _ := balanceOf(t, e.s.DB, "alice"); b != 0 {
			t.Fatalf("balance after a refused callback: %s", b)
		}
		// A confirmed payment credits once, however often the provider calls back.
		for i := 0; i < 2; i++ {
			code, ct, body := getRaw(e, "finishInvoice", url.Values{"handler": {"card"}, "order": {id}, "sig": {"good"},
				"state": {"paid"}, "sum": {"10.00"}})
			if code != 200 || !strings.HasPrefix(ct, "text/plain") || body != "OK"+id {
				t.Fatalf("finishInvoice: %d %s %q", code, ct, body)
			}
			if b, _, _ := balanceOf(t, e.s.DB, "alice"); b != 10*money.One {
				t.Fatalf("balance after callback %d: %s", i+1, b)
			}
		}
		var rows int
		if err := q.Get(ctx, &rows, `SELECT COUNT(*) FROM ledger WHERE kind = ? AND ref = ?`, KindInvoice, "invoice:"+id); err != nil {
			t.Fatal(err)
		}
		if rows != 1 {
			t.Fatalf("%d ledger rows for one invoice", rows)
		}
		if a := e.ok(e.do(e.web, "getInvoiceInfo", user("alice", "invoice", id))); field(a, "status") != "1" ||
			!strings.Contains(field(a, "txdata"), "P"+id) {
			t.Fatalf("paid invoice: %s", a.Body)
		}

		// A payment of another amount is refused; a failed one declines the invoice.
		a = e.ok(e.do(e.web, "createInvoice", user("alice", "payment_amount", "20")))
		id2 := field(a, "transaction")
		e.fails(e.do(e.web, "finishInvoice", url.Values{"handler": {"card"}, "order": {id2}, "sig": {"good"}, "state": {"paid"}, "sum": {"5"}}),
			apierr.TransactionFailed, 200)
		a = e.ok(e.do(e.web, "createInvoice", user("alice", "payment_amount", "3"))) // start minimum no longer applies
		id3 := field(a, "transaction")
		e.do(e.web, "finishInvoice", url.Values{"handler": {"card"}, "order": {id3}, "sig": {"good"}, "state": {"failed"}})
		if a := e.ok(e.do(e.web, "getInvoiceInfo", user("alice", "invoice", id3))); field(a, "status") != "2" {
			t.Fatalf("declined invoice: %s", a.Body)
		}
		if b, _, _ := balanceOf(t, e.s.DB, "alice"); b != 10*money.One {
			t.Fatalf("balance after refused payments: %s", b)
		}

		// A bank transfer, confirmed by a callback naming the invoice only.
		a = e.ok(e.do(e.web, "createInvoice", user("alice", "payment_amount", "50", "payment_method", "wire")))
		id4 := field(a, "transaction")
		if field(a, "msg") != "IBAN XX00 0000" || field(a, "method") != "GET" {
			t.Fatalf("wire invoice: %s", a.Body)
		}
		// A handler cannot confirm another handler's invoice.
		e.fails(e.do(e.web, "finishInvoice", url.Values{"handler": {"card"}, "order": {id4}, "sig": {"good"}, "state": {"paid"}}),
			apierr.DoesNotBelongToYou, 200)
		if _, _, body := getRaw(e, "finishInvoice", url.Values{"invoice": {id4}}); body != "ok" {
			t.Fatalf("wire finish: %q", body)
		}
		if b, _, _ := balanceOf(t, e.s.DB, "alice"); b != 60*money.One {
			t.Fatalf("balance after the transfer: %s", b)
		}
		e.fails(e.do(e.web, "finishInvoice", nil), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "finishInvoice", url.Values{"invoice": {"99999"}}), apierr.NotExist, 200)

		// Listing: own, done, bank; someone else's invoice is not yours.
		list := func(a answer) []string {
			var ids []string
			for _, v := range a.Response.([]any) {
				ids = append(ids, field(answer{Response: v}, "id"))
			}
			return ids
		}
		if got := list(e.ok(e.do(e.web, "getInvoices", user("alice")))); strings.Join(got, ",") != id4+","+id3+","+id2+","+id {
			t.Fatalf("getInvoices: %v", got)
		}
		if got := list(e.ok(e.do(e.web, "getInvoices", user("alice", "done", "true")))); strings.Join(got, ",") != id4+","+id {
			t.Fatalf("getInvoices done: %v", got)
		}
		if got := list(e.ok(e.do(e.web, "getInvoices", user("alice", "done", "false")))); strings.Join(got, ",") != id3+","+id2 {
			t.Fatalf("getInvoices not done: %v", got)
		}
		if got := list(e.ok(e.do(e.web, "getInvoices", user("alice", "bank", "true")))); strings.Join(got, ",") != id4 {
			t.Fatalf("getInvoices bank: %v", got)
		}
		if got := list(e.ok(e.do(e.web, "getInvoices", user("bob", "own", "false")))); len(got) != 0 {
			t.Fatalf("bob sees %v", got)
		}
		if got := list(e.ok(e.do(e.web, "getInvoices", admin("own", "false")))); len(got) != 5 {
			t.Fatalf("the admin sees %v", got)
		}
		e.fails(e.do(e.web, "getInvoiceInfo", user("bob", "invoice", id)), apierr.DoesNotBelongToYou, 200)
		e.fails(e.do(e.web, "getInvoiceInfo", user("alice", "invoice", "99999")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "getInvoiceInfo", user("alice")), apierr.MissingArgument, 400)
		e.fails(e.do(e.web, "viewInvoice", user("bob", "invoice", id)), apierr.DoesNotBelongToYou, 200)

		// The PDF holds the number and the amount.
		body := pdfOf(t, e, "viewInvoice", user("alice", "invoice", id))
		for _, want := range []string{"Invoice No. " + id, "10.00", "Status: paid", "card \\(visa\\)"} {
			if !strings.Contains(body, want) {
				t.Fatalf("viewInvoice PDF lacks %q", want)
			}
		}

		// Deleting: admins only, never a paid invoice.
		e.fails(e.do(e.web, "deleteInvoice", user("alice", "invoice", id2)), apierr.InsufficientAccess, 200)
		e.fails(e.do(e.web, "deleteInvoice", admin("invoice", id)), apierr.DataAbort, 200)
		e.ok(e.do(e.web, "deleteInvoice", admin("invoice", id2)))
		e.fails(e.do(e.web, "getInvoiceInfo", user("alice", "invoice", id2)), apierr.NotExist, 200)
		e.fails(e.do(e.web, "deleteInvoice", admin("invoice", id2)), apierr.NotExist, 200)

		// Maintenance expires an unpaid invoice past its validity; a late payment still counts.
		a = e.ok(e.do(e.web, "createInvoice", user("alice", "payment_amount", "7")))
		id5 := field(a, "transaction")
		if _, err := q.Exec(ctx, `UPDATE invoices SET valid_thru = ? WHERE id = ?`, time.Now().Unix()-10, id5); err != nil {
			t.Fatal(err)
		}
		key := maintKey(t, e)
		for i := 0; i < 2; i++ {
			e.ok(e.do(key, "doMaintenance", url.Values{"login": {adminName}}))
		}
		if a := e.ok(e.do(e.web, "getInvoiceInfo", user("alice", "invoice", id5))); field(a, "status") != "3" {
			t.Fatalf("expired invoice: %s", a.Body)
		}
		e.ok(e.do(e.web, "finishInvoice", url.Values{"handler": {"card"}, "order": {id5}, "sig": {"good"}, "state": {"paid"}}))
		if b, _, _ := balanceOf(t, e.s.DB, "alice"); b != 67*money.One {
			t.Fatalf("balance after a late payment: %s", b)
		}

		// Financial transactions locked: no invoice.
		e.ok(e.do(e.web, "updateAccount", admin("username", "bob", "refill_allowed", "0")))
		e.fails(e.do(e.web, "createInvoice", user("bob", "payment_amount", "10")), apierr.TransactionsLocked, 200)
		checkLedger(t, e)
	})
}

func TestInvoicesWithoutScripts(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		a := e.ok(e.do(e.web, "getPaymentMethods", nil))
		if field(a, "public") != "{}" || field(a, "private") != "{}" || field(a, "default") != "{}" {
			t.Fatalf("getPaymentMethods: %s", a.Body)
		}
		e.register(admin(), "alice", 11)
		e.fails(e.do(e.web, "createInvoice", user("alice", "payment_amount", "10")), apierr.NotExist, 200)
		e.fails(e.do(e.web, "finishInvoice", url.Values{"handler": {"card"}}), apierr.NotExist, 200)
		if a := e.ok(e.do(e.web, "getInvoices", user("alice"))); strings.TrimSpace(a.Body) != `{"result":true,"response":[]}` {
			t.Fatalf("getInvoices: %s", a.Body)
		}
	})
}

func TestGenerateInvoice(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		e.register(admin(), "alice", 11)
		e.ok(e.do(e.web, "updateAccount", admin("username", "alice", "billing_name", "Alice Smith", "billing_address", "1 Main St")))
		body := pdfOf(t, e, "generateInvoice", user("alice", "invoice", "42", "date", "2017-06-24 00:00:00",
			"deadline", "2017-06-25 00:00:00", "services", "Calls@12.5@min@0.1,Number@1@month@3.333333"))
		for _, want := range []string{"Invoice No. 42", "Alice Smith", "1 Main St", "2017-06-25 00:00:00", "1.25", "3.333333", "4.583333"} {
			if !strings.Contains(body, want) {
				t.Fatalf("generateInvoice PDF lacks %q", want)
			}
		}
		for _, bad := range []url.Values{
			user("alice", "invoice", "1", "services", "Calls@1@min"),
			user("alice", "invoice", "1", "services", "Calls@x@min@1"),
			user("alice", "invoice", "1", "services", "@1@min@1"),
			user("alice", "invoice", "1", "services", "Calls@-1@min@1"),
			user("alice", "invoice", "1", "services", "Calls@1@min@1", "date", "yesterday"),
		} {
			e.fails(e.do(e.web, "generateInvoice", bad), apierr.InvalidArgument, 400)
		}
		e.fails(e.do(e.web, "generateInvoice", user("alice", "invoice", "1")), apierr.MissingArgument, 400)
		// Text outside Latin-1 and over-long service names still make a PDF.
		e.ok(e.do(e.web, "updateAccount", admin("username", "alice", "billing_name", "Иван Петров 李")))
		pdfOf(t, e, "generateInvoice", user("alice", "invoice", "7", "services", strings.Repeat("Звонки ", 40)+"@1@шт@1"))
	})
}

func TestMonthlyInvoice(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		e.register(admin(), "alice", 11, "balance", "100")
		e.ok(e.do(e.web, "updateAccount", admin("username", "alice", "postpaid", "1")))
		u, err := userByName(ctx, e.s.DB.Q(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now().UTC()
		lastMonth := time.Date(now.Year(), now.Month(), 1, 12, 0, 0, 0, time.UTC).AddDate(0, -1, 0)
		book := func(amount string, kind string, at time.Time) {
			t.Helper()
			m, _ := money.Parse(amount)
			// Booked at its time, as the scheduled work books at its clock's (ledger rows
			// are never changed afterwards).
			err := e.s.DB.InTx(ctx, func(tx *db.Tx) error {
				return postAt(ctx, tx, at, u.Number, m, kind, "test", "", 0)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		book("-3", KindCall, lastMonth)
		book("-2.125", KindCall, lastMonth.Add(time.Hour))
		book("-4", KindDID, lastMonth)
		book("-1", KindTransfer, lastMonth)                // not a service
		book("-50", KindCall, lastMonth.AddDate(0, -1, 0)) // another month
		body := pdfOf(t, e, "monthlyInvoice", user("alice"))
		for _, want := range []string{"Calls", "5.125", "DID rent", "4.00", "9.125", lastMonth.Format("200601"), "Postpaid"} {
			if !strings.Contains(body, want) {
				t.Fatalf("monthlyInvoice PDF lacks %q", want)
			}
		}
		for _, unwanted := range []string{"Transfer", "50.00", "55.125"} {
			if strings.Contains(body, unwanted) {
				t.Fatalf("monthlyInvoice PDF holds %q", unwanted)
			}
		}
		body = pdfOf(t, e, "monthlyInvoice", user("alice", "month", itoa(int(lastMonth.AddDate(0, -1, 0).Month())), "email", "false"))
		if !strings.Contains(body, "50.00") {
			t.Fatal("monthlyInvoice of an earlier month lacks its charge")
		}
		e.fails(e.do(e.web, "monthlyInvoice", user("alice", "month", "13")), apierr.InvalidArgument, 400)
		checkLedger(t, e)
	})
}
