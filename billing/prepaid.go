package billing

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
	"github.com/narayana/narayanad/money"
)

// prepaidMethods declares the methods whose handlers are in this file: the reference's "Data
// security".
func (s *Service) prepaidMethods() []Method {
	return []Method{
		method("registerRequest", 0, s.registerRequest, "signature:string!").
			Doc("request a registration: generate an invite code", "the invite code"),
		method("registerByCode", 0, s.registerByCode, "code:string!", "register:bool=false", "user:string",
			"web_password:string", "language:string").
			Doc("register a new user with an invite code", "true"),
		method("activatePrepaidCode", 1, s.activatePrepaidCode, "code:string!", "amount:money=0").
			Doc("activate an invite code (prepaid card code) on the user's account", "true"),
		method("getPrepaidCodes", 1, s.getPrepaidCodes, "active:bool=false", "all:bool=false",
			"count:bool=false").
			Doc("list the generated invite codes (prepaid card codes)", "the invite codes, or their count"),
		method("createPrepaidCode", 1, s.createPrepaidCode, "accesslevel:int=10", "balance:money=0",
			"target:string").
			Doc("generate an invite code (prepaid card code)", "the invite code"),
		method("deletePrepaidCode", 1, s.deletePrepaidCode, "code:string!").
			Doc("delete an unused invite code (prepaid card code)", "true"),
	}
}

// Prepaid codes (invites) and registration by code.
//
// A code holds money. createPrepaidCode takes the code's balance out of the creator's
// account (a `prepaid` ledger row) into the code; activatePrepaidCode and registerByCode
// move it into the activating user's account, and deletePrepaidCode of an unused code
// returns it, each in one transaction. So the money of the system is the sum of the
// accounts plus the sum of the codes' balances, and every balance change is a ledger row.
//
// Choices where the reference is vague:
//   - Codes are 16 random digits (crypto/rand). They are found by the index and then
//     compared in constant time (as API keys are); the ledger never shows a code, only
//     `prepaid:` and the first 16 hex digits of its SHA-256.
//   - createPrepaidCode's balance is in the creator's currency; the creator must afford it
//     (balance + overdraft − reservations) unless they are an administrator (33+), who
//     issues money as with transferMoney. An account with refill_allowed 0 cannot fund a
//     code (E_TRANSACTIONS_LOCKED), with 1 (anonymous refills only) neither
//     (E_TRANSACTIONS_LIMITED).
//   - The code's access level must be a user level no higher than the creator's (and the
//     key's); registerByCode gives the new user that level, capped by the creator's level
//     at registration time.
//   - Invites: a code created by a user below 22 that can register someone (its target is
//     not an existing user) is an invite and uses one of the creator's `invites`
//     (-1 = unlimited; 0 = E_INVITE_LIMIT_REACHED). Managers (22+) register users anyway,
//     so their codes do not count. A deleted invite code does not give the invite back.
//   - target restricts who may activate: a username, or one of that user's SIP accounts,
//     SIM card ICCIDs or MSISDNs; for registerByCode the new username must equal it.
//   - The first activation binds the code to its activator: the rest of a partly used
//     code can be activated only by the same user. An amount above what the code holds is
//     E_CODE_HAS_NO_BALANCE. Amounts are in the activating user's currency.
//   - Anonymous refills are prepaid codes: an account with refill_allowed 1 may activate;
//     refill_allowed 0 may not (E_TRANSACTIONS_LOCKED).
//   - deletePrepaidCode deletes only codes never activated (E_DATA_ABORT otherwise), by the
//     creator or whoever manages them (administrators for codes without a creator); the
//     balance returns to the account it came from (the creator's current account if that
//     one is gone).
//   - registerRequest codes have no creator, level 10 and no balance; the same signature
//     gets its still unused code again. A user registered by code is managed by the code's
//     creator (nobody, so administrators, for registerRequest codes), in the creator's
//     currency (the system currency without one). A used code answers E_DATA_ABORT.
//   - getPrepaidCodes lists the codes the user created; with all, administrators (33+) see
//     every code. active=true lists the codes not yet activated.

const levelNewUser = 10

