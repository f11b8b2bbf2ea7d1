package billing

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/billing/rating"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/money"
)

// periodMethods declares the methods of time-of-day and day-of-week rates
// (docs/RATING.md): a tariff's periods, and an entry's cost in a period.
func (s *Service) periodMethods() []Method {
	return []Method{
		method("addRatePeriod", 22, s.addRatePeriod, "rates:int!", "name:string!", "days:string=",
			"start:string=00:00", "end:string=24:00", "dates:string=", "timezone:string").
			Doc("add a period to a tariff: from `start` to `end` (HH:MM local time) on `days` (mon-fri,sat,sun) "+
				"or on `dates` (holidays, YYYY-MM-DD,...); `timezone` (IANA name) is the tariff's zone for all its "+
				"periods, UTC until given", "true"),
		method("deleteRatePeriod", 22, s.deleteRatePeriod, "rates:int!", "name:string!").
			Doc("delete a tariff's period and its entries' costs in it", "true"),
		method("getRatePeriods", 1, s.getRatePeriods, "rates:int!").
			Doc("get a tariff's periods in precedence order (dated periods first, then in order of addition) "+
				"with the entries' costs in each",
				"the periods: name, days, start, end, dates, timezone and costs (direction, prior, cost)"),
		method("updateDirectionPeriod", 22, s.updateDirectionPeriod, "rates:int!", "direction:int!", "prior:int=1",
			"period:string!", "cost:money").
			Doc("set a tariff entry's cost per minute in a period (system currency); without `cost`, the entry "+
				"keeps its own cost in that period", "true"),
	}
}

var weekdayNames = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// parseDays reads "mon-fri,sun" into a weekday bit set (bit d: time.Weekday d).
func parseDays(s string) (uint8, error) {
	var mask uint8
	day := func(n string) (int, bool) {
		i := slices.Index(weekdayNames, strings.ToLower(strings.TrimSpace(n)))
		return i, i >= 0
	}
	for part := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		a, b, isRange := strings.Cut(part, "-")
		from, ok := day(a)
		to, okTo := from, ok
		if isRange {
			to, okTo = day(b)
		}
		if !ok || !okTo {
			return 0, apierr.New(apierr.InvalidArgument, "days: want names like mon-fri,sat,sun, not %q", part)
		}
		for d := from; ; d = (d + 1) % 7 { // a range may wrap: fri-mon
			mask |= 1 << d
			if d == to {
				break
			}
		}
	}
	return mask, nil
}

func formatDays(mask uint8) string {
	var out []string
	for d, n := range weekdayNames {
		if mask&(1<<d) != 0 {
			out = append(out, n)
		}
	}
	return strings.Join(out, ",")
}

// parseClock reads HH:MM or HH:MM:SS (up to 24:00) into seconds of the day.
func parseClock(arg, s string) (int, error) {
	parts := strings.Split(s, ":")
	bad := apierr.New(apierr.InvalidArgument, "%s: want HH:MM from 00:00 to 24:00, not %q", arg, s)
	if len(parts) < 2 || len(parts) > 3 {
		return 0, bad
	}
	var v [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || (i > 0 && n > 59) || len(p) != 2 {
			return 0, bad
		}
		v[i] = n
	}
	secs := v[0]*3600 + v[1]*60 + v[2]
	if secs > 86400 {
		return 0, bad
	}
	return secs, nil
}

func formatClock(secs int) string {
	if secs%60 != 0 {
		return fmt.Sprintf("%02d:%02d:%02d", secs/3600, secs/60%60, secs%60)
	}
	return fmt.Sprintf("%02d:%02d", secs/3600, secs/60%60)
}

// parseDates reads YYYY-MM-DD,... into sorted yyyymmdd numbers.
func parseDates(s string) ([]int32, error) {
	var out []int32
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		t, err := time.Parse(time.DateOnly, part)
		if err != nil {
			return nil, apierr.New(apierr.InvalidArgument, "dates: want YYYY-MM-DD,..., not %q", part)
		}
		out = append(out, rating.Date(t))
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func formatDates(ds []int32) string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = fmt.Sprintf("%04d-%02d-%02d", d/10000, d/100%100, d%100)
	}
	return strings.Join(out, ",")
}

