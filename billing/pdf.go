package billing

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/go-pdf/fpdf"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/money"
)

// pdfMethods declares the methods whose handlers are in this file: the reference's "Finances
// and statistics".
func (s *Service) pdfMethods() []Method {
	return []Method{
		method("generateInvoice", 1, s.generateInvoice, "invoice:int!", "date:string", "deadline:string",
			"services:string!").
			Doc("generate a PDF invoice from the given data (deprecated: viewInvoice)", "a PDF (not an envelope)"),
		method("monthlyInvoice", 1, s.monthlyInvoice, "month:int", "email:bool=true").
			Doc("generate the monthly invoice", "a PDF (not an envelope)"),
		method("viewInvoice", 1, s.viewInvoice, "invoice:int", "id:int").
			Doc("download an invoice as PDF", "a PDF (not an envelope)"),
	}
}

// invoiceDoc is what an invoice PDF shows.
type invoiceDoc struct {
	Title    string   // "Invoice No. 12"
	Dates    []string // "Date: …", "Due: …"
	Seller   []string // the operator: name, address, tax id, bank details (may be empty)
	BillTo   []string // name, address lines, account
	Currency string
	Headers  []string // the table's five column heads; empty: Service, Quantity, Unit, Price, Amount
	Labels   map[string]string
	Lines    []invoiceLine
	Total    money.Micro
	After    []invoiceLine // lines under the total (the VAT it includes)
	Notes    []string
	Lang     string
}

// label is one of the document's fixed words, in its language (English by default).
func (d *invoiceDoc) label(key, def string) string {
	if v := d.Labels[key]; v != "" {
		return v
	}
	return def
}

// needsUnicode says whether the document has text beyond the core fonts' cp1252.
func (d *invoiceDoc) needsUnicode() bool {
	texts := append(append(append(append([]string{d.Title, d.Currency}, d.Dates...), d.Seller...), d.BillTo...), d.Notes...)
	texts = append(texts, d.Headers...)
	for _, v := range d.Labels {
		texts = append(texts, v)
	}
	for _, l := range append(append([]invoiceLine{}, d.Lines...), d.After...) {
		texts = append(texts, l.Service, l.Quantity, l.Unit, l.Price)
	}
	for _, t := range texts {
		for _, r := range t {
			if r > 0xFF && r != '€' {
				return true
			}
		}
	}
	return false
}

type invoiceLine struct {
	Service, Quantity, Unit, Price string
	Amount                         money.Micro
}

// moneyText shows an amount exactly: two decimals, more only when it has them.
func moneyText(m money.Micro) string {
	if m.Round(2) == m {
		return m.Fixed(2)
	}
	return m.String()
}

// maxInvoiceLines bounds a generated invoice.
const maxInvoiceLines = 500

