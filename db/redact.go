package db

import (
	"net/url"
	"regexp"
)

// redacted stands in for a password wherever a DSN is shown.
const redacted = "xxxxx"

var (
	userinfoPassword = regexp.MustCompile(`(://[^:/@]*):[^@/]*@`)
	paramPassword    = regexp.MustCompile(`(?i)(\bpassword=)[^&\s]*`)
)

// Redact returns dsn fit to print or log: a password, given as user:PASSWORD@ or as a
// password= parameter, is replaced by xxxxx. Every command and error that shows a DSN
// shows it through this.
func Redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), redacted)
			dsn = u.String()
		}
	} else {
		// Not a URL that parses (a typo in it, say): cut by pattern.
		dsn = userinfoPassword.ReplaceAllString(dsn, "${1}:"+redacted+"@")
	}
	return paramPassword.ReplaceAllString(dsn, "${1}"+redacted)
}
