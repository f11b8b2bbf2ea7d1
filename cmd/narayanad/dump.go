package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/narayana/narayanad/billing"
	"github.com/narayana/narayanad/db"
)

// dump and load move a whole installation between databases of either dialect. They are
// not `export all` / `import all`: the export and import groups move one kind of rows
// (directions, a tariff, calls) in and out of a database that stays in service, and
// import upserts into what is there; a load replaces a whole database and refuses one
// that holds data, which is a different promise and deserves a different word.

// runDump writes the whole database to FILE (gzip'd JSON lines; see db.Dump).
func runDump(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("dump", stderr)
	dsn := dsnFlag(fs)
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return usagef("dump needs one FILE to write")
	}
	d, err := openChecked(ctx, *dsn)
	if err != nil {
		return err
	}
	defer d.Close()
	// Written beside FILE and renamed over it once complete: FILE is never half a dump.
	tmp, err := os.CreateTemp(filepath.Dir(files[0]), filepath.Base(files[0])+".partial-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	st, err := d.Dump(ctx, tmp)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil { // it holds password hashes and keys
		return err
	}
	if err := os.Rename(tmp.Name(), files[0]); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "dumped %s (schema %d) to %s: %s in %s\n", db.Redact(*dsn), st.Schema, files[0],
		rowCounts(st), st.Took.Round(time.Millisecond))
	return nil
}

// runLoad reads a dump into an empty database (or, with --force, one that holds no
// money history yet), then checks that every balance equals its ledger.
func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("load", stderr)
	dsn := dsnFlag(fs)
	force := fs.Bool("force", false, "replace a database that holds a schema but no ledger rows (as `narayanad init` leaves it)")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return usagef("load needs one dump FILE")
	}
	f, err := os.Open(files[0])
	if err != nil {
		return err
	}
	defer f.Close()
	if err := db.CreateDir(*dsn); err != nil {
		return err
	}
	d, err := db.Open(ctx, *dsn)
	if err != nil {
		return err
	}
	defer d.Close()
	st, err := d.Load(ctx, f, db.LoadOptions{Force: *force})
	if err != nil {
		return err
	}
	accounts, bad, orphans, err := billing.CheckLedger(ctx, d)
	if err != nil {
		return err
	}
	if bad > 0 {
		return fmt.Errorf("loaded, but %d of %d accounts have a balance that is not the sum of their ledger: the dump's database was already inconsistent", bad, accounts)
	}
	if orphans > 0 {
		return fmt.Errorf("loaded, but %d ledger rows name no account: the dump's database was already inconsistent", orphans)
	}
	fmt.Fprintf(stdout, "loaded %s into %s: %s in %s; %d accounts, every balance equals its ledger\n", files[0], db.Redact(*dsn),
		rowCounts(st), st.Took.Round(time.Millisecond), accounts)
	return nil
}

// rowCounts says "N rows (users 3, ledger 10, …)", the tables that have rows only.
func rowCounts(st db.DumpStats) string {
	var parts []string
	for t, n := range st.Rows {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", t, n))
		}
	}
	sort.Strings(parts)
	return fmt.Sprintf("%d rows (%s)", st.Total(), strings.Join(parts, ", "))
}
