package billing

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/money"
)

// Mail (DECISIONS §8). Every message is first a row of the outbox, written in the
// transaction of what caused it (a postpaid invoice, a DID's notice flag, a ticket's
// answer), with a dedup key naming that event: so an event makes one message however
// often it is noticed, and a message is never lost once its cause is committed.
//
// The sender claims a due row (claimed_until), sends it, then marks it sent. The one
// window where a message can go twice is a crash after the SMTP server accepted it and
// before the mark committed: after the claim runs out (mailClaim) it is sent again, with
// the same Message-ID, so mail clients show it once. The other choice, marking first,
// would lose it in that window; an invoice lost is worse than one shown twice. A clean
// stop (SIGTERM) lets a send in flight finish and mark, so restarts repeat nothing.

// Outbox states.
const (
	outboxQueued = 0
	outboxSent   = 1
	outboxFailed = 2 // given up after maxMailAttempts
)

const (
	mailClaim       = 5 * time.Minute // how long a sender owns a row it is sending
	mailPoll        = 15 * time.Second
	mailTimeout     = 30 * time.Second // one SMTP conversation
	maxMailAttempts = 40               // about a day and a half at the longest backoff
	mailBatch       = 50
)

// mailBackoff is the wait after the n-th failed attempt: 30 s doubling, at most an hour.
func mailBackoff(n int) time.Duration {
	d := 30 * time.Second * time.Duration(math.Pow(2, float64(min(n, 8)-1)))
	return min(d, time.Hour)
}

// outMail is a message to queue.
type outMail struct {
	Kind, Dedup string
	UserID      int64
	To          string
	Subject     string
	Body        string
	AttachName  string
	Attachment  []byte
}

func (s *Service) mailOn() bool { return s.Config.SMTPHost != "" }

