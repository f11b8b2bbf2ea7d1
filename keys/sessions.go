package keys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
)

// Sessions are the tokens a browser holds instead of a password (the login method): a
// short-lived access token that the gate accepts in place of login and password, and a
// refresh token that buys a new pair. Only their sha256 is stored, so a copy of the
// database opens no session.
type Sessions struct {
	DB  *db.DB
	Now func() time.Time // time.Now unless a test moves it
}

// Tokens is what login and refreshToken answer.
type Tokens struct {
	SessionID      int64  `json:"session_id"`
	AccessToken    string `json:"access_token"`
	RefreshToken   string `json:"refresh_token"`
	ExpiresIn      int64  `json:"expires_in"`         // seconds the access token lives
	RefreshExpires int64  `json:"refresh_expires_in"` // seconds the refresh token lives
}

func (s *Sessions) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// newToken is 32 random bytes in hex, and the sha256 hex that is stored.
func newToken() (token, hash string) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("keys: no randomness: " + err.Error()) // crypto/rand does not fail on Linux
	}
	token = hex.EncodeToString(b[:])
	return token, tokenHash(token)
}

func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// stamp digests what must not change under a session: the password hash and the status.
// A password change, a lock (or any change of status) makes the stamp differ, which ends
// every session the user had, whoever made the change and however.
func stamp(u *Principal) string {
	sum := sha256.Sum256([]byte(u.PasswordHash + "\x00" + strconv.Itoa(u.Active)))
	return hex.EncodeToString(sum[:16])
}

// Open starts a session for u through client key k, and forgets u's expired ones.
func (s *Sessions) Open(ctx context.Context, u *Principal, k *Key, accessTTL, refreshTTL time.Duration) (*Tokens, error) {
	now := s.now()
	q := s.DB.Q()
	if _, err := q.Exec(ctx, `DELETE FROM sessions WHERE user_id = ? AND refresh_expires <= ?`, u.ID, now.Unix()); err != nil {
		return nil, err
	}
	access, ah := newToken()
	refresh, rh := newToken()
	id, err := q.Insert(ctx, `INSERT INTO sessions (user_id, key_id, access_hash, refresh_hash, access_expires,
		refresh_expires, stamp, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		u.ID, k.ID, ah, rh, now.Add(accessTTL).Unix(), now.Add(refreshTTL).Unix(), stamp(u), now.Unix())
	if err != nil {
		return nil, err
	}
	return &Tokens{SessionID: id, AccessToken: access, RefreshToken: refresh,
		ExpiresIn: int64(accessTTL / time.Second), RefreshExpires: int64(refreshTTL / time.Second)}, nil
}

type sessionRow struct {
	ID             int64  `db:"id"`
	UserID         int64  `db:"user_id"`
	KeyID          int64  `db:"key_id"`
	AccessExpires  int64  `db:"access_expires"`
	RefreshExpires int64  `db:"refresh_expires"`
	Stamp          string `db:"stamp"`
}

const sessionColumns = `id, user_id, key_id, access_expires, refresh_expires, stamp`

var errSession = apierr.New(apierr.AuthFailed, "the session has ended or the token is not valid: log in again")

// find reads the session whose column (access_hash or refresh_hash) holds token's hash,
// opened through key k, and checks that its user still has the stamp it opened with.
func (g *Gate) findSession(ctx context.Context, q db.Queryer, k *Key, column, token string) (*sessionRow, *Principal, error) {
	var row sessionRow
	err := q.Get(ctx, &row, `SELECT `+sessionColumns+` FROM sessions WHERE `+column+` = ?`, tokenHash(token))
	if db.IsNotFound(err) || err == nil && row.KeyID != k.ID {
		return nil, nil, errSession
	} else if err != nil {
		return nil, nil, err
	}
	u, err := g.byID(ctx, q, row.UserID)
	if db.IsNotFound(err) {
		return nil, nil, errSession
	} else if err != nil {
		return nil, nil, err
	}
	if stamp(u) != row.Stamp {
		if _, err := q.Exec(ctx, `DELETE FROM sessions WHERE id = ?`, row.ID); err != nil {
			return nil, nil, err
		}
		return nil, nil, errSession
	}
	return &row, u, nil
}

// tokenUser is the gate's token step: the user whose live access token this is.
func (g *Gate) tokenUser(ctx context.Context, q db.Queryer, k *Key, token string) (*Principal, int64, error) {
	if g.Sessions == nil {
		return nil, 0, errSession
	}
	row, u, err := g.findSession(ctx, q, k, "access_hash", token)
	if err != nil {
		return nil, 0, err
	}
	if g.Sessions.now().Unix() >= row.AccessExpires {
		return nil, 0, apierr.New(apierr.AuthFailed, "the access token has expired: refresh it")
	}
	return u, row.ID, nil
}

// Refresh trades a live refresh token for a new pair (both old tokens stop working): the
// session lives on as long as it is refreshed within refreshTTL and its user's stamp holds.
func (g *Gate) Refresh(ctx context.Context, k *Key, refresh string, accessTTL, refreshTTL time.Duration) (*Tokens, *Principal, error) {
	if g.Sessions == nil || k.IsServer() {
		return nil, nil, errSession
	}
	q := g.Keys.DB.Q()
	row, u, err := g.findSession(ctx, q, k, "refresh_hash", refresh)
	if err != nil {
		return nil, nil, err
	}
	now := g.Sessions.now()
	if now.Unix() >= row.RefreshExpires || u.Locked() {
		return nil, nil, errSession
	}
	access, ah := newToken()
	next, rh := newToken()
	res, err := q.Exec(ctx, `UPDATE sessions SET access_hash = ?, refresh_hash = ?, access_expires = ?, refresh_expires = ?
		WHERE id = ? AND refresh_hash = ?`, ah, rh, now.Add(accessTTL).Unix(), now.Add(refreshTTL).Unix(), row.ID, tokenHash(refresh))
	if err != nil {
		return nil, nil, err
	}
	if n, _ := res.RowsAffected(); n != 1 { // refreshed by a concurrent request: one wins
		return nil, nil, errSession
	}
	return &Tokens{SessionID: row.ID, AccessToken: access, RefreshToken: next,
		ExpiresIn: int64(accessTTL / time.Second), RefreshExpires: int64(refreshTTL / time.Second)}, u, nil
}

// Close ends one session of user userID.
func (s *Sessions) Close(ctx context.Context, userID, id int64) error {
	_, err := s.DB.Q().Exec(ctx, `DELETE FROM sessions WHERE id = ? AND user_id = ?`, id, userID)
	return err
}

// CloseAll ends every session of user userID.
func (s *Sessions) CloseAll(ctx context.Context, userID int64) error {
	_, err := s.DB.Q().Exec(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID)
	return err
}
