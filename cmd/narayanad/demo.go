package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/narayana/narayanad/billing"
	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/keys"
)

// Demo credentials: for `make run` on 127.0.0.1 only.
const (
	demoAdmin    = "admin"
	demoPassword = "admin"
	demoKey      = "demo0123456789key"
	demoServer   = "127.0.0.1"
	// demoAsteriskKey is the demo Asterisk's server key.
	demoAsteriskKey = "demo-asterisk-key"
)

// runDemo creates a demo database (master admin, client key, a SIP server, a corporate
// user with two customers) unless the database is already initialised, then prints how
// to query it.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", stderr)
	dsn := dsnFlag(fs)
	listen := fs.String("listen", "127.0.0.1:8080", "where `make run` serves, for the examples")
	if err := fs.Parse(args); err != nil {
		return err
	}
	d, err := db.Open(ctx, *dsn)
	if err != nil {
		return err
	}
	defer d.Close()
	v, err := d.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if v == 0 {
		cfg, _ := loadConfig("")
		if err := billing.Bootstrap(ctx, d, cfg, demoAdmin, md5hex(demoPassword), demoKey); err != nil {
			return err
		}
		if err := seedDemo(ctx, d, cfg); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created the demo database %s\n", db.Redact(*dsn))
	} else if err := d.Migrate(ctx); err != nil { // a demo database from an older binary
		return err
	}
	base := "http://" + *listen + "/billing/api/2.2/" + demoKey
	astBase := "http://" + *listen + "/billing/api/2.2/" + demoAsteriskKey
	auth := "login=" + demoAdmin + "&password=21232f297a57a5a743894a0e4a801fc3" // md5("admin")
	fmt.Fprintf(stdout, `
Web panel: http://%s/panel/  (log in as admin/admin, reseller/reseller, alice/alice or bob/bob)
`, *listen)
	fmt.Fprintf(stdout, `
Demo key: %s (client key; log in as %s / %s, sent as md5)
Try:
  curl '%s/getInfo?%s'
  curl '%s/getUsers?%s&all=true'
  curl '%s/getCurrencies'
  curl '%s/transferMoney?%s&destination=alice&amount=5'
  curl '%s/getInfo?%s&username=alice'

As the Asterisk would (key demo-asterisk-key, SIP account 10001 is alice's):
  curl '%s/callPrepare?login=10001&destination=%%2B79161234567&uniqueid=demo.1'
  curl '%s/callFinish?login=10001&destination=%%2B79161234567&uniqueid=demo.1&length=75&status=ANSWER'
  curl '%s/getTextBalance?login=10001'
`, demoKey, demoAdmin, demoPassword, base, auth, base, auth, base, base, auth, base, auth, astBase, astBase, astBase)
	return nil
}

// seedDemo fills a new database the way an operator would: the SIP server, the
// Asterisk's key and the directions as the command line makes them, everything else as API
// calls through Service.Call with the demo's logins, so the demo meets every rule the API
// has (money is given through the ledger, a reseller pays its users' balances).
func seedDemo(ctx context.Context, d *db.DB, cfg billing.Config) error {
	if _, err := billing.AddSIPServer(ctx, d.Q(), billing.SIPServerSpec{Name: "demo", Address: demoServer, DNS: "sip.demo.local"}); err != nil {
		return err
	}
	// A mistyped key would ban the demo's own address (ban_threshold 1): whitelist it.
	if err := keys.AddBan(ctx, d.Q(), keys.Whitelist, netip.MustParseAddr(demoServer), "demo"); err != nil {
		return err
	}
	// The Asterisk's own server key: named after its realm, authorising by SIP account.
	if _, err := billing.CreateKey(ctx, d.Q(), billing.KeySpec{Name: "demo", APIKey: demoAsteriskKey, AuthBy: "sip_extension",
		Source: demoServer, Level: keys.LevelAsterisk, Owner: demoAdmin}, nil); err != nil {
		return err
	}
	if _, err := billing.ImportDirections(ctx, d, strings.NewReader(`id,code,direction,min_len,max_len
1,7,Russia,11,11
2,79,Russia Mobile,11,11
3,44,United Kingdom,0,32
4,1,USA and Canada,11,11
`), nil); err != nil {
		return err
	}

	s := billing.New(d, cfg, nil)
	web, err := s.Gate.Keys.Lookup(ctx, demoKey)
	if err != nil {
		return err
	}
	// as runs one method as the user who logs in with the demo password md5(user); the
	// admin's password is "admin" too.
	as := func(user, method string, kv ...string) error {
		params := map[string]string{"login": user, "password": md5hex(user)}
		for i := 0; i+1 < len(kv); i += 2 {
			params[kv[i]] = kv[i+1]
		}
		_, err := s.Call(ctx, billing.Call{Method: method, Params: params, Key: web, Version: "2.2", Remote: netip.MustParseAddr(demoServer)})
		if err != nil {
			return fmt.Errorf("demo: %s as %s: %w", method, user, err)
		}
		return nil
	}
	steps := []struct {
		user, method string
		args         []string
	}{
		// Two carriers and a per-second tariff with 0.01 EUR to connect. On a new
		// database they are route 1 and 2 and tariff 1.
		{demoAdmin, "addRoute", []string{"route", "carrier-a", "type", "sip", "prefix", "trunk1/", "sip_server", demoServer}},
		{demoAdmin, "addRoute", []string{"route", "carrier-b", "type", "sip", "prefix", "trunk2/", "sip_server", demoServer}},
		{demoAdmin, "addRates", []string{"name", "Standard", "bill_type", "by_second", "is_public", "true", "switch_price", "0.01",
			"description", "the demo tariff"}},
		{demoAdmin, "addDirection", []string{"rates", "1", "direction", "1", "cost", "0.05", "route", "1"}},
		{demoAdmin, "addDirection", []string{"rates", "1", "direction", "2", "cost", "0.12", "route", "1"}},
		{demoAdmin, "addDirection", []string{"rates", "1", "direction", "2", "cost", "0.15", "route", "2", "priority", "2"}},
		{demoAdmin, "addDirection", []string{"rates", "1", "direction", "3", "cost", "0.03", "route", "1"}},
		{demoAdmin, "addDirection", []string{"rates", "1", "direction", "4", "cost", "0.02", "route", "2"}},
		// A corporate user (a reseller) with 100 EUR from the admin, who gives 20 to alice
		// and 5 to bob out of them.
		{demoAdmin, "registerUser", []string{"user", "reseller", "web_password", md5hex("reseller"), "accesslevel", "22",
			"sip_server", demoServer, "sip_extension", "10000", "sip_password", "secret10000", "balance", "100"}},
		{"reseller", "registerUser", []string{"user", "alice", "web_password", md5hex("alice"),
			"sip_server", demoServer, "sip_extension", "10001", "sip_password", "secret10001", "balance", "20"}},
		{"reseller", "registerUser", []string{"user", "bob", "web_password", md5hex("bob"),
			"sip_server", demoServer, "sip_extension", "10002", "sip_password", "secret10002", "balance", "5"}},
		{demoAdmin, "updateUser", []string{"username", "reseller", "rates", "1"}},
		{demoAdmin, "updateUser", []string{"username", "alice", "rates", "1"}},
		{demoAdmin, "updateUser", []string{"username", "bob", "rates", "1"}},
	}
	for _, st := range steps {
		if err := as(st.user, st.method, st.args...); err != nil {
			return err
		}
	}
	return nil
}