// PrepaidCode is a prepaid_codes row.
type PrepaidCode struct {
	Code        string        `db:"code"`
	Balance     money.Micro   `db:"balance"`
	AccessLevel int           `db:"access_level"`
	OwnerID     sql.NullInt64 `db:"owner_id"`
	Owner       string        `db:"owner"`
	Target      string        `db:"target"`
	Signature   string        `db:"signature"`
	ActivatedTo string        `db:"activated_to"`
	ActivatedAt int64         `db:"activated_at"`
	CreatedAt   int64         `db:"created_at"`
}

const prepaidSelect = `SELECT p.code, p.balance, p.access_level, p.owner_id, COALESCE(u.username, '') AS owner, p.target,
	p.signature, p.activated_to, p.activated_at, p.created_at
	FROM prepaid_codes p LEFT JOIN users u ON u.id = p.owner_id`

// codeRef is how the ledger names a code without showing it.
func codeRef(code string) string {
	sum := sha256.Sum256([]byte(code))
	return "prepaid:" + hex.EncodeToString(sum[:8])
}

var codeSpace = big.NewInt(10_000_000_000_000_000)

// newCode draws a free 16-digit code.
func newCode(ctx context.Context, tx *db.Tx) (string, error) {
	for range 8 {
		n, err := rand.Int(rand.Reader, codeSpace)
		if err != nil {
			return "", err
		}
		code := fmt.Sprintf("%016d", n)
		var taken int
		if err := tx.Get(ctx, &taken, `SELECT count(*) FROM prepaid_codes WHERE code = ?`, code); err != nil {
			return "", err
		}
		if taken == 0 {
			return code, nil
		}
	}
	return "", errors.New("no free prepaid code after 8 draws")
}

// lockCode loads a code for update, compared in constant time; E_NOT_EXIST when none.
func lockCode(ctx context.Context, tx *db.Tx, code string) (*PrepaidCode, error) {
	missing := apierr.New(apierr.NotExist, "no such code")
	if code == "" || len(code) > 64 {
		return nil, missing
	}
	var c PrepaidCode
	err := tx.Get(ctx, &c, `SELECT p.code, p.balance, p.access_level, p.owner_id, '' AS owner, p.target, p.signature,
		p.activated_to, p.activated_at, p.created_at FROM prepaid_codes p WHERE p.code = ?`+tx.ForUpdate(), code)
	if db.IsNotFound(err) {
		return nil, missing
	} else if err != nil {
		return nil, err
	}
	if subtle.ConstantTimeCompare([]byte(c.Code), []byte(code)) != 1 {
		return nil, missing
	}
	return &c, nil
}

// isTarget reports whether target names u: the username, or one of u's SIP accounts or
// SIM cards (ICCID or MSISDN).
func isTarget(ctx context.Context, q db.Queryer, target string, u *User) (bool, error) {
	if target == u.Username {
		return true, nil
	}
	var n int
	err := q.Get(ctx, &n, `SELECT (SELECT count(*) FROM extensions WHERE user_id = ? AND extension = ?)
		+ (SELECT count(*) FROM sim_cards WHERE owner_id = ? AND (iccid = ? OR msisdn = ?))`,
		u.ID, target, u.ID, target, target)
	return n > 0, err
}

// registerRequest answers a registration request with a new invite code.
func (s *Service) registerRequest(r *Request) (any, error) {
	sig := r.Str("signature")
	if len(sig) > 256 {
		return nil, apierr.New(apierr.InvalidArgument, "signature: at most 256 characters")
	}
	var code string
	err := s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		var old []string
		if err := tx.Select(r.ctx, &old, `SELECT code FROM prepaid_codes WHERE signature = ? AND owner_id IS NULL
			AND activated_to = '' ORDER BY created_at LIMIT 1`, sig); err != nil {
			return err
		}
		if len(old) > 0 {
			code = old[0]
			return nil
		}
		// Anyone with a client key may ask, so one address creates only so many codes.
		if !s.registrations.Allow(r.Remote.String(), time.Now()) {
			return apierr.New(apierr.InviteLimitReached, "too many registration requests from %s; try again later", r.Remote)
		}
		var err error
		if code, err = newCode(r.ctx, tx); err != nil {
			return err
		}
		_, err = tx.Exec(r.ctx, `INSERT INTO prepaid_codes (code, balance, access_level, signature, created_at)
			VALUES (?, 0, ?, ?, ?)`, code, levelNewUser, sig, time.Now().Unix())
		return err
	})
	return code, err
}

