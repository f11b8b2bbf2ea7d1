// Command narayanad is the Narayana billing daemon: `init` creates a database, `serve`
// answers the API, and the other subcommands administer what the API does not cover.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/narayana/narayanad/db"
)

// Version is set at build time with -ldflags "-X main.Version=…".
var Version = "dev"

// command is one subcommand. A name of two words ("import rates") is a subcommand of a
// group ("import"); the group itself is no row, it is what its rows' names start with.
type command struct {
	name     string
	summary  string // one line, in the list of commands
	synopsis string // the arguments after `narayanad <name>`
	run      func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is every subcommand, in the order `narayanad --help` lists them. It is filled
// in init() because the run functions read it back through newFlagSet.
var commands []command

func init() {
	commands = []command{
		{"init", "create the schema, the master admin and the client key web",
			"--db DSN --admin-user U --admin-password P --api-key K [--config FILE]", runInit},
		{"serve", "answer the API until SIGINT or SIGTERM",
			"[--db DSN] [--listen HOST:PORT] [--tls-listen HOST:PORT --tls-cert FILE --tls-key FILE] [--config FILE] [--scripts DIR]", runServe},
		{"sip-server add", "register an Asterisk: its realm, address and AMI access",
			"--db DSN --name REALM --address IP [--dns NAME] [--ami HOST:PORT --ami-user U --ami-secret S]", runSIPServerAdd},
		{"import directions", "upsert directions by code from a CSV file (header id,code,direction,min_len,max_len)",
			"--db DSN FILE.csv", runImportDirections},
		{"import rates", "upsert a tariff's entries from a CSV file (header direction,cost,route,priority)",
			"--db DSN --rates ID [--replace] FILE.csv", runImportRates},
		{"import deck", "apply a carrier's rate deck (prefix;description;rate) to a tariff, creating directions",
			"--db DSN --rates ID --route NAME [--priority N] [--replace] FILE", runImportDeck},
		{"export rates", "write a tariff's entries as CSV on stdout",
			"--db DSN --rates ID", runExportRates},
		{"export directions", "write every direction code as CSV on stdout (what import directions reads)",
			"--db DSN", runExportDirections},
		{"export calls", "write the call records of a date range as CSV on stdout (getLogs' fields, streamed)",
			"--db DSN --from DATE --to DATE [--config FILE]", runExportCalls},
		{"key add", "create an API key and print its secret on the last line",
			"--db DSN --name NAME --level N [--auth-by username|sip_extension|id] [--source MASK] [--owner USER] [--default-user USER] [--key SECRET]", runKeyAdd},
		{"key list", "list the API keys (never a secret in full)", "--db DSN", runKeyList},
		{"key revoke", "revoke an API key", "--db DSN --name NAME", runKeyRevoke},
		{"bans list", "list the banned and whitelisted addresses", "--db DSN", runBansList},
		{"bans unban", "lift every ban of an address", "--db DSN IP", runBansUnban},
		{"bans whitelist", "never ban an address", "--db DSN IP", runBansWhitelist},
		{"maintenance", "run the periodic work once (renewals, invoices, rates, notices, mail), for cron",
			"[--db DSN] [--config FILE]", runMaintenance},
		{"migrate", "apply the schema migrations a newer binary brings",
			"--db DSN", runMigrate},
		{"backup", "copy a SQLite database to FILE while daemons serve it (PostgreSQL: pg_dump)",
			"--db DSN FILE", runBackup},
		{"restore", "replace a SQLite database with a backup (--force over an initialised one)",
			"--db DSN [--force] FILE", runRestore},
		{"dump", "write the whole database to FILE, for load into SQLite or PostgreSQL (gzip'd JSON lines)",
			"--db DSN FILE", runDump},
		{"load", "read a dump into an empty database (--force: one with no ledger rows), then check the money",
			"--db DSN [--force] FILE", runLoad},
		{"healthcheck", "ask a running daemon's /healthz; exit 0 when it answers 200 (for containers)",
			"[--url URL]", runHealthcheck},
		{"demo", "create a demo database when there is none, and print how to query it",
			"[--db DSN] [--listen HOST:PORT]", runDemo},
		{"config sample", "print a configuration file with every setting at its default",
			"", runConfigSample},
		{"version", "print the version", "", runVersion},
	}
}

const about = `narayanad: billing daemon for Asterisk softswitches`

const dsnHelp = `DSN is sqlite:PATH (default sqlite:narayana.db) or postgres://…; NARAYANA_DB and
NARAYANA_LISTEN stand in for --db and --listen.`

// Exit statuses: a usage error is 2, as with flag.ExitOnError; any other failure is 1.
const (
	exitFailure = 1
	exitUsage   = 2
)

// exitError ends the process with its status; what went wrong is already printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

var errUsage = exitError{exitUsage}

// usageError is a command's refusal of its arguments: run prints it with the command's
// usage and exits 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return usageError{fmt.Sprintf(format, a...)} }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(exitStatus(run(ctx, os.Args[1:], os.Stdout, os.Stderr), os.Stderr))
}

// exitStatus prints a failure that is not yet printed and gives the process's status.
func exitStatus(err error, stderr io.Writer) int {
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	}
	fmt.Fprintln(stderr, "narayanad:", err)
	return exitFailure
}

