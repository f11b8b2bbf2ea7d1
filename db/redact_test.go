package db

import (
	"context"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	for _, c := range []struct{ dsn, want string }{
		{"sqlite:/var/lib/narayana/n.db", "sqlite:/var/lib/narayana/n.db"},
		{"postgres://narayana:s3cret@db.example:5432/narayana?sslmode=disable",
			"postgres://narayana:xxxxx@db.example:5432/narayana?sslmode=disable"},
		{"postgresql://narayana@db.example/narayana", "postgresql://narayana@db.example/narayana"},
		{"postgres://db.example/narayana?user=n&password=s3cret", "postgres://db.example/narayana?user=n&password=xxxxx"},
		{"postgres://narayana:s3%2Fcr@et@db.example/narayana", "postgres://narayana:xxxxx@db.example/narayana"},
		// Does not parse as a URL (a bad port): cut by pattern.
		{"postgres://narayana:s3cret@db.example:54x32/narayana", "postgres://narayana:xxxxx@db.example:54x32/narayana"},
		{"host=db.example password=s3cret user=n", "host=db.example password=xxxxx user=n"},
	} {
		if got := Redact(c.dsn); got != c.want {
			t.Errorf("Redact(%q) = %q, want %q", c.dsn, got, c.want)
		}
	}
}

// TestOpenErrorsHideThePassword: what Open answers for a DSN it cannot use never holds
// the DSN's password, from our own checks or from the driver.
func TestOpenErrorsHideThePassword(t *testing.T) {
	for _, dsn := range []string{
		"postgre://narayana:s3cret@127.0.0.1:1/narayana",                // a typo in the scheme
		"postgres://narayana:s3cret@127.0.0.1:1/narayana",               // nothing listens there
		"postgres://narayana:s3cret@127.0.0.1:54x32/narayana",           // a bad port
		"postgres://127.0.0.1:1/narayana?user=narayana&password=s3cret", // the password as a parameter
	} {
		_, err := Open(context.Background(), dsn)
		if err == nil {
			t.Fatalf("Open(%q) succeeded", dsn)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Open(%q): %v", dsn, err)
		}
	}
}
