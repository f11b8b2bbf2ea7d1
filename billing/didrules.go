package billing

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/db"
)

// didRuleMethods declares the methods whose handlers are in this file: the reference's
// "DIDTables Filters".
func (s *Service) didRuleMethods() []Method {
	return []Method{
		method("getDIDActions", 1, s.getDIDActions).
			Doc("list the actions a DIDTables rule may take", "the allowed actions"),
		method("getFilters", 1, s.getFilters, "resolver:string", "sources:bool=false").
			Doc("list the sources and patterns a DIDTables rule may filter on", "the allowed sources and patterns"),
		method("addDIDRule", 1, s.addDIDRule, "did:string!", "source:string", "pattern:string",
			"policy:ustring{ACCEPT,REJECT}=ACCEPT", "sms_action:string", "sms_destination:string",
			"action:string", "server:string", "destination:string", "callerid:string", "timeout:int=30",
			"condition:string", "input:string", "position:ustring{start,end}=start").
			Doc("add a DIDTables rule to a direct number", "true"),
		method("updateDIDRule", 1, s.updateDIDRule, "did:string!", "rule:int!", "pos:int", "source:string",
			"pattern:string", "policy:ustring{ACCEPT,REJECT}", "sms_action:string",
			"sms_destination:string", "action:string", "server:string", "destination:string",
			"callerid:string", "timeout:int", "condition:string", "input:string").
			Doc("update a DIDTables rule", "true"),
		method("deleteDIDRule", 1, s.deleteDIDRule, "did:string!", "rule:int!", "pattern:string").
			Doc("delete a DIDTables rule", "true"),
		method("getDIDRules", 1, s.getDIDRules, "did:string!", "rule:int").
			Doc("list a direct number's rules", "the direct number's rules"),
		method("resolveDIDRule", 50, s.resolveDIDRule, "did:string!", "rule:int=1", "callerid:string",
			"status:string", "input:string").
			Doc("get the instruction of a direct number's DIDTables rule for an incoming call", "a line: OK ACCEPT/REJECT owner action server destination callerid timeout sms_action sms_destination; SKIP and the next rule's number; or FIN when no rule is left"),
	}
}

// DIDTables: the rules of a DID, walked in position order by resolveDIDRule for every
// incoming call or SMS. A rule's number is its position (1 first); positions stay
// 1..n without gaps whatever is added, moved or deleted.
//
// Matching, all of which must hold for a rule to run:
//
//   - source/pattern: the caller. Sources (getFilters):
//     any: every caller (pattern ignored);
//     anonymous: a caller without a number ("", "anonymous", "unknown", "restricted");
//     number: the caller's number (normalised like a dialled one) against pattern:
//     "" or "%" any number; "_…" an Asterisk pattern (X 0-9, Z 1-9, N 2-9, [1-5] or [135]
//     a set, "." one or more characters, "!" zero or more, anything else itself);
//     otherwise the number itself, where "%" stands for any run of characters
//     ("7495%" is a prefix);
//     time: the time of the call in the DID owner's timezone: "[DAYS/]HH:MM-HH:MM" or
//     "DAYS", DAYS a comma list of days or day ranges (mon-fri, sat,sun), the hours a
//     half-open range that may cross midnight (22:00-06:00); "" any time.
//   - condition/status: what the previous action ended with (Asterisk's DIALSTATUS
//     or a SIP code). "" (none) runs whatever the status, also on a new call (no status);
//     SUCCESS: ANSWER, 200; BUSY: BUSY, 486, 600; NOANSWER: NOANSWER, CANCEL, 408, 480,
//     487; UNAVAIL: CHANUNAVAIL, CONGESTION and other SIP failures (4xx-6xx);
//     UNSUCCESS: any status other than success and input; INPUT: status 99INPUT with the
//     caller's digits (input) matching the rule's input, written like a number pattern.
type didRule struct {
	ID             int64  `db:"id"`
	DID            string `db:"did"`
	Position       int64  `db:"position"`
	Source         string `db:"source"`
	Pattern        string `db:"pattern"`
	Policy         string `db:"policy"`
	SMSAction      string `db:"sms_action"`
	SMSDestination string `db:"sms_destination"`
	Action         string `db:"action"`
	Server         string `db:"server"`
	Destination    string `db:"destination"`
	CallerID       string `db:"callerid"`
	Timeout        int64  `db:"timeout"`
	Condition      string `db:"condition"`
	Input          string `db:"input"`
}