// run runs the subcommand args name. Help that was asked for goes to stdout and is a
// success (nil); a usage error prints the usage on stderr and returns errUsage.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		printCommands(stderr, "")
		return errUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		printCommands(stdout, "")
		return nil
	case "-v", "--version":
		return runVersion(ctx, nil, stdout, stderr)
	}
	if isGroup(name) {
		if len(rest) == 0 {
			printCommands(stderr, name)
			return errUsage
		}
		if isHelp(rest[0]) {
			printCommands(stdout, name)
			return nil
		}
		name, rest = name+" "+rest[0], rest[1:]
	}
	c := lookup(name)
	if c == nil {
		fmt.Fprintf(stderr, "narayanad: unknown command %q\n\n", name)
		group, _, _ := strings.Cut(name, " ")
		if !isGroup(group) {
			group = ""
		}
		printCommands(stderr, group)
		return errUsage
	}
	con := &console{Writer: stderr, stdout: stdout}
	err := c.run(ctx, rest, stdout, con)
	var ue usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		c.printUsage(stdout, con.fs)
		return nil
	case con.refused || errors.As(err, &ue):
		fmt.Fprintf(stderr, "narayanad %s: %v\n\n", c.name, err)
		c.printUsage(stderr, con.fs)
		return errUsage
	}
	return err
}

func isHelp(arg string) bool {
	switch arg {
	case "help", "-h", "-help", "--help":
		return true
	}
	return false
}

func lookup(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

func isGroup(name string) bool {
	for _, c := range commands {
		if strings.HasPrefix(c.name, name+" ") {
			return true
		}
	}
	return false
}

// printCommands lists the commands, or those of one group.
func printCommands(w io.Writer, group string) {
	if group == "" {
		fmt.Fprintf(w, "%s\n\nUsage: narayanad COMMAND [FLAGS] [ARGS]\n\nCommands:\n", about)
	} else {
		fmt.Fprintf(w, "Usage: narayanad %s SUBCOMMAND [FLAGS] [ARGS]\n\nSubcommands:\n", group)
	}
	for _, c := range commands {
		if group == "" || strings.HasPrefix(c.name, group+" ") {
			fmt.Fprintf(w, "  %-18s %s\n", c.name, c.summary)
		}
	}
	fmt.Fprintf(w, "\n`narayanad COMMAND --help` shows a command's flags.\n%s\n", dsnHelp)
}

// printUsage prints the command's synopsis, summary and flags (fs may be nil: none).
func (c *command) printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: narayanad %s %s\n\n%s%s.\n", c.name, c.synopsis, strings.ToUpper(c.summary[:1]), c.summary[1:])
	if fs == nil {
		return
	}
	var b strings.Builder
	fs.VisitAll(func(f *flag.Flag) {
		fmt.Fprintf(&b, "  --%s", f.Name)
		if v := valueName(f); v != "" {
			fmt.Fprintf(&b, " %s", v)
		}
		fmt.Fprintf(&b, "\n        %s", f.Usage)
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			fmt.Fprintf(&b, " (default %s)", f.DefValue)
		}
		b.WriteString("\n")
	})
	if b.Len() > 0 {
		fmt.Fprintf(w, "\nFlags:\n%s", b.String())
	}
}

// valueName names a flag's value by its type. (flag.UnquoteUsage would take a
// backquoted word of the usage text instead, which garbles texts that quote a name.)
func valueName(f *flag.Flag) string {
	if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
		return ""
	}
	if _, ok := f.Value.(*dsnValue); ok {
		return "DSN"
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return "VALUE"
	}
	switch g.Get().(type) {
	case int, int64, uint, uint64:
		return "N"
	case float64:
		return "NUMBER"
	case time.Duration:
		return "DURATION"
	}
	return "TEXT"
}

// console is the stderr run hands a command: writes go to stderr. newFlagSet leaves the
// command's flag set here, so that run prints the usage from it, on stdout for --help and
// on stderr, with exit status 2, when the flag set refused the arguments.
type console struct {
	io.Writer // stderr
	stdout    io.Writer
	fs        *flag.FlagSet
	refused   bool
}

// newFlagSet makes a command's flag set. It prints nothing itself: run prints the error
// and the usage once the command returns (see console).
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("narayanad "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if con, ok := stderr.(*console); ok {
		con.fs = fs
		fs.Usage = func() { con.refused = true }
	}
	return fs
}

// openChecked opens the database at dsn and checks that it holds this binary's schema:
// what every command but init, migrate and demo starts with.
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

// dsnFlag declares --db with NARAYANA_DB and the default DSN behind it. Usage shows the
// DSN without its password.
func dsnFlag(fs *flag.FlagSet) *string {
	v := &dsnValue{dsn: os.Getenv("NARAYANA_DB")}
	if v.dsn == "" {
		v.dsn = db.DefaultDSN
	}
	fs.Var(v, "db", "database: sqlite:PATH or postgres://…")
	return &v.dsn
}

type dsnValue struct{ dsn string }

func (v *dsnValue) String() string     { return db.Redact(v.dsn) }
func (v *dsnValue) Set(s string) error { v.dsn = s; return nil }
func (v *dsnValue) Get() any           { return v.dsn }

// noArgs parses a command that takes flags only.
func noArgs(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected argument %q", fs.Arg(0))
	}
	return nil
}

func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if err := noArgs(newFlagSet("version", stderr), args); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "narayanad", Version)
	return nil
}
