package panel

import (
	"encoding/json"
	"fmt"
	"html/template"
	"sort"
	"strconv"
)

// view is one page: a title and blocks, which one template renders. Pages build views from
// method answers; none of them writes HTML by hand (except the charts' SVG, escaped).
type view struct {
	Title, Flash, Error string
	Blocks              []block

	// The layout's: set by render.
	Lang, CSRF, User, Balance string
	Level                     int
	Nav                       []navItem
	Login                     bool // the login page: no navigation
}

type navItem struct {
	Href, Label string
	Admin       bool
}

type block struct {
	ID, Heading string
	Text        string
	Secret      string // shown once (a new key's secret)
	KV          [][2]string
	Table       *table
	Form        *form
	Search      *search
	SVG         template.HTML
	Links       []link
	Refresh     string // htmx: reload this block from this URL every few seconds
}

type link struct{ Href, Label string }

type table struct {
	Cols       []string
	Rows       [][]cell
	Prev, Next string // paging links
}

type cell struct {
	Text  string
	Href  string
	Forms []*form // inline actions
}

type form struct {
	Action    string // a URL under /panel/
	Method    string // "get" for filters; post otherwise
	Hidden    map[string]string
	Fields    []field
	Submit    string
	Inline    bool
	Multipart bool
	Danger    bool
}

type field struct {
	Name, Label, Type, Value string
	Options                  [][2]string // value, label (Type "select")
	Required                 bool
}

type search struct {
	Action, Target, Value, Placeholder string
	Hidden                             map[string]string
}

// do is a form that posts to a method and comes back to the page back.
func do(method, back, submit string, fields ...field) *form {
	return &form{Action: Prefix + "do/" + method, Hidden: map[string]string{"_back": back}, Fields: fields, Submit: submit}
}

// button is an inline form of one button with hidden arguments.
func button(method, back, submit string, kv ...string) *form {
	f := do(method, back, submit)
	f.Inline = true
	for i := 0; i+1 < len(kv); i += 2 {
		f.Hidden[kv[i]] = kv[i+1]
	}
	return f
}

func text(name, label string) field { return field{Name: name, Label: label, Type: "text"} }
func required(name, label string) field {
	return field{Name: name, Label: label, Type: "text", Required: true}
}
func password(name, label string) field {
	return field{Name: name, Label: label, Type: "password", Required: true}
}
func date(name, label, v string) field {
	return field{Name: name, Label: label, Type: "date", Value: v}
}
func choice(name, label, v string, opts ...[2]string) field {
	return field{Name: name, Label: label, Type: "select", Value: v, Options: opts}
}
func opt(v, label string) [2]string { return [2]string{v, label} }

func toMap(v any) map[string]any {
	if m, ok := v.(map[string]any); ok {
		return m
	}
	if v == nil {
		return map[string]any{}
	}
	if m, ok := toJSON(v).(map[string]any); ok {
		return m
	}
	return map[string]any{}
}

func toList(v any) []map[string]any {
	l, _ := v.([]any)
	out := make([]map[string]any, 0, len(l))
	for _, x := range l {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// str shows a JSON value as text.
func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	case bool:
		return strconv.FormatBool(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func num(v any) int {
	n, _ := strconv.Atoi(str(v))
	return n
}

func fnum(v any) float64 {
	f, _ := strconv.ParseFloat(str(v), 64)
	return f
}

// cols makes a table of the given fields of each record.
func cols(rows []map[string]any, names ...string) *table {
	t := &table{Cols: names}
	for _, r := range rows {
		var row []cell
		for _, n := range names {
			row = append(row, cell{Text: str(r[n])})
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

// kv lists an object's fields, in the order given (all, sorted, when none is).
func kv(m map[string]any, names ...string) [][2]string {
	if len(names) == 0 {
		for k := range m {
			names = append(names, k)
		}
		sort.Strings(names)
	}
	var out [][2]string
	for _, n := range names {
		if v, ok := m[n]; ok {
			out = append(out, [2]string{n, str(v)})
		}
	}
	return out
}

func itoa(i int) string { return strconv.Itoa(i) }

func money(v any, cur string) string { return fmt.Sprintf("%.2f %s", fnum(v), cur) }

// nav lists the pages; administrators' pages show from the level that can use them (the
// gate still decides: this only keeps the menu short).
func nav(level int) []navItem {
	if level == 0 {
		return nil
	}
	items := []navItem{{Prefix + "home", "Account", false}, {Prefix + "calls", "Calls", false},
		{Prefix + "sip", "SIP accounts", false}, {Prefix + "dids", "Numbers", false}, {Prefix + "rates", "Rates", false},
		{Prefix + "topup", "Top up", false}, {Prefix + "invoices", "Invoices", false}, {Prefix + "tickets", "Tickets", false},
		{Prefix + "news", "News", false}}
	if level >= 22 {
		items = append(items, navItem{Prefix + "users", "Users", true}, navItem{Prefix + "tariffs", "Tariffs", true},
			navItem{Prefix + "routes", "Routes", true}, navItem{Prefix + "billtypes", "Bill types", true})
	}
	if level >= 33 {
		items = append(items, navItem{Prefix + "pools", "DID pools", true}, navItem{Prefix + "keys", "Keys", true},
			navItem{Prefix + "banktransfers", "Bank transfers", true}, navItem{Prefix + "bans", "Bans", true}, navItem{Prefix + "live", "Live calls", true},
			navItem{Prefix + "stats", "Statistics", true}, navItem{Prefix + "maintenance", "Maintenance", true})
	}
	return items
}

func loginView(msg string) *view {
	return &view{Title: "Log in", Error: msg, Login: true, Blocks: []block{{Form: &form{Action: Prefix + "login",
		Fields: []field{required("login", "Login"), password("password", "Password")}, Submit: "Log in"}}}}
}