const ruleSelect = `SELECT id, did, position, source, pattern, policy, sms_action, sms_destination, action, server,
	destination, callerid, timeout, condition, input FROM did_rules`

// maxDIDRules bounds the rules of one DID (each call walks them).
const maxDIDRules = 100

// didVoiceActions are the call actions the dialplan carries out, with the destination
// used when a rule gives none ("" for call: the owner's SIP account).
var didVoiceActions = map[string]string{
	"call":       "",     // dial destination (SIP account or number) for timeout seconds
	"playfile":   "beep", // play a sound file
	"input":      "beep", // play a file and read digits: the next rule sees 99INPUT
	"voicemail":  "",     // leave a message in the mailbox destination (owner's account)
	"hangup":     "",
	"busy":       "",
	"congestion": "",
}

// didSMSActions are the SMS actions, with their default destinations.
var didSMSActions = map[string]string{
	"internal": "", // deliver to the owner's SIP account
	"forward":  "", // send on to the number destination
	"email":    "", // mail to the address destination
	"drop":     "",
}

// didSources are the caller filters, with examples of their patterns.
var didSources = map[string][]string{
	"any":       {""},
	"anonymous": {""},
	"number":    {"%", "74955555550", "7495%", "_7495XXXXXXX", "_X."},
	"time":      {"mon-fri/09:00-18:00", "22:00-06:00", "sat,sun"},
}

var didConditions = map[string]bool{"": true, "SUCCESS": true, "UNSUCCESS": true, "BUSY": true, "NOANSWER": true,
	"UNAVAIL": true, "INPUT": true}

// statusInput is the status the dialplan sends after an input action.
const statusInput = "99INPUT"

// getDIDActions(1): the actions a rule may take, with their default destinations.
func (s *Service) getDIDActions(r *Request) (any, error) {
	return map[string]any{"voice": didVoiceActions, "sms": didSMSActions}, nil
}

// getFilters(1): the sources with example patterns; sources=true lists the sources
// only, resolver=SOURCE the patterns of that one source.
func (s *Service) getFilters(r *Request) (any, error) {
	if name := r.Str("resolver"); name != "" {
		p, ok := didSources[name]
		if !ok {
			return nil, apierr.New(apierr.NotExist, "no source %q (any, anonymous, number, time)", name)
		}
		return map[string][]string{name: p}, nil
	}
	if r.Bool("sources") {
		names := make([]string, 0, len(didSources))
		for n := range didSources {
			names = append(names, n)
		}
		sort.Strings(names)
		return names, nil
	}
	return didSources, nil
}