// createPrepaidCode generates an invite code (prepaid card code).
func (s *Service) createPrepaidCode(r *Request) (any, error) {
	creator, err := r.User()
	if err != nil {
		return nil, err
	}
	level := r.Int("accesslevel")
	if !accessLevels[level] {
		return nil, apierr.New(apierr.InvalidArgument, "accesslevel: %d is not a user access level", level)
	}
	if level > int64(creator.AccessLevel) || level > int64(r.Caller.Level) {
		return nil, apierr.New(apierr.InsufficientAccess, "nobody creates a code above their own access level")
	}
	if r.Money("balance") < 0 {
		return nil, apierr.New(apierr.InvalidArgument, "balance: must not be negative")
	}
	target := r.Str("target")
	if len(target) > 64 {
		return nil, apierr.New(apierr.InvalidArgument, "target: at most 64 characters")
	}
	x, err := s.exchange(r.ctx, creator.Currency)
	if err != nil {
		return nil, err
	}
	amount := x.toSystem(r.Money("balance"))
	invite := creator.AccessLevel < keys.LevelManager
	if invite && target != "" {
		if _, err := userByName(r.ctx, s.DB.Q(), target); err == nil {
			invite = false // a gift to an existing user, not an invitation
		} else if apierr.Code(err) != apierr.NotExist {
			return nil, err
		}
	}
	issuer := creator.AccessLevel >= keys.LevelAdmin
	var code string
	err = s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		if invite {
			var invites int
			if err := tx.Get(r.ctx, &invites, `SELECT invites FROM users WHERE id = ?`+tx.ForUpdate(), creator.ID); err != nil {
				return err
			}
			switch {
			case invites == 0:
				return apierr.New(apierr.InviteLimitReached, "%s has no invites left", creator.Username)
			case invites > 0:
				if _, err := tx.Exec(r.ctx, `UPDATE users SET invites = invites - 1 WHERE id = ?`, creator.ID); err != nil {
					return err
				}
			}
		}
		var err error
		if code, err = newCode(r.ctx, tx); err != nil {
			return err
		}
		if amount > 0 {
			acc, err := lockAccounts(r.ctx, tx, creator.Number)
			if err != nil {
				return err
			}
			a := acc[creator.Number]
			switch a.RefillAllowed {
			case refillForbidden:
				return apierr.New(apierr.TransactionsLocked, "financial transactions of account %d are forbidden", a.Number)
			case refillAnonymous:
				return apierr.New(apierr.TransactionsLimited, "account %d allows anonymous transactions only", a.Number)
			}
			if !issuer {
				avail, err := spendable(r.ctx, tx, a)
				if err != nil {
					return err
				}
				if avail-amount < 0 {
					return apierr.New(apierr.InsufficientMoney, "account %d cannot pay %s %s", a.Number, r.Money("balance"), creator.Currency)
				}
			}
			if err := post(r.ctx, tx, a.Number, -amount, KindPrepaid, codeRef(code), "prepaid code created", creator.ID); err != nil {
				return err
			}
		}
		_, err = tx.Exec(r.ctx, `INSERT INTO prepaid_codes (code, balance, access_level, owner_id, target, created_at)
			VALUES (?, ?, ?, ?, ?, ?)`, code, amount, level, creator.ID, target, time.Now().Unix())
		return err
	})
	return code, err
}

