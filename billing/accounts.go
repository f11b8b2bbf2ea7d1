package billing

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
)

// accountMethods declares the methods whose handlers are in this file: the reference's
// "Finances and statistics", "Accounts".
func (s *Service) accountMethods() []Method {
	return []Method{
		// Finances and statistics
		method("transferMoney", 1, s.transferMoney, "destination:string!", "amount:money!",
			"comment:string").
			Doc("transfer money to another user's account", "true"),
		// Accounts
		method("updateAccount", 1, s.updateAccount, "account:int", "balance:money", "overdraft:money",
			"refill_allowed:int", "billing_name:string", "billing_address:string", "billing_email:string",
			"billing_bank_account:string", "postpaid:int").
			Doc("update the account's parameters", "true"),
		method("getAccounts", 22, s.getAccounts, "all:bool=false", "offset:int=0", "limit:int", "search:string").
			Doc("list the users' accounts: `limit` accounts (all when absent) after skipping `offset`, those "+
				"with a user or billing name containing `search` (any case) when given", "the accounts and their data"),
		method("getAccountInfo", 22, s.getAccountInfo, "account:int!").
			Doc("get an account's data", "the account's data"),
		method("deleteAccount", 22, s.deleteAccount, "account:int!").
			Doc("delete an account", "true"),
	}
}

// Values of an account's refill_allowed.
const (
	refillForbidden = 0 // no financial transactions
	refillAnonymous = 1 // anonymous ones only (prepaid codes, payments)
	refillAll       = 2
)

// accountAccess tells what the actor may do with an account: see it and change its
// billing details (a user of it, or a manager of all its users), or manage it (a manager
// of every user in it who is not one of them, or the owner of an empty one).
type accountAccess struct {
	member, manager bool
	users           []string
}

