package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/narayana/narayanad/billing"
	"github.com/narayana/narayanad/billing/rating"
	"github.com/narayana/narayanad/db"
)

// progressEvery is how many rows pass between two progress lines on a terminal.
const progressEvery = 100_000

// The imports and the export are billing's (billing.ImportDirections, ImportRates,
// ExportRates); the commands open the file and the database, and print.

// runExportRates is `narayanad export rates --rates ID`: the tariff's entries as CSV on stdout.
func runExportRates(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("export rates", stderr)
	dsn := dsnFlag(fs)
	rates := fs.Int64("rates", 0, "the tariff's id")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if *rates <= 0 {
		return usagef("export rates needs --rates ID")
	}
	d, err := openChecked(ctx, *dsn)
	if err != nil {
		return err
	}
	defer d.Close()
	return billing.ExportRates(ctx, d, *rates, stdout)
}

// parseInterspersed parses flags that may come before or after the positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func openChecked(ctx context.Context, dsn string) (*db.DB, error) {
	d, err := db.Open(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if err := d.CheckSchema(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// openInput opens the CSV file ("-" is stdin).
func openInput(path string) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(os.Stdin), nil
	}
	return os.Open(path)
}

// progress prints a running count to stderr when stderr is a terminal.
type progress struct {
	w     io.Writer
	on    bool
	what  string
	start time.Time
}

func newProgress(stderr io.Writer, what string) *progress {
	p := &progress{w: stderr, what: what, start: time.Now()}
	if f, ok := stderr.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.on = true
		}
	}
	return p
}

func (p *progress) row(n int) {
	if p.on && n%progressEvery == 0 {
		fmt.Fprintf(p.w, "\r%s: %d rows (%.1fs)", p.what, n, time.Since(p.start).Seconds())
	}
}

func (p *progress) done() {
	if p.on {
		fmt.Fprint(p.w, "\r\033[K")
	}
}

func runImportDirections(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import directions", stderr)
	dsn := dsnFlag(fs)
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return usagef("import directions needs one FILE.csv (header %s)", strings.Join(rating.DirectionsHeader, ","))
	}
	d, err := openChecked(ctx, *dsn)
	if err != nil {
		return err
	}
	defer d.Close()
	in, err := openInput(files[0])
	if err != nil {
		return err
	}
	defer in.Close()
	start := time.Now()
	p := newProgress(stderr, "import directions")
	n, err := billing.ImportDirections(ctx, d, in, p.row)
	p.done()
	if err != nil {
		return importError(files[0], err)
	}
	fmt.Fprintf(stdout, "imported %d directions from %s in %.2fs\n", n, files[0], time.Since(start).Seconds())
	return nil
}

func runImportRates(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import rates", stderr)
	dsn := dsnFlag(fs)
	rates := fs.Int64("rates", 0, "the tariff's id")
	replace := fs.Bool("replace", false, "delete the tariff's entries first (default: upsert by direction and priority)")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 || *rates <= 0 {
		return usagef("import rates needs --rates ID and one FILE.csv (header %s)", strings.Join(rating.RateEntriesHeader, ","))
	}
	d, err := openChecked(ctx, *dsn)
	if err != nil {
		return err
	}
	defer d.Close()
	in, err := openInput(files[0])
	if err != nil {
		return err
	}
	defer in.Close()
	start := time.Now()
	p := newProgress(stderr, "import rates")
	n, err := billing.ImportRates(ctx, d, *rates, *replace, in, p.row)
	p.done()
	if err != nil {
		return importError(files[0], err)
	}
	fmt.Fprintf(stdout, "imported %d entries of tariff %d from %s in %.2fs\n", n, *rates, files[0], time.Since(start).Seconds())
	return nil
}

// importError names the file and line of a bad row and says that nothing was applied.
func importError(path string, err error) error {
	var le *rating.LineError
	if errors.As(err, &le) {
		return fmt.Errorf("%s:%d: %v (nothing imported)", path, le.Line, le.Err)
	}
	return fmt.Errorf("%s: %w (nothing imported)", path, err)
}
