package billing

import (
	"context"

	"github.com/narayana/narayanad/billing/money"
	"github.com/narayana/narayanad/db"
)

// holds mirrors what the call path reads of an account: its balance, overdraft and
// open reservations. On SQLite every callPrepare and callFinish transaction runs in the
// group-commit writer, so while the writer's epoch stands (db.Tx.Epoch: nothing but its
// own jobs has committed), an account read once answers the next calls from memory
// exactly as the database would, and callPrepare's only statement is its INSERT. Where
// there is no epoch (PostgreSQL: several daemons write at once) nothing is kept and
// every call reads the database under the account's row lock.
//
// Only the writer goroutine uses a nonzero epoch, so the maps need no lock.
type holds struct {
	epoch    uint64
	accounts map[int64]*heldAccount
	owner    map[int64]int64 // reservation id → account id, for the accounts kept
}

type heldAccount struct {
	balance, overdraft money.Micro
	open               map[int64]hold // by reservation id, expired ones too until swept
}

type hold struct {
	amount   money.Micro
	expires  int64
	uniqueid string // "" for a call without uniqueid
	prior    int
}

// maxHeldAccounts bounds the mirror; past it, it starts over.
const maxHeldAccounts = 100_000

// account returns the account id locked in tx (kept, or read and kept).
func (h *holds) account(ctx context.Context, tx *db.Tx, id int64) (*heldAccount, error) {
	if e := tx.Epoch(); e != 0 {
		if h.epoch != e || len(h.accounts) >= maxHeldAccounts {
			h.epoch, h.accounts, h.owner = e, map[int64]*heldAccount{}, map[int64]int64{}
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
	}
	err = tx.Select(ctx, &rows, `SELECT id, amount, expires_at, COALESCE(uniqueid, '') AS uniqueid, prior
		FROM reservations WHERE account_id = ?`, id)
	if err != nil {
		return nil, err
	}
	a := &heldAccount{balance: accs[id].Balance, overdraft: accs[id].Overdraft, open: make(map[int64]hold, len(rows))}
	for _, r := range rows {
		a.open[r.ID] = hold{amount: r.Amount, expires: r.Expires, uniqueid: r.UniqueID, prior: r.Prior}
	}
	if tx.Epoch() != 0 {
		h.accounts[id] = a
		for rid := range a.open {
			h.owner[rid] = id
		}
	}
	return a, nil
}

// spendable is what the account can still spend at unix time now: balance + overdraft
// less its open reservations, but those past their expiry (they hold nothing even before
// the sweep deletes them) and the one of call uniqueid/prior (a retried callPrepare
// replaces its own). The same sum as reservedBesides, over the mirror.
func (a *heldAccount) spendable(now int64, uniqueid string, prior int) money.Micro {
	m := a.balance + a.overdraft
	for _, r := range a.open {
		if r.expires >= now && !(uniqueid != "" && r.uniqueid == uniqueid && r.prior == prior) {
			m -= r.amount
		}
	}
	return m
}

// kept reports whether tx's changes are to be mirrored.
func (h *holds) kept(tx *db.Tx) bool { return tx.Epoch() != 0 && tx.Epoch() == h.epoch }

// reserved mirrors reservation id, inserted or updated in tx for account.
func (h *holds) reserved(tx *db.Tx, account, id int64, r hold) {
	if !h.kept(tx) {
		return
	}
	h.released(tx, id) // an updated reservation may have moved between accounts
	if a := h.accounts[account]; a != nil {
		a.open[id] = r
		h.owner[id] = account
	}
}

// released mirrors the deletion of reservation id in tx.
func (h *holds) released(tx *db.Tx, id int64) {
	if !h.kept(tx) {
		return
	}
	if account, ok := h.owner[id]; ok {
		delete(h.accounts[account].open, id)
		delete(h.owner, id)
	}
}

// posted mirrors an account's new balance after post in tx.
func (h *holds) posted(tx *db.Tx, account int64, balance money.Micro) {
	if !h.kept(tx) {
		return
	}
	if a := h.accounts[account]; a != nil {
		a.balance = balance
	}
}
