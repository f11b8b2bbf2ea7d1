package main

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/narayana/narayanad/billing"
	"github.com/narayana/narayanad/db"
)

func runInit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("init", stderr)
	dsn := dsnFlag(fs)
	user := fs.String("admin-user", "", "the master admin's username")
	password := fs.String("admin-password", "", "the master admin's password")
	apikey := fs.String("api-key", "", "the secret of the client key web")
	config := fs.String("config", "", "configuration file")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if *user == "" || *password == "" || *apikey == "" {
		return usagef("init needs --admin-user, --admin-password and --api-key")
	}
	cfg, err := loadConfig(*config)
	if err != nil {
		return err
	}
	if err := db.CreateDir(*dsn); err != nil {
		return err
	}
	d, err := db.Open(ctx, *dsn)
	if err != nil {
		return err
	}
	defer d.Close()
	// Before Bootstrap: a failure there would leave a schema without its master admin.
	if err := cfg.CheckCurrency(ctx, d); err != nil {
		return err
	}
	if err := billing.Bootstrap(ctx, d, cfg, *user, md5hex(*password), *apikey); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "initialised %s: master admin %q, client key web\n", db.Redact(*dsn), *user)
	return nil
}

// loadConfig reads the settings: defaults, then the file, then the environment
// (NARAYANA_<SETTING>); flags are applied over it by the commands that have them.
func loadConfig(path string) (billing.Config, error) {
	cfg := billing.DefaultConfig()
	if path != "" {
		if err := cfg.LoadConfigFile(path); err != nil {
			return cfg, err
		}
	}
	if err := cfg.ReadEnv(os.LookupEnv); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

func md5hex(s string) string {
	sum := md5.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// runMigrate brings an initialised database up to this binary's schema.
func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("migrate", stderr)
	dsn := dsnFlag(fs)
	if err := noArgs(fs, args); err != nil {
		return err
	}
	d, err := db.Open(ctx, *dsn)
	if err != nil {
		return err
	}
	defer d.Close()
	from, err := d.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if from == 0 {
		return fmt.Errorf("the database holds no narayanad schema: run `narayanad init` first")
	}
	if err := d.Migrate(ctx); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema version %d → %d\n", from, d.LatestVersion())
	return nil
}

// runConfigSample prints contrib/narayana.conf: every setting at its default.
func runConfigSample(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if err := noArgs(newFlagSet("config sample", stderr), args); err != nil {
		return err
	}
	_, err := io.WriteString(stdout, billing.SampleConfig())
	return err
}