// enqueue writes m to the outbox in tx unless a message with its dedup key is there; it
// answers whether it wrote one. With mail off, or without a recipient, nothing is queued.
func (s *Service) enqueue(ctx context.Context, q db.Queryer, m outMail) (bool, error) {
	if !s.mailOn() || strings.TrimSpace(m.To) == "" {
		return false, nil
	}
	var attach any
	if m.Attachment != nil {
		attach = m.Attachment
	}
	now := s.now().Unix()
	res, err := q.Exec(ctx, `INSERT INTO outbox (dedup, kind, user_id, recipient, subject, body, attach_name, attachment,
		next_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedup) DO NOTHING`,
		m.Dedup, m.Kind, m.UserID, strings.TrimSpace(m.To), m.Subject, m.Body, m.AttachName, attach, now, now)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// wakeMail tells the sender a message is waiting.
func (s *Service) wakeMail() {
	s.runnerID()
	select {
	case s.sched.wake <- struct{}{}:
	default:
	}
}

// mailLoop sends due messages every mailPoll, or at once when woken.
func (s *Service) mailLoop(ctx context.Context) {
	t := time.NewTicker(mailPoll)
	defer t.Stop()
	for {
		if _, err := s.SendMail(ctx); err != nil && ctx.Err() == nil {
			s.Log.Error("mail", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.sched.wake:
		}
	}
}

// MailResult counts what one SendMail did.
type MailResult struct{ Sent, Retry, Failed int }

// SendMail sends the outbox's due messages once: each claimed, sent, and marked sent; a
// failure waits mailBackoff and is tried again, up to maxMailAttempts. With mail off it
// does nothing. ctx stops it between messages; a send in flight finishes.
func (s *Service) SendMail(ctx context.Context) (MailResult, error) {
	var out MailResult
	if !s.mailOn() {
		return out, nil
	}
	for ctx.Err() == nil {
		now := s.now().Unix()
		var due []int64
		if err := s.DB.Q().Select(ctx, &due, `SELECT id FROM outbox WHERE status = ? AND next_at <= ? AND claimed_until < ?
			ORDER BY id LIMIT `+strconv.Itoa(mailBatch), outboxQueued, now, now); err != nil {
			return out, err
		}
		if len(due) == 0 {
			return out, nil
		}
		for _, id := range due {
			if ctx.Err() != nil {
				return out, nil
			}
			if err := s.sendOne(context.WithoutCancel(ctx), id, &out); err != nil {
				return out, err
			}
		}
	}
	return out, nil
}

// outboxRow is a queued message.
type outboxRow struct {
	ID         int64  `db:"id"`
	Kind       string `db:"kind"`
	To         string `db:"recipient"`
	Subject    string `db:"subject"`
	Body       string `db:"body"`
	AttachName string `db:"attach_name"`
	Attachment []byte `db:"attachment"`
	Attempts   int    `db:"attempts"`
	CreatedAt  int64  `db:"created_at"`
}

func (s *Service) sendOne(ctx context.Context, id int64, out *MailResult) error {
	now := s.now()
	// The claim: whoever's UPDATE takes the row sends it (another daemon skips it).
	res, err := s.DB.Q().Exec(ctx, `UPDATE outbox SET claimed_until = ?, attempts = attempts + 1
		WHERE id = ? AND status = ? AND claimed_until < ?`, now.Add(mailClaim).Unix(), id, outboxQueued, now.Unix())
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return nil
	}
	var m outboxRow
	if err := s.DB.Q().Get(ctx, &m, `SELECT id, kind, recipient, subject, body, attach_name, attachment, attempts, created_at
		FROM outbox WHERE id = ?`, id); err != nil {
		return err
	}
	sendErr := s.smtpSend(ctx, &m)
	if sendErr == nil {
		out.Sent++
		_, err := s.DB.Q().Exec(ctx, `UPDATE outbox SET status = ?, sent_at = ?, claimed_until = 0, last_error = '' WHERE id = ?`,
			outboxSent, s.now().Unix(), id)
		return err
	}
	status, next := outboxQueued, now.Add(mailBackoff(m.Attempts))
	if m.Attempts >= maxMailAttempts {
		status = outboxFailed
		out.Failed++
		s.Log.Error("mail given up", "id", id, "kind", m.Kind, "attempts", m.Attempts, "err", sendErr)
	} else {
		out.Retry++
		s.Log.Warn("mail not sent, will retry", "id", id, "kind", m.Kind, "attempt", m.Attempts,
			"next", next.UTC().Format(time.RFC3339), "err", sendErr)
	}
	msg := sendErr.Error()
	if len(msg) > 500 {
		msg = msg[:500]
	}
	_, err = s.DB.Q().Exec(ctx, `UPDATE outbox SET status = ?, next_at = ?, claimed_until = 0, last_error = ? WHERE id = ?`,
		status, next.Unix(), msg, id)
	return err
}

// smtpSend hands one message to the SMTP server (go-mail).
func (s *Service) smtpSend(ctx context.Context, m *outboxRow) error {
	c := s.Config
	msg := gomail.NewMsg()
	if err := msg.From(c.SMTPFrom); err != nil {
		return fmt.Errorf("smtp_from: %w", err)
	}
	if err := msg.To(m.To); err != nil {
		return fmt.Errorf("recipient %q: %w", m.To, err)
	}
	msg.Subject(m.Subject)
	msg.SetBodyString(gomail.TypeTextPlain, m.Body)
	domain := c.SMTPFrom[strings.LastIndex(c.SMTPFrom, "@")+1:]
	domain = strings.Trim(domain, "> ")
	// A stable Message-ID: a message sent again after a crash is the same message.
	msg.SetMessageIDWithValue(fmt.Sprintf("narayanad.%d.%d@%s", m.ID, m.CreatedAt, domain))
	msg.SetDate()
	if m.AttachName != "" && m.Attachment != nil {
		if err := msg.AttachReader(m.AttachName, bytes.NewReader(m.Attachment),
			gomail.WithFileContentType(gomail.ContentType("application/pdf"))); err != nil {
			return err
		}
	}
	tlsCfg := &tls.Config{ServerName: c.SMTPHost, MinVersion: tls.VersionTLS12}
	if c.SMTPCAFile != "" {
		pem, err := os.ReadFile(c.SMTPCAFile)
		if err != nil {
			return fmt.Errorf("smtp_ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("smtp_ca_file %s: no PEM certificate", c.SMTPCAFile)
		}
		tlsCfg.RootCAs = pool
	}
	opts := []gomail.Option{gomail.WithPort(c.SMTPPort), gomail.WithTimeout(mailTimeout), gomail.WithTLSConfig(tlsCfg)}
	switch c.SMTPTLS {
	case "none":
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	case "tls":
		opts = append(opts, gomail.WithSSL())
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if c.SMTPUser != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthPlain), gomail.WithUsername(c.SMTPUser),
			gomail.WithPassword(c.SMTPPassword))
	}
	client, err := gomail.NewClient(c.SMTPHost, opts...)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, mailTimeout)
	defer cancel()
	return client.DialAndSendWithContext(ctx, msg)
}

// ---- the messages of §8, in english and russian ----

