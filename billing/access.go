package billing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
)

// accessMethods declares the methods whose handlers are in this file: the reference's "Data
// security", "API access".
func (s *Service) accessMethods() []Method {
	return []Method{
		// Data security
		method("getBans", 22, s.getBans).
			Doc("list the bans", "the bans"),
		method("banIP", 33, s.banIP, "source:string!", "target:string!", "reason:string").
			Doc("ban an IP address", "true"),
		method("unbanIP", 33, s.unbanIP, "id:int!").
			Doc("lift a ban", "true"),
		method("updateBanPermanent", 33, s.updateBanPermanent, "id:int!", "state:bool!").
			Doc("make a ban permanent or temporary", "true"),
		// API access
		method("getKey", 33, s.getKey, "name:string!").
			Doc("get an API key's data", "the key's data"),
		method("getKeys", 33, s.getKeys).
			Doc("list the API keys", "the keys"),
		method("addKey", 33, s.addKey, "name:string!", "auth_by:string=username", "source:string=*",
			"apikey:string", "accessLevel:int=0", "default_user:string", "allowed_methods:string",
			"secure_only:int=0").
			Doc("add an API key", "true"),
		method("updateKey", 33, s.updateKey, "name:string!", "auth_by:string", "source:string",
			"apikey:string", "accesslevel:int", "accessLevel:int", "default_user:string",
			"default user:string", "allowed_methods:string", "secure_only:int", "enabled:int").
			Doc("update an API key", "true"),
		method("revokeKey", 33, s.revokeKey, "name:string!").
			Doc("revoke an API key", "true"),
	}
}

// keyView is an API key as getKey and getKeys show it.
func keyView(k *keys.Key) map[string]any {
	return map[string]any{
		"name": k.Name, "key": k.APIKey, "auth_by": k.AuthBy, "source": k.Source, "accessLevel": k.AccessLevel,
		"default_user": k.DefaultUser, "allowed_methods": k.AllowedMethods, "secure_only": k.SecureOnly,
		"enabled": k.Enabled, "revoked": k.Revoked, "dnsname": k.DNSName, "maintenance": formatTime(k.Maintenance, 0),
	}
}

// ownsKey: a key belongs to the actor when the actor could create a key of its level
// (Caller.MayCreateKey) and manages its owner; the master admin's keys, `web` among them,
// are the master admin's.
func (s *Service) ownsKey(r *Request, k *keys.Key) (bool, error) {
	if !r.Caller.MayCreateKey(k.AccessLevel) {
		return false, nil
	}
	if r.Caller.Actor.AccessLevel >= keys.LevelMaster {
		return true, nil
	}
	if !k.OwnerID.Valid {
		return false, nil
	}
	u, err := userByID(r.ctx, s.DB.Q(), k.OwnerID.Int64)
	if err != nil {
		return false, nil
	}
	return r.Manages(u)
}

func (s *Service) ownedKey(r *Request) (*keys.Key, error) {
	k, err := s.Gate.Keys.ByName(r.ctx, s.DB.Q(), r.Str("name"))
	if db.IsNotFound(err) {
		return nil, apierr.New(apierr.NotExist, "no key %q", r.Str("name"))
	} else if err != nil {
		return nil, err
	}
	ok, err := s.ownsKey(r, k)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, apierr.New(apierr.DoesNotBelongToYou, "key %q is not yours", r.Str("name"))
	}
	return k, nil
}

// getKey gets an API key's data.
func (s *Service) getKey(r *Request) (any, error) {
	k, err := s.ownedKey(r)
	if err != nil {
		return nil, err
	}
	return keyView(k), nil
}

// getKeys lists the API keys.
func (s *Service) getKeys(r *Request) (any, error) {
	all, err := s.Gate.Keys.List(r.ctx)
	if err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for i := range all {
		ok, err := s.ownsKey(r, &all[i])
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, keyView(&all[i]))
		}
	}
	return out, nil
}

// KeySpec is an API key to create. addKey, `narayanad key add`, `narayanad init` and the
// demo all create keys through CreateKey; who may create which level is the API's
// business (Caller.MayCreateKey), the command line being the operator's own.
type KeySpec struct {
	Name           string
	APIKey         string // empty: a random 32-hex secret
	AuthBy         string // empty: username
	Source         string // empty: * (any address)
	Level          int
	DefaultUser    string
	AllowedMethods string // checked against the method table by addKey
	SecureOnly     bool
	Owner          string // the owner's username; empty: the master admin
}

// check validates a spec, with identities the custom auth_by methods allowed besides
// the built-in ones, and fills in the defaults.
func (k *KeySpec) check(identities map[string]bool) error {
	if k.Name = strings.TrimSpace(k.Name); k.Name == "" {
		return apierr.New(apierr.MissingArgument, "name: a key needs a name")
	}
	if k.AuthBy == "" {
		k.AuthBy = "username"
	}
	if k.Source == "" {
		k.Source = "*"
	}
	if k.APIKey == "" {
		buf := make([]byte, 16)
		rand.Read(buf)
		k.APIKey = hex.EncodeToString(buf)
	}
	for _, err := range []error{checkAuthBy(k.AuthBy, identities), checkSource(k.Source), checkKeyLevel("accessLevel", k.Level), checkSecret(k.APIKey)} {
		if err != nil {
			return err
		}
	}
	return nil
}

