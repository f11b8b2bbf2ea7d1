package billing

import (
	"context"

	"github.com/narayana/narayanad/db"
)

// CheckLedger counts the accounts, those whose balance is not the sum of their ledger
// rows, and the ledger rows that name no account (PostgreSQL's ledger has no foreign key:
// sql/postgres/025): what `narayanad load` verifies once a database has moved.
func CheckLedger(ctx context.Context, d *db.DB) (accounts, bad, orphans int, err error) {
	q := d.Q()
	if err := q.Get(ctx, &accounts, `SELECT COUNT(*) FROM accounts`); err != nil {
		return 0, 0, 0, err
	}
	if err := q.Get(ctx, &bad, `SELECT COUNT(*) FROM (SELECT a.id FROM accounts a LEFT JOIN ledger l ON l.account_id = a.id
		GROUP BY a.id, a.balance HAVING a.balance <> COALESCE(SUM(l.amount), 0)) x`); err != nil {
		return 0, 0, 0, err
	}
	err = q.Get(ctx, &orphans, `SELECT COUNT(*) FROM ledger l WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = l.account_id)`)
	return accounts, bad, orphans, err
}
