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
	"syscall"
)

// Version is set at build time with -ldflags "-X main.Version=…".
var Version = "dev"

const usage = `narayanad: billing daemon for Asterisk softswitches

Usage:
  narayanad init --db DSN --admin-user U --admin-password P --api-key K
  narayanad serve [--db DSN] [--listen HOST:PORT] [--tls-listen HOST:PORT --tls-cert F --tls-key F]
                  [--config FILE] [--scripts DIR]
  narayanad sip-server add --db DSN --name REALM --address IP [--dns NAME]
                  [--ami HOST:PORT --ami-user U --ami-secret S]
  narayanad import directions --db DSN FILE.csv   (header id,code,direction,min_len,max_len; upsert by code)
  narayanad import rates --db DSN --rates ID [--replace] FILE.csv   (header direction,cost,route,priority)
  narayanad export rates --db DSN --rates ID      (the tariff's entries as CSV on stdout)
  narayanad key add --db DSN --name NAME --level N [--auth-by username|sip_extension|id]
                  [--source MASK] [--owner USER] [--default-user USER] [--key SECRET]
  narayanad key list --db DSN | key revoke --db DSN --name NAME
  narayanad bans list --db DSN | bans unban --db DSN IP | bans whitelist --db DSN IP
  narayanad migrate --db DSN   apply the schema migrations a newer binary brings
  narayanad demo --db DSN      create a demo database when there is none
  narayanad version

DSN is sqlite:PATH (default sqlite:narayana.db) or postgres://…; NARAYANA_DB and
NARAYANA_LISTEN stand in for --db and --listen.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "narayanad:", err)
		}
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return flag.ErrHelp
	}
	switch args[0] {
	case "init":
		return runInit(ctx, args[1:], stdout, stderr)
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "sip-server":
		if len(args) < 2 || args[1] != "add" {
			return fmt.Errorf("usage: narayanad sip-server add --db DSN --name REALM --address IP …")
		}
		return runSIPServerAdd(ctx, args[2:], stdout, stderr)
	case "import":
		return runImport(ctx, args[1:], stdout, stderr)
	case "export":
		return runExport(ctx, args[1:], stdout, stderr)
	case "key":
		return runKey(ctx, args[1:], stdout, stderr)
	case "bans":
		return runBans(ctx, args[1:], stdout, stderr)
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "migrate":
		return runMigrate(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "narayanad", Version)
		return nil
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return nil
	}
	return fmt.Errorf("unknown command %q (see narayanad help)", args[0])
}

// dsnFlag declares --db with NARAYANA_DB and the default DSN behind it.
func dsnFlag(fs *flag.FlagSet) *string {
	def := os.Getenv("NARAYANA_DB")
	if def == "" {
		def = "sqlite:narayana.db"
	}
	return fs.String("db", def, "database DSN: sqlite:PATH or postgres://…")
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("narayanad "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}
