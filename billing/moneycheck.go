package billing

import (
	"context"

	"github.com/narayana/narayanad/db"
)

// CheckLedger counts the accounts, and those whose balance is not the sum of their
// ledger rows: what `narayanad load` verifies once a database has moved.
func CheckLedger(ctx context.Context, d *db.DB) (accounts, bad int, err error) {
	q := d.Q()
	if err := q.Get(ctx, &accounts, `SELECT COUNT(*) FROM accounts`); err != nil {
		return 0, 0, err
	}
	err = q.Get(ctx, &bad, `SELECT COUNT(*) FROM (SELECT a.id FROM accounts a LEFT JOIN ledger l ON l.account_id = a.id
		GROUP BY a.id, a.balance HAVING a.balance <> COALESCE(SUM(l.amount), 0)) x`)
	return accounts, bad, err
}