// compilePattern turns a number pattern (see didRule) into an anchored expression.
func compilePattern(p string) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("^")
	if rest, ok := strings.CutPrefix(p, "_"); ok {
		for i := 0; i < len(rest); i++ {
			switch c := rest[i]; c {
			case 'X', 'x':
				b.WriteString("[0-9]")
			case 'Z', 'z':
				b.WriteString("[1-9]")
			case 'N', 'n':
				b.WriteString("[2-9]")
			case '.':
				b.WriteString(".+")
			case '!':
				b.WriteString(".*")
			case '[':
				end := strings.IndexByte(rest[i:], ']')
				if end < 2 {
					return nil, apierr.New(apierr.InvalidArgument, "pattern %q: a [set] is not closed or empty", p)
				}
				set := rest[i+1 : i+end]
				for j := 0; j < len(set); j++ {
					if !(set[j] >= '0' && set[j] <= '9' || set[j] == '-' && j > 0 && j < len(set)-1 || set[j] == '*' || set[j] == '#') {
						return nil, apierr.New(apierr.InvalidArgument, "pattern %q: a set holds digits and ranges", p)
					}
				}
				b.WriteString("[" + strings.NewReplacer("*", `\*`, "#", `\#`).Replace(set) + "]")
				i += end
			default:
				b.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
	} else if p != "" && p != "%" {
		parts := strings.Split(p, "%")
		for i, part := range parts {
			if i > 0 {
				b.WriteString(".*")
			}
			b.WriteString(regexp.QuoteMeta(part))
		}
	} else {
		b.WriteString(".*")
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// matches reports whether the rule runs for this caller and status; local is the time
// of the call in the DID owner's timezone (a UTC time shifted by it).
func (ru *didRule) matches(callerid, status, input string, local time.Time) bool {
	switch ru.Source {
	case "time":
		tp, err := parseTimePattern(ru.Pattern)
		if err != nil || !tp.holds(local) {
			return false
		}
	case "anonymous":
		switch strings.ToLower(strings.TrimSpace(callerid)) {
		case "", "anonymous", "unknown", "restricted":
		default:
			return false
		}
	case "number":
		re, err := compilePattern(ru.Pattern)
		if err != nil || !re.MatchString(didNumber(callerid)) {
			return false
		}
	}
	return conditionHolds(ru.Condition, strings.ToUpper(strings.TrimSpace(status)), input, ru.Input)
}

func conditionHolds(cond, status, input, want string) bool {
	success := status == "ANSWER" || status == "ANSWERED" || status == "SUCCESS" || status == "200"
	busy := status == "BUSY" || status == "486" || status == "600"
	noanswer := status == "NOANSWER" || status == "NO ANSWER" || status == "CANCEL" || status == "408" ||
		status == "480" || status == "487"
	switch cond {
	case "":
		return true
	case "SUCCESS":
		return success
	case "UNSUCCESS":
		return status != "" && !success && status != statusInput
	case "BUSY":
		return busy
	case "NOANSWER":
		return noanswer
	case "UNAVAIL":
		if status == "CHANUNAVAIL" || status == "UNAVAIL" || status == "UNAVAILABLE" || status == "CONGESTION" {
			return true
		}
		code, err := strconv.Atoi(status)
		return err == nil && code >= 400 && code < 700 && !busy && !noanswer
	case "INPUT":
		if status != statusInput {
			return false
		}
		re, err := compilePattern(want)
		return err == nil && re.MatchString(strings.TrimSpace(input))
	}
	return false
}

// ruleFields validates the rule arguments given; every value goes into a space-separated
// answer line, so none may hold white space.
func ruleFields(r *Request) ([]string, []any, error) {
	var cols []string
	var vals []any
	set := func(c string, v any) { cols = append(cols, c); vals = append(vals, v) }
	for _, f := range []string{"source", "pattern", "sms_action", "sms_destination", "action", "server",
		"destination", "callerid", "condition", "input"} {
		if !r.Has(f) {
			continue
		}
		v := strings.TrimSpace(r.Str(f))
		if len(v) > 128 || strings.ContainsAny(v, " \t") || hasControl(v) {
			return nil, nil, apierr.New(apierr.InvalidArgument, "%s: at most 128 characters without spaces", f)
		}
		switch f {
		case "source":
			if _, ok := didSources[v]; !ok && v != "" {
				return nil, nil, apierr.New(apierr.InvalidArgument, "source: any, anonymous, number or time")
			}
		case "pattern", "input":
			if _, err := compilePattern(v); err != nil {
				return nil, nil, err
			}
		case "action":
			if _, ok := didVoiceActions[v]; !ok && v != "" {
				return nil, nil, apierr.New(apierr.InvalidArgument, "action %q: see getDIDActions", v)
			}
		case "sms_action":
			if _, ok := didSMSActions[v]; !ok && v != "" {
				return nil, nil, apierr.New(apierr.InvalidArgument, "sms_action %q: see getDIDActions", v)
			}
		case "condition":
			v = strings.ToUpper(v)
			if !didConditions[v] {
				return nil, nil, apierr.New(apierr.InvalidArgument, "condition: SUCCESS, UNSUCCESS, BUSY, NOANSWER, UNAVAIL or INPUT")
			}
		}
		set(f, v)
	}
	if r.Has("policy") {
		set("policy", r.Str("policy"))
	}
	if r.Has("timeout") {
		if t := r.Int("timeout"); t < 0 || t > 86400 {
			return nil, nil, apierr.New(apierr.InvalidArgument, "timeout: 0 to 86400 seconds")
		}
		set("timeout", r.Int("timeout"))
	}
	return cols, vals, nil
}

// checkSourcePattern checks a rule's pattern against its source: a time source needs a
// time pattern (a number pattern is checked by ruleFields).
func checkSourcePattern(source, pattern string) error {
	if source == "time" {
		_, err := parseTimePattern(pattern)
		return err
	}
	return nil
}

// lockDIDRules takes the DID's row for update, so changes to its rules are serialised.
func lockDIDRules(r *Request, tx *db.Tx, did string) ([]didRule, error) {
	var got string
	if err := tx.Get(r.ctx, &got, `SELECT did FROM dids WHERE did = ?`+tx.ForUpdate(), did); err != nil {
		if db.IsNotFound(err) {
			return nil, apierr.New(apierr.NotExist, "no DID %s", did)
		}
		return nil, err
	}
	var rules []didRule
	err := tx.Select(r.ctx, &rules, ruleSelect+` WHERE did = ? ORDER BY position, id`, did)
	return rules, err
}

// renumber writes positions 1..n in the order given.
func renumber(r *Request, tx *db.Tx, rules []didRule) error {
	for i, ru := range rules {
		if ru.Position == int64(i+1) {
			continue
		}
		if _, err := tx.Exec(r.ctx, `UPDATE did_rules SET position = ? WHERE id = ?`, i+1, ru.ID); err != nil {
			return err
		}
	}
	return nil
}

// addDIDRule(1) adds a rule to a DID the caller manages, first (position=start) or last.
func (s *Service) addDIDRule(r *Request) (any, error) {
	d, err := r.ownedDID(s.DB.Q(), r.Str("did"))
	if err != nil {
		return nil, err
	}
	cols, vals, err := ruleFields(r)
	if err != nil {
		return nil, err
	}
	if err := checkSourcePattern(strings.TrimSpace(r.Str("source")), strings.TrimSpace(r.Str("pattern"))); err != nil {
		return nil, err
	}
	return nil, s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		rules, err := lockDIDRules(r, tx, d.DID)
		if err != nil {
			return err
		}
		if len(rules) >= maxDIDRules {
			return apierr.New(apierr.DataAbort, "DID %s has %d rules already", d.DID, maxDIDRules)
		}
		pos := int64(len(rules) + 1)
		if r.Str("position") != "end" {
			pos = 1
			if _, err := tx.Exec(r.ctx, `UPDATE did_rules SET position = position + 1 WHERE did = ?`, d.DID); err != nil {
				return err
			}
		}
		cols, vals := append(cols, "did", "position"), append(vals, d.DID, pos)
		_, err = tx.Insert(r.ctx, `INSERT INTO did_rules (`+strings.Join(cols, ", ")+`) VALUES (?`+strings.Repeat(", ?", len(cols)-1)+`)`, vals...)
		return err
	})
}

// updateDIDRule(1) changes a rule's fields and, with pos, moves it (1..number of rules).
func (s *Service) updateDIDRule(r *Request) (any, error) {
	d, err := r.ownedDID(s.DB.Q(), r.Str("did"))
	if err != nil {
		return nil, err
	}
	cols, vals, err := ruleFields(r)
	if err != nil {
		return nil, err
	}
	return nil, s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		rules, err := lockDIDRules(r, tx, d.DID)
		if err != nil {
			return err
		}
		n := r.Int("rule")
		if n < 1 || n > int64(len(rules)) {
			return apierr.New(apierr.NotExist, "DID %s has no rule %d", d.DID, n)
		}
		ru := rules[n-1]
		source, pattern := ru.Source, ru.Pattern
		if r.Has("source") {
			source = strings.TrimSpace(r.Str("source"))
		}
		if r.Has("pattern") {
			pattern = strings.TrimSpace(r.Str("pattern"))
		}
		if err := checkSourcePattern(source, pattern); err != nil {
			return err
		}
		if len(cols) > 0 {
			if _, err := tx.Exec(r.ctx, `UPDATE did_rules SET `+strings.Join(cols, " = ?, ")+` = ? WHERE id = ?`, append(vals, ru.ID)...); err != nil {
				return err
			}
		}
		if !r.Has("pos") {
			return nil
		}
		to := r.Int("pos")
		if to < 1 || to > int64(len(rules)) {
			return apierr.New(apierr.InvalidArgument, "pos: 1 to %d", len(rules))
		}
		rest := append(append([]didRule{}, rules[:n-1]...), rules[n:]...)
		moved := append(append(append([]didRule{}, rest[:to-1]...), ru), rest[to-1:]...)
		return renumber(r, tx, moved)
	})
}

