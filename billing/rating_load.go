package billing

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/narayana/narayanad/billing/rating"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/money"
)

// ratingCheckEvery bounds how often the call path asks the database whether the rating
// version moved (a change made by another daemon on the same database).
const ratingCheckEvery = time.Second

// ratingRuntime holds the in-memory rating snapshot and the background work of call
// processing. Its zero value is ready: the first call loads the snapshot.
type ratingRuntime struct {
	live    rating.Live
	mu      sync.Mutex   // serialises reloads
	version atomic.Int64 // the rating_version the published snapshot was built from; 0 = none
	checked atomic.Int64 // UnixNano of the last version check
	loaded  atomic.Int64 // UnixNano when the published snapshot was built (metrics)
	every   time.Duration

	// On PostgreSQL a LISTEN connection announces other daemons' rating changes: while it
	// is up the version is not polled, and an announcement reloads at once (kick).
	listener  *db.Listener
	listening atomic.Bool
	kick      chan struct{}

	stop context.CancelFunc
	done chan struct{}
}

// rating returns the current snapshot, loading it on first use and reloading it when the
// database's rating_version has moved (checked at most every ratingCheckEvery).
func (s *Service) rating(ctx context.Context) (*rating.Snapshot, error) {
	rt := &s.rt
	if rt.version.Load() == 0 {
		if err := s.reloadRating(ctx, false); err != nil {
			return nil, err
		}
		return rt.live.Load(), nil
	}
	every := rt.every
	if every == 0 {
		every = ratingCheckEvery
	}
	now := time.Now().UnixNano()
	last := rt.checked.Load()
	if !rt.listening.Load() && now-last >= int64(every) && rt.checked.CompareAndSwap(last, now) {
		if err := s.reloadRating(ctx, false); err != nil {
			// Keep serving the snapshot we have; the next check retries.
			s.Log.Error("rating: version check failed", "err", err)
		}
	}
	return rt.live.Load(), nil
}

// ratingChanged reloads the rating snapshot now. Handlers that changed directions,
// tariffs, entries, routes or bill types call it after their transaction committed (having
// called BumpRatingVersion inside it). Errors are logged: the periodic check retries.
func (s *Service) ratingChanged(ctx context.Context) {
	if err := s.reloadRating(ctx, true); err != nil {
		s.Log.Error("rating: reload failed", "err", err)
	}
}

// reloadRating rebuilds the snapshot when the database's version differs from the loaded
// one (or always, when force is set).
func (s *Service) reloadRating(ctx context.Context, force bool) error {
	rt := &s.rt
	rt.mu.Lock()
	defer rt.mu.Unlock()
	var v int64
	if err := s.DB.Q().Get(ctx, &v, `SELECT version FROM rating_version WHERE id = 1`); err != nil {
		return fmt.Errorf("rating version: %w", err)
	}
	rt.checked.Store(time.Now().UnixNano())
	if !force && v == rt.version.Load() {
		return nil
	}
	// The version is read before the rows: a change committed while we load moves the
	// version again, so the next check reloads.
	snap, err := s.loadRating(ctx)
	if err != nil {
		return err
	}
	rt.live.Store(snap)
	rt.version.Store(max(v, 1))
	rt.loaded.Store(time.Now().UnixNano())
	s.Log.Debug("rating: snapshot loaded", "version", v, "directions", snap.Index.Len(), "tariffs", len(snap.Tariffs))
	return nil
}

