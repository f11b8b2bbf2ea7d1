package billing

import (
	"context"
	"database/sql"
	"regexp"
	"strconv"
	"strings"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
)

// aliasMethods declares the methods whose handlers are in this file: the reference's "Personal
// plan sets (aliases)".
func (s *Service) aliasMethods() []Method {
	return []Method{
		method("getAliases", 1, s.getAliases, "all:bool=false").
			Doc("list the aliases (personal plan sets)", "the aliases"),
		method("getAlias", 1, s.getAlias, "id:int!").
			Doc("get an alias's data", "the alias's data"),
		method("addAlias", 1, s.addAlias, "alias:string!", "destination:string!", "sip_extension:string",
			"global:bool=false").
			Doc("add an alias", "true"),
		method("updateAlias", 1, s.updateAlias, "id:int", "alias:string", "destination:string",
			"sip_extension:string", "global:bool").
			Doc("update an alias", "true"),
		method("deleteAlias", 1, s.deleteAlias, "id:int!").
			Doc("delete an alias", "true"),
	}
}

// Personal plan sets (aliases): short numbers a user dials instead of a destination.
//
// Choices where the reference is vague:
//   - An alias belongs to a user (its owner). With sip_extension it applies to that SIP
//     account only (the owner is then the SIP account's owner, a user the caller manages);
//     without it, to all the owner's SIP accounts.
//   - A global alias applies to the owner and to every user the owner manages (a
//     reseller's company-wide short number). Those users see it with getAliases(all) and
//     getAlias, but only the owner's managers change or delete it.
//   - getAliases without all lists the user's own aliases; with all, also those of the
//     users they manage and the global aliases of their managers.
//   - An alias name is unique per owner and SIP account (E_DATA_ABORT for a second one).
//   - updateAlias finds the alias by id, or (the reference's example) by the user's own
//     alias name when id is absent; with id, alias renames it.

var aliasPattern = regexp.MustCompile(`^[0-9A-Za-z*#+_.-]{1,32}$`)
var aliasDestPattern = regexp.MustCompile(`^[0-9A-Za-z*#+_.@:-]{1,64}$`)

// Alias is an aliases row with its owner's name.
type Alias struct {
	ID          int64         `db:"id"`
	OwnerID     int64         `db:"owner_id"`
	Owner       string        `db:"owner"`
	OwnerLevel  int           `db:"owner_level"`
	OwnerMgr    sql.NullInt64 `db:"owner_manager"`
	Alias       string        `db:"alias"`
	Destination string        `db:"destination"`
	Extension   string        `db:"extension"`
	Global      int           `db:"global"`
}

const aliasSelect = `SELECT a.id, a.owner_id, u.username AS owner, u.accesslevel AS owner_level,
	u.manager_id AS owner_manager, a.alias, a.destination, a.extension, a.global
	FROM aliases a JOIN users u ON u.id = a.owner_id`

func (a *Alias) view() map[string]any {
	return map[string]any{"id": a.ID, "owner": a.Owner, "alias": a.Alias, "destination": a.Destination,
		"sip_extension": a.Extension, "global": a.Global}
}

// managerChain lists the managers above u, nearest first.
func managerChain(ctx context.Context, q db.Queryer, u *User) ([]int64, error) {
	var out []int64
	next := u.ManagerID
	for hops := 0; next.Valid && hops < 64; hops++ { // the bound guards against a cycle
		out = append(out, next.Int64)
		var m sql.NullInt64
		if err := q.Get(ctx, &m, `SELECT manager_id FROM users WHERE id = ?`, next.Int64); err != nil {
			if db.IsNotFound(err) {
				break
			}
			return nil, err
		}
		next = m
	}
	return out, nil
}

// inList renders n placeholders for an IN (...) list; n must be > 0.
func inList(n int) string { return strings.TrimSuffix(strings.Repeat("?,", n), ",") }

func int64Args(ids []int64) []any {
	out := make([]any, len(ids))
	for i, id := range ids {
		out[i] = id
	}
	return out
}

