package billing

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/money"
)

// maintenanceMethods declares the methods whose handlers are in this file: the reference's
// "Technical maintenance".
func (s *Service) maintenanceMethods() []Method {
	return []Method{
		method("doMaintenance", 90, s.doMaintenance).
			Doc("run the periodic work: exchange rates, invoices, direct numbers", "true"),
	}
}

// maxRenewPeriods bounds the months one run catches up on for a DID whose expiration
// lies far back (maintenance did not run for a long time).
const maxRenewPeriods = 24

// doMaintenance(90) runs the periodic duties. Each one is idempotent: running it twice
// in the same period changes nothing the second time, so a cron job may call it as
// often as it likes (hourly is a good pace).
//
//   - Releases the reservations of calls never settled (expired holds, logged).
//   - Renews DIDs whose expiration has passed and whose auto_renew is on: each month of
//     rent is a ledger row of kind `did` charged to the owner's account, and the
//     expiration moves one calendar month on from the old expiration (periods stay
//     contiguous; a run that was missed for months catches up month by month, at most
//     24). An owner who cannot pay (balance + overdraft − open reservations below the
//     rent) gets the DID disabled; it stays disabled until renewed by hand. DIDs without
//     an owner or already disabled are left alone. Postpaid accounts follow the same
//     rule: their credit is their overdraft.
//   - Marks unpaid invoices whose valid_thru has passed as expired (status 3); a late
//     confirmation from the payment provider still credits them (finishInvoice).
//   - Exchange rates are not fetched: there is no network source, and rates are set with
//     updateCurrency.
func (s *Service) doMaintenance(r *Request) (any, error) {
	ctx := r.ctx
	now := time.Now()
	if _, err := s.sweepReservations(ctx, s.DB.Q(), 0); err != nil {
		return nil, err
	}
	var by int64
	if r.Caller.Actor != nil {
		by = r.Caller.Actor.ID
	}
	if err := s.renewDIDs(ctx, now, by); err != nil {
		return nil, err
	}
	if _, err := s.DB.Q().Exec(ctx, `UPDATE invoices SET status = ? WHERE status = ? AND valid_thru > 0 AND valid_thru < ?`,
		InvoiceExpired, InvoiceUnpaid, now.Unix()); err != nil {
		return nil, err
	}
	return true, nil
}

// renewDIDs renews every DID due, each in its own transaction so one owner's trouble does
// not hold back the others.
func (s *Service) renewDIDs(ctx context.Context, now time.Time, by int64) error {
	var due []string
	if err := s.DB.Q().Select(ctx, &due, `SELECT did FROM dids WHERE auto_renew = 1 AND enabled = 1
		AND owner_id IS NOT NULL AND expiration > 0 AND expiration <= ? ORDER BY did`, now.Unix()); err != nil {
		return err
	}
	for _, did := range due {
		if err := s.DB.InTx(ctx, func(tx *db.Tx) error { return renewDueDID(ctx, tx, did, now, by) }); err != nil {
			return fmt.Errorf("renew DID %s: %w", did, err)
		}
	}
	return nil
}

// renewDueDID charges the rent of a DID due for renewal and moves its expiration on, or
// disables it when its owner cannot pay. The row is read again under lock, so two runs at
// the same time renew it once.
func renewDueDID(ctx context.Context, tx *db.Tx, did string, now time.Time, by int64) error {
	var d struct {
		Owner      sql.NullInt64 `db:"owner_id"`
		Cost       money.Micro   `db:"cost"`
		Expiration int64         `db:"expiration"`
		Enabled    int           `db:"enabled"`
		AutoRenew  int           `db:"auto_renew"`
		Account    int64         `db:"account_id"`
	}
	err := tx.Get(ctx, &d, `SELECT d.owner_id, d.cost, d.expiration, d.enabled, d.auto_renew, u.account_id
		FROM dids d JOIN users u ON u.id = d.owner_id WHERE d.did = ?`+tx.ForUpdate(), did)
	if db.IsNotFound(err) {
		return nil // deleted or given up meanwhile
	} else if err != nil {
		return err
	}
	if d.Enabled != 1 || d.AutoRenew != 1 || d.Expiration <= 0 || d.Expiration > now.Unix() {
		return nil // renewed by a run at the same time
	}
	acc, err := lockAccounts(ctx, tx, d.Account)
	if err != nil {
		return err
	}
	avail, err := spendable(ctx, tx, acc[d.Account])
	if err != nil {
		return err
	}
	exp := d.Expiration
	enabled := 1
	for i := 0; exp <= now.Unix() && i < maxRenewPeriods; i++ {
		if d.Cost > 0 && avail < d.Cost {
			enabled = 0
			break
		}
		next := time.Unix(exp, 0).UTC().AddDate(0, 1, 0).Unix()
		if d.Cost > 0 {
			comment := "DID " + did + " rent until " + formatTime(next, 0)
			if err := post(ctx, tx, d.Account, -d.Cost, KindDID, "did:"+did, comment, by); err != nil {
				return err
			}
			avail -= d.Cost
		}
		exp = next
	}
	_, err = tx.Exec(ctx, `UPDATE dids SET expiration = ?, enabled = ?, renew_notify = 0 WHERE did = ?`, exp, enabled, did)
	return err
}
