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

const bansUsage = `usage:
  narayanad bans list --db DSN
  narayanad bans unban --db DSN IP
  narayanad bans whitelist --db DSN IP`

// runBans shows and lifts bans from the command line: what an operator needs when the API
// itself refuses its address (one mistyped key bans the Asterisk's address).
func runBans(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%s", bansUsage)
	}
	switch args[0] {
	case "list":
		return runBansList(ctx, args[1:], stdout, stderr)
	case "unban", "whitelist":
		return runBansAddress(ctx, args[0], args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown bans command %q\n%s", args[0], bansUsage)
}

// openBans opens the database and its bans list.
func openBans(ctx context.Context, dsn string) (*keys.Bans, func() error, error) {
	d, err := openInitialised(ctx, dsn)
	if err != nil {
		return nil, nil, err
	}
	return keys.NewBans(d, 1), d.Close, nil
}

func runBansList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bans list", stderr)
	dsn := dsnFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := noArgs(fs); err != nil {
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

// runBansAddress lifts every ban of an address (unban) or exempts it from bans for good
// (whitelist).
func runBansAddress(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bans "+cmd, stderr)
	dsn := dsnFlag(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("bans %s needs one IP address (flags first)\n%s", cmd, bansUsage)
	}
	addr, err := netip.ParseAddr(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("bans %s: %q is not an IP address", cmd, fs.Arg(0))
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
