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
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// The imports and the exports are billing's (billing.ImportDirections, ImportRates,
// ImportDeck, ExportRates, ExportDirections, ExportCalls); the commands open the file and the database, and print.

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

// openInput opens the CSV file ("-" is stdin).
func openInput(path string) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(os.Stdin), nil
	}
	return os.Open(path)
}

// withProgress wraps an import's input so that reading it draws a progress bar on stderr
// when stderr is a terminal (by bytes of the file read; a spinner for stdin), and nothing
// otherwise. done clears the bar.
func withProgress(stderr io.Writer, what string, in io.Reader) (r io.Reader, done func()) {
	tty := terminal(stderr)
	if tty == nil {
		return in, func() {}
	}
	size := int64(-1)
	if f, ok := in.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
			size = st.Size()
		}
	}
	bar := progressbar.NewOptions64(size,
		progressbar.OptionSetWriter(tty),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish())
	pr := progressbar.NewReader(in, bar)
	return &pr, func() { bar.Finish() }
}

// terminal is stderr's file when it is a terminal, else nil.
func terminal(stderr io.Writer) *os.File {
	if c, ok := stderr.(*console); ok {
		stderr = c.Writer
	}
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return f
	}
	return nil
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
	var n int
	took, err := importFile(ctx, *dsn, files[0], "import directions", stderr, func(d *db.DB, r io.Reader) (err error) {
		n, err = billing.ImportDirections(ctx, d, r, nil)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %d directions from %s in %.2fs\n", n, files[0], took.Seconds())
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
	var n int
	took, err := importFile(ctx, *dsn, files[0], "import rates", stderr, func(d *db.DB, r io.Reader) (err error) {
		n, err = billing.ImportRates(ctx, d, *rates, *replace, r, nil)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %d entries of tariff %d from %s in %.2fs\n", n, *rates, files[0], took.Seconds())
	return nil
}

// runImportDeck is `narayanad import deck`: a carrier's rate deck into a tariff, through
// a route (billing.ImportDeck says how directions are made).
func runImportDeck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("import deck", stderr)
	dsn := dsnFlag(fs)
	rates := fs.Int64("rates", 0, "the tariff's id")
	route := fs.String("route", "", "the route the deck's prices go through: its name, or its id")
	priority := fs.Int("priority", 1, "the entries' priority (1 first; 2 and up: failover)")
	replace := fs.Bool("replace", false, "delete the tariff's other entries through this route")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 || *rates <= 0 || *route == "" {
		return usagef("import deck needs --rates ID, --route NAME and one FILE (columns prefix, description, rate)")
	}
	if *priority < 1 {
		return usagef("--priority: 1 or more")
	}
	var res billing.DeckResult
	took, err := importFile(ctx, *dsn, files[0], "import deck", stderr, func(d *db.DB, r io.Reader) (err error) {
		spec := billing.DeckSpec{RatesID: *rates, Route: *route, Priority: *priority, Replace: *replace}
		res, err = billing.ImportDeck(ctx, d, spec, r, nil)
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "imported %d prefixes of %d directions (%d new) into tariff %d from %s in %.2fs\n",
		res.Rows, res.Directions, res.NewDirections, *rates, files[0], took.Seconds())
	return nil
}

// importFile runs imp on the database at dsn and the file (or - for standard input),
// drawing what of it is read as a progress bar on stderr, and answers how long it took.
func importFile(ctx context.Context, dsn, file, what string, stderr io.Writer, imp func(*db.DB, io.Reader) error) (time.Duration, error) {
	d, err := openChecked(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer d.Close()
	in, err := openInput(file)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	start := time.Now()
	r, done := withProgress(stderr, what, in)
	err = imp(d, r)
	done()
	if err != nil {
		return 0, importError(file, err)
	}
	return time.Since(start), nil
}

// runExportDirections is `narayanad export directions`: every direction code as CSV on
// stdout, in the format import directions reads.
func runExportDirections(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("export directions", stderr)
	dsn := dsnFlag(fs)
	if err := noArgs(fs, args); err != nil {
		return err
	}
	d, err := openChecked(ctx, *dsn)
	if err != nil {
		return err
	}
	defer d.Close()
	return billing.ExportDirections(ctx, d, stdout)
}

// runExportCalls is `narayanad export calls`: the call records of a date range as CSV on
// stdout, streamed (billing.ExportCalls).
func runExportCalls(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("export calls", stderr)
	dsn := dsnFlag(fs)
	from := fs.String("from", "", "the first day (YYYY-MM-DD or YYYY-MM-DD HH:MM:SS, UTC)")
	to := fs.String("to", "", "the last day, included (YYYY-MM-DD or YYYY-MM-DD HH:MM:SS, UTC)")
	config := fs.String("config", "", "configuration file (for the system currency)")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if *from == "" || *to == "" {
		return usagef("export calls needs --from DATE and --to DATE")
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
	_, err = billing.ExportCalls(ctx, d, billing.CallsExport{From: *from, To: *to, Currency: cfg.Currency}, stdout)
	return err
}

// importError names the file and line of a bad row and says that nothing was applied.
func importError(path string, err error) error {
	var le *rating.LineError
	if errors.As(err, &le) {
		return fmt.Errorf("%s:%d: %v (nothing imported)", path, le.Line, le.Err)
	}
	return fmt.Errorf("%s: %w (nothing imported)", path, err)
}
