package billing

import (
	"context"
	"math"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/money"
)

// holds mirrors what the call path reads of an account: its balance, overdraft and
// open reservations. On SQLite every callPrepare and callFinish transaction runs in the
// group-commit writer, so while the writer's epoch stands (db.Tx.Epoch: nothing but its
// own jobs has committed), an account read once answers the next calls from memory
// exactly as the database would, and callPrepare's only statement is its INSERT. Where
// there is no epoch (PostgreSQL: several daemons write at once) nothing is kept and
// every call reads the database under the account's lock (accountLocks).
//
// Only the writer goroutine uses a nonzero epoch, so the maps need no lock.
type holds struct {
	epoch    uint64
	accounts map[int64]*heldAccount
	owner    map[holdKey]int64 // reservation → account id, for the accounts kept
}

type heldAccount struct {
	balance, overdraft money.Micro
	open               map[holdKey]hold // expired ones too, until swept

	// held sums the open reservations that expire at countedAt or later, and soonest is
	// at most the earliest of their expiries: so at any time from countedAt to soonest,
	// held is exactly what the account's reservations hold (a sum kept, not redone per
	// call, for accounts with many calls at once).
	held               money.Micro
	countedAt, soonest int64
}

// holdKey names a reservation: by its call (uniqueid and prior), which the statements
// of the call path already know, or by its row id for a call without uniqueid. (SQLite's
// RETURNING would give the id every time, but costs a call path INSERT twice as much.)
type holdKey struct {
	uniqueid string
	prior    int
	id       int64 // only without uniqueid
	level    int   // only with uniqueid: 0 the caller's own, N the N-th reseller's (resellers.go)
}

func callHold(uniqueid string, prior int, id int64) holdKey {
	return callHoldAt(uniqueid, prior, id, 0)
}

// callHoldAt names a reservation of a call's chain level; without uniqueid the row id
// alone names it.
func callHoldAt(uniqueid string, prior int, id int64, level int) holdKey {
	if uniqueid != "" {
		return holdKey{uniqueid: uniqueid, prior: prior, level: level}
	}
	return holdKey{prior: prior, id: id}
}

type hold struct {
	amount  money.Micro
	expires int64
}

// maxHeldAccounts bounds the mirror; past it, it starts over.
const maxHeldAccounts = 100_000

// account returns the account id locked in tx (kept, or read and kept), to be asked
// for spendable(now, uniqueid, prior) with the same now, uniqueid and prior.
func (h *holds) account(ctx context.Context, tx *db.Tx, id int64, now int64, uniqueid string, prior int) (*heldAccount, error) {
	if tx.Dialect() == db.Postgres {
		return lockedAccount(ctx, tx, id, now, uniqueid, prior)
	}
	if e := tx.Epoch(); e != 0 {
		if h.epoch != e || len(h.accounts) >= maxHeldAccounts {
			h.epoch, h.accounts, h.owner = e, map[int64]*heldAccount{}, map[holdKey]int64{}
		}
		if a := h.accounts[id]; a != nil {
			return a, nil
		}
	}
	accs, err := lockAccounts(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		ID       int64       `db:"id"`
		Amount   money.Micro `db:"amount"`
		Expires  int64       `db:"expires_at"`
		UniqueID string      `db:"uniqueid"`
		Prior    int         `db:"prior"`
		Level    int         `db:"level"`
	}
	err = tx.Select(ctx, &rows, `SELECT id, amount, expires_at, COALESCE(uniqueid, '') AS uniqueid, prior, level
		FROM reservations WHERE account_id = ?`, id)
	if err != nil {
		return nil, err
	}
	a := &heldAccount{balance: accs[id].Balance, overdraft: accs[id].Overdraft, open: make(map[holdKey]hold, len(rows))}
	for _, r := range rows {
		a.open[callHoldAt(r.UniqueID, r.Prior, r.ID, r.Level)] = hold{amount: r.Amount, expires: r.Expires}
	}
	a.count(time.Now().Unix())
	if tx.Epoch() != 0 {
		h.accounts[id] = a
		for k := range a.open {
			h.owner[k] = id
		}
	}
	return a, nil
}

// heldOf is what account a's reservations hold, as spendable counts it: those that expire
// at now or later, but call uniqueid/prior's own; its arguments are SQL expressions.
func heldOf(now, uniqueid, prior string) string {
	return `COALESCE((SELECT SUM(r.amount) FROM reservations r WHERE r.account_id = a.id AND r.expires_at >= ` + now + `
		AND NOT (r.uniqueid IS NOT NULL AND r.uniqueid = ` + uniqueid + ` AND r.prior = ` + prior + `)), 0) AS held`
}