func (s *Service) accountAccess(r *Request, account int64) (accountAccess, error) {
	q := s.DB.Q()
	var n int
	if err := q.Get(r.ctx, &n, `SELECT count(*) FROM accounts WHERE id = ?`, account); err != nil {
		return accountAccess{}, err
	}
	if n == 0 {
		return accountAccess{}, apierr.New(apierr.NotExist, "no account %d", account)
	}
	var ids []int64
	if err := q.Select(r.ctx, &ids, `SELECT id FROM users WHERE account_id = ? ORDER BY id`, account); err != nil {
		return accountAccess{}, err
	}
	var acc accountAccess
	actor := r.Caller.Actor
	allManaged := true
	for _, id := range ids {
		u, err := userByID(r.ctx, q, id)
		if err != nil {
			return accountAccess{}, err
		}
		acc.users = append(acc.users, u.Username)
		ok, err := r.Manages(u)
		if err != nil {
			return accountAccess{}, err
		}
		allManaged = allManaged && ok
	}
	if len(ids) == 0 {
		var owner *int64
		if err := q.Get(r.ctx, &owner, `SELECT owner_id FROM accounts WHERE id = ?`, account); err != nil {
			return accountAccess{}, err
		}
		allManaged = owner != nil && *owner == actor.ID || actor.AccessLevel >= keys.LevelAdmin
	}
	isUser := contains(acc.users, actor.Username)
	acc.member = isUser || allManaged
	acc.manager = allManaged && (!isUser || actor.AccessLevel >= keys.LevelAdmin)
	return acc, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// manageableAccount checks that the actor may put users into account (they manage it).
func (s *Service) manageableAccount(r *Request, account int64) (int64, error) {
	acc, err := s.accountAccess(r, account)
	if err != nil {
		return 0, err
	}
	if !acc.manager && !acc.member {
		return 0, apierr.New(apierr.DoesNotBelongToYou, "account %d is not yours", account)
	}
	return account, nil
}

func (s *Service) accountView(r *Request, a *Account, users []string) (map[string]any, error) {
	_, x, err := s.viewer(r)
	if err != nil {
		return nil, err
	}
	if users == nil {
		users = []string{}
	}
	return map[string]any{
		"account": a.Number, "users": users, "balance": a.Balance, "displaybalance": x.display(a.Balance),
		"overdraft": a.Overdraft, "displayoverdraft": x.display(a.Overdraft), "displaycurrency": x.user.DisplayName,
		"refill_allowed": a.RefillAllowed, "postpaid": a.Postpaid,
		"billing_name": a.BillingName, "billing_address": a.BillingAddress, "billing_email": a.BillingEmail,
		"billing_bank_account": a.BillingBankAccount,
	}, nil
}

func accountByNumber(ctx context.Context, q db.Queryer, n int64) (*Account, error) {
	var a Account
	err := q.Get(ctx, &a, accountSelect+` WHERE a.id = ?`, n)
	if db.IsNotFound(err) {
		return nil, apierr.New(apierr.NotExist, "no account %d", n)
	}
	return &a, err
}

// getAccountInfo gets an account's data.
func (s *Service) getAccountInfo(r *Request) (any, error) {
	acc, err := s.accountAccess(r, r.Int("account"))
	if err != nil {
		return nil, err
	}
	if !acc.member {
		return nil, apierr.New(apierr.DoesNotBelongToYou, "account %d is not yours", r.Int("account"))
	}
	a, err := accountByNumber(r.ctx, s.DB.Q(), r.Int("account"))
	if err != nil {
		return nil, err
	}
	return s.accountView(r, a, acc.users)
}

// getAccounts lists the users' accounts.
func (s *Service) getAccounts(r *Request) (any, error) {
	actor, err := r.User()
	if err != nil {
		return nil, err
	}
	ids, err := s.managedIDs(r.ctx, actor, r.Bool("all"))
	if err != nil {
		return nil, err
	}
	ids = append([]int64{actor.ID}, ids...)
	q := s.DB.Q()
	seen := map[int64]bool{}
	var numbers []int64
	for _, id := range ids {
		u, err := userByID(r.ctx, q, id)
		if err != nil {
			return nil, err
		}
		if !seen[u.Number] {
			seen[u.Number] = true
			numbers = append(numbers, u.Number)
		}
	}
	var empty []int64
	if err := q.Select(r.ctx, &empty, `SELECT id FROM accounts a WHERE owner_id = ? AND NOT EXISTS
		(SELECT 1 FROM users u WHERE u.account_id = a.id) ORDER BY id`, actor.ID); err != nil {
		return nil, err
	}
	numbers = append(numbers, empty...)
	if search := r.Str("search"); search != "" {
		var match []int64
		if err := q.Select(r.ctx, &match, `SELECT account_id FROM users WHERE LOWER(username) LIKE ? ESCAPE '\'
			UNION SELECT id FROM accounts WHERE LOWER(billing_name) LIKE ? ESCAPE '\'`,
			likePattern(search), likePattern(search)); err != nil {
			return nil, err
		}
		numbers = slices.DeleteFunc(numbers, func(n int64) bool { return !slices.Contains(match, n) })
	}
	if numbers, err = pageOf(r, numbers); err != nil {
		return nil, err
	}
	out := make([]map[string]any, 0, len(numbers))
	for _, n := range numbers {
		a, err := accountByNumber(r.ctx, q, n)
		if err != nil {
			return nil, err
		}
		var users []string
		if err := q.Select(r.ctx, &users, `SELECT username FROM users WHERE account_id = ? ORDER BY username`, n); err != nil {
			return nil, err
		}
		v, err := s.accountView(r, a, users)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// deleteAccount deletes an account the caller manages, once it has no users, no money
// and no history. Ownership is decided first, so a stranger learns nothing of its users.
// An account with ledger rows stays, closed (DECISIONS §4: the ledger is never deleted).
func (s *Service) deleteAccount(r *Request) (any, error) {
	n := r.Int("account")
	acc, err := s.accountAccess(r, n)
	if err != nil {
		return nil, err
	}
	if !acc.manager && !acc.member {
		return nil, apierr.New(apierr.DoesNotBelongToYou, "account %d is not yours", n)
	}
	if len(acc.users) > 0 {
		return nil, apierr.New(apierr.AccountHasUsers, "account %d has users %s", n, strings.Join(acc.users, ", "))
	}
	if !acc.manager {
		return nil, apierr.New(apierr.DoesNotBelongToYou, "account %d is not yours", n)
	}
	return nil, s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		locked, err := lockAccounts(r.ctx, tx, n)
		if err != nil {
			return err
		}
		var users, rows int
		if err := tx.Get(r.ctx, &users, `SELECT count(*) FROM users WHERE account_id = ?`, n); err != nil {
			return err
		}
		if users > 0 { // a user joined it since the check above
			return apierr.New(apierr.AccountHasUsers, "account %d has users", n)
		}
		if err := tx.Get(r.ctx, &rows, `SELECT count(*) FROM ledger WHERE account_id = ?`, n); err != nil {
			return err
		}
		if locked[n].Balance != 0 || rows > 0 {
			return apierr.New(apierr.DataAbort, "account %d holds money or has a history: it stays, closed", n)
		}
		if _, err := tx.Exec(r.ctx, `DELETE FROM reservations WHERE account_id = ?`, n); err != nil {
			return err // a reseller's share of its users' calls (reservations have no foreign key)
		}
		_, err = tx.Exec(r.ctx, `DELETE FROM accounts WHERE id = ?`, n)
		return err
	})
}

// updateAccount updates the account's parameters.
func (s *Service) updateAccount(r *Request) (any, error) {
	actor, err := r.Actor()
	if err != nil {
		return nil, err
	}
	n := r.Int("account")
	if !r.Has("account") {
		u, err := r.User()
		if err != nil {
			return nil, err
		}
		n = u.Number
	}
	acc, err := s.accountAccess(r, n)
	if err != nil {
		return nil, err
	}
	if !acc.member {
		return nil, apierr.New(apierr.DoesNotBelongToYou, "account %d is not yours", n)
	}
	x, err := s.exchange(r.ctx, actor.Currency)
	if err != nil {
		return nil, err
	}
	var sets []string
	var vals []any
	for _, f := range []string{"overdraft", "refill_allowed", "postpaid", "billing_name", "billing_address", "billing_email", "billing_bank_account"} {
		if !r.Has(f) {
			continue
		}
		var v any = r.Str(f)
		switch f {
		case "overdraft", "refill_allowed", "postpaid":
			if !acc.manager || actor.AccessLevel < keys.LevelManager {
				return nil, apierr.New(apierr.InsufficientAccess, "%s can be changed only by the account's manager", f)
			}
		}
		switch f {
		case "overdraft":
			if r.Money(f) < 0 {
				return nil, apierr.New(apierr.InvalidArgument, "overdraft must not be negative")
			}
			v = x.toSystem(r.Money(f))
		case "refill_allowed":
			if i := r.Int(f); i < refillForbidden || i > refillAll {
				return nil, apierr.New(apierr.InvalidArgument, "refill_allowed: 0, 1 or 2")
			}
			v = r.Int(f)
		case "postpaid":
			if i := r.Int(f); i != 0 && i != 1 {
				return nil, apierr.New(apierr.InvalidArgument, "postpaid: 0 or 1")
			}
			v = r.Int(f)
		}
		sets = append(sets, f+" = ?")
		vals = append(vals, v)
	}
	setBalance := r.Has("balance")
	if setBalance {
		// The reference: administrators do not change balances (they use transferMoney);
		// a corporate user sets the balance of accounts they manage, never their own.
		if actor.AccessLevel >= keys.LevelAdmin || !acc.manager || actor.AccessLevel < keys.LevelManager {
			return nil, apierr.New(apierr.InsufficientAccess, "balance can be set only by the account's corporate manager; use transferMoney")
		}
	}
	if len(sets) == 0 && !setBalance {
		return nil, apierr.New(apierr.MissingArgument, "nothing to update")
	}
	return nil, s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		if len(sets) > 0 {
			if _, err := tx.Exec(r.ctx, `UPDATE accounts SET `+strings.Join(sets, ", ")+` WHERE id = ?`, append(vals, n)...); err != nil {
				return err
			}
		}
		if !setBalance {
			return nil
		}
		locked, err := lockAccounts(r.ctx, tx, n, actor.Number) // in id order, before pay locks them again
		if err != nil {
			return err
		}
		// The manager is a reseller: a raise comes out of its own account, a cut goes back
		// to it (DECISIONS §3).
		comment := "balance set by " + actor.Username
		switch delta := x.toSystem(r.Money("balance")) - locked[n].Balance; {
		case delta > 0:
			return pay(r.ctx, tx, actor.Number, n, delta, KindManual, comment, actor.ID)
		case delta < 0:
			return pay(r.ctx, tx, n, actor.Number, -delta, KindManual, comment, actor.ID)
		}
		return nil
	})
}

