package billing

import (
	"context"
	"database/sql"
	"slices"
	"strconv"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/money"
)

// Ledger kinds: why a balance changed.
const (
	KindInitial  = "initial"  // registerUser's starting balance
	KindTransfer = "transfer" // transferMoney, both sides
	KindFee      = "fee"      // a transfer's fee
	KindManual   = "manual"   // updateAccount's balance
	KindCall     = "call"     // callFinish
	KindDID      = "did"      // a DID's order or monthly rent
	KindInvoice  = "invoice"  // a paid invoice's credit
	KindPrepaid  = "prepaid"  // money moving into or out of a prepaid code
	KindSMS      = "sms"      // sendSMS
	KindVoice    = "voice"    // sendVoiceMessage
	KindBundle   = "bundle"   // a bundle's monthly fee (bundles.go)
)

// post changes an account's balance by amount and writes the ledger row for it, inside tx:
// the only way money moves, so a balance always equals the sum of its ledger. (The ledger
// row reads the new balance in its own INSERT: on SQLite a RETURNING would cost more.)
func post(ctx context.Context, tx *db.Tx, account int64, amount money.Micro, kind, ref, comment string, by int64) error {
	return postAt(ctx, tx, time.Now(), account, amount, kind, ref, comment, by)
}

// postSQL is post on PostgreSQL: the UPDATE and the ledger row as one statement, which the
// ledger row takes the new balance from, after the WITH items given (postRecorded's
// record). A statement costs PostgreSQL more to start than these rows cost to write
// (bench/NOTES.md), and callFinish posts on every call, so the statements are built once
// (plainPost, recordPost). grouped is the form for a group: a missing account leaves the
// ledger row without one, which fails the group (NOT NULL), and the job run again alone
// finds it with alone, which then updates nothing (postedTo).
type postSQL struct{ grouped, alone string }

func postStatements(with string) postSQL {
	head := `WITH ` + with + `a AS (UPDATE accounts SET balance = balance + ? WHERE id = ? RETURNING id, balance)
	` + ledgerRow + ` SELECT a.id, ?::bigint, a.balance, ?::text, ?::text, ?::text, ?::bigint, ?::bigint FROM `
	return postSQL{grouped: head + `(SELECT) one LEFT JOIN a ON true`, alone: head + `a`}
}

// ledgerRow is the ledger's INSERT up to its values: a row written only by post.
const ledgerRow = `INSERT INTO ledger (account_id, amount, balance, kind, ref, comment, user_id, created_at)`

// plainPost is post's statement without a record.
var plainPost = postStatements("")

// postAt is post with the row's time given: the scheduled work books at its clock's time
// (Service.Now), so that a month's rent lands in the month it was charged for.
func postAt(ctx context.Context, tx *db.Tx, at time.Time, account int64, amount money.Micro, kind, ref, comment string, by int64) error {
	if tx.Dialect() == db.Postgres {
		return postWith(ctx, tx, plainPost, nil, account, amount, kind, ref, comment, by, at)
	}
	res, err := tx.Exec(ctx, `UPDATE accounts SET balance = balance + ? WHERE id = ?`, amount, account)
	if err := postedTo(account, res, err); err != nil {
		return err
	}
	_, err = tx.Exec(ctx, ledgerRow+` VALUES (?, ?, (SELECT balance FROM accounts WHERE id = ?), ?, ?, ?, ?, ?)`,
		account, amount, account, kind, ref, comment, by, at.Unix())
	return err
}

// postWith runs st with the arguments of its WITH items first.
func postWith(ctx context.Context, tx *db.Tx, st postSQL, withArgs []any, account int64, amount money.Micro,
	kind, ref, comment string, by int64, at time.Time) error {
	args := append(withArgs, amount, account, amount, kind, ref, comment, by, at.Unix())
	if tx.Grouped() { // goes out with the group's next round or its COMMIT, unread
		return tx.ExecDeferred(ctx, st.grouped, args...)
	}
	res, err := tx.Exec(ctx, st.alone, args...)
	return postedTo(account, res, err)
}

// recordedPost is what postRecorded needs for the records of one table: its INSERT, which
// names the id column first with a ? for it (as db.Tx.InsertDeferred), and, built once,
// post's statement on PostgreSQL with that INSERT as a WITH item.
type recordedPost struct {
	table, insert string
	pg            postSQL
}

func recordPost(table, insert string) recordedPost {
	return recordedPost{table: table, insert: insert, pg: postStatements(`r AS (` + insert + `), `)}
}

