package billing

import (
	"context"
	"database/sql"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
	"github.com/narayana/narayanad/money"
)

// invoiceMethods declares the methods whose handlers are in this file: the reference's
// "Finances and statistics".
func (s *Service) invoiceMethods() []Method {
	return []Method{
		method("getPaymentMethods", 0, s.getPaymentMethods).
			Doc("list the allowed payment methods", "the payment methods"),
		method("finishInvoice", 0, s.finishInvoice, "handler:string", "invoice:int").
			Doc("take a payment handler's request when a payment finishes", "what the payment handler answers"),
		method("createInvoice", 1, s.createInvoice, "payment_method:string", "payment_type:string",
			"payment_amount:money!").
			Doc("create a payment invoice", "the invoice's data"),
		method("getInvoices", 1, s.getInvoices, "own:bool=true", "bank:bool=false", "done:bool").
			Doc("list the invoices", "the invoices"),
		method("getInvoiceInfo", 1, s.getInvoiceInfo, "invoice:int", "id:int").
			Doc("get an invoice's data", "the invoice's data"),
		method("deleteInvoice", 33, s.deleteInvoice, "invoice:int!").
			Doc("delete an invoice", "true"),
	}
}

// Invoice statuses (the reference leaves them open).
const (
	InvoiceUnpaid   = 0 // created, waiting for the payment
	InvoicePaid     = 1 // the payment provider confirmed it; the account was credited
	InvoiceDeclined = 2 // the payment provider reported a failed payment
	InvoiceExpired  = 3 // valid_thru passed unpaid (doMaintenance)
)

// defaultInvoiceValidity is how long an invoice waits for its payment when the payment
// handler does not say (valid_for, seconds).
const defaultInvoiceValidity = 72 * time.Hour

// Invoice is a row of the invoices table with its owner's name.
type Invoice struct {
	ID          int64         `db:"id"`
	OwnerID     sql.NullInt64 `db:"owner_id"`
	Owner       string        `db:"owner"`
	OwnerLevel  int           `db:"owner_level"`
	OwnerActive int           `db:"owner_active"`
	OwnerMgr    sql.NullInt64 `db:"owner_manager"`
	AccountID   sql.NullInt64 `db:"account_id"`
	Amount      money.Micro   `db:"amount"`
	Comission   money.Micro   `db:"comission"`
	VAT         money.Micro   `db:"vat"`
	Status      int           `db:"status"`
	Msg         string        `db:"msg"`
	Method      string        `db:"method"`
	Handler     string        `db:"handler"`
	BillingData string        `db:"billing_data"`
	TxData      string        `db:"txdata"`
	Bank        int           `db:"bank"`
	CreatedAt   int64         `db:"created_at"`
	ValidThru   int64         `db:"valid_thru"`
	Period      string        `db:"period"` // YYYY-MM of a postpaid account's monthly invoice
	DueAt       int64         `db:"due_at"`
	ProviderRef string        `db:"provider_ref"` // a built-in method's reference: the Stripe session
}

const invoiceSelect = `SELECT i.id, i.owner_id, COALESCE(u.username, '') AS owner, COALESCE(u.accesslevel, 0) AS owner_level,
	COALESCE(u.active, 0) AS owner_active, u.manager_id AS owner_manager, i.account_id, i.amount, i.comission, i.vat,
	i.status, i.msg, i.method, i.handler, i.billing_data, i.txdata, i.bank, i.created_at, i.valid_thru, i.period, i.due_at,
	i.provider_ref FROM invoices i LEFT JOIN users u ON u.id = i.owner_id`

func invoiceByID(ctx context.Context, q db.Queryer, id int64) (*Invoice, error) {
	var inv Invoice
	err := q.Get(ctx, &inv, invoiceSelect+` WHERE i.id = ?`, id)
	if db.IsNotFound(err) {
		return nil, apierr.New(apierr.NotExist, "no invoice %d", id)
	}
	return &inv, err
}

// managesInvoice applies the one ownership rule to an invoice's owner. An invoice whose
// owner was deleted belongs to the master admins only (level 44 and up).
func (r *Request) managesInvoice(inv *Invoice) (bool, error) {
	if !inv.OwnerID.Valid {
		return r.Caller.Actor != nil && r.Caller.Actor.AccessLevel >= keys.LevelMaster, nil
	}
	p := &keys.Principal{ID: inv.OwnerID.Int64, Username: inv.Owner, AccessLevel: inv.OwnerLevel,
		Active: inv.OwnerActive, ManagerID: inv.OwnerMgr}
	return r.S.Gate.Users.Manages(r.ctx, r.S.DB.Q(), r.Caller.Actor, p)
}

