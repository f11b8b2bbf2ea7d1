package keys

import (
	"context"
	"database/sql"
	"net/netip"
	"strconv"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
)

// Gate decides who is asking and whether they may: every request passes Admit (the key
// and the address) and then Authorize (the user and the method's level).
type Gate struct {
	Keys      *Keys
	Bans      *Bans
	Users     Users
	Passwords *Passwords
	// CustomIdentities are the extra auth_by methods of the apicustomidentities setting:
	// a key with one of them carries its default_user as a request variable.
	CustomIdentities map[string]bool
	// Directory caches the users the gate finds; nil reads the database every time.
	Directory *Directory
	// Sessions are the browsers' tokens (sessions.go); nil accepts no token.
	Sessions *Sessions
}

// find is Users.Find through the directory cache (a miss is cached too).
func (g *Gate) find(ctx context.Context, q db.Queryer, authBy, login string) (*Principal, error) {
	return g.cached(ctx, "gate.find\x00"+authBy+"\x00"+login, func() (*Principal, error) {
		return g.Users.Find(ctx, q, authBy, login)
	})
}

// byID is Users.ByID through the directory cache.
func (g *Gate) byID(ctx context.Context, q db.Queryer, id int64) (*Principal, error) {
	return g.cached(ctx, "gate.id\x00"+strconv.FormatInt(id, 10), func() (*Principal, error) {
		return g.Users.ByID(ctx, q, id)
	})
}

func (g *Gate) cached(ctx context.Context, key string, load func() (*Principal, error)) (*Principal, error) {
	if g.Directory == nil {
		return load()
	}
	v, err := g.Directory.Remember(key, func() (any, error) {
		p, err := load()
		if db.IsNotFound(err) {
			return (*Principal)(nil), nil
		}
		return p, err
	})
	if err != nil {
		return nil, err
	}
	if p := v.(*Principal); p != nil {
		return p, nil
	}
	return nil, sql.ErrNoRows
}

// Admit checks the address and the key: a banned address gets E_FORBIDDEN; an unknown,
// disabled or revoked key E_UNAUTHORIZED (and counts towards banning the address); an
// address the key does not allow, or plain HTTP with a secure_only key, E_FORBIDDEN.
func (g *Gate) Admit(ctx context.Context, apikey string, remote netip.Addr, overTLS bool) (*Key, error) {
	banned, err := g.Bans.IsBanned(ctx, remote)
	if err != nil {
		return nil, err
	}
	if banned {
		return nil, apierr.New(apierr.Forbidden, "address %s is banned", remote)
	}
	k, err := g.Keys.Lookup(ctx, apikey)
	if err != nil {
		return nil, err
	}
	if k == nil || !k.Usable() {
		if err := g.Bans.BadKey(ctx, remote, apikey); err != nil {
			return nil, err
		}
		return nil, apierr.New(apierr.Unauthorized, "unknown, disabled or revoked API key")
	}
	if !k.source.Allows(remote) {
		return nil, apierr.New(apierr.Forbidden, "this key may not be used from %s", remote)
	}
	if k.SecureOnly == 1 && !overTLS {
		return nil, apierr.New(apierr.Forbidden, "this key may be used over HTTPS only")
	}
	return k, nil
}

// Request is what Authorize needs to know of a call.
type Request struct {
	Method      string
	Level       int  // the method's access level
	AllowLocked bool // callPrepare answers a locked user itself, as a Declined line
	Login       string
	Password    string // md5 hex
	// Token is a session's access token, in place of Login and Password (client keys).
	Token    string
	OnBehalf string // the `username` argument
}

// Caller is who asks, and for whom.
type Caller struct {
	Key   *Key
	Actor *Principal // the authenticated user; nil on an anonymous call
	User  *Principal // the user the call acts on: Actor, or the `username` argument's user
	Level int        // effective access level
	// Identity holds a custom identity's value (apicustomidentities), by its name.
	Identity map[string]string
	// Session is the session whose access token authorized the request; 0 otherwise.
	Session int64
}

// MayCreateKey is DECISIONS §3's rule for API keys, and also decides which keys a caller
// sees and changes (a key it could not create is not its to touch): the master admin
// creates keys of any level; another administrator (33-43) keys up to its own level and
// Asterisk keys (50), which act only on users the key's owner manages (serverUser); nobody
// else creates keys. A request through a server key never reaches above that key's level,
// so an Asterisk key cannot mint an exclusive one.
func (c *Caller) MayCreateKey(level int) bool {
	if c.Actor == nil || level < 0 || level > LevelMaxKey {
		return false
	}
	if c.Key != nil && c.Key.IsServer() && level > c.Key.AccessLevel {
		return false
	}
	switch a := c.Actor.AccessLevel; {
	case a >= LevelMaster:
		return true
	case a >= LevelAdmin:
		return level <= a || level == LevelAsterisk
	}
	return false
}

