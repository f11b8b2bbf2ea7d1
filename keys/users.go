package keys

import (
	"context"
	"database/sql"
	"strconv"

	"github.com/narayana/narayanad/db"
)

// Access levels the gate and the ownership rule know by number. Levels 50, 90 and 95
// exist only as key levels (DECISIONS §3).
const (
	LevelManager     = 22 // corporate manager: a reseller of its own users
	LevelAdmin       = 33 // system administrator: manages users of lower levels
	LevelMaster      = 44 // master system administrator: manages everyone
	LevelAsterisk    = 50 // an Asterisk's server key: the call path
	LevelExclusive   = 90 // server keys from here on act on any user
	LevelGateway     = 95 // a message gateway's server key
	LevelMaxKey      = 99 // the highest key level
	LockedUserActive = -1
)

// Principal is what the gate knows of a user: identity, rights and credentials.
type Principal struct {
	ID           int64         `db:"id"`
	Username     string        `db:"username"`
	AccessLevel  int           `db:"accesslevel"`
	Active       int           `db:"active"`
	ManagerID    sql.NullInt64 `db:"manager_id"`
	PasswordHash string        `db:"password_hash"`
}

// Locked reports a user with active = -1.
func (p *Principal) Locked() bool { return p.Active == LockedUserActive }

const principalColumns = `u.id, u.username, u.accesslevel, u.active, u.manager_id, u.password_hash`

// Users finds principals and answers who manages whom.
type Users struct{ DB *db.DB }

// ByID returns the user with id; sql.ErrNoRows when there is none.
func (us Users) ByID(ctx context.Context, q db.Queryer, id int64) (*Principal, error) {
	var p Principal
	err := q.Get(ctx, &p, `SELECT `+principalColumns+` FROM users u WHERE u.id = ?`, id)
	return &p, err
}

// Find returns the user that login names through the key's auth_by: `username`,
// `sip_extension`, or `id` (the reference: "authorization by user's caller ID", so the
// caller ID of one of the user's extensions, falling back to the numeric user id).
// Any other method (a custom identity) matches the username. sql.ErrNoRows when none.
func (us Users) Find(ctx context.Context, q db.Queryer, authBy, login string) (*Principal, error) {
	var p Principal
	var err error
	switch authBy {
	case "sip_extension":
		err = q.Get(ctx, &p, `SELECT `+principalColumns+` FROM users u JOIN extensions e ON e.user_id = u.id WHERE e.extension = ?`, login)
	case "id":
		err = q.Get(ctx, &p, `SELECT `+principalColumns+` FROM users u JOIN extensions e ON e.user_id = u.id
			WHERE e.callerid = ? ORDER BY e.id LIMIT 1`, login)
		if db.IsNotFound(err) {
			if id, perr := strconv.ParseInt(login, 10, 64); perr == nil {
				return us.ByID(ctx, q, id)
			}
		}
	default:
		err = q.Get(ctx, &p, `SELECT `+principalColumns+` FROM users u WHERE u.username = ?`, login)
	}
	return &p, err
}

// Manages is the one ownership rule (DECISIONS §3): a manages u when a is u, or a is on
// u's chain of managers, or a is the master admin, or a's level is 33 or more and higher
// than u's.
func (us Users) Manages(ctx context.Context, q db.Queryer, a, u *Principal) (bool, error) {
	if a == nil || u == nil {
		return false, nil
	}
	if a.ID == u.ID || a.AccessLevel >= LevelMaster ||
		(a.AccessLevel >= LevelAdmin && a.AccessLevel > u.AccessLevel) {
		return true, nil
	}
	next := u.ManagerID
	for hops := 0; next.Valid && hops < 64; hops++ { // the bound guards against a cycle
		if next.Int64 == a.ID {
			return true, nil
		}
		var m sql.NullInt64
		if err := q.Get(ctx, &m, `SELECT manager_id FROM users WHERE id = ?`, next.Int64); err != nil {
			if db.IsNotFound(err) {
				return false, nil
			}
			return false, err
		}
		next = m
	}
	return false, nil
}
