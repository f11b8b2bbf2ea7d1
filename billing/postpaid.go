package billing

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/money"
)

// Postpaid accounts (the reference: "postpaid system; monthly invoice"). Their calls are
// allowed up to the credit limit, which is the account's overdraft, as for every account;
// what postpaid adds is the monthly invoice: at the first maintenance run of a month (in
// the account owner's timezone) every postpaid account charged in the previous month gets
// one invoice for it: an invoices row (method `postpaid`, the month in `period`, unique per
// account and month), listed by getInvoices, rendered by viewInvoice, paid through any
// payment handler like a top-up (finishInvoice credits the account with the amount), and
// mailed with its PDF to the account's billing_email.

// statement is what an account was charged over a period, from the ledger.
type statement struct {
	Calls  []callSum // calls by direction
	Others []kindSum // DID rent, SMS, fees…
	Total  money.Micro
}

type callSum struct {
	Direction string      `db:"direction"`
	Count     int64       `db:"n"`
	Seconds   int64       `db:"secs"`
	Amount    money.Micro `db:"amount"`
}

type kindSum struct {
	Kind   string      `db:"kind"`
	Count  int64       `db:"n"`
	Amount money.Micro `db:"amount"`
}

// buildStatement sums an account's charges in [start, end): calls by direction (the
// call log row of each call's ledger row; charges without one, such as a reseller's for
// its users' calls, under no direction), and every other debit by kind except
// transfers to other accounts, which are not services. Amounts are as booked, in the
// system currency.
func buildStatement(ctx context.Context, q db.Queryer, account int64, start, end time.Time) (*statement, error) {
	st := &statement{}
	if err := q.Select(ctx, &st.Calls, `SELECT COALESCE(c.direction, '') AS direction, COUNT(*) AS n,
		COALESCE(SUM(c.billed), 0) AS secs, -SUM(l.amount) AS amount
		FROM ledger l LEFT JOIN call_log c ON c.id = CAST(SUBSTR(l.ref, 6) AS BIGINT) AND c.account_id = l.account_id
		WHERE l.account_id = ? AND l.kind = ? AND l.ref LIKE 'call:%' AND l.created_at >= ? AND l.created_at < ?
		GROUP BY COALESCE(c.direction, '') ORDER BY 1`, account, KindCall, start.Unix(), end.Unix()); err != nil {
		return nil, err
	}
	var other []callSum
	if err := q.Select(ctx, &other, `SELECT '' AS direction, COUNT(*) AS n, 0 AS secs, -SUM(amount) AS amount FROM ledger
		WHERE account_id = ? AND kind = ? AND ref NOT LIKE 'call:%' AND created_at >= ? AND created_at < ?
		HAVING COUNT(*) > 0`, account, KindCall, start.Unix(), end.Unix()); err != nil {
		return nil, err
	}
	for _, o := range other {
		merged := false
		for i := range st.Calls {
			if st.Calls[i].Direction == "" {
				st.Calls[i].Count += o.Count
				st.Calls[i].Amount += o.Amount
				merged = true
			}
		}
		if !merged {
			st.Calls = append(st.Calls, o)
		}
	}
	if err := q.Select(ctx, &st.Others, `SELECT kind, COUNT(*) AS n, -SUM(amount) AS amount FROM ledger
		WHERE account_id = ? AND amount < 0 AND kind <> ? AND kind <> ? AND created_at >= ? AND created_at < ?
		GROUP BY kind ORDER BY kind`, account, KindCall, KindTransfer, start.Unix(), end.Unix()); err != nil {
		return nil, err
	}
	for _, c := range st.Calls {
		st.Total += c.Amount
	}
	for _, o := range st.Others {
		st.Total += o.Amount
	}
	return st, nil
}

// invoiceWords are the words of a statement invoice in each language.
var invoiceWords = map[string]map[string]string{
	"en": {
		"title": "Invoice No. %s", "date": "Date: %s", "period": "Period: %s to %s", "due": "Payment due: %s",
		"seller": "Seller:", "billto": "Bill to:", "account": "Account %d", "taxid": "Tax ID: %s", "bank": "Bank details: %s",
		"service": "Service", "quantity": "Quantity", "minutes": "Minutes", "amount": "Amount, %s", "total": "Total, %s",
		"vat": "incl. VAT %s%%", "calls": "Calls", "callsto": "Calls: %s", "system": "Charged in %s: %s",
		"postpaid": "Postpaid account: please pay this amount by the due date.", "status": "Status: %s",
		"did": "DID rent", "fee": "Fees", "manual": "Manual adjustments", "sms": "SMS", "voice": "Voice messages",
		"gsm": "GSM", "gprs": "Mobile Internet", "prepaid": "Prepaid codes", "other": "Other (%s)", "balance": "Balance now: %s %s",
		"unpaid": "unpaid", "paid": "paid", "declined": "declined", "expired": "expired",
	},
	"ru": {
		"title": "Счёт № %s", "date": "Дата: %s", "period": "Период: с %s по %s", "due": "Оплатить до: %s",
		"seller": "Продавец:", "billto": "Плательщик:", "account": "Лицевой счёт %d", "taxid": "ИНН: %s", "bank": "Банковские реквизиты: %s",
		"service": "Услуга", "quantity": "Кол-во", "minutes": "Минут", "amount": "Сумма, %s", "total": "Итого, %s",
		"vat": "в т.ч. НДС %s%%", "calls": "Звонки", "callsto": "Звонки: %s", "system": "Начислено в %s: %s",
		"postpaid": "Постоплатный счёт: пожалуйста, оплатите эту сумму до указанного срока.", "status": "Статус: %s",
		"did": "Аренда номеров", "fee": "Комиссии", "manual": "Корректировки", "sms": "SMS", "voice": "Голосовые сообщения",
		"gsm": "GSM", "gprs": "Мобильный интернет", "prepaid": "Предоплаченные коды", "other": "Прочее (%s)", "balance": "Баланс сейчас: %s %s",
		"unpaid": "не оплачен", "paid": "оплачен", "declined": "отклонён", "expired": "просрочен",
	},
}