// loadRating reads directions, bill types, routes, tariffs and their entries.
func (s *Service) loadRating(ctx context.Context) (*rating.Snapshot, error) {
	b := rating.NewBuilder()

	// Directions are streamed: a million rows should not become a million structs.
	var n int
	if err := s.DB.Q().Get(ctx, &n, `SELECT COUNT(*) FROM directions`); err != nil {
		return nil, err
	}
	ib := rating.NewIndexBuilder(n)
	rows, err := s.DB.QueryContext(ctx, `SELECT id, code, name, min_len, max_len FROM directions`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var d rating.Direction
		if err := rows.Scan(&d.ID, &d.Code, &d.Name, &d.MinLen, &d.MaxLen); err != nil {
			rows.Close()
			return nil, err
		}
		ib.Add(d)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	b.SetIndex(ib.Build())

	var bts []struct {
		Name          string `db:"name"`
		FreeThreshold int    `db:"free_threshold"`
		Step          int    `db:"step"`
		FirstStep     int    `db:"first_step"`
	}
	if err := s.DB.Q().Select(ctx, &bts, `SELECT name, free_threshold, step, first_step FROM bill_types`); err != nil {
		return nil, err
	}
	for _, bt := range bts {
		b.SetBillType(rating.BillType{Name: bt.Name, FreeThreshold: bt.FreeThreshold, Step: bt.Step, FirstStep: bt.FirstStep})
	}

	var routes []struct {
		ID      int64  `db:"id"`
		Name    string `db:"name"`
		Prefix  string `db:"prefix"`
		Enabled int    `db:"enabled"`
	}
	// Calls never take an SMS route: an entry on one is skipped like a disabled route.
	if err := s.DB.Q().Select(ctx, &routes, `SELECT id, name, prefix, enabled FROM routes WHERE type <> 'sms'`); err != nil {
		return nil, err
	}
	for _, r := range routes {
		b.SetRoute(rating.Route{ID: r.ID, Name: r.Name, Prefix: r.Prefix, Enabled: r.Enabled != 0})
	}

	var tariffs []struct {
		ID            int64       `db:"id"`
		Name          string      `db:"name"`
		BillType      string      `db:"bill_type"`
		IsOption      int         `db:"is_option"`
		SwitchPrice   money.Micro `db:"switch_price"`
		Multiplier    money.Micro `db:"multiplier"`
		DIDMultiplier money.Micro `db:"did_multiplier"`
	}
	if err := s.DB.Q().Select(ctx, &tariffs, `SELECT id, name, bill_type, is_option, switch_price, multiplier,
		did_multiplier FROM rates`); err != nil {
		return nil, err
	}
	for _, t := range tariffs {
		b.SetTariff(rating.Tariff{ID: t.ID, Name: t.Name, BillType: t.BillType, IsOption: t.IsOption != 0,
			SwitchPrice: t.SwitchPrice, Multiplier: t.Multiplier, DIDMultiplier: t.DIDMultiplier})
	}

	periods, err := loadPeriods(ctx, s.DB.Q()) // prices by period (periods.go); nil when none
	if err != nil {
		return nil, err
	}
	erows, err := s.DB.QueryContext(ctx, `SELECT rates_id, direction_id, priority, cost, route_id FROM rate_entries`)
	if err != nil {
		return nil, err
	}
	defer erows.Close()
	for erows.Next() {
		var tid int64
		var e rating.Entry
		if err := erows.Scan(&tid, &e.DirectionID, &e.Priority, &e.Cost, &e.RouteID); err != nil {
			return nil, err
		}
		e.Periods = periods[entryKey{tid, e.DirectionID, e.Priority}]
		if err := b.AddEntry(tid, e); err != nil {
			return nil, err // a foreign key guarantees the tariff; be loud if not
		}
	}
	if err := erows.Err(); err != nil {
		return nil, err
	}
	return b.Build(), nil
}

// startCallWork starts the background work of call processing: the rating version check
// and the sweep of reservations that outlived their call.
func (s *Service) startCallWork(ctx context.Context) error {
	if err := s.reloadRating(ctx, true); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.rt.stop, s.rt.done = cancel, make(chan struct{})
	s.rt.kick = make(chan struct{}, 1)
	kick := func() {
		select {
		case s.rt.kick <- struct{}{}:
		default: // a reload is already due
		}
	}
	s.rt.listener = s.DB.Listen(func(what string) {
		switch what {
		case "directory":
			s.Gate.Directory.Changed()
		case "rating":
			kick()
		}
	}, func(up bool) {
		s.Gate.Directory.Listening(up)
		s.rt.listening.Store(up)
		// Up: changes made while it was down were not announced; down: poll from now on.
		kick()
		if up {
			s.Log.Info("listening for directory and rating changes (LISTEN " + db.ChangesChannel + ")")
		} else {
			s.Log.Warn("the LISTEN connection dropped: polling for directory and rating changes until it is back")
		}
	})
	go func() {
		defer close(s.rt.done)
		check := time.NewTicker(ratingCheckEvery)
		defer check.Stop()
		sweep := time.NewTicker(30 * time.Second)
		defer sweep.Stop()
		failed := false
		for {
			select {
			case <-ctx.Done():
				return
			case <-check.C:
				if s.rt.listening.Load() && !failed {
					continue // announced instead
				}
				err := s.reloadRating(ctx, false)
				if failed = err != nil; failed && ctx.Err() == nil {
					s.Log.Error("rating: version check failed", "err", err)
				}
			case <-s.rt.kick:
				err := s.reloadRating(ctx, false)
				// A failed reload is retried on the next tick, announced or not.
				if failed = err != nil; failed && ctx.Err() == nil {
					s.Log.Error("rating: reload on notification failed", "err", err)
				}
			case <-sweep.C:
				if _, err := s.sweepReservations(ctx, s.DB.Q(), 0); err != nil && ctx.Err() == nil {
					s.Log.Error("reservations: sweep failed", "err", err)
				}
			}
		}
	}()
	return nil
}

// stopCallWork stops what startCallWork started and waits for it.
func (s *Service) stopCallWork() {
	if s.rt.stop != nil {
		s.rt.listener.Close()
		s.rt.stop()
		<-s.rt.done
		s.rt.stop = nil
	}
}
