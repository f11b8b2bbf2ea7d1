package billing

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
)

// SIPServerSpec is an Asterisk to register (`narayanad sip-server add`): its name is its
// SIP realm, its address the source of its requests (the sip_server argument).
type SIPServerSpec struct {
	Name       string
	Address    string // an IP address
	DNS        string
	AMIAddress string // HOST:PORT; empty: no AMI
	AMIUser    string
	AMISecret  string
}

func (s *SIPServerSpec) check() error {
	if s.Name = strings.TrimSpace(s.Name); s.Name == "" {
		return apierr.New(apierr.MissingArgument, "name: a SIP server needs a name (its realm)")
	}
	if net.ParseIP(s.Address) == nil {
		return apierr.New(apierr.InvalidArgument, "address: %q is not an IP address", s.Address)
	}
	if s.AMIAddress != "" {
		if _, _, err := net.SplitHostPort(s.AMIAddress); err != nil {
			return apierr.New(apierr.InvalidArgument, "ami: want HOST:PORT: %v", err)
		}
	}
	return nil
}

// AddSIPServer validates spec and registers the server; it answers its id. A name or
// address already registered is E_DATA_ABORT, naming the server that has it. q may be a
// transaction.
func AddSIPServer(ctx context.Context, q db.Queryer, spec SIPServerSpec) (int64, error) {
	if err := spec.check(); err != nil {
		return 0, err
	}
	var have SIPServer
	err := q.Get(ctx, &have, `SELECT id, name, address, dns, ami_address, ami_user, ami_secret FROM sip_servers
		WHERE name = ? OR address = ? LIMIT 1`, spec.Name, spec.Address)
	if err == nil {
		return 0, apierr.New(apierr.DataAbort, "SIP server %q at %s exists", have.Name, have.Address)
	} else if !db.IsNotFound(err) {
		return 0, err
	}
	id, err := q.Insert(ctx, `INSERT INTO sip_servers (name, address, dns, ami_address, ami_user, ami_secret) VALUES (?, ?, ?, ?, ?, ?)`,
		spec.Name, spec.Address, spec.DNS, spec.AMIAddress, spec.AMIUser, spec.AMISecret)
	if errors.Is(err, db.ErrConflict) { // registered meanwhile
		return 0, apierr.New(apierr.DataAbort, "a SIP server named %q or at %s exists", spec.Name, spec.Address)
	}
	return id, err
}