// mailText holds a message's subject and body in each language; %s and %d are filled in
// the order the caller gives.
var mailText = map[string]map[string][2]string{
	"low_balance": {
		"en": {"Low balance on account %d", "Hello %s,\n\nthe balance of your account %d is %s %s, below your notice limit of %s %s.\nPlease top it up so that your calls are not interrupted.\n"},
		"ru": {"Низкий баланс на счёте %d", "Здравствуйте, %s!\n\nБаланс вашего счёта %d: %s %s, ниже порога уведомления %s %s.\nПожалуйста, пополните счёт, чтобы звонки не прерывались.\n"},
	},
	"did_expiry": {
		"en": {"Number %s expires on %s", "Hello %s,\n\nthe paid period of your number %s ends on %s.\nThe monthly rent is %s %s. Please renew it, or top up your account if it renews automatically, to keep the number.\n"},
		"ru": {"Срок номера %s истекает %s", "Здравствуйте, %s!\n\nОплаченный период вашего номера %s заканчивается %s.\nАбонентская плата: %s %s в месяц. Продлите номер или пополните счёт, если он продлевается автоматически, чтобы сохранить его.\n"},
	},
	"ticket": {
		"en": {"New answer in ticket #%d: %s", "Hello %s,\n\n%s wrote in your ticket #%d:\n\n%s\n"},
		"ru": {"Новый ответ в обращении №%d: %s", "Здравствуйте, %s!\n\n%s написал(а) в вашем обращении №%d:\n\n%s\n"},
	},
	"bank_invoice": {
		"en": {"Invoice %s", "Hello %s,\n\nplease find attached invoice %s: %s %s to pay by bank transfer by %s.\nPlease quote \"Invoice %s\" as the payment reference; your account is credited when the transfer arrives.\n"},
		"ru": {"Счёт %s", "Здравствуйте, %s!\n\nВо вложении счёт %s на сумму %s %s, оплата банковским переводом до %s.\nУкажите в назначении платежа «Invoice %s»; счёт будет пополнен, когда перевод поступит.\n"},
	},
	"invoice": {
		"en": {"Invoice %s", "Hello %s,\n\nplease find attached invoice %s for %s: %s %s, due %s.\n"},
		"ru": {"Счёт %s", "Здравствуйте, %s!\n\nВо вложении счёт %s за %s на сумму %s %s, срок оплаты %s.\n"},
	},
}

// mailFor is a message of kind in lang: subject and body formatted with their arguments.
func mailFor(kind, lang string, subject []any, body []any) (string, string) {
	t := mailText[kind][languageOf(lang)]
	return fmt.Sprintf(t[0], subject...), fmt.Sprintf(t[1], body...)
}

// notifyAddress is where a user's notices go: notify_email, else the account's billing_email.
func notifyAddress(u *User) string {
	if strings.TrimSpace(u.NotifyEmail) != "" {
		return u.NotifyEmail
	}
	return u.BillingEmail
}

// greeting names a user in a message.
func greeting(u *User) string {
	if u.BillingName != "" {
		return u.BillingName
	}
	return u.Username
}

// notices queues the low-balance and DID-expiry notices (with mail off: none, and no flag
// is set, so nothing is marked as told).
func (s *Service) notices(ctx context.Context, now time.Time, rep *MaintenanceReport) error {
	if !s.mailOn() {
		return nil
	}
	n, err := s.lowBalanceNotices(ctx)
	rep.Notices += n
	if err != nil {
		return err
	}
	n, err = s.didExpiryNotices(ctx, now)
	rep.Notices += n
	return err
}