// addRatePeriod adds a named period to a tariff the caller manages.
func (s *Service) addRatePeriod(r *Request) (any, error) {
	name := strings.TrimSpace(r.Str("name"))
	if name == "" {
		return nil, apierr.New(apierr.InvalidArgument, "name: must not be empty")
	}
	days, err := parseDays(r.Str("days"))
	if err != nil {
		return nil, err
	}
	dates, err := parseDates(r.Str("dates"))
	if err != nil {
		return nil, err
	}
	if days == 0 && len(dates) == 0 {
		return nil, apierr.New(apierr.MissingArgument, "days or dates: a period needs one")
	}
	from, err := parseClock("start", r.Str("start"))
	if err != nil {
		return nil, err
	}
	to, err := parseClock("end", r.Str("end"))
	if err != nil {
		return nil, err
	}
	if from >= to {
		return nil, apierr.New(apierr.InvalidArgument, "start: must be before end (a night period is two: 22:00-24:00 and 00:00-06:00)")
	}
	zone := r.Str("timezone")
	if r.Has("timezone") {
		if _, err := time.LoadLocation(zone); err != nil || zone == "" || zone == "Local" {
			return nil, apierr.New(apierr.InvalidArgument, "timezone: want an IANA zone name like Europe/Moscow, not %q", zone)
		}
	}
	return true, s.ratingTx(r, func(tx *db.Tx) error {
		ctx := r.ctx
		if _, err := r.ownedRate(ctx, tx, r.Int("rates")); err != nil {
			return err
		}
		if !r.Has("timezone") { // the tariff's zone, if it has periods already
			zone = "UTC"
			var zs []string
			if err := tx.Select(ctx, &zs, `SELECT timezone FROM rate_periods WHERE rates_id = ? LIMIT 1`, r.Int("rates")); err != nil {
				return err
			}
			if len(zs) > 0 {
				zone = zs[0]
			}
		}
		_, err := tx.Exec(ctx, `INSERT INTO rate_periods (rates_id, name, days, start_time, end_time, dates, timezone)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, r.Int("rates"), name, int(days), from, to, formatDates(dates), zone)
		if errors.Is(err, db.ErrConflict) {
			return apierr.New(apierr.DataAbort, "tariff %d has a period %q", r.Int("rates"), name)
		} else if err != nil {
			return err
		}
		// One zone per tariff: the one given now applies to all its periods.
		_, err = tx.Exec(ctx, `UPDATE rate_periods SET timezone = ? WHERE rates_id = ?`, zone, r.Int("rates"))
		return err
	})
}

// periodID is the id of the tariff's period by name.
func periodID(ctx context.Context, q db.Queryer, rates int64, name string) (int64, error) {
	var id int64
	err := q.Get(ctx, &id, `SELECT id FROM rate_periods WHERE rates_id = ? AND name = ?`, rates, name)
	if db.IsNotFound(err) {
		return 0, apierr.New(apierr.NotExist, "tariff %d has no period %q", rates, name)
	}
	return id, err
}

// deleteRatePeriod removes a tariff's period; its entries' costs in it go with it.
func (s *Service) deleteRatePeriod(r *Request) (any, error) {
	return true, s.ratingTx(r, func(tx *db.Tx) error {
		ctx := r.ctx
		if _, err := r.ownedRate(ctx, tx, r.Int("rates")); err != nil {
			return err
		}
		id, err := periodID(ctx, tx, r.Int("rates"), r.Str("name"))
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM rate_period_costs WHERE period_id = ?`, id); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `DELETE FROM rate_periods WHERE id = ?`, id)
		return err
	})
}

// updateDirectionPeriod sets (or, without cost, removes) an entry's cost in a period.
func (s *Service) updateDirectionPeriod(r *Request) (any, error) {
	cost := r.Money("cost")
	if r.Has("cost") && cost < 0 {
		return nil, apierr.New(apierr.InvalidArgument, "cost: must not be negative")
	}
	if r.Int("prior") < 1 {
		return nil, apierr.New(apierr.InvalidArgument, "prior: 1 or more")
	}
	return true, s.ratingTx(r, func(tx *db.Tx) error {
		ctx := r.ctx
		rates, dir, prior := r.Int("rates"), r.Int("direction"), r.Int("prior")
		if _, err := r.ownedRate(ctx, tx, rates); err != nil {
			return err
		}
		id, err := periodID(ctx, tx, rates, r.Str("period"))
		if err != nil {
			return err
		}
		var n int
		if err := tx.Get(ctx, &n, `SELECT count(*) FROM rate_entries WHERE rates_id = ? AND direction_id = ? AND priority = ?`,
			rates, dir, prior); err != nil {
			return err
		}
		if n == 0 {
			return apierr.New(apierr.NotExist, "tariff %d has no direction %d with priority %d", rates, dir, prior)
		}
		if _, err := tx.Exec(ctx, `DELETE FROM rate_period_costs WHERE period_id = ? AND direction_id = ? AND priority = ?`,
			id, dir, prior); err != nil {
			return err
		}
		if !r.Has("cost") {
			return nil
		}
		_, err = tx.Exec(ctx, `INSERT INTO rate_period_costs (period_id, rates_id, direction_id, priority, cost)
			VALUES (?, ?, ?, ?, ?)`, id, rates, dir, prior, cost)
		return err
	})
}

