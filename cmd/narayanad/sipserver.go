package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/narayana/narayanad/db"
)

func runSIPServerAdd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sip-server add", stderr)
	dsn := dsnFlag(fs)
	name := fs.String("name", "", "the server's name: its SIP realm")
	address := fs.String("address", "", "the server's IP address")
	dns := fs.String("dns", "", "the server's DNS name")
	ami := fs.String("ami", "", "AMI address HOST:PORT")
	amiUser := fs.String("ami-user", "", "AMI username")
	amiSecret := fs.String("ami-secret", "", "AMI secret")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if *name == "" || *address == "" {
		return usagef("sip-server add needs --name and --address")
	}
	if net.ParseIP(*address) == nil {
		return fmt.Errorf("--address: %q is not an IP address", *address)
	}
	if *ami != "" {
		if _, _, err := net.SplitHostPort(*ami); err != nil {
			return fmt.Errorf("--ami: want HOST:PORT: %v", err)
		}
	}
	d, err := db.Open(ctx, *dsn)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.CheckSchema(ctx); err != nil {
		return err
	}
	_, err = d.Q().Exec(ctx, `INSERT INTO sip_servers (name, address, dns, ami_address, ami_user, ami_secret) VALUES (?, ?, ?, ?, ?, ?)`,
		*name, *address, *dns, *ami, *amiUser, *amiSecret)
	if errors.Is(err, db.ErrConflict) {
		return fmt.Errorf("a SIP server named %q or at %s exists", *name, *address)
	} else if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added SIP server %s at %s\n", *name, *address)
	return nil
}