// lowBalanceNotices: a user with notify_balance 1 whose account's balance is strictly
// below notify_balance_limit gets one message per crossing (balance_notified is set with
// it); the flag is cleared once the balance is at or above the limit again.
func (s *Service) lowBalanceNotices(ctx context.Context) (int, error) {
	if _, err := s.DB.Q().Exec(ctx, `UPDATE users SET balance_notified = 0 WHERE balance_notified = 1 AND
		(notify_balance <> 1 OR (SELECT balance FROM accounts a WHERE a.id = users.account_id) >= notify_balance_limit)`); err != nil {
		return 0, err
	}
	var ids []int64
	if err := s.DB.Q().Select(ctx, &ids, `SELECT u.id FROM users u JOIN accounts a ON a.id = u.account_id
		WHERE u.notify_balance = 1 AND u.balance_notified = 0 AND a.balance < u.notify_balance_limit ORDER BY u.id`); err != nil {
		return 0, err
	}
	n := 0
	for _, id := range ids {
		err := s.DB.InTx(ctx, func(tx *db.Tx) error {
			res, err := tx.Exec(ctx, `UPDATE users SET balance_notified = 1 WHERE id = ? AND balance_notified = 0`, id)
			if err != nil {
				return err
			}
			if k, _ := res.RowsAffected(); k != 1 {
				return nil // another runner told them
			}
			u, err := userByID(ctx, tx, id)
			if err != nil {
				return err
			}
			x, err := s.exchange(ctx, u.Currency)
			if err != nil {
				return err
			}
			var last int64
			if err := tx.Get(ctx, &last, `SELECT COALESCE(MAX(id), 0) FROM ledger WHERE account_id = ?`, u.Number); err != nil {
				return err
			}
			subj, body := mailFor("low_balance", u.Language, []any{u.Number},
				[]any{greeting(u), u.Number, x.display(u.Balance).Fixed(2), u.Currency,
					x.display(u.NotifyBalanceLimit).Fixed(2), u.Currency})
			ok, err := s.enqueue(ctx, tx, outMail{Kind: "low_balance", Dedup: fmt.Sprintf("balance:%d:%d", id, last),
				UserID: id, To: notifyAddress(u), Subject: subj, Body: body})
			if ok {
				n++
			}
			return err
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// didExpiryNotices: notify_did days (0 or more; -1 is off) before a DID's paid period ends,
// counted in whole days of the owner's timezone, its owner gets one message unless it
// renews automatically and the account can pay the rent; renew_notify shows it was sent
// (renewal clears it).
func (s *Service) didExpiryNotices(ctx context.Context, now time.Time) (int, error) {
	var due []struct {
		DID        string      `db:"did"`
		Owner      int64       `db:"owner_id"`
		Cost       money.Micro `db:"cost"`
		Expiration int64       `db:"expiration"`
		AutoRenew  int         `db:"auto_renew"`
		NotifyDID  int         `db:"notify_did"`
		Timezone   float64     `db:"timezone"`
	}
	if err := s.DB.Q().Select(ctx, &due, `SELECT d.did, d.owner_id, d.cost, d.expiration, d.auto_renew, u.notify_did, u.timezone
		FROM dids d JOIN users u ON u.id = d.owner_id
		WHERE d.enabled = 1 AND d.renew_notify = 0 AND d.expiration > ? AND u.notify_did >= 0 ORDER BY d.did`, now.Unix()); err != nil {
		return 0, err
	}
	n := 0
	for _, d := range due {
		zone := time.FixedZone("owner", int(d.Timezone*3600))
		today, end := now.In(zone), time.Unix(d.Expiration, 0).In(zone)
		days := int(time.Date(end.Year(), end.Month(), end.Day(), 0, 0, 0, 0, time.UTC).Sub(
			time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, time.UTC)).Hours() / 24)
		if days > d.NotifyDID {
			continue
		}
		err := s.DB.InTx(ctx, func(tx *db.Tx) error {
			u, err := userByID(ctx, tx, d.Owner)
			if err != nil {
				return err
			}
			if d.AutoRenew == 1 {
				acc, err := lockAccounts(ctx, tx, u.Number)
				if err != nil {
					return err
				}
				avail, err := spendable(ctx, tx, acc[u.Number])
				if err != nil {
					return err
				}
				if avail >= d.Cost {
					return nil // it will renew: nothing to tell
				}
			}
			res, err := tx.Exec(ctx, `UPDATE dids SET renew_notify = 1 WHERE did = ? AND renew_notify = 0 AND expiration = ?`,
				d.DID, d.Expiration)
			if err != nil {
				return err
			}
			if k, _ := res.RowsAffected(); k != 1 {
				return nil
			}
			x, err := s.exchange(ctx, u.Currency)
			if err != nil {
				return err
			}
			date := end.Format("2006-01-02")
			subj, body := mailFor("did_expiry", u.Language, []any{d.DID, date},
				[]any{greeting(u), d.DID, date, x.display(d.Cost).Fixed(2), u.Currency})
			ok, err := s.enqueue(ctx, tx, outMail{Kind: "did_expiry", Dedup: fmt.Sprintf("did:%s:%d", d.DID, d.Expiration),
				UserID: u.ID, To: notifyAddress(u), Subject: subj, Body: body})
			if ok {
				n++
			}
			return err
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// ticketNotice queues, in tx, the message telling a ticket's addressee with notify_ticket
// 1 that someone else wrote in it (message is the ticket message's id).
func (s *Service) ticketNotice(ctx context.Context, tx *db.Tx, to string, from *User, ticket, message int64,
	subject, text string) error {
	if !s.mailOn() || to == from.Username {
		return nil
	}
	u, err := userByName(ctx, tx, to)
	if err != nil || u.NotifyTicket != 1 {
		return nil //nolint:nilerr // an addressee that is gone is told nothing
	}
	subj, body := mailFor("ticket", u.Language, []any{ticket, subject}, []any{greeting(u), from.Username, ticket, text})
	if _, err := s.enqueue(ctx, tx, outMail{Kind: "ticket", Dedup: fmt.Sprintf("ticket:%d", message), UserID: u.ID,
		To: notifyAddress(u), Subject: subj, Body: body}); err != nil {
		return err
	}
	s.wakeMail()
	return nil
}
