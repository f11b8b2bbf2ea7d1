package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

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
		if err := seedDemo(ctx, d, cfg.PasswordCost); err != nil {
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

func seedDemo(ctx context.Context, d *db.DB, cost int) error {
	pw := keys.NewPasswords(cost)
	now := time.Now().Unix()
	return d.InTx(ctx, func(tx *db.Tx) error {
		srv, err := tx.Insert(ctx, `INSERT INTO sip_servers (name, address, dns) VALUES ('demo', ?, 'sip.demo.local')`, demoServer)
		if err != nil {
			return err
		}
		var admin int64
		if err := tx.Get(ctx, &admin, `SELECT id FROM users WHERE username = ?`, demoAdmin); err != nil {
			return err
		}
		users := []struct {
			name    string
			level   int
			manager string
			ext     string
			balance int64
		}{
			{"reseller", 22, demoAdmin, "10000", 100_000_000},
			{"alice", 11, "reseller", "10001", 20_000_000},
			{"bob", 11, "reseller", "10002", 5_000_000},
		}
		ids := map[string]int64{demoAdmin: admin}
		for _, u := range users {
			// md5 of the username is the demo password of each user
			hash, err := pw.Hash(md5hex(u.name))
			if err != nil {
				return err
			}
			acc, err := tx.Insert(ctx, `INSERT INTO accounts (owner_id, balance, created_at) VALUES (?, ?, ?)`, ids[u.manager], u.balance, now)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO ledger (account_id, amount, balance, kind, comment, created_at) VALUES (?, ?, ?, 'initial', 'demo', ?)`,
				acc, u.balance, u.balance, now); err != nil {
				return err
			}
			id, err := tx.Insert(ctx, `INSERT INTO users (username, password_hash, manager_id, accesslevel, active, account_id, currency, created_at)
				VALUES (?, ?, ?, ?, 1, ?, 'EUR', ?)`, u.name, hash, ids[u.manager], u.level, acc, now)
			if err != nil {
				return err
			}
			ids[u.name] = id
			if _, err := tx.Exec(ctx, `INSERT INTO extensions (extension, user_id, server_id, password, callerid, updated_at) VALUES (?, ?, ?, ?, ?, ?)`,
				u.ext, id, srv, "secret"+u.ext, u.ext, now); err != nil {
				return err
			}
		}
		if err := seedDemoRating(ctx, tx, ids); err != nil {
			return err
		}
		// A mistyped key would ban the demo's own address (ban_threshold 1): whitelist it.
		if err := keys.AddBan(ctx, tx, keys.Whitelist, netip.MustParseAddr(demoServer), "demo"); err != nil {
			return err
		}
		// The Asterisk's own server key: named after its realm, authorising by SIP account,
		// created as addKey and `narayanad key add` create keys.
		_, err = billing.CreateKey(ctx, tx, billing.KeySpec{Name: "demo", APIKey: demoAsteriskKey, AuthBy: "sip_extension",
			Source: demoServer, Level: keys.LevelAsterisk, Owner: demoAdmin}, nil)
		return err
	})
}

// seedDemoRating gives the demo something to rate: four directions, two routes and a
// per-second tariff that alice and bob are on.
func seedDemoRating(ctx context.Context, tx *db.Tx, users map[string]int64) error {
	for _, d := range []struct {
		code     string
		id       int
		name     string
		min, max int
	}{{"7", 1, "Russia", 11, 11}, {"79", 2, "Russia Mobile", 11, 11}, {"44", 3, "United Kingdom", 0, 32}, {"1", 4, "USA and Canada", 11, 11}} {
		if _, err := tx.Exec(ctx, `INSERT INTO directions (code, id, name, min_len, max_len) VALUES (?, ?, ?, ?, ?)`,
			d.code, d.id, d.name, d.min, d.max); err != nil {
			return err
		}
	}
	main, err := tx.Insert(ctx, `INSERT INTO routes (name, type, prefix) VALUES ('carrier-a', 'sip', 'trunk1/')`)
	if err != nil {
		return err
	}
	backup, err := tx.Insert(ctx, `INSERT INTO routes (name, type, prefix) VALUES ('carrier-b', 'sip', 'trunk2/')`)
	if err != nil {
		return err
	}
	// 0.01 EUR to connect, billed by the second.
	tariff, err := tx.Insert(ctx, `INSERT INTO rates (name, bill_type, is_public, switch_price, description)
		VALUES ('Standard', 'by_second', 1, 10000, 'the demo tariff')`)
	if err != nil {
		return err
	}
	for _, e := range []struct {
		direction, priority int
		cost                int64 // per minute, micro-units
		route               int64
	}{{1, 1, 50_000, main}, {2, 1, 120_000, main}, {2, 2, 150_000, backup}, {3, 1, 30_000, main}, {4, 1, 20_000, backup}} {
		if _, err := tx.Exec(ctx, `INSERT INTO rate_entries (rates_id, direction_id, priority, cost, route_id) VALUES (?, ?, ?, ?, ?)`,
			tariff, e.direction, e.priority, e.cost, e.route); err != nil {
			return err
		}
	}
	_, err = tx.Exec(ctx, `UPDATE users SET rates_id = ? WHERE id IN (?, ?, ?)`, tariff, users["reseller"], users["alice"], users["bob"])
	return err
}
