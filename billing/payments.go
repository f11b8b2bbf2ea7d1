package billing

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/stripe/stripe-go/v82"
	"github.com/stripe/stripe-go/v82/webhook"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
	"github.com/narayana/narayanad/money"
)

// paymentMethods declares the methods whose handlers are in this file: the built-in
// payment methods (bank transfer, Stripe Checkout) beside the Lua payment handlers of
// invoices.go. docs/PAYMENTS.md is the operator's side of it.
func (s *Service) paymentMethods() []Method {
	return []Method{
		method("payInvoice", keys.LevelAdmin, s.payInvoice, "invoice:int!", "reference:string").
			Doc("mark an invoice paid (a bank transfer received): credits its account once", "true"),
	}
}

// The built-in payment methods' names, as createInvoice's payment_method gives them.
const (
	PayBank   = "bank"
	PayStripe = "stripe"
)

// StripeWebhookPath is where Stripe posts its events (docs/PAYMENTS.md).
const StripeWebhookPath = "/billing/stripe/webhook"

// builtinPayment is a built-in payment method the configuration turns on.
type builtinPayment struct {
	Name, Title     string
	Commission, VAT money.Micro // percent
}

// builtinPayments lists the built-in methods that are configured: `stripe` while
// stripe_secret_key is set, `bank` while operator_bank is. A Lua payment handler of the
// same name takes a built-in's place, so a site's own handler keeps working.
func (s *Service) builtinPayments() []builtinPayment {
	c := s.Config
	var out []builtinPayment
	if c.StripeSecretKey != "" {
		out = append(out, builtinPayment{Name: PayStripe, Title: c.StripeTitle, Commission: c.StripeCommission, VAT: c.StripeVAT})
	}
	if len(configLines(c.OperatorBank)) > 0 {
		out = append(out, builtinPayment{Name: PayBank, Title: c.BankTitle, Commission: c.BankCommission, VAT: c.BankVAT})
	}
	lua := s.paymentHandlers()
	kept := out[:0]
	for _, b := range out {
		if !containsString(lua, b.Name) {
			if b.Title == "" {
				b.Title = b.Name
			}
			kept = append(kept, b)
		}
	}
	return kept
}

// builtinPayment is the configured built-in method of that name, or nil.
func (s *Service) builtinPayment(name string) *builtinPayment {
	for _, b := range s.builtinPayments() {
		if b.Name == name {
			return &b
		}
	}
	return nil
}

// payCharge is what a payer pays for a top-up: the amount the account receives, the
// commission on it, the VAT on both, each in the system currency; commission and VAT
// are rounded half-up to cents.
type payCharge struct {
	Amount, Commission, VAT money.Micro
}

func chargeFor(amount, commission, vat money.Micro) payCharge {
	c := payCharge{Amount: amount}
	c.Commission = money.Micro(money.MulDiv(int64(amount), int64(commission), int64(100*money.One))).Round(2)
	c.VAT = money.Micro(money.MulDiv(int64(amount+c.Commission), int64(vat), int64(100*money.One))).Round(2)
	return c
}

// Total is what the payer pays, rounded half-up to cents (the smallest unit a bank or
// card moves).
func (c payCharge) Total() money.Micro { return (c.Amount + c.Commission + c.VAT).Round(2) }

// invoiceCharge is the charge of a stored invoice of a built-in method.
func invoiceCharge(inv *Invoice) payCharge { return chargeFor(inv.Amount, inv.Comission, inv.VAT) }

