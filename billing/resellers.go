package billing

import (
	"context"
	"database/sql"
	"strconv"
	"time"

	"github.com/narayana/narayanad/billing/rating"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
	"github.com/narayana/narayanad/money"
)

// Resellers (DECISIONS §5, docs/RATING.md): a corporate manager (22-32) with a tariff of
// its own buys at that tariff what its users sell at theirs. A call of one of its users
// is charged to the user and to every such reseller up the chain of managers, each on its
// own account, in callFinish's one transaction; callPrepare grants the shortest
// MaxCallTime of the chain and reserves at every level, under the locks of every account
// of the chain (InTxBatch's keys), so no level spends what it does not have, whichever
// daemon the calls reach.
//
// Choices where the decisions are silent:
//   - A reseller is charged for the route the call takes: its tariff's entry for that
//     direction through the same route, else its first enabled entry for the direction.
//     A reseller whose tariff has no entry for the direction declines the call
//     (Declined E_UNROUTABLE): it cannot sell what it does not buy. callFinish then
//     charges that level nothing.
//   - A manager without a tariff of its own is passed over (not charged), and the walk
//     goes on to its own manager; so is a manager sharing an account with a level below.
//     Administrators (33+) end the chain: they issue money, they do not buy it.
//   - A reseller level is rated with the caller's number, priority and DID flag; its caps
//     are the caller's.

// maxResellerDepth bounds the walk up the managers (a loop in manager_id cannot hang it).
const maxResellerDepth = 16

// resellerLevel is one reseller of a caller's chain, nearest first.
type resellerLevel struct {
	userID, accountID, ratesID int64
}

// loadResellers walks up u's managers for callParty (cached with it: a change of any
// user drops the cache).
func loadResellers(ctx context.Context, q db.Queryer, u *User) ([]resellerLevel, error) {
	var out []resellerLevel
	seen := map[int64]bool{u.AccountID: true}
	next := u.ManagerID
	for depth := 0; next.Valid && depth < maxResellerDepth; depth++ {
		m, err := userByID(ctx, q, next.Int64)
		if err != nil {
			return nil, err
		}
		if m.AccessLevel >= keys.LevelAdmin {
			break
		}
		if m.AccessLevel >= keys.LevelManager && m.RatesID.Valid && !seen[m.AccountID] {
			out = append(out, resellerLevel{userID: m.ID, accountID: m.AccountID, ratesID: m.RatesID.Int64})
			seen[m.AccountID] = true
		}
		next = m.ManagerID
	}
	return out, nil
}

// levelQuote is a reseller level's price for a call; ok is false when its tariff has no
// entry for the direction.
type levelQuote struct {
	resellerLevel
	price  rating.Price
	ok     bool
	amount money.Micro // callPrepare: what this level reserves
}

// resellerQuotes prices the call at every reseller level (nil for a user without one, the
// plain call's path).
func (p *callParty) resellerQuotes(snap *rating.Snapshot, dest string, isDID bool, routeID int64) []levelQuote {
	if len(p.resellers) == 0 {
		return nil
	}
	out := make([]levelQuote, len(p.resellers))
	for i, lv := range p.resellers {
		out[i].resellerLevel = lv
		var first *rating.Quote
		for k := 1; ; k++ {
			q, err := snap.Rate(rating.Query{Number: dest, TariffID: lv.ratesID, Prior: k, IsDID: isDID})
			if err != nil {
				break
			}
			if first == nil {
				first = &q
			}
			if q.Route.ID == routeID {
				first = &q
				break
			}
		}
		if first != nil {
			out[i].price, out[i].ok = first.Price, true
		}
	}
	return out
}

// chainGrant narrows a grant of secs to what every reseller level can pay, reading each
// reseller's account under its lock, and sets each level's reservation. granted is false
// when a level cannot pay even the first block.
func (s *Service) chainGrant(ctx context.Context, tx *db.Tx, chain []levelQuote, now int64, uid string, prior int,
	caps rating.Caps, secs int) (int, bool, error) {
	caps.AllowedCallLen = secs // no level grants more than the levels below
	caps.SIPMaxCallLen = 0
	for i := range chain {
		lq := &chain[i]
		acc, err := s.holds.account(ctx, tx, lq.accountID, now, uid, prior)
		if err != nil {
			return 0, false, err
		}
		got, _, ok := lq.price.MaxCallTime(acc.spendableAt(now, uid, prior, i+1), caps)
		if !ok {
			return 0, false, nil
		}
		secs = min(secs, got)
		caps.AllowedCallLen = secs
	}
	for i := range chain {
		chain[i].amount = chain[i].price.Charge(secs)
	}
	return secs, true, nil
}