// deleteDIDRule(1) deletes rule number rule, or with rule=-1 every rule whose pattern
// equals pattern.
func (s *Service) deleteDIDRule(r *Request) (any, error) {
	d, err := r.ownedDID(s.DB.Q(), r.Str("did"))
	if err != nil {
		return nil, err
	}
	n := r.Int("rule")
	if n == -1 && !r.Has("pattern") {
		return nil, apierr.New(apierr.MissingArgument, "pattern is obligatory with rule=-1")
	}
	return nil, s.DB.InTx(r.ctx, func(tx *db.Tx) error {
		rules, err := lockDIDRules(r, tx, d.DID)
		if err != nil {
			return err
		}
		var keep []didRule
		gone := 0
		for i, ru := range rules {
			if n == int64(i+1) || n == -1 && ru.Pattern == strings.TrimSpace(r.Str("pattern")) {
				if _, err := tx.Exec(r.ctx, `DELETE FROM did_rules WHERE id = ?`, ru.ID); err != nil {
					return err
				}
				gone++
				continue
			}
			keep = append(keep, ru)
		}
		if gone == 0 {
			return apierr.New(apierr.NotExist, "DID %s has no such rule", d.DID)
		}
		return renumber(r, tx, keep)
	})
}

func (ru *didRule) view() map[string]any {
	return map[string]any{
		"rule": ru.Position, "did": ru.DID, "source": ru.Source, "pattern": ru.Pattern, "policy": ru.Policy,
		"sms_action": ru.SMSAction, "sms_destination": ru.SMSDestination, "action": ru.Action, "server": ru.Server,
		"destination": ru.Destination, "callerid": ru.CallerID, "timeout": ru.Timeout, "condition": ru.Condition,
		"input": ru.Input,
	}
}

