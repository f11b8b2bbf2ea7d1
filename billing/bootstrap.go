package billing

import (
	"context"
	"fmt"
	"time"

	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
)

// Bootstrap creates the schema, the master admin and the client key `web`; it refuses
// a database that already holds a schema and then changes nothing.
func Bootstrap(ctx context.Context, d *db.DB, cfg Config, user, passwordMD5, apikey string) error {
	v, err := d.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if v > 0 {
		return fmt.Errorf("the database is already initialised (schema version %d); nothing changed", v)
	}
	if err := checkSecret(apikey); err != nil {
		return fmt.Errorf("--api-key: %w", err)
	}
	hash, err := keys.NewPasswords(cfg.PasswordCost).Hash(passwordMD5)
	if err != nil {
		return err
	}
	if err := d.Migrate(ctx); err != nil {
		return err
	}
	now := time.Now().Unix()
	return d.InTx(ctx, func(tx *db.Tx) error {
		acc, err := tx.Insert(ctx, `INSERT INTO accounts (created_at) VALUES (?)`, now)
		if err != nil {
			return err
		}
		id, err := tx.Insert(ctx, `INSERT INTO users (username, password_hash, accesslevel, active, account_id, currency, language, created_at)
			VALUES (?, ?, ?, 1, ?, ?, ?, ?)`, user, hash, keys.LevelMaster, acc, cfg.Currency, cfg.DefaultLanguage, now)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE accounts SET owner_id = ? WHERE id = ?`, id, acc); err != nil {
			return err
		}
		// The web panel's client key, created like any other.
		_, err = CreateKey(ctx, tx, KeySpec{Name: "web", APIKey: apikey, Owner: user}, nil)
		return err
	})
}
