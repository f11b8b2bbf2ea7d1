package billing

import (
	"fmt"
	"strings"
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

// MethodsMarkdown is docs/METHODS.md: every method of the table, its access level and its
// arguments with their types, defaults and whether they are obligatory.
func MethodsMarkdown() string {
	return New(nil, DefaultConfig(), nil).Methods.Markdown()
}

// Markdown lists the table's methods as a Markdown document.
func (t Table) Markdown() string {
	var b strings.Builder
	b.WriteString(`# API methods

Generated from the method table (` + "`billing/methods*.go`" + `) by
` + "`UPDATE_DOCS=1 go test ./billing -run TestGeneratedDocs`" + `; do not edit it by hand.
How to call them, what they answer and what the levels mean: [API.md](API.md).

- **level**: the lowest effective access level that may call the method (0: anyone
  holding a client key; 1: a logged-in user; 11 user, 22 corporate manager, 33-43
  administrator, 44 master admin; 50, 90 and 95 exist only as server keys).
- **arguments**: ` + "`name`" + ` type, then **obligatory**, or ` + "`= default`" + `. A ` + "`ustring`" + ` takes one
  of the values in braces; ` + "`num`" + ` is a decimal number (` + "`.`" + ` as decimal mark), ` + "`int`" + ` a whole one,
  ` + "`money`" + ` an amount from 0 to 100,000,000 exact to the micro-unit. Every method also takes ` + "`login`" + `, ` + "`password`" + ` and ` + "`username`" + `
  (API.md, "Who is asking").

| method | level | arguments |
|---|---|---|
`)
	for _, m := range t.Sorted() {
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
		name := "`" + m.Name + "`"
		if m.Summary != "" {
			name += ": " + m.Summary
		}
		row := strings.ReplaceAll(strings.Join(args, "; "), "|", `\|`)
		fmt.Fprintf(&b, "| %s | %d | %s |\n", name, m.Level, row)
	}
	return b.String()
}