// Authorize finds the user, applies the method's rules (Permit) and resolves `username`.
func (g *Gate) Authorize(ctx context.Context, k *Key, r Request) (*Caller, error) {
	c := &Caller{Key: k}
	q := g.Keys.DB.Q()
	if g.Directory != nil {
		if err := g.Directory.Check(ctx); err != nil {
			return nil, err
		}
	}
	custom := g.CustomIdentities[k.AuthBy]
	if custom && k.DefaultUser != "" {
		c.Identity = map[string]string{k.AuthBy: k.DefaultUser}
	}
	var err error
	if k.IsServer() {
		c.Level = k.AccessLevel
		c.Actor, err = g.serverUser(ctx, q, k, r, custom)
	} else {
		if r.Token != "" && k.DefaultUser == "" { // the token step: a session stands in for login and password
			c.Actor, c.Session, err = g.tokenUser(ctx, q, k, r.Token)
		} else {
			c.Actor, err = g.clientUser(ctx, q, k, r, custom)
		}
		if c.Actor != nil {
			c.Level = c.Actor.AccessLevel
		}
	}
	if err != nil {
		return nil, err
	}
	if err := Permit(c, r); err != nil {
		return nil, err
	}
	c.User = c.Actor
	if r.OnBehalf != "" && c.Actor != nil && r.OnBehalf != c.Actor.Username {
		u, err := g.find(ctx, q, "username", r.OnBehalf)
		if db.IsNotFound(err) {
			return nil, apierr.New(apierr.NotExist, "no user %q", r.OnBehalf)
		} else if err != nil {
			return nil, err
		}
		ok, err := g.Users.Manages(ctx, q, c.Actor, u)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, apierr.New(apierr.DoesNotBelongToYou, "user %q is not yours", r.OnBehalf)
		}
		c.User = u
	}
	return c, nil
}

// Permit is the one place of the rules a known caller meets before a method runs: the
// key's allowed_methods, an authorized user for methods above level 0, the effective
// access level, and no locked user unless the method answers that itself. Authorize
// applies it to a request from outside; a method called from a script (narayana.call)
// meets it again for the method it calls.
func Permit(c *Caller, r Request) error {
	switch {
	case c.Key != nil && !c.Key.Allows(r.Method):
		return apierr.New(apierr.InsufficientAccess, "this key may not call %s", r.Method)
	case r.Level > 0 && c.Actor == nil:
		return apierr.New(apierr.AuthFailed, "%s needs an authorized user", r.Method)
	case c.Level < r.Level:
		return apierr.New(apierr.InsufficientAccess, "%s needs access level %d", r.Method, r.Level)
	case r.Level > 0 && c.Actor.Locked() && !r.AllowLocked:
		return apierr.New(apierr.UserLocked, "user %s is locked", c.Actor.Username)
	}
	return nil
}

// clientUser: static authorization by default_user, else login and password.
func (g *Gate) clientUser(ctx context.Context, q db.Queryer, k *Key, r Request, custom bool) (*Principal, error) {
	authBy := k.AuthBy
	if k.DefaultUser != "" && !custom {
		u, err := g.find(ctx, q, authBy, k.DefaultUser)
		if db.IsNotFound(err) {
			return nil, apierr.New(apierr.AuthFailed, "the key's default user does not exist")
		}
		return u, err
	}
	if r.Login == "" {
		return nil, nil
	}
	u, err := g.find(ctx, q, authBy, r.Login)
	if db.IsNotFound(err) {
		return nil, apierr.New(apierr.AuthFailed, "wrong login or password")
	} else if err != nil {
		return nil, err
	}
	if !g.Passwords.Verify(u.ID, u.PasswordHash, r.Password) {
		return nil, apierr.New(apierr.AuthFailed, "wrong login or password")
	}
	return u, nil
}

// serverUser: no password; login names the user, who must be managed by the key's owner
// unless the key has exclusive rights. Without login the key's default user, else its
// owner, acts.
func (g *Gate) serverUser(ctx context.Context, q db.Queryer, k *Key, r Request, custom bool) (*Principal, error) {
	login := r.Login
	if login == "" && !custom {
		login = k.DefaultUser
	}
	if login == "" {
		if !k.OwnerID.Valid {
			return nil, nil
		}
		u, err := g.byID(ctx, q, k.OwnerID.Int64)
		if db.IsNotFound(err) {
			return nil, nil
		}
		return u, err
	}
	u, err := g.find(ctx, q, k.AuthBy, login)
	if db.IsNotFound(err) {
		return nil, apierr.New(apierr.AuthFailed, "no user %q", login)
	} else if err != nil {
		return nil, err
	}
	if k.AccessLevel >= LevelExclusive {
		return u, nil
	}
	var owner *Principal
	if k.OwnerID.Valid {
		if owner, err = g.byID(ctx, q, k.OwnerID.Int64); err != nil && !db.IsNotFound(err) {
			return nil, err
		}
	}
	ok, err := g.Users.Manages(ctx, q, owner, u)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, apierr.New(apierr.DoesNotBelongToYou, "user %q does not belong to this key's owner", login)
	}
	return u, nil
}
