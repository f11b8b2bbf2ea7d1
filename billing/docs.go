package billing

import (
	"fmt"
	"strings"

	"github.com/narayana/narayanad/apierr"
)

// The user docs that are generated from the tables they describe, so they cannot drift:
// contrib/narayana.conf from Options and docs/METHODS.md from the method table. A test
// (docs_test.go) fails when a committed copy differs from what these write.

// SampleConfig is a configuration file with every setting, commented out at its default,
// under its one-line meaning: `narayanad config sample`, and contrib/narayana.conf.
func SampleConfig() string {
	var b strings.Builder
	b.WriteString(`# narayana.conf: every setting of narayanad, at its default.
#
# Written by ` + "`narayanad config sample`" + ` from the settings table (billing/config.go).
# Lines are "name = value"; # starts a comment. Uncomment a line to change a setting.
# An unknown setting or a bad value stops narayanad with the file, line and setting.
# Each setting can also come from the environment as NARAYANA_<NAME> (NARAYANA_LISTEN,
# NARAYANA_MAX_CALL_TIME, ...); flags win over the environment, which wins over this file.
`)
	for _, o := range Options {
		fmt.Fprintf(&b, "\n# %s", o.Help)
		if o.Secret {
			b.WriteString(" (secret: keep this file readable by narayanad only)")
		}
		fmt.Fprintf(&b, "\n%s\n", strings.TrimSpace("#"+o.Name+" = "+o.Default))
	}
	return b.String()
}

// MethodsMarkdown is docs/METHODS.md: every method of the table with its access level,
// summary, arguments (types, defaults, obligatory or not), answer and errors.
func MethodsMarkdown() string {
	return New(nil, DefaultConfig(), nil).Methods.Markdown()
}

// Markdown lists the table's methods as a Markdown document.
func (t Table) Markdown() string {
	var b strings.Builder
	b.WriteString(`# API methods

Generated from the method table by
` + "`UPDATE_DOCS=1 go test ./billing -run TestGeneratedDocs`" + `; do not edit it by hand. Each
method is declared at the top of the file that holds its handler (` + "`billing/methods.go`" + `
lists the files). The same table writes [openapi.json](openapi.json), which the daemon
serves as ` + "`GET /openapi.json`" + `. How to call the methods and what the levels mean:
[API.md](API.md).

- **level**: the lowest effective access level that may call the method (0: anyone
  holding a client key; 1: a logged-in user; 11 user, 22 corporate manager, 33-43
  administrator, 44 master admin; 50, 90 and 95 exist only as server keys).
- **arguments**: ` + "`name`" + ` type, then **obligatory**, or ` + "`= default`" + `. A ` + "`ustring`" + ` takes one
  of the values in braces; ` + "`num`" + ` is a decimal number (` + "`.`" + ` as decimal mark), ` + "`int`" + ` a whole one,
  ` + "`money`" + ` an amount from 0 to 100,000,000 exact to the micro-unit. Every method also
  takes ` + "`login`" + `, ` + "`password`" + ` and ` + "`username`" + ` (API.md, "Keys and who is asking").
- **answers**: the ` + "`response`" + ` of ` + "`{\"result\":true,…}`" + `; "true" is a method that answers only success.
- **errors**: the codes its declaration lets the gate and argument binding answer:
  ` + "`E_INSUFFICIENT_ACCESS`" + ` below its level, ` + "`E_USER_LOCKED`" + ` for a locked user (level 1 and
  up, unless the method answers that itself), ` + "`E_MISSING_ARGUMENT`" + ` without an obligatory
  argument, ` + "`E_INVALID_ARGUMENT`" + ` for a value its type refuses.

## Errors every method can answer

- ` + "`E_UNAUTHORIZED`" + ` (HTTP 401) and ` + "`E_FORBIDDEN`" + ` (403): the key or the address is refused;
  ` + "`E_INCORRECT_API_VERSION`" + ` (400): the version is not served.
- ` + "`E_AUTH_FAILED`" + `: a wrong login or password, or a method above level 0 without a user.
- ` + "`E_INSUFFICIENT_ACCESS`" + `: the key's ` + "`allowed_methods`" + ` leaves the method out.
- ` + "`E_NOT_EXIST`" + `, ` + "`E_DOES_NOT_BELONG_TO_YOU`" + `: ` + "`username`" + ` names no user, or one the caller does not manage.
- ` + "`E_INVALID_ARGUMENT`" + `: an unreadable POST body.
- ` + "`E_SQL_ERROR`" + ` (an unexpected failure, logged in full, never shown) and
  ` + "`E_UNDEFINED_INSTRUCTION`" + ` (the method failed).

Beyond these and the per-method codes below, a handler answers the domain codes of
API.md's "Error codes" (` + "`E_NOT_EXIST`" + `, ` + "`E_INSUFFICIENT_MONEY`" + `, …) where its rules refuse.
The reference documents none of them per method, and a list kept by hand would drift from
the handlers, so they are not repeated here.

## Index

| method | level | what it does |
|---|---|---|
`)
	methods := t.Sorted()
	for _, m := range methods {
		fmt.Fprintf(&b, "| [`%s`](#%s) | %d | %s |\n", m.Name, strings.ToLower(m.Name), m.Level, mdCell(m.Summary))
	}
	for _, m := range methods {
		fmt.Fprintf(&b, "\n## `%s`\n\n%s.\n\n- **level**: %d\n", m.Name, capitalise(m.Summary), m.Level)
		var args []string
		for _, a := range m.Args {
			s := "`" + a.Name + "` " + string(a.Type)
			if a.Type == UString {
				s += "{" + strings.Join(a.Values, ",") + "}"
			}
			switch {
			case a.Required:
				s += " **obligatory**"
			case a.HasDefault && a.Default == "":
				s += ` = ""`
			case a.HasDefault:
				s += " = `" + a.Default + "`"
			}
			args = append(args, s)
		}
		if len(args) == 0 {
			args = []string{"none"}
		}
		fmt.Fprintf(&b, "- **arguments**: %s\n- **answers**: %s\n", strings.Join(args, "; "), m.Answers)
		if errs := m.gateErrors(); len(errs) > 0 {
			fmt.Fprintf(&b, "- **errors**: `%s`\n", strings.Join(errs, "`, `"))
		}
	}
	return b.String()
}

// gateErrors are the codes the method's declaration lets Service.Call answer before its
// handler runs: the gate's level and lock rules (keys.Permit) and argument binding.
func (m *Method) gateErrors() []string {
	var errs []string
	if m.Level > 0 {
		errs = append(errs, apierr.InsufficientAccess)
		if !m.AllowLocked {
			errs = append(errs, apierr.UserLocked)
		}
	}
	var required, typed bool
	for _, a := range m.Args {
		required = required || a.Required
		typed = typed || a.Type != String
	}
	if required {
		errs = append(errs, apierr.MissingArgument)
	}
	if typed {
		errs = append(errs, apierr.InvalidArgument)
	}
	return errs
}

func mdCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func capitalise(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