// ownedInvoice loads an invoice the caller manages: E_NOT_EXIST or E_DOES_NOT_BELONG_TO_YOU.
func (r *Request) ownedInvoice(id int64) (*Invoice, error) {
	inv, err := invoiceByID(r.ctx, r.S.DB.Q(), id)
	if err != nil {
		return nil, err
	}
	ok, err := r.managesInvoice(inv)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, apierr.New(apierr.DoesNotBelongToYou, "invoice %d is not yours", id)
	}
	return inv, nil
}

// invoiceArg is the invoice number: `invoice`, or `id` as the reference's example of
// getInvoiceInfo writes it.
func (r *Request) invoiceArg() (int64, error) {
	for _, name := range []string{"invoice", "id"} {
		if r.Has(name) {
			return r.Int(name), nil
		}
	}
	return 0, apierr.New(apierr.MissingArgument, "invoice is obligatory")
}

// invoiceJSON is an invoice as getInvoices and getInvoiceInfo answer it; display and
// client* fields are in the asking user's currency and timezone.
func invoiceJSON(inv *Invoice, x exchange, tz float64) map[string]any {
	var tx any = inv.TxData
	if json.Valid([]byte(inv.TxData)) {
		tx = json.RawMessage(inv.TxData)
	}
	return map[string]any{
		"id": inv.ID, "owner": inv.Owner, "comission": inv.Comission, "vat": inv.VAT,
		"amount": inv.Amount, "displayamount": x.display(inv.Amount), "status": inv.Status, "msg": inv.Msg,
		"method": inv.Method, "handler": inv.Handler, "billing_data": inv.BillingData, "txdata": tx,
		"bank": inv.Bank == 1, "date": formatTime(inv.CreatedAt, 0), "clientdate": formatTime(inv.CreatedAt, tz),
		"validthru": formatTime(inv.ValidThru, 0), "clientvalidthru": formatTime(inv.ValidThru, tz),
		"period": inv.Period, "duedate": formatTime(inv.DueAt, 0),
	}
}

// getInvoices(1) lists invoices, newest first. own (default true): the user's own
// invoices; own=false: those of every user the caller manages. bank=true: bank
// transactions only. done=true: paid invoices only; done=false: unpaid ones only (status
// other than paid); without done: all.
func (s *Service) getInvoices(r *Request) (any, error) {
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	x, err := s.exchange(r.ctx, u.Currency)
	if err != nil {
		return nil, err
	}
	query, args := invoiceSelect+` WHERE 1 = 1`, []any{}
	if r.Bool("own") {
		query, args = query+` AND i.owner_id = ?`, append(args, u.ID)
	}
	if r.Bool("bank") {
		query += ` AND i.bank = 1`
	}
	if r.Has("done") {
		if r.Bool("done") {
			query, args = query+` AND i.status = ?`, append(args, InvoicePaid)
		} else {
			query, args = query+` AND i.status <> ?`, append(args, InvoicePaid)
		}
	}
	var rows []Invoice
	if err := s.DB.Q().Select(r.ctx, &rows, query+` ORDER BY i.id DESC`, args...); err != nil {
		return nil, err
	}
	out := []map[string]any{}
	seen := map[int64]bool{}
	for i := range rows {
		inv := &rows[i]
		if !r.Bool("own") {
			ok, known := seen[inv.OwnerID.Int64]
			if !known {
				if ok, err = r.managesInvoice(inv); err != nil {
					return nil, err
				}
				seen[inv.OwnerID.Int64] = ok
			}
			if !ok {
				continue
			}
		}
		out = append(out, invoiceJSON(inv, x, u.Timezone))
	}
	return out, nil
}

// getInvoiceInfo(1) answers one invoice of a user the caller manages.
func (s *Service) getInvoiceInfo(r *Request) (any, error) {
	id, err := r.invoiceArg()
	if err != nil {
		return nil, err
	}
	inv, err := r.ownedInvoice(id)
	if err != nil {
		return nil, err
	}
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	x, err := s.exchange(r.ctx, u.Currency)
	if err != nil {
		return nil, err
	}
	return invoiceJSON(inv, x, u.Timezone), nil
}

