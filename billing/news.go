package billing

import (
	"database/sql"
	"errors"
	"regexp"
	"strings"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
)

// newsMethods declares the methods whose handlers are in this file: the reference's "News and
// broadcast messages".
func (s *Service) newsMethods() []Method {
	return []Method{
		method("getNews", 0, s.getNews, "id:string", "all:bool=false", "broadcast:bool=false").
			Doc("get the news, or one news item", "the news, or one item"),
		method("addNews", 33, s.addNews, "id:string!", "isbroadcast:bool=false", "user:string",
			"access:int=0", "language:string", "typ:ustring{info,warning,error,success}=info",
			"broadcast:string", "header:string", "message:string").
			Doc("add a news item or broadcast message", "true"),
		method("updateNews", 33, s.updateNews, "id:string!", "isbroadcast:bool", "user:string",
			"access:int", "language:string", "typ:ustring{info,warning,error,success}", "broadcast:string",
			"header:string", "message:string").
			Doc("update a news item", "true"),
		method("deleteNews", 33, s.deleteNews, "id:string!").
			Doc("delete a news item", "true"),
	}
}

// News and broadcast messages.
//
// Choices where the reference is vague:
//   - A reader sees an item when its `access` is at most their access level (0 also for
//     anonymous callers), its `user` is empty or names them, and its `language` is empty or
//     theirs: the same rule getInfo's `broadcasts` applies.
//   - getNews with all: administrators (33+) see every item, whoever it is for; other
//     readers see the items meant for them in every language.
//   - getNews with id answers that one item as an object; an item the reader may not see
//     is E_NOT_EXIST, like one that does not exist.
//   - addNews needs an id (1 to 64 of [A-Za-z0-9_.-]); a taken id is E_DATA_ABORT.
//   - updateNews changes only the arguments given (the reference's defaults apply to
//     addNews); updateNews and deleteNews follow the ownership rule on the item's author
//     (an author since deleted: any administrator).

var newsIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

const maxNewsText = 64 << 10

// News is a news row with the names of its author and last editor.
type News struct {
	ID          string        `db:"id"`
	IsBroadcast int           `db:"is_broadcast"`
	ForUser     string        `db:"for_user"`
	Access      int           `db:"access"`
	Language    string        `db:"language"`
	Typ         string        `db:"typ"`
	Broadcast   string        `db:"broadcast"`
	Header      string        `db:"header"`
	Message     string        `db:"message"`
	AuthorID    sql.NullInt64 `db:"author_id"`
	Author      string        `db:"author"`
	UpdatedBy   string        `db:"updated_by"`
	CreatedAt   int64         `db:"created_at"`
	UpdatedAt   int64         `db:"updated_at"`
}

const newsSelect = `SELECT n.id, n.is_broadcast, n.for_user, n.access, n.language, n.typ, n.broadcast, n.header,
	n.message, n.author_id, COALESCE(a.username, '') AS author, COALESCE(b.username, '') AS updated_by,
	n.created_at, n.updated_at
	FROM news n LEFT JOIN users a ON a.id = n.author_id LEFT JOIN users b ON b.id = n.updated_by_id`

func (n *News) view(tz float64) map[string]any {
	return map[string]any{
		"id": n.ID, "is_broadcast": n.IsBroadcast, "user": n.ForUser, "access": n.Access, "language": n.Language,
		"typ": n.Typ, "broadcast": n.Broadcast, "header": n.Header, "message": n.Message, "author": n.Author,
		"lastupdated_by": n.UpdatedBy,
		"date":           formatTime(n.CreatedAt, 0), "clientdate": formatTime(n.CreatedAt, tz),
		"lastupdated": formatTime(n.UpdatedAt, 0), "clientlastupdated": formatTime(n.UpdatedAt, tz),
	}
}

// getNews gets the news, or one news item.
func (s *Service) getNews(r *Request) (any, error) {
	var reader *User
	if r.Caller.User != nil {
		u, err := r.User()
		if err != nil {
			return nil, err
		}
		reader = u
	}
	var where []string
	var args []any
	if reader == nil {
		where = append(where, `n.access <= 0`, `n.for_user = ''`) // in every language: an anonymous reader has none
	} else if !r.Bool("all") || reader.AccessLevel < keys.LevelAdmin {
		where = append(where, `n.access <= ?`, `(n.for_user = '' OR n.for_user = ?)`)
		args = append(args, reader.AccessLevel, reader.Username)
		if !r.Bool("all") {
			where = append(where, `(n.language = '' OR n.language = ?)`)
			args = append(args, reader.Language)
		}
	}
	if r.Bool("broadcast") {
		where = append(where, `n.is_broadcast = 1`)
	}
	if id := r.Str("id"); id != "" {
		where = append(where, `n.id = ?`)
		args = append(args, id)
	}
	query := newsSelect
	if len(where) > 0 {
		query += ` WHERE ` + strings.Join(where, ` AND `)
	}
	var rows []News
	if err := s.DB.Q().Select(r.ctx, &rows, query+` ORDER BY n.created_at DESC, n.id`, args...); err != nil {
		return nil, err
	}
	tz := 0.0
	if reader != nil {
		tz = reader.Timezone
	}
	if r.Str("id") != "" {
		if len(rows) == 0 {
			return nil, apierr.New(apierr.NotExist, "no news %q", r.Str("id"))
		}
		return rows[0].view(tz), nil
	}
	out := make([]map[string]any, len(rows))
	for i := range rows {
		out[i] = rows[i].view(tz)
	}
	return out, nil
}

