// Package billing is the Narayana Billing API: the method table, the HTTP route in front
// of it, and the handlers with the domain rules they enforce.
package billing

import (
	"context"
	"log/slog"
	"time"

	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
)

// Service is the billing daemon's core: storage, the gate, settings and the method table.
type Service struct {
	DB        *db.DB
	Gate      *keys.Gate
	Passwords *keys.Passwords
	Config    Config
	Log       *slog.Logger
	Methods   Table
	// Now is the service's clock for its scheduled work (maintenance, mail, invoices):
	// time.Now unless a test moves it.
	Now func() time.Time

	rt    ratingRuntime // rating snapshot and call-processing background work (rating_load.go)
	holds holds         // the call path's accounts, mirrored in the group-commit writer (holds.go)

	ext   extState // AMI connections, Lua scripts and TTS (asterisk_methods.go, scripts.go)
	pins  pinGuard // wrong msgCallback PINs per SIP account (sms.go)
	sched schedule // the periodic work and the mail sender (maintenance.go, mail.go)
	// registrations limits the invite codes one address creates with registerRequest.
	registrations keys.Limiter
	// win extends the reservations of calls that can be cut (windows.go).
	win windowState

	metrics *metrics // GET /metrics (metrics.go)
}

// New wires a Service over an open, migrated database.
func New(d *db.DB, cfg Config, log *slog.Logger) *Service {
	if log == nil {
		log = slog.Default()
	}
	custom := map[string]bool{}
	for _, c := range cfg.CustomIdentities {
		custom[c] = true
	}
	pw := keys.NewPasswords(cfg.PasswordCost)
	s := &Service{
		DB:        d,
		Passwords: pw,
		Config:    cfg,
		Log:       log,
		Gate: &keys.Gate{
			Keys:             keys.NewKeys(d),
			Bans:             keys.NewBans(d, cfg.BanThreshold),
			Users:            keys.Users{DB: d},
			Passwords:        pw,
			CustomIdentities: custom,
			Directory:        keys.NewDirectory(d),
			Sessions:         &keys.Sessions{DB: d},
		},
		Methods: Table{},
		Now:     time.Now,
	}
	s.Gate.Bans.Log = log
	s.Gate.Sessions.Now = s.now // a test that moves the clock moves the tokens' expiry too
	s.metrics = newMetrics(s)
	// The call path's group commit on PostgreSQL locks its accounts first, in id order.
	d.SetBatchLock(accountLocks)
	s.registrations = keys.Limiter{Max: cfg.RegisterPerHour, Window: time.Hour}
	s.declareMethods()
	return s
}

// Start wires a Service and starts its background work (none yet beyond the caches);
// Close stops it.
func Start(ctx context.Context, d *db.DB, cfg Config, log *slog.Logger) (*Service, error) {
	s := New(d, cfg, log)
	if err := s.startCallWork(ctx); err != nil {
		return nil, err
	}
	if err := s.startScripts(); err != nil {
		s.Close()
		return nil, err
	}
	s.startSchedule(ctx)
	s.startWindows(ctx)
	return s, nil
}

// Close stops the service's background work.
func (s *Service) Close() error {
	s.stopWindows()
	s.stopSchedule()
	s.stopCallWork()
	s.closeExtensions()
	return nil
}

// now reads the service's clock.
func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}