// deleteInvoice(33) deletes an invoice of a user the caller manages. A paid invoice is
// an accounting record of money received and is kept: E_DATA_ABORT. Deleting an unpaid
// one means a late confirmation of its payment finds nothing (E_NOT_EXIST).
func (s *Service) deleteInvoice(r *Request) (any, error) {
	id, err := r.invoiceArg()
	if err != nil {
		return nil, err
	}
	inv, err := r.ownedInvoice(id)
	if err != nil {
		return nil, err
	}
	if inv.Status == InvoicePaid {
		return nil, apierr.New(apierr.DataAbort, "invoice %d is paid: it stays as the record of the payment", id)
	}
	res, err := s.DB.Q().Exec(r.ctx, `DELETE FROM invoices WHERE id = ? AND status <> ?`, id, InvoicePaid)
	if err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, apierr.New(apierr.DataAbort, "invoice %d was paid meanwhile", id)
	}
	return true, nil
}

// ---- payment handlers ----
//
// A payment method is a Lua handler: narayana.handler("payment", name, fn). The billing
// calls fn with a table whose `action` says what it wants:
//
//   - action "info": fn returns {title=, private=bool, default=bool, bank=bool,
//     minimum=, maximum=, start_minimum=} (all optional). Amounts here are micro-units of
//     the system currency when numbers (narayana.money.parse), decimal units when strings.
//   - action "create": with invoice (number), amount (micro-units, system currency),
//     display_amount and currency (the user's), type (payment_type) and user. fn returns
//     {url=, method="GET"|"POST", msg=, comission=, vat=, valid_for=seconds,
//     parameters={…}, txdata=…}; the billing keeps it and answers it to the client.
//   - action "finish": the provider's callback, with params (every argument of the
//     request) and, when the request named it, invoice (the stored invoice). fn checks the
//     provider's signature and returns {invoice=number, paid=bool, amount=, txdata=,
//     answer="text for the provider", content_type=}.

// paymentHandlers names the payment handlers the scripts register (none without scripts).
func (s *Service) paymentHandlers() []string {
	if s.ext.scripts == nil {
		return nil
	}
	return s.ext.scripts.Handlers("payment")
}

// paymentInfo is what a handler's "info" action tells about it.
type paymentInfo struct {
	Name, Title                    string
	Private, Default, Bank         bool
	Minimum, Maximum, StartMinimum money.Micro
}

// paymentInfo asks a handler about itself. A handler that does not answer "info" (fails,
// or returns no table) is a public method titled by its name, without bounds.
func (s *Service) paymentInfo(ctx context.Context, name string) paymentInfo {
	info := paymentInfo{Name: name, Title: name}
	v, err := s.ext.scripts.CallHandler(ctx, "payment", name, map[string]any{"action": "info"})
	if err != nil {
		s.Log.Debug("payment handler gave no info", "handler", name, "err", err)
		return info
	}
	m, _ := v.(map[string]any)
	if t, ok := m["title"].(string); ok && t != "" {
		info.Title = t
	}
	info.Private, _ = m["private"].(bool)
	info.Default, _ = m["default"].(bool)
	info.Bank, _ = m["bank"].(bool)
	info.Minimum, _ = handlerMoney(m["minimum"])
	info.Maximum, _ = handlerMoney(m["maximum"])
	info.StartMinimum, _ = handlerMoney(m["start_minimum"])
	return info
}

// handlerMoney reads an amount a handler gave: a number is micro-units, a string decimal units.
func handlerMoney(v any) (money.Micro, bool) {
	switch x := v.(type) {
	case int64:
		return money.Micro(x), true
	case float64:
		if x == float64(int64(x)) {
			return money.Micro(int64(x)), true
		}
	case string:
		m, err := money.Parse(strings.TrimSpace(x))
		return m, err == nil
	}
	return 0, false
}

// handlerDecimal reads a plain decimal (a percentage) a handler gave, number or string.
func handlerDecimal(v any) money.Micro {
	if v == nil {
		return 0
	}
	m, _ := money.Parse(paramText(v))
	return m
}

