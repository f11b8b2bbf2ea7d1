package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"text/tabwriter"
	"time"

	"github.com/narayana/narayanad/keys"
)

// openBans opens the database and its bans list.
func openBans(ctx context.Context, dsn string) (*keys.Bans, func() error, error) {
	d, err := openChecked(ctx, dsn)
	if err != nil {
		return nil, nil, err
	}
	return keys.NewBans(d, 1), d.Close, nil
}

func runBansList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bans list", stderr)
	dsn := dsnFlag(fs)
	if err := noArgs(fs, args); err != nil {
		return err
	}
	bans, closeDB, err := openBans(ctx, *dsn)
	if err != nil {
		return err
	}
	defer closeDB()
	rows, err := bans.List(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tADDRESS\tSOURCE\tPERMANENT\tSINCE\tREASON")
	for _, b := range rows {
		permanent := "no"
		if b.Permanent == 1 {
			permanent = "yes"
		}
		since := time.Unix(b.CreatedAt, 0).UTC().Format(time.DateTime)
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", b.ID, b.Target, b.Source, permanent, since, b.Reason)
	}
	return w.Flush()
}

func runBansUnban(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runBansAddress(ctx, "unban", args, stdout, stderr)
}

func runBansWhitelist(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runBansAddress(ctx, "whitelist", args, stdout, stderr)
}

// runBansAddress lifts every ban of an address (unban) or exempts it from bans for good
// (whitelist).
func runBansAddress(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bans "+cmd, stderr)
	dsn := dsnFlag(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("bans %s needs one IP address", cmd)
	}
	addr, err := netip.ParseAddr(pos[0])
	if err != nil {
		return usagef("bans %s: %q is not an IP address", cmd, pos[0])
	}
	addr = addr.Unmap()
	bans, closeDB, err := openBans(ctx, *dsn)
	if err != nil {
		return err
	}
	defer closeDB()
	if cmd == "unban" {
		n, err := bans.Unban(ctx, addr)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%s is not banned", addr)
		}
		fmt.Fprintf(stdout, "lifted %d ban(s) of %s; running daemons let it in within 5 seconds\n", n, addr)
		return nil
	}
	white, err := bans.IsWhitelisted(ctx, addr)
	if err != nil {
		return err
	}
	if white {
		fmt.Fprintf(stdout, "%s is already whitelisted\n", addr)
		return nil
	}
	if err := bans.Add(ctx, keys.Whitelist, addr, "narayanad bans whitelist"); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "whitelisted %s: it is never banned; running daemons let it in within 5 seconds\n", addr)
	return nil
}
