package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/narayana/narayanad/billing"
)

// runMaintenance runs the periodic work once (billing.MaintainOnce), for cron beside or
// instead of the daemon's own schedule. Another runner at it is no failure: it says so
// and exits 0.
func runMaintenance(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("maintenance", stderr)
	dsn := dsnFlag(fs)
	config := fs.String("config", "", "configuration file (`name = value` lines): rates_source, smtp_*, operator_*")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*config)
	if err != nil {
		return err
	}
	d, err := openChecked(ctx, *dsn)
	if err != nil {
		return err
	}
	defer d.Close()
	log, logs := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	defer logs.Close()
	svc := billing.New(d, cfg, log)
	defer svc.Close()
	rep, mail, err := svc.MaintainOnce(ctx)
	if err != nil {
		return err
	}
	if rep.Skipped {
		fmt.Fprintf(stdout, "maintenance skipped: %s is running it\n", rep.Holder)
		return nil
	}
	fmt.Fprintf(stdout, "maintenance done: %d reservations released, %d DID rents, %d DIDs disabled, %d invoices expired, "+
		"%d rates, %d postpaid invoices, %d notices; mail sent %d, to retry %d, failed %d\n",
		rep.Reservations, rep.DIDRents, rep.DIDsDisabled, rep.InvoicesExpired, rep.Rates, rep.PostpaidInvoices,
		rep.Notices, mail.Sent, mail.Retry, mail.Failed)
	if len(rep.Errors) > 0 {
		fmt.Fprintf(stdout, "errors: %s\n", strings.Join(rep.Errors, "; "))
	}
	return nil
}