// getPaymentMethods(0) lists the configured payment methods by title:
// {"private": {title: name}, "public": {title: name}, "default": {title: name}}: the
// built-in ones the configuration turns on (`stripe`, `bank`: payments.go), public, then
// the Lua handlers. "private" methods are those a handler flags so (meant for verified
// users; the handler sees the user on create and may refuse); "default" is the handler
// flagged default, else the first public method (empty when there is none).
func (s *Service) getPaymentMethods(r *Request) (any, error) {
	priv, pub, def := map[string]string{}, map[string]string{}, map[string]string{}
	var firstPublic *paymentInfo
	for _, b := range s.builtinPayments() {
		pub[b.Title] = b.Name
		if firstPublic == nil {
			firstPublic = &paymentInfo{Name: b.Name, Title: b.Title}
		}
	}
	for _, name := range s.paymentHandlers() {
		info := s.paymentInfo(r.ctx, name)
		if info.Private {
			priv[info.Title] = name
		} else {
			pub[info.Title] = name
			if firstPublic == nil {
				firstPublic = &info
			}
		}
		if info.Default && len(def) == 0 {
			def[info.Title] = name
		}
	}
	if len(def) == 0 && firstPublic != nil {
		def[firstPublic.Title] = firstPublic.Name
	}
	return map[string]any{"private": priv, "public": pub, "default": def}, nil
}

// defaultPayment is the method createInvoice uses without payment_method: as
// getPaymentMethods' "default".
func (s *Service) defaultPayment(ctx context.Context) (string, error) {
	names := s.paymentHandlers()
	builtins := s.builtinPayments()
	if len(names) == 0 && len(builtins) == 0 {
		return "", apierr.New(apierr.NotExist, "no payment method is configured")
	}
	first := ""
	if len(builtins) > 0 {
		first = builtins[0].Name
	}
	for _, n := range names {
		info := s.paymentInfo(ctx, n)
		if info.Default {
			return n, nil
		}
		if first == "" && !info.Private {
			first = n
		}
	}
	if first == "" {
		first = names[0]
	}
	return first, nil
}