// getAliases lists the aliases (personal plan sets).
func (s *Service) getAliases(r *Request) (any, error) {
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	q := s.DB.Q()
	who, args := usersOf(u, r.Bool("all"))
	where := `a.owner_id IN (` + who + `)`
	if r.Bool("all") {
		chain, err := managerChain(r.ctx, q, u)
		if err != nil {
			return nil, err
		}
		if len(chain) > 0 {
			where = `(` + where + ` OR (a.global = 1 AND a.owner_id IN (` + inList(len(chain)) + `)))`
			args = append(args, int64Args(chain)...)
		}
	}
	var rows []Alias
	if err := q.Select(r.ctx, &rows, aliasSelect+` WHERE `+where+` ORDER BY a.id`, args...); err != nil {
		return nil, err
	}
	out := make([]map[string]any, len(rows))
	for i := range rows {
		out[i] = rows[i].view()
	}
	return out, nil
}

// alias loads an alias the caller may see (write: may change): its owner is managed by
// the caller, or (reading only) it is a global alias of one of the user's managers.
func (s *Service) alias(r *Request, id int64, write bool) (*Alias, error) {
	var a Alias
	err := s.DB.Q().Get(r.ctx, &a, aliasSelect+` WHERE a.id = ?`, id)
	if db.IsNotFound(err) {
		return nil, apierr.New(apierr.NotExist, "no alias %d", id)
	} else if err != nil {
		return nil, err
	}
	owner := &User{ID: a.OwnerID, Username: a.Owner, AccessLevel: a.OwnerLevel, ManagerID: a.OwnerMgr}
	ok, err := r.Manages(owner)
	if err != nil {
		return nil, err
	}
	if !ok && !write && a.Global == 1 {
		u, err := r.User()
		if err != nil {
			return nil, err
		}
		chain, err := managerChain(r.ctx, s.DB.Q(), u)
		if err != nil {
			return nil, err
		}
		for _, m := range chain {
			ok = ok || m == a.OwnerID
		}
	}
	if !ok {
		return nil, apierr.New(apierr.DoesNotBelongToYou, "alias %d is not yours", id)
	}
	return &a, nil
}

// getAlias gets an alias's data.
func (s *Service) getAlias(r *Request) (any, error) {
	a, err := s.alias(r, r.Int("id"), false)
	if err != nil {
		return nil, err
	}
	return a.view(), nil
}

// aliasOwner is the alias's owner: the owner of sip_extension (a user the caller
// manages), else the call's user.
func (s *Service) aliasOwner(r *Request) (*User, string, error) {
	if name := r.Str("sip_extension"); name != "" {
		e, err := r.ownedExtension(name)
		if err != nil {
			return nil, "", err
		}
		u, err := userByID(r.ctx, s.DB.Q(), e.UserID)
		return u, e.Extension, err
	}
	u, err := r.User()
	return u, "", err
}

func checkAlias(alias, dest string) error {
	if !aliasPattern.MatchString(alias) {
		return apierr.New(apierr.InvalidArgument, "alias: 1 to 32 of [0-9A-Za-z*#+_.-]")
	}
	if !aliasDestPattern.MatchString(dest) {
		return apierr.New(apierr.InvalidArgument, "destination: 1 to 64 of [0-9A-Za-z*#+_.@:-]")
	}
	return nil
}

// aliasTaken reports another alias of the owner with the same name and SIP account.
func aliasTaken(ctx context.Context, tx *db.Tx, owner int64, alias, ext string, except int64) error {
	var n int
	if err := tx.Get(ctx, &n, `SELECT count(*) FROM aliases WHERE owner_id = ? AND alias = ? AND extension = ? AND id <> ?`,
		owner, alias, ext, except); err != nil {
		return err
	}
	if n > 0 {
		return apierr.New(apierr.DataAbort, "alias %s exists", alias)
	}
	return nil
}

// addAlias adds an alias.
func (s *Service) addAlias(r *Request) (any, error) {
	if err := checkAlias(r.Str("alias"), r.Str("destination")); err != nil {
		return nil, err
	}
	owner, ext, err := s.aliasOwner(r)
	if err != nil {
		return nil, err
	}
	global := 0
	if r.Bool("global") {
		global = 1
	}
	return nil, s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		if err := aliasTaken(r.ctx, tx, owner.ID, r.Str("alias"), ext, 0); err != nil {
			return err
		}
		_, err := tx.Exec(r.ctx, `INSERT INTO aliases (owner_id, alias, destination, extension, global) VALUES (?, ?, ?, ?, ?)`,
			owner.ID, r.Str("alias"), r.Str("destination"), ext, global)
		return err
	})
}

