package billing

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/narayana/narayanad/billing/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
)

// keyView is an API key as getKey and getKeys show it.
func keyView(k *keys.Key) map[string]any {
	return map[string]any{
		"name": k.Name, "key": k.APIKey, "auth_by": k.AuthBy, "source": k.Source, "accessLevel": k.AccessLevel,
		"default_user": k.DefaultUser, "allowed_methods": k.AllowedMethods, "secure_only": k.SecureOnly,
		"enabled": k.Enabled, "revoked": k.Revoked, "dnsname": k.DNSName, "maintenance": formatTime(k.Maintenance, 0),
	}
}

// ownsKey: a key belongs to the actor when the actor manages its owner; keys without an
// owner (made by `narayanad init`) belong to the master admin.
func (s *Service) ownsKey(r *Request, k *keys.Key) (bool, error) {
	if r.Caller.Actor.AccessLevel >= keys.LevelMaster {
		return true, nil
	}
	if !k.OwnerID.Valid || k.AccessLevel > r.Caller.Level {
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

func (s *Service) getKey(r *Request) (any, error) {
	k, err := s.ownedKey(r)
	if err != nil {
		return nil, err
	}
	return keyView(k), nil
}

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

// keyFields validates addKey's and updateKey's arguments into column values.
func (s *Service) keyFields(r *Request) (map[string]any, error) {
	f := map[string]any{}
	if r.Has("auth_by") {
		a := r.Str("auth_by")
		if a != "username" && a != "sip_extension" && a != "id" && !s.Gate.CustomIdentities[a] {
			return nil, apierr.New(apierr.InvalidArgument, "auth_by: username, sip_extension, id or a configured custom identity")
		}
		f["auth_by"] = a
	}
	if r.Has("source") {
		if _, err := keys.ParseSource(r.Str("source")); err != nil {
			return nil, apierr.New(apierr.InvalidArgument, "%v", err)
		}
		f["source"] = r.Str("source")
	}
	for _, name := range []string{"accessLevel", "accesslevel"} {
		if r.Has(name) {
			l := r.Int(name)
			if l < 0 || l > 99 {
				return nil, apierr.New(apierr.InvalidArgument, "%s: 0 to 99", name)
			}
			owner, err := r.User()
			if err != nil {
				return nil, err
			}
			if l > int64(r.Caller.Level) || l > int64(owner.AccessLevel) {
				return nil, apierr.New(apierr.InsufficientAccess, "nobody creates a key above their own access level")
			}
			f["access_level"] = l
		}
	}
	if r.Has("allowed_methods") {
		var names []string
		for _, m := range strings.Split(r.Str("allowed_methods"), ",") {
			if m = strings.TrimSpace(m); m == "" {
				continue
			}
			if s.method(m) == nil {
				return nil, apierr.New(apierr.InvalidArgument, "allowed_methods: no method %q", m)
			}
			names = append(names, m)
		}
		f["allowed_methods"] = strings.Join(names, ",")
	}
	for _, name := range []string{"secure_only", "enabled"} {
		if r.Has(name) {
			if v := r.Int(name); v != 0 && v != 1 {
				return nil, apierr.New(apierr.InvalidArgument, "%s: 0 or 1", name)
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
		k := r.Str("apikey")
		if len(k) < 8 || len(k) > 128 || strings.ContainsAny(k, "/?#% \t\r\n") {
			return nil, apierr.New(apierr.InvalidArgument, "apikey: 8 to 128 characters, no /, ?, #, %% or spaces")
		}
		f["apikey"] = k
	}
	return f, nil
}

func (s *Service) addKey(r *Request) (any, error) {
	f, err := s.keyFields(r)
	if err != nil {
		return nil, err
	}
	if _, ok := f["apikey"]; !ok {
		buf := make([]byte, 16)
		rand.Read(buf)
		f["apikey"] = hex.EncodeToString(buf)
	}
	f["name"] = r.Str("name")
	f["owner_id"] = r.Caller.User.ID
	f["created_at"] = time.Now().Unix()
	cols, marks, vals := []string{}, []string{}, []any{}
	for c, v := range f {
		cols, marks, vals = append(cols, c), append(marks, "?"), append(vals, v)
	}
	_, err = s.DB.Q().Exec(r.ctx, `INSERT INTO api_keys (`+strings.Join(cols, ", ")+`) VALUES (`+strings.Join(marks, ", ")+`)`, vals...)
	if errors.Is(err, db.ErrConflict) {
		return nil, apierr.New(apierr.DataAbort, "a key with this name or secret exists")
	}
	s.Gate.Keys.Invalidate()
	return nil, err
}

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

func (s *Service) revokeKey(r *Request) (any, error) {
	k, err := s.ownedKey(r)
	if err != nil {
		return nil, err
	}
	_, err = s.DB.Q().Exec(r.ctx, `UPDATE api_keys SET revoked = 1, enabled = 0 WHERE id = ?`, k.ID)
	s.Gate.Keys.Invalidate()
	return nil, err
}

func (s *Service) getBans(r *Request) (any, error) {
	actor, err := r.Actor()
	if err != nil {
		return nil, err
	}
	var rows []keys.Ban
	if err := s.DB.Q().Select(r.ctx, &rows, `SELECT id, source, target, reason, permanent, created_at FROM bans ORDER BY id`); err != nil {
		return nil, err
	}
	out := make([]map[string]any, len(rows))
	for i, b := range rows {
		out[i] = map[string]any{"id": b.ID, "source": b.Source, "target": b.Target, "reason": b.Reason,
			"permanent": b.Permanent, "date": formatTime(b.CreatedAt, 0), "clientdate": formatTime(b.CreatedAt, actor.Timezone)}
	}
	return out, nil
}

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
	_, err = s.DB.Q().Exec(r.ctx, `INSERT INTO bans (source, target, reason, permanent, created_at) VALUES (?, ?, ?, 0, ?)`,
		source, target.String(), r.Str("reason"), time.Now().Unix())
	s.Gate.Bans.Invalidate()
	return nil, err
}

func (s *Service) unbanIP(r *Request) (any, error) {
	res, err := s.DB.Q().Exec(r.ctx, `DELETE FROM bans WHERE id = ?`, r.Int("id"))
	if err != nil {
		return nil, err
	}
	s.Gate.Bans.Invalidate()
	if n, _ := res.RowsAffected(); n == 0 {
		return nil, apierr.New(apierr.NotExist, "no ban %d", r.Int("id"))
	}
	return nil, nil
}

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
