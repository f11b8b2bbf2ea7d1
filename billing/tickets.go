package billing

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
)

// ticketMethods declares the methods whose handlers are in this file: the reference's "Ticket
// system".
func (s *Service) ticketMethods() []Method {
	return []Method{
		method("getUnreadTickets", 1, s.getUnreadTickets).
			Doc("count the unread tickets (no longer used by the reference's own clients)", "the number of unread tickets"),
		method("createTicket", 1, s.createTicket, "destination:string", "subject:string",
			"message:string!", "comment:string", "ticket:int").
			Doc("open a ticket or answer an existing one", "the ticket's number"),
		method("getTickets", 1, s.getTickets, "limit:int=800", "all:bool=false").
			Doc("list the tickets", "the tickets"),
		method("getTicket", 1, s.getTicket, "ticket:int!").
			Doc("get a ticket", "the ticket's messages"),
		method("updateTicket", 1, s.updateTicket, "ticket:int!",
			"action:ustring{close,open,markunread,mark_unread,assign}=open", "assign_to:string").
			Doc("change a ticket's status", "true"),
		method("deleteTicket", 33, s.deleteTicket, "ticket:int", "username:string").
			Doc("delete a ticket", "true"),
		method("deleteMessage", 33, s.deleteMessage, "id:int!").
			Doc("delete a ticket's message", "true"),
	}
}

// Ticket system. A ticket is a conversation; each row of `tickets` is one message, and
// the ticket's number is the id of its first message. A message's status is 1 while its
// recipient has not read it, 0 once read, -1 when the ticket is closed (getInfo's
// unread_tickets counts status-1 messages addressed to the user).
//
// Choices where the reference is vague:
//   - destination `support` (or none) on a new ticket is the sender's manager, or the
//     master administrator for a user without one; another destination must be a user the
//     sender manages or one of the sender's managers (no messages between strangers).
//   - A reply goes to the other side of the ticket's first message (or to `destination`,
//     which must already take part in the ticket); replying to a closed ticket reopens it.
//   - Who may see and act on a ticket: a user who sent or received one of its messages or
//     to whom it is assigned, and whoever manages the user who opened it.
//   - getTickets shows one row per ticket, its latest message, newest first; with all also
//     the tickets of the users the caller manages. status is -1 for a closed ticket, else 1
//     when it holds a message the user has not read. getTicket marks the user's unread
//     messages of it as read (the answer still shows them as they were).
//   - getUnreadTickets counts tickets (not messages) with an unread message for the user.
//   - updateTicket: close and open (re)set the whole ticket; markunread (also spelt
//     mark_unread, as in the reference's example) makes the latest message to the user
//     unread again; assign (managers, 22+) sets the comma list of users working on it, each
//     a user the caller manages or one who may see the ticket anyway; assignees see it
//     (getTickets lists it without all); an empty list unassigns.
//   - `comment` is an administrators' (33+) note: only they write and read it.
//   - deleteTicket with `username` (the user acted on) deletes the tickets that user opened
//     or that were opened to them.

const ticketMaxText = 64 << 10

// TicketMsg is one message of a ticket.
type TicketMsg struct {
	ID        int64         `db:"id"`
	Ticket    int64         `db:"ticket"`
	SenderID  sql.NullInt64 `db:"sender_id"`
	Sender    string        `db:"sender"`
	Recipient string        `db:"recipient"`
	Reply     int64         `db:"reply"`
	Subject   string        `db:"subject"`
	Message   string        `db:"message"`
	Comment   string        `db:"comment"`
	Status    int           `db:"status"`
	Assigned  string        `db:"assigned"`
	CreatedAt int64         `db:"created_at"`
}

const ticketSelect = `SELECT t.id, t.ticket, t.sender_id, COALESCE(u.username, '') AS sender, t.recipient, t.reply,
	t.subject, t.message, t.comment, t.status, t.assigned, t.created_at
	FROM tickets t LEFT JOIN users u ON u.id = t.sender_id`

func ticketMessages(ctx context.Context, q db.Queryer, ticket int64) ([]TicketMsg, error) {
	var msgs []TicketMsg
	if err := q.Select(ctx, &msgs, ticketSelect+` WHERE t.ticket = ? ORDER BY t.id`, ticket); err != nil {
		return nil, err
	}
	if len(msgs) == 0 {
		return nil, apierr.New(apierr.NotExist, "no ticket %d", ticket)
	}
	return msgs, nil
}

