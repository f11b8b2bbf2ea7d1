package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/narayana/narayanad/billing"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
)

// The key commands create, list and revoke API keys from the command line, so that a fresh
// install gets its Asterisk's key (level 50) without SQL. The operator at the database is
// above the API's key rule: any level, any owner.

func runKeyAdd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("key add", stderr)
	dsn := dsnFlag(fs)
	var spec billing.KeySpec
	fs.StringVar(&spec.Name, "name", "", "the key's name (an Asterisk's key is named after its realm)")
	level := fs.Int("level", -1, "access level 0-99: 0 a client key, 50 an Asterisk, 90+ any user, 95 a message gateway")
	fs.StringVar(&spec.AuthBy, "auth-by", "username", "how `login` names a user: username, sip_extension or id")
	fs.StringVar(&spec.Source, "source", "*", "addresses allowed to use the key: IPs, 10.0.0.* masks, CIDRs, or *")
	fs.StringVar(&spec.Owner, "owner", "", "the key's owner (default: the master admin)")
	fs.StringVar(&spec.DefaultUser, "default-user", "", "the user the key acts as without `login`")
	fs.StringVar(&spec.APIKey, "key", "", "the secret (default: 32 random hex digits)")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if spec.Name == "" || *level == -1 {
		return usagef("key add needs --name and --level")
	}
	spec.Level = *level
	d, err := openChecked(ctx, *dsn)
	if err != nil {
		return err
	}
	defer d.Close()
	secret, err := billing.CreateKey(ctx, d.Q(), spec, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "created key %q: level %d, auth_by %s, source %s\n", spec.Name, spec.Level, spec.AuthBy, spec.Source)
	fmt.Fprintln(stdout, secret)
	return nil
}

func runKeyList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("key list", stderr)
	dsn := dsnFlag(fs)
	if err := noArgs(fs, args); err != nil {
		return err
	}
	d, err := openChecked(ctx, *dsn)
	if err != nil {
		return err
	}
	defer d.Close()
	all, err := keys.NewKeys(d).List(ctx)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tLEVEL\tAUTH_BY\tSOURCE\tENABLED\tKEY")
	for _, k := range all {
		state := "yes"
		switch {
		case k.Revoked == 1:
			state = "revoked"
		case k.Enabled != 1:
			state = "no"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", k.Name, k.AccessLevel, k.AuthBy, k.Source, state, keys.Redact(k.APIKey))
	}
	return w.Flush()
}

func runKeyRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("key revoke", stderr)
	dsn := dsnFlag(fs)
	name := fs.String("name", "", "the key to revoke")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if *name == "" {
		return usagef("key revoke needs --name")
	}
	d, err := openChecked(ctx, *dsn)
	if err != nil {
		return err
	}
	defer d.Close()
	ks := keys.NewKeys(d)
	k, err := ks.ByName(ctx, d.Q(), *name)
	if db.IsNotFound(err) {
		return fmt.Errorf("no key named %q", *name)
	} else if err != nil {
		return err
	}
	if k.Revoked == 1 {
		fmt.Fprintf(stdout, "key %q was already revoked\n", *name)
		return nil
	}
	if err := ks.Revoke(ctx, k.ID); err != nil {
		return err
	}
	// A running daemon keeps keys in a cache for 5 seconds (keys.NewKeys).
	fmt.Fprintf(stdout, "revoked key %q; running daemons refuse it within 5 seconds\n", *name)
	return nil
}
