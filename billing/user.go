package billing

import (
	"context"
	"database/sql"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
	"github.com/narayana/narayanad/money"
)

// User is a user row with its account (the reference's "User" object, less the SIP part).
type User struct {
	ID                 int64         `db:"id"`
	Username           string        `db:"username"`
	ManagerID          sql.NullInt64 `db:"manager_id"`
	Manager            string        `db:"manager"`
	AccessLevel        int           `db:"accesslevel"`
	Active             int           `db:"active"`
	AccountID          int64         `db:"account_id"`
	Currency           string        `db:"currency"`
	Language           string        `db:"language"`
	Timezone           float64       `db:"timezone"`
	RatesID            sql.NullInt64 `db:"rates_id"`
	AllowedRates       string        `db:"allowed_rates"`
	AllowedCallLen     int           `db:"allowed_call_len"`
	NotifyEmail        string        `db:"notify_email"`
	NotifyBalance      int           `db:"notify_balance"`
	NotifyBalanceLimit money.Micro   `db:"notify_balance_limit"`
	NotifyDID          int           `db:"notify_did"`
	NotifyTicket       int           `db:"notify_ticket"`
	Invites            int           `db:"invites"`
	Comment            string        `db:"comment"`
	CreatedAt          int64         `db:"created_at"`
	Account
}

// Account is an account row: the money that one or more users share.
type Account struct {
	Number             int64       `db:"account"`
	Balance            money.Micro `db:"balance"`
	Overdraft          money.Micro `db:"overdraft"`
	RefillAllowed      int         `db:"refill_allowed"`
	Postpaid           int         `db:"postpaid"`
	BillingName        string      `db:"billing_name"`
	BillingAddress     string      `db:"billing_address"`
	BillingEmail       string      `db:"billing_email"`
	BillingBankAccount string      `db:"billing_bank_account"`
}

const userSelect = `SELECT u.id, u.username, u.manager_id, COALESCE(m.username, '') AS manager, u.accesslevel,
	u.active, u.account_id, u.currency, u.language, u.timezone, u.rates_id, u.allowed_rates, u.allowed_call_len,
	u.notify_email, u.notify_balance, u.notify_balance_limit, u.notify_did, u.notify_ticket, u.invites,
	u.comment, u.created_at, a.id AS account, a.balance, a.overdraft, a.refill_allowed, a.postpaid,
	a.billing_name, a.billing_address, a.billing_email, a.billing_bank_account
	FROM users u JOIN accounts a ON a.id = u.account_id LEFT JOIN users m ON m.id = u.manager_id`

// userByID loads a user; E_NOT_EXIST when there is none.
func userByID(ctx context.Context, q db.Queryer, id int64) (*User, error) {
	var u User
	if err := q.Get(ctx, &u, userSelect+` WHERE u.id = ?`, id); err != nil {
		if db.IsNotFound(err) {
			return nil, apierr.New(apierr.NotExist, "no user #%d", id)
		}
		return nil, err
	}
	return &u, nil
}

// userByName loads a user by username; E_NOT_EXIST when there is none.
func userByName(ctx context.Context, q db.Queryer, name string) (*User, error) {
	var u User
	if err := q.Get(ctx, &u, userSelect+` WHERE u.username = ?`, name); err != nil {
		if db.IsNotFound(err) {
			return nil, apierr.New(apierr.NotExist, "no user %q", name)
		}
		return nil, err
	}
	return &u, nil
}

func (u *User) principal() *keys.Principal {
	return &keys.Principal{ID: u.ID, Username: u.Username, AccessLevel: u.AccessLevel, Active: u.Active, ManagerID: u.ManagerID}
}

// User is the user the call acts on (the caller, or the `username` argument's user).
func (r *Request) User() (*User, error) {
	if r.user == nil {
		if r.Caller.User == nil {
			return nil, apierr.New(apierr.AuthFailed, "this call needs an authorized user")
		}
		u, err := userByID(r.ctx, r.S.DB.Q(), r.Caller.User.ID)
		if err != nil {
			return nil, err
		}
		r.user = u
	}
	return r.user, nil
}

// Actor is the authenticated user making the call.
func (r *Request) Actor() (*User, error) {
	if r.actor == nil {
		if r.Caller.Actor == nil {
			return nil, apierr.New(apierr.AuthFailed, "this call needs an authorized user")
		}
		if r.Caller.User != nil && r.Caller.User.ID == r.Caller.Actor.ID {
			return r.User()
		}
		u, err := userByID(r.ctx, r.S.DB.Q(), r.Caller.Actor.ID)
		if err != nil {
			return nil, err
		}
		r.actor = u
	}
	return r.actor, nil
}

// Manages applies the one ownership rule: does the actor manage u?
func (r *Request) Manages(u *User) (bool, error) {
	return r.S.Gate.Users.Manages(r.ctx, r.S.DB.Q(), r.Caller.Actor, u.principal())
}

// Owned loads the user named name and checks that the actor manages them:
// E_NOT_EXIST or E_DOES_NOT_BELONG_TO_YOU otherwise.
func (r *Request) Owned(name string) (*User, error) {
	u, err := userByName(r.ctx, r.S.DB.Q(), name)
	if err != nil {
		return nil, err
	}
	ok, err := r.Manages(u)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, apierr.New(apierr.DoesNotBelongToYou, "user %q is not yours", name)
	}
	return u, nil
}

// Target is the user an argument names (e.g. `user`), or the call's user when it is empty.
func (r *Request) Target(argName string) (*User, error) {
	if name := r.Str(argName); name != "" {
		return r.Owned(name)
	}
	return r.User()
}
