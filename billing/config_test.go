package billing

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/narayana/narayanad/db"
	"github.com/narayana/narayanad/db/dbtest"
)

// TestCurrencySetting: the form of a currency code is checked as the file is read; that
// the database has it, when a command opens the database, and both errors name the file,
// the line and the setting.
func TestCurrencySetting(t *testing.T) {
	for _, bad := range []string{"eur", "EURO", "€", "E1R"} {
		c := DefaultConfig()
		err := c.ReadConfig(strings.NewReader("# n\ncurrency = "+bad+"\n"), "n.conf")
		if err == nil || !strings.Contains(err.Error(), "n.conf:2: setting currency") {
			t.Errorf("currency = %s: %v", bad, err)
		}
	}
	dbtest.EachEmpty(t, func(t *testing.T, d *db.DB) {
		ctx := context.Background()
		c := DefaultConfig()
		if err := c.ReadConfig(strings.NewReader("\n\ncurrency = XYZ\n"), "n.conf"); err != nil {
			t.Fatal(err)
		}
		// Before init: the currencies the first migration creates.
		err := c.CheckCurrency(ctx, d)
		if err == nil || !strings.Contains(err.Error(), "n.conf:3: setting currency: the database has no currency XYZ") {
			t.Fatalf("unknown currency before init: %v", err)
		}
		if err := d.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		var codes []string
		if err := d.Q().Select(ctx, &codes, `SELECT code FROM currencies ORDER BY code`); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(codes, SeededCurrencies) {
			t.Fatalf("the migrations create %v, SeededCurrencies says %v", codes, SeededCurrencies)
		}
		if err := c.CheckCurrency(ctx, d); err == nil || !strings.Contains(err.Error(), "n.conf:3:") {
			t.Fatalf("unknown currency: %v", err)
		}
		if _, err := d.Q().Exec(ctx, `INSERT INTO currencies (code, displayname, eur_course) VALUES ('XYZ', 'x', 1000000)`); err != nil {
			t.Fatal(err)
		}
		if err := c.CheckCurrency(ctx, d); err != nil {
			t.Fatalf("a currency the database has: %v", err)
		}
	})
}
