package billing

import (
	"context"

	"github.com/narayana/narayanad/db"
)

// bumpRatingVersion records, inside the transaction that changed them, that directions,
// tariffs, entries, routes or bill types changed: every daemon sharing the database
// rebuilds its in-memory rating snapshot when it sees the version move.
func bumpRatingVersion(ctx context.Context, tx *db.Tx) error {
	_, err := tx.Exec(ctx, `UPDATE rating_version SET version = version + 1 WHERE id = 1`)
	return err
}