// getDIDRules(1): the rules of a DID the caller manages, in order; with rule, that one
// (still a list).
func (s *Service) getDIDRules(r *Request) (any, error) {
	d, err := r.ownedDID(s.DB.Q(), r.Str("did"))
	if err != nil {
		return nil, err
	}
	var rules []didRule
	if err := s.DB.Q().Select(r.ctx, &rules, ruleSelect+` WHERE did = ? ORDER BY position, id`, d.DID); err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for i := range rules {
		if r.Has("rule") && r.Int("rule") != rules[i].Position {
			continue
		}
		out = append(out, rules[i].view())
	}
	if r.Has("rule") && len(out) == 0 {
		return nil, apierr.New(apierr.NotExist, "DID %s has no rule %d", d.DID, r.Int("rule"))
	}
	return out, nil
}

// resolveDIDRule(50) tells Asterisk what to do with a call (or SMS) on a DID, from rule
// number rule on (1 for a new call): the first rule that matches (see didRule) answers
//
//	OK <policy> <owner's SIP account> <action> <server> <destination> <callerid> <timeout> <sms_action> <sms_destination>
//
// when it is rule itself, else SKIP <its number>, so the dialplan asks for it and knows
// which rule it runs (it asks rule+1 with the outcome next); FIN when no rule is left,
// or when the DID is disabled, has no owner or has expired. Empty fields show as two
// spaces in a row. A rule without destination takes its action's default (the owner's
// SIP account for call, voicemail and internal), without server the SIP server of the
// owner's account, without callerid TRANSIT (the caller's own number, which the dialplan
// keeps). The switch asks this for every call, so no ownership is checked: level 50 is
// for server keys only.
func (s *Service) resolveDIDRule(r *Request) (any, error) {
	q := s.DB.Q()
	d, err := didByNumber(r.ctx, q, r.Str("did"))
	if err != nil {
		return nil, err
	}
	from := r.Int("rule")
	if from < 1 {
		return nil, apierr.New(apierr.InvalidArgument, "rule: from 1")
	}
	if d.Enabled != 1 || !d.OwnerID.Valid || d.Expiration > 0 && d.Expiration < time.Now().Unix() {
		return "FIN", nil
	}
	var rules []didRule
	if err := q.Select(r.ctx, &rules, ruleSelect+` WHERE did = ? AND position >= ? ORDER BY position, id`, d.DID, from); err != nil {
		return nil, err
	}
	owner, err := userByID(r.ctx, q, d.OwnerID.Int64)
	if err != nil {
		return nil, err
	}
	local := time.Now().UTC().Add(time.Duration(owner.Timezone * float64(time.Hour)))
	for i := range rules {
		ru := &rules[i]
		if !ru.matches(r.Str("callerid"), r.Str("status"), r.Str("input"), local) {
			continue
		}
		if ru.Position != from {
			return "SKIP " + strconv.FormatInt(ru.Position, 10), nil
		}
		var acct []struct {
			Extension string `db:"extension"`
			Server    string `db:"server"`
		}
		if err := q.Select(r.ctx, &acct, `SELECT e.extension, COALESCE(s.name, '') AS server FROM extensions e
			LEFT JOIN sip_servers s ON s.id = e.server_id WHERE e.user_id = ? ORDER BY e.id LIMIT 1`, d.OwnerID.Int64); err != nil {
			return nil, err
		}
		ext, server := "", ""
		if len(acct) == 1 {
			ext, server = acct[0].Extension, acct[0].Server
		}
		dest, smsDest := ru.Destination, ru.SMSDestination
		if dest == "" {
			dest = didVoiceActions[ru.Action]
			if ru.Action == "call" || ru.Action == "voicemail" {
				dest = ext
			}
		}
		if smsDest == "" && ru.SMSAction == "internal" {
			smsDest = ext
		}
		if ru.Server != "" {
			server = ru.Server
		}
		callerid := ru.CallerID
		if callerid == "" {
			callerid = "TRANSIT"
		}
		return strings.Join([]string{"OK", ru.Policy, ext, ru.Action, server, dest, callerid,
			strconv.FormatInt(ru.Timeout, 10), ru.SMSAction, smsDest}, " "), nil
	}
	return "FIN", nil
}