// renderInvoice draws an invoice as a PDF. Text within cp1252 uses the core fonts, whose
// text stays plain in the file; a document with other characters (a russian invoice)
// embeds the Go fonts, which cover Latin, Cyrillic and Greek (WGL4). Streams are left
// uncompressed: invoices are small.
func renderInvoice(d invoiceDoc) ([]byte, error) {
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetCompression(false)
	pdf.SetTitle(d.Title, true)
	pdf.SetCreator("narayanad", true)
	tr := pdf.UnicodeTranslatorFromDescriptor("")
	family := "Helvetica"
	if d.needsUnicode() {
		pdf.AddUTF8FontFromBytes("go", "", goregular.TTF)
		pdf.AddUTF8FontFromBytes("go", "B", gobold.TTF)
		family, tr = "go", func(s string) string { return s }
	}
	pdf.AddPage()
	pdf.SetFont(family, "B", 18)
	pdf.CellFormat(0, 10, tr(d.Title), "", 1, "L", false, 0, "")
	pdf.SetFont(family, "", 10)
	for _, l := range d.Dates {
		pdf.CellFormat(0, 5, tr(l), "", 1, "L", false, 0, "")
	}
	for _, block := range []struct {
		label string
		lines []string
	}{{d.label("seller", "Seller:"), d.Seller}, {d.label("billto", "Bill to:"), d.BillTo}} {
		if len(block.lines) == 0 {
			continue
		}
		pdf.Ln(4)
		pdf.SetFont(family, "B", 10)
		pdf.CellFormat(0, 5, tr(block.label), "", 1, "L", false, 0, "")
		pdf.SetFont(family, "", 10)
		for _, l := range block.lines {
			pdf.MultiCell(0, 5, tr(l), "", "L", false)
		}
	}
	pdf.Ln(6)
	widths := []float64{78, 22, 25, 30, 35}
	pdf.SetFont(family, "B", 10)
	headers := d.Headers
	if len(headers) != 5 {
		headers = []string{"Service", "Quantity", "Unit", "Price", "Amount, " + d.Currency}
	}
	for i, h := range headers {
		align := "L"
		if i == 1 || i >= 3 {
			align = "R"
		}
		pdf.CellFormat(widths[i], 7, tr(h), "B", 0, align, false, 0, "")
	}
	pdf.Ln(-1)
	pdf.SetFont(family, "", 10)
	for _, l := range d.Lines {
		cells := []string{l.Service, l.Quantity, l.Unit, l.Price, moneyText(l.Amount)}
		for i, c := range cells {
			align := "L"
			if i == 1 || i >= 3 {
				align = "R"
			}
			if i == 0 {
				for rs := []rune(c); pdf.GetStringWidth(tr(c)) > widths[0]-2 && len(rs) > 4; {
					rs = rs[:len(rs)-4]
					c = string(rs) + "..."
				}
			}
			pdf.CellFormat(widths[i], 6, tr(c), "", 0, align, false, 0, "")
		}
		pdf.Ln(-1)
	}
	pdf.SetFont(family, "B", 11)
	pdf.CellFormat(widths[0]+widths[1]+widths[2]+widths[3], 8, tr(d.label("total", "Total, "+d.Currency)), "T", 0, "R", false, 0, "")
	pdf.CellFormat(widths[4], 8, moneyText(d.Total), "T", 1, "R", false, 0, "")
	pdf.SetFont(family, "", 10)
	for _, l := range d.After {
		pdf.CellFormat(widths[0]+widths[1]+widths[2]+widths[3], 6, tr(l.Service), "", 0, "R", false, 0, "")
		pdf.CellFormat(widths[4], 6, moneyText(l.Amount), "", 1, "R", false, 0, "")
	}
	if len(d.Notes) > 0 {
		pdf.Ln(4)
		pdf.SetFont(family, "", 9)
		for _, n := range d.Notes {
			pdf.MultiCell(0, 5, tr(n), "", "L", false)
		}
	}
	var buf bytes.Buffer
	if err := pdf.Output(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func pdfAnswer(d invoiceDoc) (any, error) {
	b, err := renderInvoice(d)
	if err != nil {
		return nil, err
	}
	return Raw{ContentType: "application/pdf", Body: b}, nil
}

// billTo is the "Bill to" block of a user's account.
func billTo(u *User) []string {
	var out []string
	name := u.BillingName
	if name == "" {
		name = u.Username
	}
	out = append(out, name)
	if u.BillingAddress != "" {
		out = append(out, u.BillingAddress)
	}
	return append(out, "Account "+strconv.FormatInt(u.Number, 10))
}

// parseInvoiceDate reads YYYY-MM-DD HH:MM:SS or YYYY-MM-DD.
func parseInvoiceDate(name, v string) (string, error) {
	v = strings.TrimSpace(v)
	for _, layout := range []string{timeLayout, "2006-01-02"} {
		if _, err := time.Parse(layout, v); err == nil {
			return v, nil
		}
	}
	return "", apierr.New(apierr.InvalidArgument, "%s: want YYYY-MM-DD HH:MM:SS", name)
}

// generateInvoice(1) (deprecated) renders a PDF invoice from its arguments: services is
// "Service@Units@Unit name@Unit cost,…"; units and costs are exact decimals in the
// user's currency, each line's amount units × cost rounded half-up to a micro-unit. date
// defaults to now (the user's timezone), deadline to none. Nothing is stored.
func (s *Service) generateInvoice(r *Request) (any, error) {
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	date := formatTime(time.Now().Unix(), u.Timezone)
	if v := r.Str("date"); v != "" {
		if date, err = parseInvoiceDate("date", v); err != nil {
			return nil, err
		}
	}
	d := invoiceDoc{Title: "Invoice No. " + strconv.FormatInt(r.Int("invoice"), 10), Dates: []string{"Date: " + date},
		BillTo: billTo(u), Currency: u.Currency}
	if v := r.Str("deadline"); v != "" {
		deadline, err := parseInvoiceDate("deadline", v)
		if err != nil {
			return nil, err
		}
		d.Dates = append(d.Dates, "Payment due: "+deadline)
	}
	items := strings.Split(r.Str("services"), ",")
	if len(items) > maxInvoiceLines {
		return nil, apierr.New(apierr.InvalidArgument, "services: at most %d lines", maxInvoiceLines)
	}
	for i, item := range items {
		f := strings.Split(item, "@")
		if len(f) != 4 || strings.TrimSpace(f[0]) == "" {
			return nil, apierr.New(apierr.InvalidArgument, "services: line %d: want Service@Units@Unit name@Unit cost", i+1)
		}
		units, err1 := money.Parse(strings.TrimSpace(f[1]))
		cost, err2 := money.Parse(strings.TrimSpace(f[3]))
		if err1 != nil || err2 != nil || units < 0 {
			return nil, apierr.New(apierr.InvalidArgument, "services: line %d: units and unit cost must be numbers", i+1)
		}
		amount := money.Micro(money.MulDiv(int64(units), int64(cost), int64(money.One)))
		d.Lines = append(d.Lines, invoiceLine{Service: strings.TrimSpace(f[0]), Quantity: units.String(),
			Unit: strings.TrimSpace(f[2]), Price: moneyText(cost), Amount: amount})
		d.Total += amount
	}
	return pdfAnswer(d)
}

// sellerLines is the operator's block on an invoice, from the operator_* settings, in lang.
func (s *Service) sellerLines(lang string) []string {
	c := s.Config
	out := append(configLines(c.OperatorName), configLines(c.OperatorAddress)...)
	if c.OperatorTaxID != "" {
		out = append(out, word(lang, "taxid", c.OperatorTaxID))
	}
	if bank := configLines(c.OperatorBank); len(bank) > 0 {
		out = append(out, word(lang, "bank", strings.Join(bank, ", ")))
	}
	return out
}

// invoiceStatusText names an invoice status on the PDF.
func invoiceStatusText(st int) string {
	switch st {
	case InvoiceUnpaid:
		return "unpaid"
	case InvoicePaid:
		return "paid"
	case InvoiceDeclined:
		return "declined"
	case InvoiceExpired:
		return "expired"
	}
	return strconv.Itoa(st)
}

// viewInvoice(1) renders a stored invoice of a user the caller manages. The amount is
// shown in the system currency (the money the account receives), with the owner's
// currency beside it when that differs; dates in the owner's timezone.
func (s *Service) viewInvoice(r *Request) (any, error) {
	id, err := r.invoiceArg()
	if err != nil {
		return nil, err
	}
	inv, err := r.ownedInvoice(id)
	if err != nil {
		return nil, err
	}
	if inv.Period != "" && inv.OwnerID.Valid {
		return s.viewPeriodInvoice(r, inv)
	}
	return pdfAnswer(s.paymentInvoiceDoc(r.ctx, inv))
}

// paymentInvoiceDoc is the document of a payment invoice (not a postpaid month's): the
// operator, the payer, the amount and, for a built-in method, commission, VAT and the
// total to pay, with the bank details while a bank transfer is awaited.
func (s *Service) paymentInvoiceDoc(ctx context.Context, inv *Invoice) invoiceDoc {
	tz, cur := 0.0, s.Config.Currency
	var bill []string
	if inv.OwnerID.Valid {
		if owner, err := userByID(ctx, s.DB.Q(), inv.OwnerID.Int64); err == nil {
			tz, cur = owner.Timezone, owner.Currency
		}
	}
	for _, l := range strings.Split(inv.BillingData, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			bill = append(bill, l)
		}
	}
	if len(bill) == 0 && inv.Owner != "" {
		bill = append(bill, inv.Owner)
	}
	if inv.AccountID.Valid {
		bill = append(bill, "Account "+strconv.FormatInt(inv.AccountID.Int64, 10))
	}
	service := "Account top-up"
	if inv.AccountID.Valid {
		service += " of account " + strconv.FormatInt(inv.AccountID.Int64, 10)
	}
	d := invoiceDoc{
		Title:    "Invoice No. " + strconv.FormatInt(inv.ID, 10),
		Dates:    []string{"Date: " + formatTime(inv.CreatedAt, tz)},
		Seller:   s.sellerLines(""),
		BillTo:   bill,
		Currency: s.Config.Currency,
		Lines:    []invoiceLine{{Service: service, Quantity: "1", Price: moneyText(inv.Amount), Amount: inv.Amount}},
		Total:    inv.Amount,
		Notes:    []string{"Status: " + invoiceStatusText(inv.Status)},
	}
	// A built-in method's invoice shows what the payer pays: commission and VAT on top.
	builtin := (inv.Handler == PayBank || inv.Handler == PayStripe) && !containsString(s.paymentHandlers(), inv.Handler)
	if builtin {
		c := invoiceCharge(inv)
		if c.Commission != 0 {
			d.Lines = append(d.Lines, invoiceLine{Service: "Commission " + inv.Comission.Format(2) + "%", Amount: c.Commission})
		}
		if c.VAT != 0 {
			d.Lines = append(d.Lines, invoiceLine{Service: "VAT " + inv.VAT.Format(2) + "%", Amount: c.VAT})
		}
		d.Total = c.Total()
		d.Labels = map[string]string{"total": "Total to pay, " + s.Config.Currency}
	}
	if inv.ValidThru > 0 {
		d.Dates = append(d.Dates, "Valid through: "+formatTime(inv.ValidThru, tz))
	}
	if inv.Handler == PayBank && builtin && inv.Status != InvoicePaid {
		if bank := configLines(s.Config.OperatorBank); len(bank) > 0 {
			d.Notes = append(d.Notes, "Please pay by bank transfer to: "+strings.Join(bank, ", "),
				"Payment reference: Invoice "+strconv.FormatInt(inv.ID, 10))
		}
	}
	if cur != s.Config.Currency {
		if x, err := s.exchange(ctx, cur); err == nil {
			d.Notes = append(d.Notes, fmt.Sprintf("Amount in %s: %s", cur, x.display(inv.Amount).Fixed(2)))
		}
	}
	method := inv.Handler
	if inv.Method != "" {
		method += " (" + inv.Method + ")"
	}
	if method != "" {
		d.Notes = append(d.Notes, "Payment method: "+method)
	}
	if inv.Comission != 0 && !builtin {
		d.Notes = append(d.Notes, "Commission: "+inv.Comission.String()+"%")
	}
	if inv.Msg != "" {
		d.Notes = append(d.Notes, inv.Msg)
	}
	return d
}

// monthlyInvoice(1) renders the charges of the user's account over a calendar month in
// the user's timezone: month 1–12 is the latest such month that has begun (this year's
// or last year's; the current month gives the charges so far), without it the previous
// month. It is the document postpaid accounts get each month (postpaid.go): the operator,
// the account's billing name and address, calls by direction (count, minutes, amount),
// DID rent and other charges from the ledger (transfers to other accounts are not
// services), the VAT included (vat_percent) and the total, in the user's language and
// currency. When the month's postpaid invoice exists, its number, due date and status
// show. Any account may ask (for a prepaid one it is a statement of charges).
// email=true (the default, as the reference says) also mails the PDF to the account's
// billing_email when mail is on (smtp_host); the PDF is answered either way.
func (s *Service) monthlyInvoice(r *Request) (any, error) {
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	zone := userZone(u)
	now := s.now().In(zone)
	start := monthStart(now, zone).AddDate(0, -1, 0)
	if r.Has("month") {
		m := r.Int("month")
		if m < 1 || m > 12 {
			return nil, apierr.New(apierr.InvalidArgument, "month: want 1 to 12")
		}
		year := now.Year()
		if time.Month(m) > now.Month() {
			year--
		}
		start = time.Date(year, time.Month(m), 1, 0, 0, 0, 0, zone)
	}
	si := statementInvoice{Number: fmt.Sprintf("%d-%s", u.Number, start.Format("200601")), Issued: now.Unix(),
		Status: -1, Start: start, End: start.AddDate(0, 1, 0), ShowBalance: true, PostpaidLabel: u.Postpaid == 1}
	var inv []struct {
		ID      int64 `db:"id"`
		Due     int64 `db:"due_at"`
		Status  int   `db:"status"`
		Created int64 `db:"created_at"`
	}
	if err := s.DB.Q().Select(r.ctx, &inv, `SELECT id, due_at, status, created_at FROM invoices WHERE account_id = ? AND period = ?`,
		u.Number, start.Format("2006-01")); err != nil {
		return nil, err
	}
	if len(inv) == 1 {
		si.Number, si.Due, si.Status, si.Issued = strconv.FormatInt(inv[0].ID, 10), inv[0].Due, inv[0].Status, inv[0].Created
	}
	doc, _, err := s.statementDoc(r.ctx, s.DB.Q(), u, si)
	if err != nil {
		return nil, err
	}
	if r.Bool("email") && s.mailOn() {
		due := "-"
		if si.Due > 0 {
			due = formatTime(si.Due, u.Timezone)[:10]
		}
		dedup := fmt.Sprintf("monthly:%d:%s:%d", u.ID, start.Format("200601"), time.Now().UnixNano())
		if err := s.mailInvoice(r.ctx, s.DB.Q(), u, doc, si.Number, start, due, dedup); err != nil {
			return nil, err
		}
		s.wakeMail()
	}
	return pdfAnswer(doc)
}

// viewPeriodInvoice renders a postpaid account's monthly invoice from the ledger of its month.
func (s *Service) viewPeriodInvoice(r *Request, inv *Invoice) (any, error) {
	owner, err := userByID(r.ctx, s.DB.Q(), inv.OwnerID.Int64)
	if err != nil {
		return nil, err
	}
	zone := userZone(owner)
	start, err := time.ParseInLocation("2006-01", inv.Period, zone)
	if err != nil {
		return nil, err
	}
	doc, _, err := s.statementDoc(r.ctx, s.DB.Q(), owner, statementInvoice{Number: strconv.FormatInt(inv.ID, 10),
		Issued: inv.CreatedAt, Due: inv.DueAt, Status: inv.Status, Start: start, End: start.AddDate(0, 1, 0), PostpaidLabel: true})
	if err != nil {
		return nil, err
	}
	return pdfAnswer(doc)
}