func splitNames(list string) []string {
	var out []string
	for _, n := range strings.Split(list, ",") {
		if n = strings.TrimSpace(n); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// takesPart reports whether u sent or received a message of the ticket or is assigned to it.
func takesPart(msgs []TicketMsg, u *User) bool {
	for _, m := range msgs {
		if m.SenderID.Valid && m.SenderID.Int64 == u.ID || m.Recipient == u.Username {
			return true
		}
	}
	return contains(splitNames(msgs[len(msgs)-1].Assigned), u.Username)
}

// mayTicket reports whether u may see the ticket: u takes part in it or manages its opener.
func (s *Service) mayTicket(ctx context.Context, u *User, msgs []TicketMsg) (bool, error) {
	if takesPart(msgs, u) {
		return true, nil
	}
	opener := msgs[0].SenderID
	if !opener.Valid { // the opener was deleted: administrators
		return u.AccessLevel >= keys.LevelAdmin, nil
	}
	o, err := userByID(ctx, s.DB.Q(), opener.Int64)
	if apierr.Code(err) == apierr.NotExist {
		return u.AccessLevel >= keys.LevelAdmin, nil
	} else if err != nil {
		return false, err
	}
	return s.Gate.Users.Manages(ctx, s.DB.Q(), u.principal(), o.principal())
}

// ticket loads a ticket the call's user (or the caller, managing its opener) may act on.
func (s *Service) ticket(r *Request, n int64) ([]TicketMsg, *User, error) {
	u, err := r.User()
	if err != nil {
		return nil, nil, err
	}
	msgs, err := ticketMessages(r.ctx, s.DB.Q(), n)
	if err != nil {
		return nil, nil, err
	}
	ok, err := s.mayTicket(r.ctx, u, msgs)
	if err == nil && !ok && r.Caller.Actor != nil && r.Caller.Actor.ID != u.ID {
		actor, aerr := r.Actor()
		if aerr != nil {
			return nil, nil, aerr
		}
		ok, err = s.mayTicket(r.ctx, actor, msgs)
	}
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, apierr.New(apierr.DoesNotBelongToYou, "ticket %d is not yours", n)
	}
	return msgs, u, nil
}

// getUnreadTickets counts the unread tickets (no longer used by the reference's own clients).
func (s *Service) getUnreadTickets(r *Request) (any, error) {
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	var n int64
	err = s.DB.Q().Get(r.ctx, &n, `SELECT count(DISTINCT ticket) FROM tickets WHERE recipient = ? AND status = 1`, u.Username)
	return n, err
}

// ticketDestination resolves a new ticket's destination for sender.
func (s *Service) ticketDestination(r *Request, sender *User, dest string) (string, error) {
	q := s.DB.Q()
	if dest == "" || dest == "support" {
		if sender.ManagerID.Valid {
			m, err := userByID(r.ctx, q, sender.ManagerID.Int64)
			if err == nil {
				return m.Username, nil
			} else if apierr.Code(err) != apierr.NotExist {
				return "", err
			}
		}
		var master []string
		if err := q.Select(r.ctx, &master, `SELECT username FROM users WHERE accesslevel >= ? AND id <> ? ORDER BY id LIMIT 1`,
			keys.LevelMaster, sender.ID); err != nil {
			return "", err
		}
		if len(master) == 0 {
			return "", apierr.New(apierr.NotExist, "there is no support above %s", sender.Username)
		}
		return master[0], nil
	}
	if dest == sender.Username {
		return "", apierr.New(apierr.InvalidArgument, "destination: not yourself")
	}
	d, err := userByName(r.ctx, q, dest)
	if err != nil {
		return "", err
	}
	down, err := s.Gate.Users.Manages(r.ctx, q, sender.principal(), d.principal())
	if err != nil {
		return "", err
	}
	up, err := s.Gate.Users.Manages(r.ctx, q, d.principal(), sender.principal())
	if err != nil {
		return "", err
	}
	if !down && !up {
		return "", apierr.New(apierr.DoesNotBelongToYou, "%s is neither your manager nor your user", dest)
	}
	return d.Username, nil
}

// createTicket opens a ticket or answers an existing one.
func (s *Service) createTicket(r *Request) (any, error) {
	sender, err := r.User()
	if err != nil {
		return nil, err
	}
	if r.Str("comment") != "" && r.Caller.Level < keys.LevelAdmin {
		return nil, apierr.New(apierr.InsufficientAccess, "comment is for administrators")
	}
	for _, f := range []string{"subject", "message", "comment"} {
		if len(r.Str(f)) > ticketMaxText {
			return nil, apierr.New(apierr.InvalidArgument, "%s: at most %d bytes", f, ticketMaxText)
		}
	}
	now := time.Now().Unix()
	if !r.Has("ticket") {
		to, err := s.ticketDestination(r, sender, r.Str("destination"))
		if err != nil {
			return nil, err
		}
		var id int64
		err = s.DB.InTx(r.ctx, func(tx *db.Tx) error {
			id, err = tx.Insert(r.ctx, `INSERT INTO tickets (ticket, sender_id, recipient, subject, message, comment, status, created_at)
				VALUES (0, ?, ?, ?, ?, ?, 1, ?)`, sender.ID, to, r.Str("subject"), r.Str("message"), r.Str("comment"), now)
			if err != nil {
				return err
			}
			_, err = tx.Exec(r.ctx, `UPDATE tickets SET ticket = ? WHERE id = ?`, id, id)
			return err
		})
		return id, err
	}
	n := r.Int("ticket")
	msgs, _, err := s.ticket(r, n)
	if err != nil {
		return nil, err
	}
	first, last := msgs[0], msgs[len(msgs)-1]
	to := first.Recipient
	if first.Sender != sender.Username {
		to = first.Sender
	}
	if d := r.Str("destination"); d != "" {
		u, err := userByName(r.ctx, s.DB.Q(), d)
		if err != nil {
			return nil, err
		}
		if !takesPart(msgs, u) {
			return nil, apierr.New(apierr.InvalidArgument, "destination: %s takes no part in ticket %d", d, n)
		}
		to = d
	}
	if to == "" || to == sender.Username {
		return nil, apierr.New(apierr.InvalidArgument, "destination: nobody to answer in ticket %d", n)
	}
	subject := r.Str("subject")
	if subject == "" {
		subject = first.Subject
	}
	return n, s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		if _, err := tx.Exec(r.ctx, `UPDATE tickets SET status = 0 WHERE ticket = ? AND status = -1`, n); err != nil {
			return err
		}
		id, err := tx.Insert(r.ctx, `INSERT INTO tickets (ticket, sender_id, recipient, reply, subject, message, comment, status,
			assigned, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)`,
			n, sender.ID, to, last.ID, subject, r.Str("message"), r.Str("comment"), last.Assigned, now)
		if err != nil {
			return err
		}
		return s.ticketNotice(r.ctx, tx, to, sender, n, id, subject, r.Str("message"))
	})
}

