package main

import (
	"context"
	"fmt"
	"io"

	"github.com/narayana/narayanad/billing"
)

func runSIPServerAdd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sip-server add", stderr)
	dsn := dsnFlag(fs)
	var spec billing.SIPServerSpec
	fs.StringVar(&spec.Name, "name", "", "the server's name: its SIP realm")
	fs.StringVar(&spec.Address, "address", "", "the server's IP address")
	fs.StringVar(&spec.DNS, "dns", "", "the server's DNS name")
	fs.StringVar(&spec.AMIAddress, "ami", "", "AMI address HOST:PORT")
	fs.StringVar(&spec.AMIUser, "ami-user", "", "AMI username")
	fs.StringVar(&spec.AMISecret, "ami-secret", "", "AMI secret")
	if err := noArgs(fs, args); err != nil {
		return err
	}
	if spec.Name == "" || spec.Address == "" {
		return usagef("sip-server add needs --name and --address")
	}
	d, err := openChecked(ctx, *dsn)
	if err != nil {
		return err
	}
	defer d.Close()
	if _, err := billing.AddSIPServer(ctx, d.Q(), spec); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added SIP server %s at %s\n", spec.Name, spec.Address)
	return nil
}