// postRecorded inserts a record (rp's, with insertArgs) and posts amount with a ledger row
// that names it (ref refPrefix and the record's id: a call's row names its call record),
// and returns the record's id. On PostgreSQL the record's INSERT is a WITH item of post's
// statement: one statement a call for callFinish, not two.
func postRecorded(ctx context.Context, tx *db.Tx, rp recordedPost, insertArgs []any, account int64, amount money.Micro,
	kind, refPrefix, comment string, by int64) (int64, error) {
	if tx.Dialect() != db.Postgres {
		id, err := tx.InsertDeferred(ctx, rp.table, rp.insert, insertArgs...)
		if err != nil {
			return 0, err
		}
		return id, post(ctx, tx, account, amount, kind, refPrefix+strconv.FormatInt(id, 10), comment, by)
	}
	id, err := tx.NewID(ctx, rp.table)
	if err != nil {
		return 0, err
	}
	return id, postWith(ctx, tx, rp.pg, append([]any{id}, insertArgs...), account, amount,
		kind, refPrefix+strconv.FormatInt(id, 10), comment, by, time.Now())
}

// postedTo is E_NOT_EXIST when a posting's statement found no account.
func postedTo(account int64, res sql.Result, err error) error {
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return apierr.New(apierr.NotExist, "no account %d", account)
	}
	return nil
}

// pay moves amount (system currency, positive) from one account to another: a row on
// each side with the same amount. The payer must be able to spend it (balance + overdraft
// less its open calls' reservations), else E_INSUFFICIENT_MONEY; both accounts are locked.
func pay(ctx context.Context, tx *db.Tx, from, to int64, amount money.Micro, kind, comment string, by int64) error {
	acc, err := lockAccounts(ctx, tx, from, to)
	if err != nil {
		return err
	}
	avail, err := spendable(ctx, tx, acc[from])
	if err != nil {
		return err
	}
	if avail < amount {
		return apierr.New(apierr.InsufficientMoney, "account %d cannot pay %s", from, amount)
	}
	if err := post(ctx, tx, from, -amount, kind, "account:"+strconv.FormatInt(to, 10), comment, by); err != nil {
		return err
	}
	return post(ctx, tx, to, amount, kind, "account:"+strconv.FormatInt(from, 10), comment, by)
}

// reserved is the money held by the account's open calls. A reservation past its expiry
// holds nothing even before the background sweep deletes (and logs) it. (The call path
// sums the same over the group-commit writer's mirror: heldAccount.spendable.)
func reserved(ctx context.Context, q db.Queryer, account int64) (money.Micro, error) {
	var m money.Micro
	err := q.Get(ctx, &m, `SELECT COALESCE(SUM(amount), 0) FROM reservations WHERE account_id = ? AND expires_at >= ?`,
		account, time.Now().Unix())
	return m, err
}

// spendable is what an account locked in tx can still spend: balance + overdraft less
// the reservations of its open calls.
func spendable(ctx context.Context, tx *db.Tx, a *Account) (money.Micro, error) {
	held, err := reserved(ctx, tx, a.Number)
	return a.Balance + a.Overdraft - held, err
}

// accountLocks takes, on PostgreSQL, the accounts' advisory locks (keyed by account id)
// for the rest of the transaction, in the order of the ids given (ascending). Every
// transaction that reads what an account may spend and then spends it holds them: the
// call path (InTxBatch's keys, db.SetBatchLock) and lockAccounts. An advisory lock is
// kept in memory; a row lock (FOR UPDATE) writes the row and a WAL record, which on the
// call path measured an eighth of PostgreSQL's CPU per callPrepare (bench/NOTES.md).
const accountLocks = `SELECT pg_advisory_xact_lock(k) FROM unnest(?::bigint[]) AS k`

// lockAccounts takes the accounts' locks and rows for update in id order, so two
// transfers in opposite directions cannot deadlock.
func lockAccounts(ctx context.Context, tx *db.Tx, ids ...int64) (map[int64]*Account, error) {
	ids = slices.Sorted(slices.Values(ids))
	if tx.Dialect() == db.Postgres {
		if _, err := tx.Exec(ctx, accountLocks, ids); err != nil {
			return nil, err
		}
	}
	out := map[int64]*Account{}
	for _, id := range ids {
		var a Account
		err := tx.Get(ctx, &a, accountSelect+` WHERE a.id = ?`+tx.ForUpdate(), id)
		if db.IsNotFound(err) {
			return nil, apierr.New(apierr.NotExist, "no account %d", id)
		} else if err != nil {
			return nil, err
		}
		out[id] = &a
	}
	return out, nil
}

const accountSelect = `SELECT a.id AS account, a.balance, a.overdraft, a.refill_allowed, a.postpaid,
	a.billing_name, a.billing_address, a.billing_email, a.billing_bank_account FROM accounts a`