// activatePrepaidCode activates an invite code (prepaid card code) on the user's account.
func (s *Service) activatePrepaidCode(r *Request) (any, error) {
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	if r.Money("amount") < 0 {
		return nil, apierr.New(apierr.InvalidArgument, "amount: must not be negative")
	}
	x, err := s.exchange(r.ctx, u.Currency)
	if err != nil {
		return nil, err
	}
	return nil, s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		c, err := lockCode(r.ctx, tx, r.Str("code"))
		if err != nil {
			return err
		}
		if c.ActivatedTo != "" && c.ActivatedTo != u.Username {
			return apierr.New(apierr.DoesNotBelongToYou, "the code was activated by another user")
		}
		if c.Target != "" {
			ok, err := isTarget(r.ctx, tx, c.Target, u)
			if err != nil {
				return err
			}
			if !ok {
				return apierr.New(apierr.DoesNotBelongToYou, "the code is meant for another user")
			}
		}
		if c.Balance <= 0 {
			return apierr.New(apierr.CodeHasNoBalance, "the code holds no money")
		}
		amount := c.Balance
		if r.Money("amount") > 0 {
			if amount = x.toSystem(r.Money("amount")); amount <= 0 {
				return apierr.New(apierr.InvalidArgument, "amount: too small")
			}
			if amount > c.Balance {
				return apierr.New(apierr.CodeHasNoBalance, "the code holds %s %s", x.display(c.Balance), u.Currency)
			}
		}
		acc, err := lockAccounts(r.ctx, tx, u.Number)
		if err != nil {
			return err
		}
		if acc[u.Number].RefillAllowed == refillForbidden {
			return apierr.New(apierr.TransactionsLocked, "financial transactions of account %d are forbidden", u.Number)
		}
		now := time.Now().Unix()
		if _, err := tx.Exec(r.ctx, `UPDATE prepaid_codes SET balance = balance - ?, activated_to = ?,
			activated_at = CASE WHEN activated_at = 0 THEN ? ELSE activated_at END WHERE code = ?`,
			amount, u.Username, now, c.Code); err != nil {
			return err
		}
		err = post(r.ctx, tx, u.Number, amount, KindPrepaid, codeRef(c.Code), "prepaid code activated", u.ID)
		return err
	})
}

// getPrepaidCodes lists the generated invite codes (prepaid card codes).
func (s *Service) getPrepaidCodes(r *Request) (any, error) {
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	where := ` WHERE p.owner_id = ?`
	args := []any{u.ID}
	if r.Bool("all") && u.AccessLevel >= keys.LevelAdmin {
		where, args = ` WHERE 1 = 1`, nil
	}
	if r.Bool("active") {
		where += ` AND p.activated_to = ''`
	}
	q := s.DB.Q()
	if r.Bool("count") {
		var n int64
		err := q.Get(r.ctx, &n, `SELECT count(*) FROM prepaid_codes p`+where, args...)
		return n, err
	}
	var rows []PrepaidCode
	if err := q.Select(r.ctx, &rows, prepaidSelect+where+` ORDER BY p.created_at DESC, p.code`, args...); err != nil {
		return nil, err
	}
	x, err := s.exchange(r.ctx, u.Currency)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, len(rows))
	for i, c := range rows {
		out[i] = map[string]any{
			"code": c.Code, "balance": c.Balance, "display_balance": x.display(c.Balance), "access_level": c.AccessLevel,
			"owner": c.Owner, "target": c.Target, "activated_to": c.ActivatedTo,
			"created": formatTime(c.CreatedAt, 0), "client_created": formatTime(c.CreatedAt, u.Timezone),
			"activated_date": formatTime(c.ActivatedAt, 0), "client_activated_date": formatTime(c.ActivatedAt, u.Timezone),
		}
	}
	return out, nil
}

// deletePrepaidCode deletes an unused invite code (prepaid card code).
func (s *Service) deletePrepaidCode(r *Request) (any, error) {
	actor, err := r.Actor()
	if err != nil {
		return nil, err
	}
	return nil, s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		c, err := lockCode(r.ctx, tx, r.Str("code"))
		if err != nil {
			return err
		}
		var creator *User
		if c.OwnerID.Valid {
			if creator, err = userByID(r.ctx, tx, c.OwnerID.Int64); err != nil && apierr.Code(err) != apierr.NotExist {
				return err
			}
		}
		ok := creator == nil && actor.AccessLevel >= keys.LevelAdmin
		if creator != nil {
			if ok, err = r.Manages(creator); err != nil {
				return err
			}
		}
		if !ok {
			return apierr.New(apierr.DoesNotBelongToYou, "the code is not yours")
		}
		if c.ActivatedTo != "" {
			return apierr.New(apierr.DataAbort, "the code was activated by %s", c.ActivatedTo)
		}
		if c.Balance > 0 {
			var from []int64
			if err := tx.Select(r.ctx, &from, `SELECT l.account_id FROM ledger l JOIN accounts a ON a.id = l.account_id
				WHERE l.kind = ? AND l.ref = ? AND l.amount < 0 ORDER BY l.id LIMIT 1`, KindPrepaid, codeRef(c.Code)); err != nil {
				return err
			}
			if len(from) == 0 && creator != nil {
				from = []int64{creator.Number}
			}
			if len(from) == 0 {
				return apierr.New(apierr.DataAbort, "no account to return the code's balance to")
			}
			if _, err := lockAccounts(r.ctx, tx, from[0]); err != nil {
				return err
			}
			if err := post(r.ctx, tx, from[0], c.Balance, KindPrepaid, codeRef(c.Code), "prepaid code deleted", actor.ID); err != nil {
				return err
			}
		}
		_, err = tx.Exec(r.ctx, `DELETE FROM prepaid_codes WHERE code = ?`, c.Code)
		return err
	})
}