// createInvoice(1) creates an unpaid invoice of payment_amount (in the user's currency)
// for the user and answers what the payment handler says the client must do to pay:
// {"comission", "transaction", "msg", "method", "url", parameters…}.
//
// Bounds come from the handler's "info": minimum (E_MINIMAL_PAYMENT), maximum
// (E_MAXIMUM_PAYMENT) and start_minimum for an account that has never been credited by
// an invoice (E_MINIMAL_START_PAYMENT), all in the system currency. An account whose
// refill_allowed is 0 gets E_TRANSACTIONS_LOCKED. A failing handler answers its own code
// and leaves no invoice behind.
func (s *Service) createInvoice(r *Request) (any, error) {
	ctx := r.ctx
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	amount := r.Money("payment_amount")
	if amount <= 0 {
		return nil, apierr.New(apierr.InvalidArgument, "payment_amount must be positive")
	}
	if u.RefillAllowed == refillForbidden {
		return nil, apierr.New(apierr.TransactionsLocked, "financial transactions of account %d are forbidden", u.Number)
	}
	name := r.Str("payment_method")
	if name == "" {
		if name, err = s.defaultPayment(ctx); err != nil {
			return nil, err
		}
	}
	builtin := s.builtinPayment(name)
	if builtin == nil && !containsString(s.paymentHandlers(), name) {
		return nil, apierr.New(apierr.NotExist, "no payment method %q", name)
	}
	x, err := s.exchange(ctx, u.Currency)
	if err != nil {
		return nil, err
	}
	sys := x.toSystem(amount)
	if builtin != nil {
		return s.createBuiltinInvoice(r, u, builtin, sys)
	}
	info := s.paymentInfo(ctx, name)
	if info.Minimum > 0 && sys < info.Minimum {
		return nil, apierr.New(apierr.MinimalPayment, "the least payment is %s %s", x.display(info.Minimum), u.Currency)
	}
	if info.Maximum > 0 && sys > info.Maximum {
		return nil, apierr.New(apierr.MaximumPayment, "the largest payment is %s %s", x.display(info.Maximum), u.Currency)
	}
	if info.StartMinimum > 0 && sys < info.StartMinimum {
		var paid int
		if err := s.DB.Q().Get(ctx, &paid, `SELECT COUNT(*) FROM ledger WHERE account_id = ? AND kind = ?`,
			u.Number, KindInvoice); err != nil {
			return nil, err
		}
		if paid == 0 {
			return nil, apierr.New(apierr.MinimalStartPayment, "the least first payment is %s %s",
				x.display(info.StartMinimum), u.Currency)
		}
	}
	now := time.Now()
	billing := strings.TrimSpace(u.BillingName + "\n" + u.BillingAddress)
	bank := 0
	if info.Bank {
		bank = 1
	}
	// The row comes first: the handler needs the invoice number for the provider.
	id, err := s.DB.Q().Insert(ctx, `INSERT INTO invoices (owner_id, account_id, amount, status, method, handler,
		billing_data, bank, created_at, valid_thru) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Number, sys, InvoiceUnpaid, r.Str("payment_type"), name, billing, bank, now.Unix(),
		now.Add(defaultInvoiceValidity).Unix())
	if err != nil {
		return nil, err
	}
	drop := func() {
		if _, err := s.DB.Q().Exec(context.WithoutCancel(ctx), `DELETE FROM invoices WHERE id = ?`, id); err != nil {
			s.Log.Error("invoice left behind by a failed createInvoice", "invoice", id, "err", err)
		}
	}
	v, err := s.ext.scripts.CallHandler(ctx, "payment", name, map[string]any{
		"action": "create", "invoice": id, "amount": int64(sys), "display_amount": int64(amount),
		"currency": u.Currency, "type": r.Str("payment_type"), "user": scriptUser(u),
		"billing_name": u.BillingName, "billing_address": u.BillingAddress, "billing_email": u.BillingEmail,
	})
	if err != nil {
		drop()
		return nil, s.scriptError("payment handler "+name, err)
	}
	m, ok := v.(map[string]any)
	if !ok {
		drop()
		return nil, apierr.New(apierr.LuaException, "payment handler %s answered no table", name)
	}
	out := map[string]any{}
	if params, ok := m["parameters"].(map[string]any); ok {
		for k, v := range params {
			out[k] = v
		}
	}
	comission, vat := handlerDecimal(m["comission"]), handlerDecimal(m["vat"])
	msg, _ := m["msg"].(string)
	httpMethod, _ := m["method"].(string)
	if httpMethod == "" {
		httpMethod = "GET"
	}
	out["comission"], out["transaction"], out["msg"] = comission, id, msg
	out["method"], out["url"] = strings.ToUpper(httpMethod), m["url"]
	validThru := now.Add(defaultInvoiceValidity).Unix()
	if secs, ok := handlerMoney(m["valid_for"]); ok && secs > 0 {
		validThru = now.Unix() + int64(secs)
	}
	txdata := map[string]any{"create": out}
	if t, ok := m["txdata"]; ok {
		txdata["handler"] = t
	}
	tx, err := json.Marshal(txdata)
	if err != nil {
		drop()
		return nil, apierr.New(apierr.LuaException, "payment handler %s answered a value that cannot be kept", name)
	}
	if _, err := s.DB.Q().Exec(ctx, `UPDATE invoices SET comission = ?, vat = ?, msg = ?, txdata = ?, valid_thru = ? WHERE id = ?`,
		comission, vat, msg, string(tx), validThru, id); err != nil {
		drop()
		return nil, err
	}
	return out, nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// finishInvoice(0) is the payment provider's callback. The handler is the `handler`
// argument, else the handler of the invoice named by `invoice`. A built-in method's
// invoice goes to finishBuiltin (payments.go). A Lua handler gets every argument
// of the request and decides: when it answers paid=true for an invoice of its own, the
// invoice becomes paid and its amount is credited to the account (ledger kind
// `invoice`), both in one transaction, exactly once: a repeated callback changes
// nothing. paid=false marks an unpaid invoice declined. A handler that reports the
// amount it received (amount=) must report the invoice's amount, else
// E_TRANSACTION_FAILED and nothing changes. A late confirmation of an expired or declined
// invoice still credits it: the money was received. The answer is the handler's
// `answer` text (default "ok") as text/plain, or its content_type: what the provider
// expects to read.
func (s *Service) finishInvoice(r *Request) (any, error) {
	ctx := r.ctx
	var inv *Invoice
	name := r.Str("handler")
	if r.Has("invoice") {
		var err error
		if inv, err = invoiceByID(ctx, s.DB.Q(), r.Int("invoice")); err != nil {
			return nil, err
		}
		if name == "" {
			name = inv.Handler
		}
	}
	if name == "" {
		return nil, apierr.New(apierr.MissingArgument, "handler or invoice is obligatory")
	}
	if b := s.builtinPayment(name); b != nil {
		return s.finishBuiltin(r, b, inv)
	}
	if !containsString(s.paymentHandlers(), name) {
		return nil, apierr.New(apierr.NotExist, "no payment method %q", name)
	}
	params := map[string]any{}
	for k, v := range r.args {
		switch k {
		case "login", "password", "username":
			continue
		}
		params[k] = v
	}
	in := map[string]any{"action": "finish", "params": params}
	if inv != nil {
		in["invoice"] = invoiceScript(inv)
	}
	v, err := s.ext.scripts.CallHandler(ctx, "payment", name, in)
	if err != nil {
		return nil, s.scriptError("payment handler "+name, err)
	}
	m, _ := v.(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	answer := Raw{ContentType: "text/plain; charset=utf-8", Body: []byte("ok")}
	if a, ok := m["answer"].(string); ok {
		answer.Body = []byte(a)
	}
	if ct, ok := m["content_type"].(string); ok && ct != "" && !strings.ContainsAny(ct, "\r\n") {
		answer.ContentType = ct
	}
	id := int64(0)
	if inv != nil {
		id = inv.ID
	}
	if n, ok := handlerMoney(m["invoice"]); ok && n > 0 {
		id = int64(n)
	} else if sid, ok := m["invoice"].(string); ok {
		if n, err := strconv.ParseInt(sid, 10, 64); err == nil {
			id = n
		}
	}
	paid, hasPaid := m["paid"].(bool)
	if id == 0 || !hasPaid {
		return answer, nil // the handler decided nothing about an invoice
	}
	var txdata any
	if t, ok := m["txdata"]; ok {
		txdata = t
	}
	// A postpaid account's monthly invoice has no handler: any payment method pays it.
	mine := func(cur *Invoice) error {
		if cur.Handler != name && cur.Handler != "" {
			return apierr.New(apierr.DoesNotBelongToYou, "invoice %d is not one of payment method %s", id, name)
		}
		return nil
	}
	if !paid {
		err = s.DB.InTx(ctx, func(tx *db.Tx) error {
			var cur Invoice
			err := tx.Get(ctx, &cur, `SELECT i.id, i.status, i.handler, i.txdata FROM invoices i WHERE i.id = ?`+tx.ForUpdate(), id)
			if db.IsNotFound(err) {
				return apierr.New(apierr.NotExist, "no invoice %d", id)
			} else if err != nil {
				return err
			}
			if err := mine(&cur); err != nil || cur.Status != InvoiceUnpaid {
				return err
			}
			_, err = tx.Exec(ctx, `UPDATE invoices SET status = ?, txdata = ? WHERE id = ?`, InvoiceDeclined,
				mergeTxData(cur.TxData, txdata), id)
			return err
		})
		if err != nil {
			return nil, err
		}
		return answer, nil
	}
	_, err = s.creditInvoice(ctx, id, name, "lua:"+name+":"+strconv.FormatInt(id, 10), txdata, 0, "payment by "+name,
		func(cur *Invoice) error {
			if err := mine(cur); err != nil {
				return err
			}
			if got, ok := handlerMoney(m["amount"]); ok && m["amount"] != nil && got != cur.Amount && cur.Status != InvoicePaid {
				return apierr.New(apierr.TransactionFailed, "invoice %d is for %s, the payment was %s", id, cur.Amount, got)
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	return answer, nil
}

// invoiceScript is an invoice as a payment handler sees it (money in micro-units).
func invoiceScript(inv *Invoice) map[string]any {
	return map[string]any{
		"id": inv.ID, "owner": inv.Owner, "amount": int64(inv.Amount), "status": int64(inv.Status),
		"method": inv.Method, "handler": inv.Handler, "txdata": inv.TxData, "created": inv.CreatedAt,
		"valid_thru": inv.ValidThru,
	}
}

// mergeTxData adds the handler's finishing data to the invoice's txdata.
func mergeTxData(old string, add any) string {
	if add == nil {
		return old
	}
	m := map[string]any{}
	if err := json.Unmarshal([]byte(old), &m); err != nil || m == nil {
		m = map[string]any{}
		if old != "" {
			m["previous"] = old
		}
	}
	m["finish"] = add
	b, err := json.Marshal(m)
	if err != nil {
		return old
	}
	return string(b)
}
