package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/narayana/narayanad/db"
)

// runBackup copies a SQLite database, while daemons serve it, to FILE.
func runBackup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", stderr)
	dsn := dsnFlag(fs)
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return usagef("backup needs one FILE to write")
	}
	st, err := db.Backup(ctx, *dsn, files[0])
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backed up %s to %s: %d bytes in %s\n", db.Redact(*dsn), files[0], st.Bytes, st.Took.Round(time.Millisecond))
	return nil
}

// runRestore replaces a SQLite database with a backup.
func runRestore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("restore", stderr)
	dsn := dsnFlag(fs)
	force := fs.Bool("force", false, "replace an initialised database (stop the daemons using it first)")
	files, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(files) != 1 {
		return usagef("restore needs one backup FILE")
	}
	if err := db.Restore(ctx, files[0], *dsn, *force); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restored %s from %s\n", db.Redact(*dsn), files[0])
	return nil
}

// runHealthcheck asks a daemon's /healthz: the container's HEALTHCHECK, which has no curl.
func runHealthcheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("healthcheck", stderr)
	url := fs.String("url", "", "the URL to ask (default http://LISTEN/healthz, LISTEN from NARAYANA_LISTEN, else 127.0.0.1:8080)")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if *url == "" {
		addr := os.Getenv("NARAYANA_LISTEN")
		if addr == "" {
			addr = "127.0.0.1:8080"
		}
		if strings.HasPrefix(addr, "0.0.0.0:") || strings.HasPrefix(addr, ":") {
			addr = "127.0.0.1:" + addr[strings.LastIndex(addr, ":")+1:]
		}
		*url = "http://" + addr + "/healthz"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", *url, resp.Status)
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}