func checkAuthBy(a string, identities map[string]bool) error {
	if a != "username" && a != "sip_extension" && a != "id" && !identities[a] {
		return apierr.New(apierr.InvalidArgument, "auth_by: username, sip_extension, id or a configured custom identity, not %q", a)
	}
	return nil
}

func checkSource(src string) error {
	if _, err := keys.ParseSource(src); err != nil {
		return apierr.New(apierr.InvalidArgument, "source: %v", err)
	}
	return nil
}

func checkKeyLevel(name string, l int) error {
	if l < 0 || l > keys.LevelMaxKey {
		return apierr.New(apierr.InvalidArgument, "%s: 0 to %d, not %d", name, keys.LevelMaxKey, l)
	}
	return nil
}

func checkSecret(k string) error {
	if len(k) < 8 || len(k) > 128 || strings.ContainsAny(k, "/?#% \t\r\n") {
		return apierr.New(apierr.InvalidArgument, "apikey: 8 to 128 characters, no /, ?, #, %% or spaces")
	}
	return nil
}

// CreateKey validates spec (identities: the custom auth_by methods allowed besides the
// built-in ones) and stores the key; it answers the key's secret. q may be a transaction.
// A gate sharing the database sees the new key at once if it is told (Keys.Invalidate),
// else within its cache's TTL.
func CreateKey(ctx context.Context, q db.Queryer, spec KeySpec, identities map[string]bool) (string, error) {
	if err := spec.check(identities); err != nil {
		return "", err
	}
	var owner int64
	var err error
	if spec.Owner == "" {
		err = q.Get(ctx, &owner, `SELECT id FROM users WHERE accesslevel = ? ORDER BY id LIMIT 1`, keys.LevelMaster)
	} else {
		err = q.Get(ctx, &owner, `SELECT id FROM users WHERE username = ?`, spec.Owner)
	}
	if db.IsNotFound(err) {
		return "", apierr.New(apierr.NotExist, "no user %q to own the key", spec.Owner)
	} else if err != nil {
		return "", err
	}
	secure := 0
	if spec.SecureOnly {
		secure = 1
	}
	_, err = q.Exec(ctx, `INSERT INTO api_keys (name, apikey, auth_by, source, access_level, default_user, allowed_methods,
		secure_only, enabled, owner_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
		spec.Name, spec.APIKey, spec.AuthBy, spec.Source, spec.Level, spec.DefaultUser, spec.AllowedMethods,
		secure, owner, time.Now().Unix())
	if errors.Is(err, db.ErrConflict) {
		return "", apierr.New(apierr.DataAbort, "a key with this name or secret exists")
	} else if err != nil {
		return "", err
	}
	return spec.APIKey, nil
}

// mayCreateKey refuses a level the caller may not create (DECISIONS §3).
func mayCreateKey(r *Request, level int) error {
	if !r.Caller.MayCreateKey(level) {
		return apierr.New(apierr.InsufficientAccess, "you may not create or change keys of access level %d", level)
	}
	return nil
}

// allowedMethods checks a comma list of method names against the table.
func (s *Service) allowedMethods(list string) (string, error) {
	var names []string
	for _, m := range strings.Split(list, ",") {
		if m = strings.TrimSpace(m); m == "" {
			continue
		}
		if s.method(m) == nil {
			return "", apierr.New(apierr.InvalidArgument, "allowed_methods: no method %q", m)
		}
		names = append(names, m)
	}
	return strings.Join(names, ","), nil
}

func zeroOrOne(r *Request, name string) error {
	if v := r.Int(name); v != 0 && v != 1 {
		return apierr.New(apierr.InvalidArgument, "%s: 0 or 1", name)
	}
	return nil
}

// addKey adds an API key.
func (s *Service) addKey(r *Request) (any, error) {
	if err := zeroOrOne(r, "secure_only"); err != nil {
		return nil, err
	}
	methods, err := s.allowedMethods(r.Str("allowed_methods"))
	if err != nil {
		return nil, err
	}
	spec := KeySpec{Name: r.Str("name"), APIKey: r.Str("apikey"), AuthBy: r.Str("auth_by"), Source: r.Str("source"),
		Level: int(r.Int("accessLevel")), DefaultUser: r.Str("default_user"), AllowedMethods: methods,
		SecureOnly: r.Int("secure_only") == 1, Owner: r.Caller.User.Username}
	if err := spec.check(s.Gate.CustomIdentities); err != nil {
		return nil, err
	}
	if err := mayCreateKey(r, spec.Level); err != nil {
		return nil, err
	}
	_, err = CreateKey(r.ctx, s.DB.Q(), spec, s.Gate.CustomIdentities)
	s.Gate.Keys.Invalidate()
	return nil, err
}

// keyFields validates updateKey's arguments into column values.
func (s *Service) keyFields(r *Request) (map[string]any, error) {
	f := map[string]any{}
	if r.Has("auth_by") {
		if err := checkAuthBy(r.Str("auth_by"), s.Gate.CustomIdentities); err != nil {
			return nil, err
		}
		f["auth_by"] = r.Str("auth_by")
	}
	if r.Has("source") {
		if err := checkSource(r.Str("source")); err != nil {
			return nil, err
		}
		f["source"] = r.Str("source")
	}
	for _, name := range []string{"accessLevel", "accesslevel"} {
		if r.Has(name) {
			l := int(r.Int(name))
			if err := checkKeyLevel(name, l); err != nil {
				return nil, err
			}
			if err := mayCreateKey(r, l); err != nil {
				return nil, err
			}
			f["access_level"] = l
		}
	}
	if r.Has("allowed_methods") {
		methods, err := s.allowedMethods(r.Str("allowed_methods"))
		if err != nil {
			return nil, err
		}
		f["allowed_methods"] = methods
	}
	for _, name := range []string{"secure_only", "enabled"} {
		if r.Has(name) {
			if err := zeroOrOne(r, name); err != nil {
				return nil, err
			}
			f[name] = r.Int(name)
		}
	}
	for _, name := range []string{"default_user", "default user"} {
		if r.Has(name) {
			f["default_user"] = r.Str(name)
		}
	}
	if r.Has("apikey") {
		if err := checkSecret(r.Str("apikey")); err != nil {
			return nil, err
		}
		f["apikey"] = r.Str("apikey")
	}
	return f, nil
}

// updateKey updates an API key.
func (s *Service) updateKey(r *Request) (any, error) {
	k, err := s.ownedKey(r)
	if err != nil {
		return nil, err
	}
	f, err := s.keyFields(r)
	if err != nil {
		return nil, err
	}
	if len(f) == 0 {
		return nil, apierr.New(apierr.MissingArgument, "nothing to update")
	}
	sets, vals := []string{}, []any{}
	for c, v := range f {
		sets, vals = append(sets, c+" = ?"), append(vals, v)
	}
	_, err = s.DB.Q().Exec(r.ctx, `UPDATE api_keys SET `+strings.Join(sets, ", ")+` WHERE id = ?`, append(vals, k.ID)...)
	if errors.Is(err, db.ErrConflict) {
		return nil, apierr.New(apierr.DataAbort, "a key with this secret exists")
	}
	s.Gate.Keys.Invalidate()
	return nil, err
}

// revokeKey revokes an API key.
func (s *Service) revokeKey(r *Request) (any, error) {
	k, err := s.ownedKey(r)
	if err != nil {
		return nil, err
	}
	return nil, s.Gate.Keys.Revoke(r.ctx, k.ID)
}

// getBans lists the bans.
func (s *Service) getBans(r *Request) (any, error) {
	actor, err := r.Actor()
	if err != nil {
		return nil, err
	}
	rows, err := s.Gate.Bans.List(r.ctx)
	if err != nil {
		return nil, err
	}
	out := make([]map[string]any, len(rows))
	for i, b := range rows {
		out[i] = map[string]any{"id": b.ID, "source": b.Source, "target": b.Target, "reason": b.Reason,
			"permanent": b.Permanent, "date": formatTime(b.CreatedAt, 0), "clientdate": formatTime(b.CreatedAt, actor.Timezone)}
	}
	return out, nil
}

// banIP bans an IP address.
func (s *Service) banIP(r *Request) (any, error) {
	target, err := netip.ParseAddr(r.Str("target"))
	if err != nil {
		return nil, apierr.New(apierr.InvalidArgument, "target: %q is not an IP address", r.Str("target"))
	}
	target = target.Unmap()
	source := r.Str("source")
	if source != keys.Whitelist {
		white, err := s.Gate.Bans.IsWhitelisted(r.ctx, target)
		if err != nil {
			return nil, err
		}
		if white {
			return nil, apierr.New(apierr.TargetWhitelisted, "%s is whitelisted", target)
		}
	}
	return nil, s.Gate.Bans.Add(r.ctx, source, target, r.Str("reason"))
}

// unbanIP lifts a ban.
func (s *Service) unbanIP(r *Request) (any, error) {
	found, err := s.Gate.Bans.Remove(r.ctx, r.Int("id"))
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, apierr.New(apierr.NotExist, "no ban %d", r.Int("id"))
	}
	return nil, nil
}

// updateBanPermanent makes a ban permanent or temporary.
func (s *Service) updateBanPermanent(r *Request) (any, error) {
	state := 0
	if r.Bool("state") {
		state = 1
	}
	res, err := s.DB.Q().Exec(r.ctx, `UPDATE bans SET permanent = ? WHERE id = ?`, state, r.Int("id"))
	if err != nil {
		return nil, err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, apierr.New(apierr.NotExist, "no ban %d", r.Int("id"))
	}
	return nil, nil
}