// transferMoney transfers money to another user's account.
func (s *Service) transferMoney(r *Request) (any, error) {
	sender, err := r.User()
	if err != nil {
		return nil, err
	}
	amount := r.Money("amount")
	if amount <= 0 {
		return nil, apierr.New(apierr.InvalidArgument, "amount must be positive")
	}
	q := s.DB.Q()
	dest := r.Str("destination")
	to := int64(0)
	if n, err := strconv.ParseInt(dest, 10, 64); err == nil {
		if _, err := accountByNumber(r.ctx, q, n); err == nil {
			to = n
		}
	}
	if to == 0 {
		u, err := userByName(r.ctx, q, dest)
		if err != nil {
			return nil, apierr.New(apierr.NotExist, "destination %q is neither a user nor an account", dest)
		}
		to = u.Number
	}
	from := sender.Number
	if to == from {
		return nil, apierr.New(apierr.DataAbort, "destination is the sender's own account")
	}
	x, err := s.exchange(r.ctx, sender.Currency)
	if err != nil {
		return nil, err
	}
	sys := x.toSystem(amount)
	fee := x.system.TransferFee
	if sender.Currency != x.system.Code {
		fee = x.toSystem(x.user.TransferFee)
	}
	// The operator's administrators issue money: their account may go below zero, and
	// the ledger records it like any other transfer.
	issuer := sender.AccessLevel >= keys.LevelAdmin
	return nil, s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		acc, err := lockAccounts(r.ctx, tx, from, to)
		if err != nil {
			return err
		}
		for _, a := range []*Account{acc[from], acc[to]} {
			switch a.RefillAllowed {
			case refillForbidden:
				return apierr.New(apierr.TransactionsLocked, "financial transactions of account %d are forbidden", a.Number)
			case refillAnonymous:
				if a == acc[from] {
					return apierr.New(apierr.TransactionsLimited, "account %d allows anonymous transactions only", a.Number)
				}
			}
		}
		if !issuer {
			avail, err := spendable(r.ctx, tx, acc[from])
			if err != nil {
				return err
			}
			if avail-sys-fee < 0 {
				return apierr.New(apierr.InsufficientMoney, "account %d cannot pay %s %s", from, amount, sender.Currency)
			}
		}
		ref := "account:" + strconv.FormatInt(to, 10)
		if err := post(r.ctx, tx, from, -sys, KindTransfer, ref, r.Str("comment"), sender.ID); err != nil {
			return err
		}
		if fee > 0 {
			if err := post(r.ctx, tx, from, -fee, KindFee, ref, "transfer fee", sender.ID); err != nil {
				return err
			}
		}
		err = post(r.ctx, tx, to, sys, KindTransfer, "account:"+strconv.FormatInt(from, 10), r.Str("comment"), sender.ID)
		return err
	})
}
