package billing

import (
	"context"

	"github.com/narayana/narayanad/db"
)

// BumpRatingVersion records, inside the transaction that changed them, that directions,
// tariffs, entries, routes or bill types changed: every daemon sharing the database
// rebuilds its in-memory rating snapshot when it sees the version move.
func BumpRatingVersion(ctx context.Context, tx *db.Tx) error {
	_, err := tx.Exec(ctx, `UPDATE rating_version SET version = version + 1 WHERE id = 1`)
	return err
}

// changeRating runs fn in a transaction that also bumps the rating version: every change
// to what rating reads goes through here (the API's through Service.ratingTx).
func changeRating(ctx context.Context, d *db.DB, fn func(tx *db.Tx) error) error {
	return d.InTx(ctx, func(tx *db.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return BumpRatingVersion(ctx, tx)
	})
}
