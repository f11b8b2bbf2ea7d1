package billing

import (
	"context"
	"errors"
	"regexp"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
)

// billTypeMethods declares the methods whose handlers are in this file: the reference's
// "Directions and tarification".
func (s *Service) billTypeMethods() []Method {
	return []Method{
		method("getBillTypes", 22, s.getBillTypes).
			Doc("list the tarification types", "the tarification types"),
		method("getBillType", 33, s.getBillType, "bill_type:string!").
			Doc("get a tarification type by its name", "the tarification type's data"),
		method("addBillType", 33, s.addBillType, "bill_type:string!", "free_threshold:int=0", "step:int!",
			"first_step:int").
			Doc("add a tarification type", "true"),
		method("updateBillType", 33, s.updateBillType, "bill_type:string!", "free_threshold:int",
			"step:int", "first_step:int").
			Doc("update a tarification type", "true"),
		method("deleteBillType", 33, s.deleteBillType, "bill_type:string!").
			Doc("delete a tarification type", "true"),
	}
}

// BillType is a tariffication type: billed seconds are 0 up to free_threshold, else the
// initial block first_step and then the rest rounded up to a multiple of step
// (DECISIONS §5). first_step not given follows step (stored as 0); answers show the
// block in effect.
type BillType struct {
	Name          string `db:"name" json:"type"`
	FreeThreshold int64  `db:"free_threshold" json:"free_threshold"`
	Step          int64  `db:"step" json:"step"`
	FirstStep     int64  `db:"first_step" json:"first_step"`
}

// billTypeColumns reads a bill type with its initial block in effect.
const billTypeColumns = `name, free_threshold, step, CASE WHEN first_step > 0 THEN first_step ELSE step END AS first_step`

// builtinBillTypes cannot be changed or deleted (DECISIONS §5).
var builtinBillTypes = map[string]bool{"by_second": true, "byminute": true}

var billTypePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)

// Bounds of a bill type's numbers: a day.
const maxBillSeconds = 86400

func billTypeByName(ctx context.Context, q db.Queryer, name string) (*BillType, error) {
	var bt BillType
	err := q.Get(ctx, &bt, `SELECT `+billTypeColumns+` FROM bill_types WHERE name = ?`, name)
	if db.IsNotFound(err) {
		return nil, apierr.New(apierr.NotExist, "no bill type %q", name)
	}
	return &bt, err
}

// getBillTypes lists the tarification types.
func (s *Service) getBillTypes(r *Request) (any, error) {
	out := []BillType{}
	err := s.DB.Q().Select(r.ctx, &out, `SELECT `+billTypeColumns+` FROM bill_types ORDER BY name`)
	return out, err
}

// getBillType gets a tarification type by its name.
func (s *Service) getBillType(r *Request) (any, error) {
	return billTypeByName(r.ctx, s.DB.Q(), r.Str("bill_type"))
}

func checkBillNumbers(r *Request) error {
	if r.Has("free_threshold") && (r.Int("free_threshold") < 0 || r.Int("free_threshold") > maxBillSeconds) {
		return apierr.New(apierr.InvalidArgument, "free_threshold: 0 to %d seconds", maxBillSeconds)
	}
	if r.Has("step") && (r.Int("step") < 1 || r.Int("step") > maxBillSeconds) {
		return apierr.New(apierr.InvalidArgument, "step: 1 to %d seconds", maxBillSeconds)
	}
	if r.Has("first_step") && (r.Int("first_step") < 1 || r.Int("first_step") > maxBillSeconds) {
		return apierr.New(apierr.InvalidArgument, "first_step: 1 to %d seconds", maxBillSeconds)
	}
	return nil
}

// addBillType adds a tariffication type; an existing name is E_DATA_ABORT.
func (s *Service) addBillType(r *Request) (any, error) {
	name := r.Str("bill_type")
	if !billTypePattern.MatchString(name) {
		return nil, apierr.New(apierr.InvalidArgument, "bill_type: 1 to 32 letters, digits or _.-")
	}
	if err := checkBillNumbers(r); err != nil {
		return nil, err
	}
	return nil, s.ratingTx(r, func(tx *db.Tx) error {
		_, err := tx.Exec(r.ctx, `INSERT INTO bill_types (name, free_threshold, step, first_step) VALUES (?, ?, ?, ?)`,
			name, r.Int("free_threshold"), r.Int("step"), r.Int("first_step")) // absent: 0, the step
		if errors.Is(err, db.ErrConflict) {
			return apierr.New(apierr.DataAbort, "bill type %q exists", name)
		}
		return err
	})
}

// updateBillType changes free_threshold, step and/or first_step; the built-in types are
// fixed (E_DATA_ABORT). A first_step never given keeps following step.
func (s *Service) updateBillType(r *Request) (any, error) {
	name := r.Str("bill_type")
	if err := checkBillNumbers(r); err != nil {
		return nil, err
	}
	if !r.Has("free_threshold") && !r.Has("step") && !r.Has("first_step") {
		return nil, apierr.New(apierr.MissingArgument, "nothing to update (free_threshold, step, first_step)")
	}
	return nil, s.ratingTx(r, func(tx *db.Tx) error {
		if _, err := billTypeByName(r.ctx, tx, name); err != nil {
			return err
		}
		if builtinBillTypes[name] {
			return apierr.New(apierr.DataAbort, "%s is built in", name)
		}
		var bt BillType // as stored: first_step 0 follows step
		if err := tx.Get(r.ctx, &bt, `SELECT name, free_threshold, step, first_step FROM bill_types WHERE name = ?`, name); err != nil {
			return err
		}
		if r.Has("first_step") {
			bt.FirstStep = r.Int("first_step")
		}
		if r.Has("free_threshold") {
			bt.FreeThreshold = r.Int("free_threshold")
		}
		if r.Has("step") {
			bt.Step = r.Int("step")
		}
		_, err := tx.Exec(r.ctx, `UPDATE bill_types SET free_threshold = ?, step = ?, first_step = ? WHERE name = ?`,
			bt.FreeThreshold, bt.Step, bt.FirstStep, name)
		return err
	})
}

// deleteBillType refuses (E_DATA_ABORT) the built-in types and types a tariff uses.
func (s *Service) deleteBillType(r *Request) (any, error) {
	name := r.Str("bill_type")
	return nil, s.ratingTx(r, func(tx *db.Tx) error {
		if _, err := billTypeByName(r.ctx, tx, name); err != nil {
			return err
		}
		if builtinBillTypes[name] {
			return apierr.New(apierr.DataAbort, "%s is built in", name)
		}
		var n int
		if err := tx.Get(r.ctx, &n, `SELECT count(*) FROM rates WHERE bill_type = ?`, name); err != nil {
			return err
		}
		if n > 0 {
			return apierr.New(apierr.DataAbort, "bill type %q is used by %d tariffs", name, n)
		}
		_, err := tx.Exec(r.ctx, `DELETE FROM bill_types WHERE name = ?`, name)
		if errors.Is(err, db.ErrForeignKey) {
			return apierr.New(apierr.DataAbort, "bill type %q is in use", name)
		}
		return err
	})
}