// newsFields validates the arguments addNews and updateNews share into n.
func (s *Service) newsFields(r *Request, n *News) error {
	if r.Has("isbroadcast") {
		n.IsBroadcast = 0
		if r.Bool("isbroadcast") {
			n.IsBroadcast = 1
		}
	}
	if r.Has("user") {
		n.ForUser = r.Str("user")
		if n.ForUser != "" {
			if _, err := userByName(r.ctx, s.DB.Q(), n.ForUser); err != nil {
				return err
			}
		}
	}
	if r.Has("access") {
		a := r.Int("access")
		if a < 0 || a > 100 {
			return apierr.New(apierr.InvalidArgument, "access: an access level from 0 to 100")
		}
		n.Access = int(a)
	}
	if r.Has("language") {
		if n.Language = r.Str("language"); !languagePattern.MatchString(n.Language) {
			return apierr.New(apierr.InvalidArgument, "language: up to 16 letters")
		}
	}
	if r.Has("typ") {
		n.Typ = r.Str("typ")
	}
	for _, f := range []struct {
		arg string
		to  *string
	}{{"broadcast", &n.Broadcast}, {"header", &n.Header}, {"message", &n.Message}} {
		if r.Has(f.arg) {
			*f.to = r.Str(f.arg)
			if len(*f.to) > maxNewsText {
				return apierr.New(apierr.InvalidArgument, "%s: at most %d bytes", f.arg, maxNewsText)
			}
		}
	}
	return nil
}

// addNews adds a news item or broadcast message.
func (s *Service) addNews(r *Request) (any, error) {
	actor, err := r.Actor()
	if err != nil {
		return nil, err
	}
	n := News{ID: r.Str("id"), Typ: "info"}
	if !newsIDPattern.MatchString(n.ID) {
		return nil, apierr.New(apierr.InvalidArgument, "id: 1 to 64 of [A-Za-z0-9_.-]")
	}
	if err := s.newsFields(r, &n); err != nil {
		return nil, err
	}
	now := time.Now().Unix()
	_, err = s.DB.Q().Exec(r.ctx, `INSERT INTO news (id, is_broadcast, for_user, access, language, typ, broadcast,
		header, message, author_id, updated_by_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		n.ID, n.IsBroadcast, n.ForUser, n.Access, n.Language, n.Typ, n.Broadcast, n.Header, n.Message,
		actor.ID, actor.ID, now, now)
	if errors.Is(err, db.ErrConflict) {
		return nil, apierr.New(apierr.DataAbort, "news %q exists", n.ID)
	}
	return nil, err
}

// ownedNews loads a news item whose author the caller manages.
func (s *Service) ownedNews(r *Request, id string) (*News, error) {
	var n News
	err := s.DB.Q().Get(r.ctx, &n, newsSelect+` WHERE n.id = ?`, id)
	if db.IsNotFound(err) {
		return nil, apierr.New(apierr.NotExist, "no news %q", id)
	} else if err != nil {
		return nil, err
	}
	if n.AuthorID.Valid {
		author, err := userByID(r.ctx, s.DB.Q(), n.AuthorID.Int64)
		if err != nil {
			return nil, err
		}
		ok, err := r.Manages(author)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, apierr.New(apierr.DoesNotBelongToYou, "news %q is %s's", id, author.Username)
		}
	}
	return &n, nil
}

// updateNews updates a news item.
func (s *Service) updateNews(r *Request) (any, error) {
	actor, err := r.Actor()
	if err != nil {
		return nil, err
	}
	n, err := s.ownedNews(r, r.Str("id"))
	if err != nil {
		return nil, err
	}
	if err := s.newsFields(r, n); err != nil {
		return nil, err
	}
	_, err = s.DB.Q().Exec(r.ctx, `UPDATE news SET is_broadcast = ?, for_user = ?, access = ?, language = ?, typ = ?,
		broadcast = ?, header = ?, message = ?, updated_by_id = ?, updated_at = ? WHERE id = ?`,
		n.IsBroadcast, n.ForUser, n.Access, n.Language, n.Typ, n.Broadcast, n.Header, n.Message, actor.ID,
		time.Now().Unix(), n.ID)
	return nil, err
}

// deleteNews deletes a news item.
func (s *Service) deleteNews(r *Request) (any, error) {
	n, err := s.ownedNews(r, r.Str("id"))
	if err != nil {
		return nil, err
	}
	_, err = s.DB.Q().Exec(r.ctx, `DELETE FROM news WHERE id = ?`, n.ID)
	return nil, err
}