// registerByCode registers a new user with an invite code.
func (s *Service) registerByCode(r *Request) (any, error) {
	name, pw, register := r.Str("user"), r.Str("web_password"), r.Bool("register")
	if register && (name == "" || pw == "") {
		return nil, apierr.New(apierr.MissingArgument, "user and web_password are obligatory to register")
	}
	if name != "" && !usernamePattern.MatchString(name) {
		return nil, apierr.New(apierr.InvalidArgument, "user: 1 to 32 letters, digits or _.@+-")
	}
	if pw != "" && !keys.IsMD5Hex(pw) {
		return nil, apierr.New(apierr.InvalidArgument, "web_password: want the md5 hex of the password")
	}
	lang := r.Str("language")
	if lang == "" {
		lang = s.Config.DefaultLanguage
	}
	if !languagePattern.MatchString(lang) {
		return nil, apierr.New(apierr.InvalidArgument, "language: up to 16 letters")
	}
	var hash string
	if register {
		var err error
		if hash, err = s.hashPassword(pw); err != nil {
			return nil, err
		}
	}
	return nil, s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		c, err := lockCode(r.ctx, tx, r.Str("code"))
		if err != nil {
			return err
		}
		if c.ActivatedTo != "" {
			return apierr.New(apierr.DataAbort, "the code has been used")
		}
		if c.Target != "" && name != "" && c.Target != name {
			return apierr.New(apierr.DoesNotBelongToYou, "the code is meant for another user")
		}
		if name != "" {
			var taken int
			if err := tx.Get(r.ctx, &taken, `SELECT count(*) FROM users WHERE username = ?`, name); err != nil {
				return err
			}
			if taken > 0 {
				return apierr.New(apierr.CantCreateAccount, "user %q exists", name)
			}
		}
		if !register {
			return nil
		}
		var creator *User
		if c.OwnerID.Valid {
			if creator, err = userByID(r.ctx, tx, c.OwnerID.Int64); err != nil && apierr.Code(err) != apierr.NotExist {
				return err
			}
		}
		level, cur := c.AccessLevel, s.Config.Currency
		var manager any
		if creator != nil {
			level, cur, manager = min(level, creator.AccessLevel), creator.Currency, creator.ID
		}
		now := time.Now().Unix()
		account, err := tx.Insert(r.ctx, `INSERT INTO accounts (owner_id, created_at) VALUES (?, ?)`, manager, now)
		if err != nil {
			return err
		}
		id, err := tx.Insert(r.ctx, `INSERT INTO users (username, password_hash, manager_id, accesslevel, active, account_id,
			currency, language, created_at) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?)`,
			name, hash, manager, level, account, cur, lang, now)
		if errors.Is(err, db.ErrConflict) {
			return apierr.New(apierr.CantCreateAccount, "user %q exists", name)
		} else if err != nil {
			return err
		}
		if _, err := tx.Exec(r.ctx, `UPDATE prepaid_codes SET balance = 0, activated_to = ?, activated_at = ? WHERE code = ?`,
			name, now, c.Code); err != nil {
			return err
		}
		if c.Balance > 0 {
			err = post(r.ctx, tx, account, c.Balance, KindPrepaid, codeRef(c.Code), "prepaid code activated", id)
		}
		return err
	})
}