var (
	// lockedAccountRead is lockedAccount's read of one account.
	lockedAccountRead = `SELECT a.balance, a.overdraft, ` + heldOf("?", "?", "?") + ` FROM accounts a WHERE a.id = ?`
	// lockedAccounts is the same read for the callPrepares of a group (db.Tx.GetShared):
	// one statement for all of them. (OFFSET 0 keeps it a lookup by id per call: joined,
	// the planner scans every account into a hash table.)
	lockedAccounts = `SELECT j.n, a.balance, a.overdraft, a.held
		FROM unnest(?::bigint[], ?::text[], ?::bigint[], ?::bigint[]) WITH ORDINALITY AS j(now, uid, prior, id, n),
		LATERAL (SELECT a.balance, a.overdraft, ` + heldOf("j.now", "j.uid", "j.prior") + `
			FROM accounts a WHERE a.id = j.id OFFSET 0) a`
)

// lockedAccount reads on PostgreSQL, in one statement, what spendable needs. The call
// path's InTxBatch names the account as its key, so an earlier statement of the same
// transaction (the group's, or pgAlone's) already holds its lock (accountLocks): this
// statement's snapshot, taken after that, sees every reservation committed by the lock's
// previous holders, which commit before they let the lock go. (Were the lock taken by
// this statement, its subquery would see only what was committed when it started
// waiting.)
func lockedAccount(ctx context.Context, tx *db.Tx, id int64, now int64, uniqueid string, prior int) (*heldAccount, error) {
	var a struct {
		Balance   money.Micro `db:"balance"`
		Overdraft money.Micro `db:"overdraft"`
		Held      money.Micro `db:"held"`
	}
	err := tx.GetShared(ctx, &a, lockedAccountRead, lockedAccounts, now, uniqueid, prior, id)
	if db.IsNotFound(err) {
		return nil, apierr.New(apierr.NotExist, "no account %d", id)
	} else if err != nil {
		return nil, err
	}
	// Counted at now, with no reservation kept: spendable(now, …) answers from held.
	return &heldAccount{balance: a.Balance, overdraft: a.Overdraft, held: a.Held, countedAt: now, soonest: math.MaxInt64}, nil
}

// spendable is what the account can still spend at unix time now: balance + overdraft
// less its open reservations, but those past their expiry (they hold nothing even before
// the sweep deletes them) and the one of call uniqueid/prior (a retried callPrepare
// replaces its own). The same sum as reservedBesides, over the mirror.
func (a *heldAccount) spendable(now int64, uniqueid string, prior int) money.Micro {
	return a.spendableAt(now, uniqueid, prior, 0)
}

// spendableAt is spendable for the account of a call's chain level (resellers.go): the
// call's own reservation on it is the one of that level.
func (a *heldAccount) spendableAt(now int64, uniqueid string, prior, level int) money.Micro {
	if now < a.countedAt || now > a.soonest {
		a.count(now)
	}
	m := a.balance + a.overdraft - a.held
	if own, ok := a.open[callHoldAt(uniqueid, prior, 0, level)]; ok && uniqueid != "" && own.expires >= now {
		m += own.amount
	}
	return m
}

// count sums the reservations that hold at unix time now.
func (a *heldAccount) count(now int64) {
	a.held, a.countedAt, a.soonest = 0, now, math.MaxInt64
	for _, r := range a.open {
		a.add(r)
	}
}

// add and remove keep held and soonest for one reservation.
func (a *heldAccount) add(r hold) {
	if r.expires >= a.countedAt {
		a.held += r.amount
		a.soonest = min(a.soonest, r.expires)
	}
}

func (a *heldAccount) remove(r hold) {
	if r.expires >= a.countedAt {
		a.held -= r.amount // soonest stays: an earlier bound only recounts sooner
	}
}

// kept reports whether tx's changes are to be mirrored.
func (h *holds) kept(tx *db.Tx) bool { return tx.Epoch() != 0 && tx.Epoch() == h.epoch }

// reserved mirrors reservation k, inserted or updated in tx for account.
func (h *holds) reserved(tx *db.Tx, account int64, k holdKey, r hold) {
	if !h.kept(tx) {
		return
	}
	h.released(tx, k) // an updated reservation may have moved between accounts
	if a := h.accounts[account]; a != nil {
		a.open[k] = r
		a.add(r)
		h.owner[k] = account
	}
}

// released mirrors the deletion of reservation k in tx.
func (h *holds) released(tx *db.Tx, k holdKey) {
	if !h.kept(tx) {
		return
	}
	if account, ok := h.owner[k]; ok {
		a := h.accounts[account]
		a.remove(a.open[k])
		delete(a.open, k)
		delete(h.owner, k)
	}
}

// posted mirrors post's change of an account's balance by amount in tx.
func (h *holds) posted(tx *db.Tx, account int64, amount money.Micro) {
	if !h.kept(tx) {
		return
	}
	if a := h.accounts[account]; a != nil {
		a.balance += amount
	}
}