// timePattern is a parsed pattern of the time source.
type timePattern struct {
	days     [7]bool // by time.Weekday
	from, to int     // minutes of the day; from == to: the whole day
}

var weekdays = map[string]int{"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}

func parseTimePattern(p string) (timePattern, error) {
	tp := timePattern{}
	bad := apierr.New(apierr.InvalidArgument, "pattern %q: want [DAYS/]HH:MM-HH:MM or DAYS (e.g. mon-fri/09:00-18:00)", p)
	days, hours, ok := strings.Cut(strings.ToLower(p), "/")
	if ok && (days == "" || hours == "") {
		return tp, bad
	}
	if !ok {
		days, hours = "", days
		if !strings.Contains(hours, ":") {
			days, hours = hours, ""
		}
	}
	if days == "" {
		for i := range tp.days {
			tp.days[i] = true
		}
	} else {
		for _, part := range strings.Split(days, ",") {
			a, b, isRange := strings.Cut(part, "-")
			from, ok1 := weekdays[a]
			to, ok2 := weekdays[b]
			if !isRange {
				to, ok2 = from, ok1
			}
			if !ok1 || !ok2 {
				return tp, bad
			}
			for d := from; ; d = (d + 1) % 7 {
				tp.days[d] = true
				if d == to {
					break
				}
			}
		}
	}
	if hours != "" {
		a, b, ok := strings.Cut(hours, "-")
		from, ok1 := dayMinute(a)
		to, ok2 := dayMinute(b)
		if !ok || !ok1 || !ok2 {
			return tp, bad
		}
		tp.from, tp.to = from, to
	}
	return tp, nil
}

// dayMinute reads HH:MM (00:00 to 24:00).
func dayMinute(s string) (int, bool) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || len(h) != 2 || len(m) != 2 || err1 != nil || err2 != nil || hh > 24 || mm > 59 || hh == 24 && mm > 0 {
		return 0, false
	}
	return hh*60 + mm, true
}

// holds reports whether t (read as a wall clock) is inside the pattern. A range across
// midnight belongs to the day it starts on.
func (tp timePattern) holds(t time.Time) bool {
	m := t.Hour()*60 + t.Minute()
	day := int(t.Weekday())
	switch {
	case tp.from == tp.to:
		return tp.days[day]
	case tp.from < tp.to:
		return tp.days[day] && m >= tp.from && m < tp.to
	case m >= tp.from:
		return tp.days[day]
	case m < tp.to:
		return tp.days[(day+6)%7]
	}
	return false
}