// getTickets lists the tickets.
func (s *Service) getTickets(r *Request) (any, error) {
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	limit := r.Int("limit")
	if limit <= 0 {
		return nil, apierr.New(apierr.InvalidArgument, "limit must be positive")
	}
	q := s.DB.Q()
	who, whoArgs := usersOf(u, r.Bool("all"))
	// Tickets assigned to the user: few rows carry an assignment, filtered here so a
	// username's characters never act as LIKE wildcards.
	var assigned []struct {
		Ticket   int64  `db:"ticket"`
		Assigned string `db:"assigned"`
	}
	if err := q.Select(r.ctx, &assigned, `SELECT DISTINCT ticket, assigned FROM tickets WHERE assigned <> ''`); err != nil {
		return nil, err
	}
	extra := []int64{0}
	for _, a := range assigned {
		if contains(splitNames(a.Assigned), u.Username) {
			extra = append(extra, a.Ticket)
		}
	}
	args := append(append([]any{}, whoArgs...), whoArgs...)
	args = append(args, int64Args(extra)...)
	args = append(args, limit)
	var rows []TicketMsg
	err = q.Select(r.ctx, &rows, ticketSelect+` WHERE t.id IN (SELECT MAX(id) FROM tickets WHERE ticket IN (
			SELECT ticket FROM tickets WHERE sender_id IN (`+who+`)
				OR recipient IN (SELECT username FROM users WHERE id IN (`+who+`))
				OR ticket IN (`+inList(len(extra))+`))
			GROUP BY ticket)
		ORDER BY t.id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, err
	}
	var unread []int64
	if err := q.Select(r.ctx, &unread, `SELECT DISTINCT ticket FROM tickets WHERE recipient = ? AND status = 1`, u.Username); err != nil {
		return nil, err
	}
	isUnread := map[int64]bool{}
	for _, t := range unread {
		isUnread[t] = true
	}
	out := make([]map[string]any, len(rows))
	for i, m := range rows {
		status := 0
		switch {
		case m.Status == -1:
			status = -1
		case isUnread[m.Ticket]:
			status = 1
		}
		out[i] = map[string]any{
			"ticket": m.Ticket, "msgid": m.ID, "status": status, "unread": isUnread[m.Ticket] && status != -1,
			"subject": m.Subject, "sender": m.Sender, "recipient": m.Recipient, "reply": m.Reply,
			"assigned": m.Assigned, "date": formatTime(m.CreatedAt, 0), "clientdate": formatTime(m.CreatedAt, u.Timezone),
		}
	}
	return out, nil
}

// getTicket gets a ticket.
func (s *Service) getTicket(r *Request) (any, error) {
	n := r.Int("ticket")
	msgs, u, err := s.ticket(r, n)
	if err != nil {
		return nil, err
	}
	admin := r.Caller.Level >= keys.LevelAdmin
	out := make([]map[string]any, len(msgs))
	for i, m := range msgs {
		typ := "out"
		if m.Recipient == u.Username {
			typ = "in"
		}
		v := map[string]any{
			"msgid": m.ID, "ticket": m.Ticket, "type": typ, "reply": m.Reply, "message": m.Message, "status": m.Status,
			"subject": m.Subject, "sender": m.Sender, "username": m.Sender, "recipient": m.Recipient,
			"assigned": m.Assigned, "date": formatTime(m.CreatedAt, 0), "clientdate": formatTime(m.CreatedAt, u.Timezone),
		}
		if admin {
			v["comment"] = m.Comment
		}
		out[i] = v
	}
	_, err = s.DB.Q().Exec(r.ctx, `UPDATE tickets SET status = 0 WHERE ticket = ? AND recipient = ? AND status = 1`, n, u.Username)
	return out, err
}

// updateTicket changes a ticket's status.
func (s *Service) updateTicket(r *Request) (any, error) {
	n := r.Int("ticket")
	msgs, u, err := s.ticket(r, n)
	if err != nil {
		return nil, err
	}
	q := s.DB.Q()
	switch r.Str("action") {
	case "close":
		_, err = q.Exec(r.ctx, `UPDATE tickets SET status = -1 WHERE ticket = ?`, n)
	case "open":
		_, err = q.Exec(r.ctx, `UPDATE tickets SET status = 0 WHERE ticket = ? AND status = -1`, n)
	case "markunread", "mark_unread":
		if msgs[len(msgs)-1].Status == -1 {
			return nil, apierr.New(apierr.DataAbort, "ticket %d is closed", n)
		}
		last := int64(0)
		for _, m := range msgs {
			if m.Recipient == u.Username {
				last = m.ID
			}
		}
		if last == 0 {
			return nil, apierr.New(apierr.DataAbort, "ticket %d holds no message to %s", n, u.Username)
		}
		_, err = q.Exec(r.ctx, `UPDATE tickets SET status = 1 WHERE id = ?`, last)
	case "assign":
		if r.Caller.Level < keys.LevelManager {
			return nil, apierr.New(apierr.InsufficientAccess, "tickets are assigned by managers")
		}
		names := splitNames(r.Str("assign_to"))
		for _, name := range names {
			a, err := userByName(r.ctx, q, name)
			if err != nil {
				return nil, err
			}
			ok, err := r.Manages(a) // the caller's own staff
			if err == nil && !ok {
				ok, err = s.mayTicket(r.ctx, a, msgs)
			}
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, apierr.New(apierr.DoesNotBelongToYou, "%s is not yours and may not see ticket %d", name, n)
			}
		}
		_, err = q.Exec(r.ctx, `UPDATE tickets SET assigned = ? WHERE ticket = ?`, strings.Join(names, ","), n)
	}
	return nil, err
}

// deleteTicket deletes a ticket.
func (s *Service) deleteTicket(r *Request) (any, error) {
	if r.Has("ticket") {
		n := r.Int("ticket")
		if _, _, err := s.ticket(r, n); err != nil {
			return nil, err
		}
		_, err := s.DB.Q().Exec(r.ctx, `DELETE FROM tickets WHERE ticket = ?`, n)
		return nil, err
	}
	if r.Str("username") == "" {
		return nil, apierr.New(apierr.MissingArgument, "ticket or username is obligatory")
	}
	u, err := r.User() // the gate has checked that the caller manages this user
	if err != nil {
		return nil, err
	}
	_, err = s.DB.Q().Exec(r.ctx, `DELETE FROM tickets WHERE ticket IN (SELECT f.ticket FROM tickets f
		WHERE f.id = (SELECT MIN(x.id) FROM tickets x WHERE x.ticket = f.ticket) AND (f.sender_id = ? OR f.recipient = ?))`,
		u.ID, u.Username)
	return nil, err
}

// deleteMessage deletes a ticket's message.
func (s *Service) deleteMessage(r *Request) (any, error) {
	var n int64
	err := s.DB.Q().Get(r.ctx, &n, `SELECT ticket FROM tickets WHERE id = ?`, r.Int("id"))
	if db.IsNotFound(err) {
		return nil, apierr.New(apierr.NotExist, "no message %d", r.Int("id"))
	} else if err != nil {
		return nil, err
	}
	if _, _, err := s.ticket(r, n); err != nil {
		return nil, err
	}
	_, err = s.DB.Q().Exec(r.ctx, `DELETE FROM tickets WHERE id = ?`, r.Int("id"))
	return nil, err
}