// periodRow is a row of rate_periods.
type periodRow struct {
	ID       int64  `db:"id"`
	RatesID  int64  `db:"rates_id"`
	Name     string `db:"name"`
	Days     int    `db:"days"`
	Start    int    `db:"start_time"`
	End      int    `db:"end_time"`
	Dates    string `db:"dates"`
	Timezone string `db:"timezone"`
}

type periodCostRow struct {
	PeriodID  int64       `db:"period_id"`
	RatesID   int64       `db:"rates_id"`
	Direction int64       `db:"direction_id"`
	Priority  int         `db:"priority"`
	Cost      money.Micro `db:"cost"`
}

// sortPeriods puts periods in precedence order: dated ones (holidays) first, then in
// order of addition.
func sortPeriods(ps []periodRow) {
	slices.SortStableFunc(ps, func(a, b periodRow) int {
		if da, db := a.Dates != "", b.Dates != ""; da != db {
			if da {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.ID, b.ID)
	})
}

// getRatePeriods lists a visible tariff's periods in precedence order with their costs.
func (s *Service) getRatePeriods(r *Request) (any, error) {
	t, err := r.visibleRate(r.Int("rates"))
	if err != nil {
		return nil, err
	}
	ctx, q := r.ctx, s.DB.Q()
	var ps []periodRow
	if err := q.Select(ctx, &ps, `SELECT id, rates_id, name, days, start_time, end_time, dates, timezone
		FROM rate_periods WHERE rates_id = ?`, t.ID); err != nil {
		return nil, err
	}
	var cs []periodCostRow
	if err := q.Select(ctx, &cs, `SELECT period_id, rates_id, direction_id, priority, cost FROM rate_period_costs
		WHERE rates_id = ? ORDER BY direction_id, priority`, t.ID); err != nil {
		return nil, err
	}
	sortPeriods(ps)
	out := make([]map[string]any, 0, len(ps))
	for _, p := range ps {
		costs := []map[string]any{}
		for _, c := range cs {
			if c.PeriodID == p.ID {
				costs = append(costs, map[string]any{"direction": c.Direction, "prior": c.Priority, "cost": c.Cost})
			}
		}
		out = append(out, map[string]any{"name": p.Name, "days": formatDays(uint8(p.Days)), "start": formatClock(p.Start),
			"end": formatClock(p.End), "dates": p.Dates, "timezone": p.Timezone, "costs": costs})
	}
	return out, nil
}

// entryKey names a tariff entry.
type entryKey struct {
	rates, direction int64
	priority         int
}

// loadPeriods builds every entry's prices by period for the rating snapshot; entries
// without a cost in any period are absent (plain).
func loadPeriods(ctx context.Context, q db.Queryer) (map[entryKey]*rating.Periods, error) {
	var ps []periodRow
	if err := q.Select(ctx, &ps, `SELECT id, rates_id, name, days, start_time, end_time, dates, timezone FROM rate_periods`); err != nil {
		return nil, err
	}
	if len(ps) == 0 {
		return nil, nil
	}
	var cs []periodCostRow
	if err := q.Select(ctx, &cs, `SELECT period_id, rates_id, direction_id, priority, cost FROM rate_period_costs`); err != nil {
		return nil, err
	}
	sortPeriods(ps)
	rank := make(map[int64]int, len(ps))
	byID := make(map[int64]periodRow, len(ps))
	for i, p := range ps {
		rank[p.ID], byID[p.ID] = i, p
	}
	slices.SortStableFunc(cs, func(a, b periodCostRow) int { return cmp.Compare(rank[a.PeriodID], rank[b.PeriodID]) })
	out := map[entryKey]*rating.Periods{}
	for _, c := range cs {
		p := byID[c.PeriodID]
		k := entryKey{c.RatesID, c.Direction, c.Priority}
		e := out[k]
		if e == nil {
			e = &rating.Periods{Zone: p.Timezone}
			out[k] = e
		}
		dates, _ := parseDates(p.Dates) // written by addRatePeriod
		e.List = append(e.List, rating.Period{Name: p.Name, Days: uint8(p.Days), From: p.Start, To: p.End, Dates: dates,
			Cost: c.Cost})
	}
	return out, nil
}

// startAt stamps the call's first second, now less back seconds, on its prices when any
// of them is priced by period; a plain call reads no clock here. The clock is the
// service's (Service.Now), the one bundles and maintenance read, so a test can move it.
func (s *Service) startAt(q *rating.Quote, chain []levelQuote, back int) {
	priced := q.Periods != nil
	for i := range chain {
		priced = priced || chain[i].price.Periods != nil
	}
	if !priced {
		return
	}
	start := s.now().Unix() - int64(back)
	q.Start = start
	for i := range chain {
		chain[i].price.Start = start
	}
}
