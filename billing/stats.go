package billing

import (
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/keys"
	"github.com/narayana/narayanad/money"
)

// statsMethods declares the methods whose handlers are in this file: the reference's "Finances
// and statistics".
func (s *Service) statsMethods() []Method {
	return []Method{
		method("getStats", 1, s.getStats, "financials:bool=false", "statistic:bool=false", "date1:string",
			"date2:string").
			Doc("get statistics", "the statistics"),
	}
}

// forecastDays is the window the average daily spend is taken over, and the period the
// recommended payment covers.
const forecastDays = 30

// getStats(1) answers the user's statistics (the `username` argument picks another user,
// as everywhere).
//
//   - forecast (always): the average daily spend is the money the account spent (negative
//     ledger rows other than transfers to itself: calls, fees, DID rent...) over the last
//     30 days, divided by 30 or by the days since the account's first ledger row when that
//     is shorter (at least 1). forecast is how many whole days balance + overdraft last at
//     that rate (null when nothing was spent); recommend is what a payment must add so the
//     balance covers 30 more days (0 when it already does), display_recommend the same in
//     the user's currency.
//   - financials (financials=true): costs between date1 and date2 from the ledger, by kind:
//     call_cost (calls), gsm_cost, sms_cost, gprs_cost (kinds gsm, sms, gprs), other_cost
//     (every other debit: transfers out, fees, rent...) and total_cost, each also as
//     display_* in the user's currency. A reseller (22-32) also gets resale: its users'
//     calls it was charged for, what they sold for, what it bought them for and the
//     margin (resellers.go).
//   - stat (statistic=true): calls between date1 and date2 from the event log: total_calls,
//     success_calls (length > 0), success_calls_percent (2 decimals), calls_duration
//     (seconds); total_sms / success_sms from sent SMS; the GSM and GPRS counters are 0
//     (this system has no GSM gateway records).
//
// date1 and date2 are `YYYY-MM-DD` or `YYYY-MM-DD HH:MM:SS` in the user's timezone; a date
// alone for date2 includes that whole day. Defaults: the start of the current month, and now.
func (s *Service) getStats(r *Request) (any, error) {
	u, err := r.User()
	if err != nil {
		return nil, err
	}
	ctx, q := r.ctx, s.DB.Q()
	x, err := s.exchange(ctx, u.Currency)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	zone := time.FixedZone("user", int(u.Timezone*3600))
	local := now.In(zone)
	from := time.Date(local.Year(), local.Month(), 1, 0, 0, 0, 0, zone)
	to := now
	if v := r.Str("date1"); v != "" {
		if from, _, err = parseStatDate(v, zone); err != nil {
			return nil, apierr.New(apierr.InvalidArgument, "date1: want YYYY-MM-DD or YYYY-MM-DD HH:MM:SS")
		}
	}
	if v := r.Str("date2"); v != "" {
		var dateOnly bool
		if to, dateOnly, err = parseStatDate(v, zone); err != nil {
			return nil, apierr.New(apierr.InvalidArgument, "date2: want YYYY-MM-DD or YYYY-MM-DD HH:MM:SS")
		}
		if dateOnly {
			to = to.AddDate(0, 0, 1).Add(-time.Second)
		}
	}
	t1, t2 := from.Unix(), to.Unix()

	// Forecast.
	since := now.AddDate(0, 0, -forecastDays).Unix()
	var spent money.Micro
	if err := q.Get(ctx, &spent, `SELECT COALESCE(-SUM(amount), 0) FROM ledger WHERE account_id = ? AND amount < 0
		AND created_at >= ?`, u.AccountID, since); err != nil {
		return nil, err
	}
	var first int64
	if err := q.Get(ctx, &first, `SELECT COALESCE(MIN(created_at), 0) FROM ledger WHERE account_id = ?`, u.AccountID); err != nil {
		return nil, err
	}
	days := int64(forecastDays)
	if first > since {
		days = max(1, (now.Unix()-first+86399)/86400)
	}
	daily := money.Micro(money.MulDiv(int64(spent), 1, days))
	forecast := map[string]any{"forecast": nil, "recommend": money.Micro(0), "display_recommend": money.Micro(0)}
	if daily > 0 {
		avail := u.Balance + u.Overdraft
		forecast["forecast"] = max(0, int64(avail/daily))
		rec := max(0, daily*forecastDays-u.Balance)
		forecast["recommend"] = rec
		forecast["display_recommend"] = x.display(rec)
	}
	out := map[string]any{"forecast": forecast}

	if r.Bool("financials") {
		var rows []struct {
			Kind   string      `db:"kind"`
			Amount money.Micro `db:"amount"`
		}
		if err := q.Select(ctx, &rows, `SELECT kind, -SUM(amount) AS amount FROM ledger WHERE account_id = ? AND amount < 0
			AND created_at >= ? AND created_at <= ? GROUP BY kind`, u.AccountID, t1, t2); err != nil {
			return nil, err
		}
		costs := map[string]money.Micro{}
		var total money.Micro
		for _, row := range rows {
			k := "other"
			switch row.Kind {
			case KindCall:
				k = "call"
			case "gsm", "sms", "gprs":
				k = row.Kind
			}
			costs[k] += row.Amount
			total += row.Amount
		}
		f := map[string]any{}
		for _, k := range []string{"gsm", "call", "sms", "gprs", "other"} {
			f[k+"_cost"], f["display_"+k+"_cost"] = costs[k], x.display(costs[k])
		}
		f["total_cost"], f["display_total_cost"] = total, x.display(total)
		out["financials"] = f
		if u.AccessLevel >= keys.LevelManager && u.AccessLevel < keys.LevelAdmin {
			rs, err := resaleStats(ctx, q, u.ID, t1, t2)
			if err != nil {
				return nil, err
			}
			out["resale"] = rs.answer(x)
		}
	}

	if r.Bool("statistic") {
		var c struct {
			Total    int64 `db:"total"`
			Success  int64 `db:"success"`
			Duration int64 `db:"duration"`
		}
		if err := q.Get(ctx, &c, `SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN time > 0 THEN 1 ELSE 0 END), 0) AS success,
			COALESCE(SUM(time), 0) AS duration FROM call_log WHERE user_id = ? AND created_at >= ? AND created_at <= ?
			AND status <> ?`, u.ID, t1, t2, windowCutStatus); err != nil { // a cut is an event of a call, not a call
			return nil, err
		}
		var sms struct {
			Total   int64 `db:"total"`
			Success int64 `db:"success"`
		}
		if err := q.Get(ctx, &sms, `SELECT COUNT(*) AS total, COALESCE(SUM(CASE WHEN status > 0 THEN 1 ELSE 0 END), 0) AS success
			FROM sms WHERE user_id = ? AND type = 'out' AND created_at >= ? AND created_at <= ?`, u.ID, t1, t2); err != nil {
			return nil, err
		}
		out["stat"] = map[string]any{
			"total_calls": c.Total, "success_calls": c.Success, "success_calls_percent": percent(c.Success, c.Total),
			"calls_duration": c.Duration,
			"total_sms":      sms.Total, "success_sms": sms.Success, "success_sms_percent": percent(sms.Success, sms.Total),
			"total_gsm_calls": 0, "success_gsm_calls": 0, "success_gsm_calls_percent": money.Micro(0), "gsm_calls_duration": 0,
			"gprs_traffic": 0,
		}
	}
	return out, nil
}

// percent is part/whole × 100 with 2 decimals, as an exact decimal.
func percent(part, whole int64) money.Micro {
	if whole == 0 {
		return 0
	}
	return money.Micro(money.MulDiv(part*100, int64(money.One), whole)).Round(2)
}

func parseStatDate(v string, zone *time.Location) (time.Time, bool, error) {
	if t, err := time.ParseInLocation(timeLayout, v, zone); err == nil {
		return t, false, nil
	}
	t, err := time.ParseInLocation("2006-01-02", v, zone)
	return t, true, err
}
