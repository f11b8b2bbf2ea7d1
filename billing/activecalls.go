package billing

import (
	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/money"
)

// activeCallMethods declares the methods whose handlers are in this file: the calls now
// open and hanging them up, for an administrator's panel (not in the reference).
func (s *Service) activeCallMethods() []Method {
	return []Method{
		method("getActiveCalls", 33, s.getActiveCalls, "limit:int=500").
			Doc("list the calls open now (callPrepare's reservations not yet settled) of the users the caller "+
				"manages, newest first (not in the reference)",
				"[{id, username, sip_extension, destination, prior, uniqueid, started, max_call_time, reserved, displayreserved}]"),
		// closeChannels is an Asterisk key's method (level 50), out of reach of a user
		// logged in through a client key; this is the same handler at an administrator's
		// level, for the user named by `username` (whom the gate checks the caller manages).
		method("hangupCalls", 33, s.closeChannels).
			Doc("hang up every active channel of the user (`username`) through AMI: closeChannels for "+
				"an administrator (not in the reference)", "true"),
	}
}

type activeCall struct {
	ID          int64       `db:"id" json:"id"`
	Username    string      `db:"username" json:"username"`
	Extension   string      `db:"extension" json:"sip_extension"`
	Destination string      `db:"destination" json:"destination"`
	Prior       int         `db:"prior" json:"prior"`
	UniqueID    *string     `db:"uniqueid" json:"uniqueid"`
	CreatedAt   int64       `db:"created_at" json:"-"`
	MaxCallTime int         `db:"max_call_time" json:"max_call_time"`
	Amount      money.Micro `db:"amount" json:"reserved"`
	Started     string      `db:"-" json:"started"`
	Display     money.Micro `db:"-" json:"displayreserved"`
}

// getActiveCalls(33) lists the open reservations of the users the caller manages.
func (s *Service) getActiveCalls(r *Request) (any, error) {
	actor, err := r.Actor()
	if err != nil {
		return nil, err
	}
	limit := r.Int("limit")
	if limit < 1 || limit > 10_000 {
		return nil, apierr.New(apierr.InvalidArgument, "limit: from 1 to 10000")
	}
	ids, args := usersOf(actor, true)
	var out []activeCall
	if err := s.DB.Q().Select(r.ctx, &out, `SELECT r.id, u.username, r.extension, r.destination, r.prior, r.uniqueid,
		r.created_at, r.max_call_time, r.amount FROM reservations r JOIN users u ON u.id = r.user_id
		WHERE r.user_id IN (`+ids+`) AND r.expires_at > ? ORDER BY r.created_at DESC, r.id DESC LIMIT ?`,
		append(args, s.now().Unix(), limit)...); err != nil {
		return nil, err
	}
	x, err := s.exchange(r.ctx, actor.Currency)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Started = formatTime(out[i].CreatedAt, actor.Timezone)
		out[i].Display = x.display(out[i].Amount)
	}
	if out == nil {
		out = []activeCall{}
	}
	return out, nil
}
