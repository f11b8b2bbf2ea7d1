package billing

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/money"
)

// Method is one API method, declared once: the router, the gate, argument binding, the
// docs and the access-matrix test all read this.
type Method struct {
	Name    string
	Level   int   // the access level in brackets after the name in the reference
	Args    []Arg // parsed from the spec strings given to method()
	Handler Handler
	// AllowLocked lets a locked user through the gate: callPrepare answers that itself.
	AllowLocked bool
	Summary     string // what the method does, in one line (the reference's, shortened)
	Answers     string // what its response carries when it succeeds
}

// Handler runs a method once the gate and argument binding have passed.
type Handler func(r *Request) (any, error)

// ArgType is an argument's documented type.
type ArgType string

const (
	String ArgType = "string"
	Num    ArgType = "num" // a decimal number, '.' as decimal mark; money is parsed exactly
	Int    ArgType = "int" // a num that must be whole
	// Money is an amount: a num from 0 to money.MaxAmount. A negative amount means
	// nothing in any argument that carries one (a refund is its own operation).
	Money   ArgType = "money"
	Bool    ArgType = "bool"
	UString ArgType = "ustring"
)

// Arg describes one argument.
type Arg struct {
	Name       string
	Type       ArgType
	Required   bool
	Default    string
	HasDefault bool
	Values     []string // the set of a ustring
}

// arg parses a compact spec that reads like the reference:
//
//	"name:string!"          obligatory
//	"prior:int=1"           with a default
//	"type:ustring{all,sip,sms,default}=all"
func arg(spec string) Arg {
	name, rest, ok := strings.Cut(spec, ":")
	if !ok || name == "" {
		panic("billing: bad argument spec " + spec)
	}
	a := Arg{Name: name}
	if strings.HasSuffix(rest, "!") {
		a.Required, rest = true, strings.TrimSuffix(rest, "!")
	}
	if typ, def, ok := strings.Cut(rest, "="); ok {
		a.Default, a.HasDefault, rest = def, true, typ
	}
	if set, ok := strings.CutPrefix(rest, "ustring{"); ok {
		a.Type, a.Values = UString, strings.Split(strings.TrimSuffix(set, "}"), ",")
	} else {
		a.Type = ArgType(rest)
	}
	switch a.Type {
	case String, Num, Int, Money, Bool, UString:
	default:
		panic("billing: unknown argument type in " + spec)
	}
	if a.HasDefault {
		if _, err := a.check(a.Default); err != nil {
			panic("billing: bad default in " + spec)
		}
	}
	return a
}

// check validates a raw value against the argument's type and returns it normalised.
func (a Arg) check(v string) (string, error) {
	switch a.Type {
	case Num:
		if _, err := money.Parse(v); err != nil {
			return "", apierr.New(apierr.InvalidArgument, "%s: %q is not a number", a.Name, v)
		}
	case Money:
		m, err := money.Parse(v)
		if err != nil {
			return "", apierr.New(apierr.InvalidArgument, "%s: %q is not a number", a.Name, v)
		}
		if m < 0 || m > money.MaxAmount {
			return "", apierr.New(apierr.InvalidArgument, "%s: want an amount from 0 to %s", a.Name, money.MaxAmount.Format(0))
		}
	case Int:
		if _, err := parseInt(v); err != nil {
			return "", apierr.New(apierr.InvalidArgument, "%s: %q is not a whole number", a.Name, v)
		}
	case Bool:
		b, ok := parseBool(v)
		if !ok {
			return "", apierr.New(apierr.InvalidArgument, "%s: %q is not a boolean (true/false/1/0/yes/no)", a.Name, v)
		}
		return strconv.FormatBool(b), nil
	case UString:
		for _, ok := range a.Values {
			if v == ok {
				return v, nil
			}
		}
		return "", apierr.New(apierr.InvalidArgument, "%s: %q is not one of {%s}", a.Name, v, strings.Join(a.Values, ","))
	}
	return v, nil
}

func parseBool(v string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "true", "1", "yes":
		return true, true
	case "false", "0", "no":
		return false, true
	}
	return false, false
}

// parseInt accepts whole numbers, also written with a zero fraction ("5.0").
func parseInt(v string) (int64, error) {
	m, err := money.Parse(v)
	if err != nil || m%money.One != 0 {
		return 0, fmt.Errorf("not whole")
	}
	return int64(m / money.One), nil
}

// method declares a method; args are specs for arg().
func method(name string, level int, h Handler, args ...string) Method {
	m := Method{Name: name, Level: level, Handler: h}
	for _, s := range args {
		m.Args = append(m.Args, arg(s))
	}
	return m
}

// Doc sets the method's one-line summary and what it answers, for docs/METHODS.md and
// GET /openapi.json.
func (m Method) Doc(summary, answers string) Method {
	m.Summary, m.Answers = summary, answers
	return m
}

// declares reports whether the method declares the argument; login, password, token and
// username are every method's (the gate reads them).
func (m *Method) declares(name string) bool {
	switch name {
	case "login", "password", "token", "username":
		return true
	}
	for i := range m.Args {
		if m.Args[i].Name == name {
			return true
		}
	}
	return false
}

// Table is the set of methods by name. A duplicate name panics: each method is declared once.
type Table map[string]*Method

// Add registers methods.
func (t Table) Add(ms ...Method) {
	for i := range ms {
		m := ms[i]
		if _, dup := t[m.Name]; dup {
			panic("billing: method declared twice: " + m.Name)
		}
		t[m.Name] = &m
	}
}

// Sorted lists the methods by name.
func (t Table) Sorted() []*Method {
	out := make([]*Method, 0, len(t))
	for _, m := range t {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// bind checks the parameters against the method's arguments and fills in defaults.
// Parameters that are not arguments (login, password, username) pass through unchecked.
func (m *Method) bind(params map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(params)+len(m.Args))
	for k, v := range params {
		out[k] = v
	}
	for _, a := range m.Args {
		v, ok := params[a.Name]
		if !ok || v == "" && a.Type != String {
			delete(out, a.Name)
			if a.Required {
				return nil, apierr.New(apierr.MissingArgument, "%s is obligatory", a.Name)
			}
			if a.HasDefault {
				out[a.Name] = a.Default
			}
			continue
		}
		if a.Required && a.Type == String && v == "" {
			return nil, apierr.New(apierr.MissingArgument, "%s is obligatory", a.Name)
		}
		cv, err := a.check(v)
		if err != nil {
			return nil, err
		}
		out[a.Name] = cv
	}
	return out, nil
}