// updateAlias updates an alias.
func (s *Service) updateAlias(r *Request) (any, error) {
	id := r.Int("id")
	if !r.Has("id") {
		if r.Str("alias") == "" {
			return nil, apierr.New(apierr.MissingArgument, "id is obligatory")
		}
		u, err := r.User()
		if err != nil {
			return nil, err
		}
		var ids []int64
		if err := s.DB.Q().Select(r.ctx, &ids, `SELECT id FROM aliases WHERE owner_id = ? AND alias = ? ORDER BY id`,
			u.ID, r.Str("alias")); err != nil {
			return nil, err
		}
		if len(ids) != 1 {
			return nil, apierr.New(apierr.NotExist, "no single alias %q of %s: give its id", r.Str("alias"), u.Username)
		}
		id = ids[0]
	}
	a, err := s.alias(r, id, true)
	if err != nil {
		return nil, err
	}
	next := *a
	if r.Has("id") && r.Str("alias") != "" {
		next.Alias = r.Str("alias")
	}
	if r.Has("destination") {
		next.Destination = r.Str("destination")
	}
	if r.Has("global") {
		next.Global = 0
		if r.Bool("global") {
			next.Global = 1
		}
	}
	if r.Has("sip_extension") {
		next.Extension = r.Str("sip_extension")
		if next.Extension != "" {
			e, err := r.ownedExtension(next.Extension)
			if err != nil {
				return nil, err
			}
			if e.UserID != a.OwnerID {
				return nil, apierr.New(apierr.DoesNotBelongToYou, "SIP account %s is not %s's", e.Extension, a.Owner)
			}
		}
	}
	if err := checkAlias(next.Alias, next.Destination); err != nil {
		return nil, err
	}
	return nil, s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		if err := aliasTaken(r.ctx, tx, a.OwnerID, next.Alias, next.Extension, a.ID); err != nil {
			return err
		}
		_, err := tx.Exec(r.ctx, `UPDATE aliases SET alias = ?, destination = ?, extension = ?, global = ? WHERE id = ?`,
			next.Alias, next.Destination, next.Extension, next.Global, a.ID)
		return err
	})
}

// deleteAlias deletes an alias.
func (s *Service) deleteAlias(r *Request) (any, error) {
	a, err := s.alias(r, r.Int("id"), true)
	if err != nil {
		return nil, err
	}
	_, err = s.DB.Q().Exec(r.ctx, `DELETE FROM aliases WHERE id = ?`, a.ID)
	return nil, err
}

// aliasTarget is the destination an alias stands for when u dials it from ext: the
// user's alias for that SIP account first, then the user's own for all accounts, then the
// global alias of the nearest manager. ok is false when dialled is no alias. The aliases
// that apply to (u, ext) are cached as one table, not one answer per dialled number.
func (s *Service) aliasTarget(ctx context.Context, u *User, ext, dialled string) (string, bool, error) {
	key := "aliases\x00" + strconv.FormatInt(u.ID, 10) + "\x00" + ext
	v, err := s.Gate.Directory.Remember(key, func() (any, error) { return s.aliasesFor(ctx, u, ext) })
	if err != nil {
		return "", false, err
	}
	to, ok := v.(map[string]string)[dialled]
	return to, ok, nil
}

// aliasesFor maps every alias u may dial from ext to its destination, the nearer one
// winning: managers' globals from the farthest to the nearest, then the user's own for
// all accounts, then those for ext.
func (s *Service) aliasesFor(ctx context.Context, u *User, ext string) (map[string]string, error) {
	q := s.DB.Q()
	out := map[string]string{}
	chain, err := managerChain(ctx, q, u)
	if err != nil {
		return nil, err
	}
	if len(chain) > 0 {
		var global []Alias
		if err := q.Select(ctx, &global, aliasSelect+` WHERE a.global = 1 AND a.owner_id IN (`+inList(len(chain))+`)`,
			int64Args(chain)...); err != nil {
			return nil, err
		}
		for i := len(chain) - 1; i >= 0; i-- { // farthest first, so the nearest overwrites
			for _, g := range global {
				if g.OwnerID == chain[i] {
					out[g.Alias] = g.Destination
				}
			}
		}
	}
	var own []Alias
	if err := q.Select(ctx, &own, aliasSelect+` WHERE a.owner_id = ? AND (a.extension = '' OR a.extension = ?)
		ORDER BY a.extension`, u.ID, ext); err != nil {
		return nil, err
	}
	for _, a := range own { // '' sorts first: the SIP account's own alias overwrites
		out[a.Alias] = a.Destination
	}
	return out, nil
}