// word is a statement word in lang, formatted.
func word(lang, key string, a ...any) string {
	w := invoiceWords[languageOf(lang)][key]
	if len(a) == 0 {
		return w
	}
	return fmt.Sprintf(w, a...)
}

// configLines splits a setting's text into lines: `\n` (two characters, as a
// configuration file writes it) or a newline.
func configLines(v string) []string {
	var out []string
	for _, l := range strings.Split(strings.ReplaceAll(v, `\n`, "\n"), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// statementInvoice is an invoice document for an account's charges over [start, end):
// the operator (settings), the account's billing name and address, its number, date and
// due date, calls by direction (count, minutes, amount), DID rent and other charges, VAT
// as configured and the total, in the user's language and currency. It answers the
// document and the total in the system currency.
type statementInvoice struct {
	Number        string
	Issued, Due   int64
	Status        int // -1: none shown
	Start, End    time.Time
	ShowBalance   bool
	PostpaidLabel bool
}

func (s *Service) statementDoc(ctx context.Context, q db.Queryer, u *User, si statementInvoice) (invoiceDoc, money.Micro, error) {
	st, err := buildStatement(ctx, q, u.Number, si.Start, si.End)
	if err != nil {
		return invoiceDoc{}, 0, err
	}
	x, err := s.exchange(ctx, u.Currency)
	if err != nil {
		return invoiceDoc{}, 0, err
	}
	lang := u.Language
	// In the system currency amounts show exactly as booked; in another they are
	// converted and rounded to cents line by line, and the total is the lines' sum.
	conv := func(m money.Micro) money.Micro { return m }
	if u.Currency != s.Config.Currency {
		conv = x.display
	}
	d := invoiceDoc{
		Title: word(lang, "title", si.Number),
		Dates: []string{word(lang, "date", formatTime(si.Issued, u.Timezone)[:10]),
			word(lang, "period", si.Start.Format("2006-01-02"), si.End.AddDate(0, 0, -1).Format("2006-01-02"))},
		BillTo:   billTo(u),
		Currency: u.Currency,
		Headers:  []string{word(lang, "service"), word(lang, "quantity"), word(lang, "minutes"), "", word(lang, "amount", u.Currency)},
		Labels:   map[string]string{"billto": word(lang, "billto"), "seller": word(lang, "seller"), "total": word(lang, "total", u.Currency)},
		Lang:     languageOf(lang),
	}
	d.BillTo[len(d.BillTo)-1] = word(lang, "account", u.Number)
	if si.Due > 0 {
		d.Dates = append(d.Dates, word(lang, "due", formatTime(si.Due, u.Timezone)[:10]))
	}
	c := s.Config
	d.Seller = s.sellerLines(lang)
	for _, call := range st.Calls {
		name := word(lang, "calls")
		if call.Direction != "" {
			name = word(lang, "callsto", call.Direction)
		}
		minutes := ""
		if call.Seconds > 0 {
			minutes = money.Micro(money.MulDiv(call.Seconds, int64(money.One), 60)).Round(2).Fixed(2)
		}
		amount := conv(call.Amount)
		d.Lines = append(d.Lines, invoiceLine{Service: name, Quantity: strconv.FormatInt(call.Count, 10), Unit: minutes, Amount: amount})
		d.Total += amount
	}
	for _, o := range st.Others {
		name := word(lang, o.Kind)
		if name == "" {
			name = word(lang, "other", o.Kind)
		}
		amount := conv(o.Amount)
		d.Lines = append(d.Lines, invoiceLine{Service: name, Quantity: strconv.FormatInt(o.Count, 10), Amount: amount})
		d.Total += amount
	}
	if c.VATPercent > 0 {
		// Charges include VAT: its part of the total is total × rate / (100 + rate).
		vat := money.Micro(money.MulDiv(int64(d.Total), int64(c.VATPercent), int64(100*money.One+c.VATPercent))).Round(2)
		d.After = append(d.After, invoiceLine{Service: word(lang, "vat", c.VATPercent.String()), Amount: vat})
	}
	if u.Currency != s.Config.Currency {
		d.Notes = append(d.Notes, word(lang, "system", s.Config.Currency, moneyText(st.Total)))
	}
	if si.Status >= 0 {
		d.Notes = append(d.Notes, word(lang, "status", word(lang, invoiceStatusText(si.Status))))
	}
	if si.PostpaidLabel {
		d.Notes = append(d.Notes, word(lang, "postpaid"))
	}
	if si.ShowBalance {
		d.Notes = append(d.Notes, word(lang, "balance", moneyText(conv(u.Balance)), u.Currency))
	}
	return d, st.Total, nil
}

// monthStart is the first instant of the month of t in zone.
func monthStart(t time.Time, zone *time.Location) time.Time {
	t = t.In(zone)
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, zone)
}

func userZone(u *User) *time.Location { return time.FixedZone("user", int(u.Timezone*3600)) }

// postpaidInvoices issues last month's invoice of every postpaid account that has none
// for it yet and was charged in it.
func (s *Service) postpaidInvoices(ctx context.Context, now time.Time, rep *MaintenanceReport) error {
	var accounts []struct {
		Account int64 `db:"id"`
		Owner   int64 `db:"owner"`
	}
	if err := s.DB.Q().Select(ctx, &accounts, `SELECT a.id, COALESCE(
			(SELECT u.id FROM users u WHERE u.id = a.owner_id AND u.account_id = a.id),
			(SELECT MIN(u.id) FROM users u WHERE u.account_id = a.id), 0) AS owner
		FROM accounts a WHERE a.postpaid = 1 ORDER BY a.id`); err != nil {
		return err
	}
	for _, a := range accounts {
		if a.Owner == 0 {
			continue // a closed account: nobody to bill
		}
		made, err := s.postpaidInvoice(ctx, now, a.Account, a.Owner)
		if err != nil {
			return fmt.Errorf("account %d: %w", a.Account, err)
		}
		if made {
			rep.PostpaidInvoices++
			if s.mailOn() {
				rep.Notices++
			}
		}
	}
	return nil
}

// postpaidInvoice issues one account's invoice for the month before now (in the owner's
// timezone), with its mail, in one transaction; the unique (account, period) key makes a
// second one impossible.
func (s *Service) postpaidInvoice(ctx context.Context, now time.Time, account, owner int64) (bool, error) {
	made := false
	err := s.DB.InTx(ctx, func(tx *db.Tx) error {
		u, err := userByID(ctx, tx, owner)
		if err != nil {
			return err
		}
		end := monthStart(now, userZone(u))
		start := end.AddDate(0, -1, 0)
		period := start.Format("2006-01")
		var have int
		if err := tx.Get(ctx, &have, `SELECT COUNT(*) FROM invoices WHERE account_id = ? AND period = ?`, account, period); err != nil {
			return err
		}
		if have > 0 {
			return nil
		}
		st, err := buildStatement(ctx, tx, account, start, end)
		if err != nil || st.Total <= 0 {
			return err // not charged that month: no invoice
		}
		due := now.AddDate(0, 0, s.Config.InvoiceDueDays).Unix()
		id, err := tx.Insert(ctx, `INSERT INTO invoices (owner_id, account_id, amount, status, method, handler, billing_data,
			created_at, valid_thru, period, due_at) VALUES (?, ?, ?, ?, 'postpaid', '', ?, ?, 0, ?, ?)`,
			u.ID, account, st.Total, InvoiceUnpaid, strings.TrimSpace(u.BillingName+"\n"+u.BillingAddress), now.Unix(), period, due)
		if err != nil {
			return err
		}
		made = true
		if !s.mailOn() {
			return nil
		}
		number := strconv.FormatInt(id, 10)
		doc, _, err := s.statementDoc(ctx, tx, u, statementInvoice{Number: number, Issued: now.Unix(), Due: due,
			Status: -1, Start: start, End: end, PostpaidLabel: true})
		if err != nil {
			return err
		}
		return s.mailInvoice(ctx, tx, u, doc, number, start, formatTime(due, u.Timezone)[:10], "invoice:"+number)
	})
	if errors.Is(err, db.ErrConflict) {
		return false, nil // another runner issued it meanwhile
	}
	return made, err
}

// mailInvoice queues an invoice's PDF to the account's billing_email (else the user's
// notify_email).
func (s *Service) mailInvoice(ctx context.Context, q db.Queryer, u *User, doc invoiceDoc, number string, month time.Time,
	due, dedup string) error {
	pdf, err := renderInvoice(doc)
	if err != nil {
		return err
	}
	to := u.BillingEmail
	if strings.TrimSpace(to) == "" {
		to = u.NotifyEmail
	}
	subj, body := mailFor("invoice", u.Language, []any{number},
		[]any{greeting(u), number, month.Format("2006-01"), moneyText(doc.Total), u.Currency, due})
	_, err = s.enqueue(ctx, q, outMail{Kind: "invoice", Dedup: dedup, UserID: u.ID, To: to, Subject: subj, Body: body,
		AttachName: "invoice-" + number + ".pdf", Attachment: pdf})
	return err
}