// createBuiltinInvoice is createInvoice for a built-in method: the invoice row, then
// what the payer needs (bank details, or the Stripe Checkout URL). A failure leaves no
// invoice behind.
func (s *Service) createBuiltinInvoice(r *Request, u *User, b *builtinPayment, sys money.Micro) (any, error) {
	ctx := r.ctx
	now := s.now()
	valid := now.Add(time.Duration(s.Config.BankValidDays) * 24 * time.Hour)
	bank := 1
	if b.Name == PayStripe {
		// Stripe Checkout Sessions live 24 hours at most; the invoice expires with its session.
		valid, bank = now.Add(24*time.Hour), 0
	}
	billing := strings.TrimSpace(u.BillingName + "\n" + u.BillingAddress)
	id, err := s.DB.Q().Insert(ctx, `INSERT INTO invoices (owner_id, account_id, amount, comission, vat, status, method, handler,
		billing_data, bank, created_at, valid_thru) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, u.Number, sys, b.Commission, b.VAT, InvoiceUnpaid, r.Str("payment_type"), b.Name, billing, bank,
		now.Unix(), valid.Unix())
	if err != nil {
		return nil, err
	}
	drop := func() {
		if _, err := s.DB.Q().Exec(context.WithoutCancel(ctx), `DELETE FROM invoices WHERE id = ?`, id); err != nil {
			s.Log.Error("invoice left behind by a failed createInvoice", "invoice", id, "err", err)
		}
	}
	c := chargeFor(sys, b.Commission, b.VAT)
	cur := s.Config.Currency
	ref := "Invoice " + strconv.FormatInt(id, 10)
	out := map[string]any{"comission": b.Commission, "vat": b.VAT, "transaction": id, "invoice": id,
		"pay_amount": c.Total(), "currency": cur, "method": "GET", "url": "", "msg": ""}
	txdata := map[string]any{"create": out}
	providerRef := ""
	switch b.Name {
	case PayBank:
		details := strings.Join(configLines(s.Config.OperatorBank), ", ")
		out["bank_details"], out["reference"] = details, ref
		out["pdf"] = "viewInvoice?invoice=" + strconv.FormatInt(id, 10)
		out["msg"] = fmt.Sprintf("Please transfer %s %s to %s, reference %q, by %s.", moneyText(c.Total()), cur, details, ref,
			formatTime(valid.Unix(), u.Timezone)[:10])
	case PayStripe:
		sess, err := s.stripeCheckout(ctx, u, id, c)
		if err != nil {
			drop()
			return nil, err
		}
		out["url"], providerRef = sess.URL, sess.ID
		txdata["stripe"] = map[string]any{"session": sess.ID, "amount_total": sess.AmountTotal, "currency": sess.Currency}
	}
	tx, err := json.Marshal(txdata)
	if err != nil {
		drop()
		return nil, err
	}
	if _, err := s.DB.Q().Exec(ctx, `UPDATE invoices SET msg = ?, txdata = ?, provider_ref = ? WHERE id = ?`,
		out["msg"], string(tx), providerRef, id); err != nil {
		drop()
		return nil, err
	}
	if b.Name == PayBank && s.mailOn() {
		// The invoice stands whether or not its copy can be mailed.
		if err := s.mailBankInvoice(ctx, u, id, c, valid); err != nil {
			s.Log.Error("bank invoice not mailed", "invoice", id, "err", err)
		}
	}
	return out, nil
}

// mailBankInvoice queues a bank invoice's PDF to the account's billing_email (else the
// user's notify_email), once per invoice.
func (s *Service) mailBankInvoice(ctx context.Context, u *User, id int64, c payCharge, valid time.Time) error {
	inv, err := invoiceByID(ctx, s.DB.Q(), id)
	if err != nil {
		return err
	}
	pdf, err := renderInvoice(s.paymentInvoiceDoc(ctx, inv))
	if err != nil {
		return err
	}
	to := u.BillingEmail
	if strings.TrimSpace(to) == "" {
		to = u.NotifyEmail
	}
	n := strconv.FormatInt(id, 10)
	subj, body := mailFor("bank_invoice", u.Language, []any{n},
		[]any{greeting(u), n, moneyText(c.Total()), s.Config.Currency, formatTime(valid.Unix(), u.Timezone)[:10], n})
	queued, err := s.enqueue(ctx, s.DB.Q(), outMail{Kind: "invoice", Dedup: "bank_invoice:" + n, UserID: u.ID, To: to,
		Subject: subj, Body: body, AttachName: "invoice-" + n + ".pdf", Attachment: pdf})
	if queued {
		s.wakeMail()
	}
	return err
}

// ---- Stripe Checkout ----

// stripeClient talks to Stripe, or to stripe_api_url when set. Its own logging is off:
// failures reach our log through the errors it returns.
func (s *Service) stripeClient() *stripe.Client {
	cfg := &stripe.BackendConfig{
		HTTPClient:    &http.Client{Timeout: 30 * time.Second},
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	}
	if s.Config.StripeAPIURL != "" {
		cfg.URL = stripe.String(strings.TrimRight(s.Config.StripeAPIURL, "/"))
	}
	return stripe.NewClient(s.Config.StripeSecretKey, stripe.WithBackends(stripe.NewBackendsWithConfig(cfg)))
}

// zeroDecimal lists the currencies Stripe counts in whole units (its docs, "Zero-decimal
// currencies"); the others in hundredths.
var zeroDecimal = map[string]bool{"BIF": true, "CLP": true, "DJF": true, "GNF": true, "JPY": true, "KMF": true,
	"KRW": true, "MGA": true, "PYG": true, "RWF": true, "UGX": true, "VND": true, "VUV": true, "XAF": true,
	"XOF": true, "XPF": true}

// stripeMinor is an amount in Stripe's smallest unit of currency.
func stripeMinor(m money.Micro, currency string) int64 {
	if zeroDecimal[strings.ToUpper(currency)] {
		return int64(m.Round(0) / money.One)
	}
	return int64(m.Round(2) / (money.One / 100))
}

// stripeError turns a failed Stripe call into E_TRANSACTION_FAILED with Stripe's message.
func (s *Service) stripeError(what string, err error) error {
	s.Log.Error("stripe", "call", what, "err", err)
	var se *stripe.Error
	if errors.As(err, &se) && se.Msg != "" {
		return apierr.New(apierr.TransactionFailed, "stripe: %s", se.Msg)
	}
	return apierr.New(apierr.TransactionFailed, "stripe could not be reached")
}

// stripeCheckout opens a Checkout Session for an invoice: one line, the total in the
// system currency. client_reference_id carries the invoice number back in the events.
func (s *Service) stripeCheckout(ctx context.Context, u *User, id int64, c payCharge) (*stripe.CheckoutSession, error) {
	cur := s.Config.Currency
	inv := strconv.FormatInt(id, 10)
	name := fmt.Sprintf("Top-up of account %d (invoice %s)", u.Number, inv)
	p := &stripe.CheckoutSessionCreateParams{
		Mode:              stripe.String(string(stripe.CheckoutSessionModePayment)),
		ClientReferenceID: stripe.String(inv),
		SuccessURL:        stripe.String(strings.ReplaceAll(s.Config.StripeSuccessURL, "{INVOICE}", inv)),
		ExpiresAt:         stripe.Int64(s.now().Add(24 * time.Hour).Unix()),
		Metadata:          map[string]string{"invoice": inv, "account": strconv.FormatInt(u.Number, 10)},
		LineItems: []*stripe.CheckoutSessionCreateLineItemParams{{
			Quantity: stripe.Int64(1),
			PriceData: &stripe.CheckoutSessionCreateLineItemPriceDataParams{
				Currency:    stripe.String(strings.ToLower(cur)),
				UnitAmount:  stripe.Int64(stripeMinor(c.Total(), cur)),
				ProductData: &stripe.CheckoutSessionCreateLineItemPriceDataProductDataParams{Name: stripe.String(name)},
			},
		}},
	}
	if s.Config.StripeCancelURL != "" {
		p.CancelURL = stripe.String(strings.ReplaceAll(s.Config.StripeCancelURL, "{INVOICE}", inv))
	}
	if e := strings.TrimSpace(u.BillingEmail); e != "" {
		p.CustomerEmail = stripe.String(e)
	}
	sess, err := s.stripeClient().V1CheckoutSessions.Create(ctx, p)
	if err != nil {
		return nil, s.stripeError("create checkout session", err)
	}
	return sess, nil
}

// stripeOutcome applies what Stripe says of a Checkout Session to its invoice: a paid
// session credits it (once), a failed or expired one marks an unpaid invoice declined or
// expired. A session no invoice of ours holds changes nothing. It answers what happened,
// for the log.
func (s *Service) stripeOutcome(ctx context.Context, sess *stripe.CheckoutSession, eventID string, failed, expired bool) (string, error) {
	id, err := strconv.ParseInt(sess.ClientReferenceID, 10, 64)
	if err != nil || sess.ID == "" {
		return "unknown session", nil
	}
	inv, err := invoiceByID(ctx, s.DB.Q(), id)
	if err != nil {
		var ae *apierr.Error
		if errors.As(err, &ae) && ae.Code == apierr.NotExist {
			return "unknown session", nil
		}
		return "", err
	}
	if inv.Handler != PayStripe || inv.ProviderRef != sess.ID {
		return "unknown session", nil
	}
	switch {
	case failed || expired:
		to := InvoiceDeclined
		if expired {
			to = InvoiceExpired
		}
		if _, err := s.DB.Q().Exec(ctx, `UPDATE invoices SET status = ? WHERE id = ? AND status = ?`, to, id, InvoiceUnpaid); err != nil {
			return "", err
		}
		return invoiceStatusText(to), nil
	case sess.PaymentStatus != stripe.CheckoutSessionPaymentStatusPaid:
		return "not paid yet", nil
	}
	want := stripeMinor(invoiceCharge(inv).Total(), s.Config.Currency)
	if sess.AmountTotal != want || !strings.EqualFold(string(sess.Currency), s.Config.Currency) {
		s.Log.Error("stripe session paid another amount than its invoice: not credited", "invoice", id,
			"session", sess.ID, "paid", sess.AmountTotal, "currency", sess.Currency, "want", want)
		return "amount differs", nil
	}
	tx := map[string]any{"session": sess.ID}
	if eventID != "" {
		tx["event"] = eventID
	}
	if sess.PaymentIntent != nil && sess.PaymentIntent.ID != "" {
		tx["payment_intent"] = sess.PaymentIntent.ID
	}
	credited, err := s.creditInvoice(ctx, id, PayStripe, "stripe:"+sess.ID, tx, 0, "payment by stripe", nil)
	if err != nil {
		return "", err
	}
	if !credited {
		return "paid already", nil
	}
	return "credited", nil
}

// stripeWebhook takes Stripe's events at StripeWebhookPath. It answers 400 to a body whose
// Stripe-Signature does not verify with stripe_webhook_secret (nothing changes), 404 while
// Stripe is not configured, 500 when the database fails (Stripe delivers the event
// again), else 200: an event handled, delivered again, or of no concern to us.
func (s *Service) stripeWebhook(c echo.Context) error {
	secret := s.Config.StripeWebhookSecret
	if s.builtinPayment(PayStripe) == nil || secret == "" {
		return c.String(http.StatusNotFound, "stripe payments are not configured")
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Response(), c.Request().Body, 1<<20))
	if err != nil {
		return c.String(http.StatusBadRequest, "unreadable body")
	}
	// Only a few fields of the session are read, which every API version has: an event
	// of another API version than the library's is still taken.
	ev, err := webhook.ConstructEventWithOptions(body, c.Request().Header.Get("Stripe-Signature"), secret,
		webhook.ConstructEventOptions{IgnoreAPIVersionMismatch: true})
	if err != nil {
		s.Log.Warn("stripe webhook refused", "remote", c.RealIP(), "err", err)
		return c.String(http.StatusBadRequest, "bad signature")
	}
	var failed, expired bool
	switch ev.Type {
	case stripe.EventTypeCheckoutSessionCompleted, stripe.EventTypeCheckoutSessionAsyncPaymentSucceeded:
	case stripe.EventTypeCheckoutSessionAsyncPaymentFailed:
		failed = true
	case stripe.EventTypeCheckoutSessionExpired:
		expired = true
	default:
		return c.String(http.StatusOK, "ignored")
	}
	var sess stripe.CheckoutSession
	if ev.Data == nil || json.Unmarshal(ev.Data.Raw, &sess) != nil {
		return c.String(http.StatusBadRequest, "not a checkout session")
	}
	what, err := s.stripeOutcome(c.Request().Context(), &sess, ev.ID, failed, expired)
	if err != nil {
		s.Log.Error("stripe event not applied", "event", ev.ID, "err", err)
		return c.String(http.StatusInternalServerError, "try again")
	}
	s.Log.Info("stripe event", "event", ev.ID, "type", ev.Type, "session", sess.ID, "invoice", sess.ClientReferenceID, "outcome", what)
	return c.String(http.StatusOK, what)
}

// finishBuiltin is finishInvoice for an invoice of a built-in method. A Stripe invoice
// asks Stripe for its session and applies it as the webhook would (for a return page,
// or an event that never arrived): idempotent, it answers the invoice's status. A bank
// transfer is confirmed by an administrator with payInvoice, never by this level-0 call.
func (s *Service) finishBuiltin(r *Request, b *builtinPayment, inv *Invoice) (any, error) {
	if b.Name == PayBank {
		return nil, apierr.New(apierr.InsufficientAccess, "an administrator confirms a bank transfer with payInvoice")
	}
	if inv == nil {
		return nil, apierr.New(apierr.MissingArgument, "invoice is obligatory for payment method %s", b.Name)
	}
	if inv.Handler != b.Name {
		return nil, apierr.New(apierr.DoesNotBelongToYou, "invoice %d is not one of payment method %s", inv.ID, b.Name)
	}
	if inv.Status != InvoicePaid && inv.ProviderRef != "" {
		sess, err := s.stripeClient().V1CheckoutSessions.Retrieve(r.ctx, inv.ProviderRef, nil)
		if err != nil {
			return nil, s.stripeError("retrieve checkout session", err)
		}
		if _, err := s.stripeOutcome(r.ctx, sess, "", false, false); err != nil {
			return nil, err
		}
		if inv, err = invoiceByID(r.ctx, s.DB.Q(), inv.ID); err != nil {
			return nil, err
		}
	}
	return Raw{ContentType: "text/plain; charset=utf-8", Body: []byte(invoiceStatusText(inv.Status))}, nil
}

// payInvoice(33) marks an invoice of a user the caller manages paid, as an administrator
// does when a bank transfer arrives: the account is credited the invoice's amount (a
// ledger row) and the invoice becomes paid, once. Asked again it answers true and
// changes nothing. reference (the bank's transaction reference) is kept in txdata. Any
// unpaid, declined or expired invoice may be paid so, a postpaid account's monthly one
// included.
func (s *Service) payInvoice(r *Request) (any, error) {
	inv, err := r.ownedInvoice(r.Int("invoice"))
	if err != nil {
		return nil, err
	}
	who, by := "", int64(0)
	if a := r.Caller.Actor; a != nil {
		who, by = a.Username, a.ID
	}
	tx := map[string]any{"paid_by": who, "at": s.now().UTC().Format(timeLayout)}
	if ref := strings.TrimSpace(r.Str("reference")); ref != "" {
		tx["reference"] = ref
	}
	handler := inv.Handler
	if handler == "" {
		handler = PayBank
	}
	_, err = s.creditInvoice(r.ctx, inv.ID, handler, "admin:"+strconv.FormatInt(inv.ID, 10), tx, by,
		"payment confirmed by "+who, nil)
	if err != nil {
		return nil, err
	}
	return true, nil
}

// creditInvoice marks invoice id paid and credits its amount to its account (ledger kind
// `invoice`) in one transaction, once: the invoice row is locked, a paid invoice changes
// nothing, and invoice_payments' keys (the invoice; ref, such as the Stripe session)
// stop a second credit even from a concurrent confirmation. check, when given, vets the
// locked invoice first and may refuse. by is who confirmed it (0: the invoice's owner).
// It answers whether this call credited it.
func (s *Service) creditInvoice(ctx context.Context, id int64, handler, ref string, txdata any, by int64, comment string,
	check func(cur *Invoice) error) (bool, error) {
	credited := false
	err := s.DB.InTx(ctx, func(tx *db.Tx) error {
		var cur Invoice
		err := tx.Get(ctx, &cur, `SELECT i.id, i.owner_id, i.account_id, i.amount, i.status, i.handler, i.txdata
			FROM invoices i WHERE i.id = ?`+tx.ForUpdate(), id)
		if db.IsNotFound(err) {
			return apierr.New(apierr.NotExist, "no invoice %d", id)
		} else if err != nil {
			return err
		}
		if check != nil {
			if err := check(&cur); err != nil {
				return err
			}
		}
		if cur.Status == InvoicePaid {
			return nil // a repeated confirmation: credited already
		}
		if !cur.AccountID.Valid {
			return apierr.New(apierr.NotExist, "the account of invoice %d was deleted", id)
		}
		if by == 0 && cur.OwnerID.Valid {
			by = cur.OwnerID.Int64
		}
		res, err := tx.Exec(ctx, `INSERT INTO invoice_payments (invoice_id, ref, amount, paid_by, created_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`, id, ref, cur.Amount, by, time.Now().Unix())
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // this ref paid an invoice already
		}
		if _, err := tx.Exec(ctx, `UPDATE invoices SET status = ?, txdata = ?, handler = ? WHERE id = ?`,
			InvoicePaid, mergeTxData(cur.TxData, txdata), handler, id); err != nil {
			return err
		}
		credited = true
		return post(ctx, tx, cur.AccountID.Int64, cur.Amount, KindInvoice, "invoice:"+strconv.FormatInt(id, 10), comment, by)
	})
	if err != nil {
		credited = false
	}
	return credited, err
}