// chainReserve writes the reseller levels' reservations of a call whose own reservation
// (level 0) is id (0 when it has a uniqueid).
func (s *Service) chainReserve(ctx context.Context, tx *db.Tx, chain []levelQuote, u *User, ext, uid, dest string,
	prior int, id int64, secs int, now, expires int64) error {
	for i, lq := range chain {
		level := i + 1
		args := []any{lq.accountID, u.ID, ext, nullStr(uid), dest, prior, lq.amount, secs, now, expires, level,
			sql.NullInt64{Int64: id, Valid: uid == ""}}
		var rid int64
		var err error
		const cols = `INSERT INTO reservations (account_id, user_id, extension, uniqueid, destination, prior, amount,
			max_call_time, created_at, expires_at, level, parent_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
		if uid == "" {
			rid, err = tx.Insert(ctx, cols, args...)
		} else {
			_, err = tx.Exec(ctx, cols+` ON CONFLICT (uniqueid, prior, level) DO UPDATE SET account_id = excluded.account_id,
				user_id = excluded.user_id, extension = excluded.extension, destination = excluded.destination,
				amount = excluded.amount, max_call_time = excluded.max_call_time, created_at = excluded.created_at,
				expires_at = excluded.expires_at`, args...)
		}
		if err != nil {
			return err
		}
		s.holds.reserved(tx, lq.accountID, callHoldAt(uid, prior, rid, level), hold{amount: lq.amount, expires: expires})
	}
	return nil
}

// chainCharge charges a finished call at every reseller level that rates it: a ledger row
// on the reseller's account (kind call, the call's ref) and a resale row with what the
// level sold it for (the charge one level down, userCost for the first) and bought it for.
func (s *Service) chainCharge(ctx context.Context, tx *db.Tx, chain []levelQuote, u *User, callID int64, dest string,
	charged int, userCost money.Micro) error {
	sold := userCost
	ref := "call:" + strconv.FormatInt(callID, 10)
	for i, lq := range chain {
		if !lq.ok {
			continue // this reseller does not buy the direction: nothing to charge it
		}
		bought := lq.price.Charge(charged)
		if bought != 0 {
			if err := post(ctx, tx, lq.accountID, -bought, KindCall, ref, dest, u.ID); err != nil {
				return err
			}
			s.holds.posted(tx, lq.accountID, -bought)
		}
		if sold != 0 || bought != 0 {
			if _, err := tx.Exec(ctx, `INSERT INTO resale (call_id, level, account_id, user_id, sold, bought, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?)`, callID, i+1, lq.accountID, lq.userID, sold, bought, time.Now().Unix()); err != nil {
				return err
			}
		}
		sold = bought
	}
	return nil
}

// resale sums a reseller's resale rows: getStats' margin.
type resale struct {
	Calls  int64       `db:"calls"`
	Sold   money.Micro `db:"sold"`
	Bought money.Micro `db:"bought"`
}

func resaleStats(ctx context.Context, q db.Queryer, userID, from, to int64) (resale, error) {
	var rs resale
	err := q.Get(ctx, &rs, `SELECT COUNT(*) AS calls, COALESCE(SUM(sold), 0) AS sold, COALESCE(SUM(bought), 0) AS bought
		FROM resale WHERE user_id = ? AND created_at >= ? AND created_at <= ?`, userID, from, to)
	return rs, err
}

func (rs resale) answer(x exchange) map[string]any {
	margin := rs.Sold - rs.Bought
	return map[string]any{"calls": rs.Calls, "sold": rs.Sold, "bought": rs.Bought, "margin": margin,
		"display_sold": x.display(rs.Sold), "display_bought": x.display(rs.Bought), "display_margin": x.display(margin)}
}
