package billing

import (
	"strconv"
	"strings"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/money"
)

// textBalanceMethods declares the methods whose handlers are in this file: the reference's
// "Call processing".
func (s *Service) textBalanceMethods() []Method {
	return []Method{
		method("getTextBalance", 50, s.getTextBalance, "balance:num", "currency:string").
			Doc("get the user's balance as words for Asterisk's voice", "the balance as text to be spoken"),
	}
}

// getTextBalance(50) spells a balance as Asterisk sound names joined by `&`, ready for
// Playback(): the user's balance in the user's currency, or `balance` (an amount in
// `currency`, default the user's). The language is the extension's sip_language (`ru…` is
// Russian, anything else English).
//
// Numbers use the sounds Asterisk ships (digits/N, digits/hundred, digits/thousand,
// digits/million, digits/minus; in Russian digits/100…digits/900, digits/1f and digits/2f
// for feminine nouns, digits/thousands-i, digits/thousands, digits/million-a,
// digits/millions). Currency words are sounds the operator records once, named after the
// unit and its plural form: English euro/euros, cent/cents, dollar/dollars, ruble/rubles,
// kopeck/kopecks; Russian euro, cent/centa/centov, dollar/dollara/dollarov,
// rubl/rublya/rubley, kopeyka/kopeyki/kopeek. Another currency says its code in lower case
// with cent/cents. The whole part and the cents are both always said:
// 12.5 EUR in English is `digits/12&euros&digits/50&cents`.
func (s *Service) getTextBalance(r *Request) (any, error) {
	p, err := s.callParty(r)
	if err != nil {
		return nil, err
	}
	u := p.user
	code := strings.ToUpper(strings.TrimSpace(r.Str("currency")))
	if code == "" {
		code = u.Currency
	}
	amount := r.Money("balance")
	if !r.Has("balance") {
		x, err := s.exchange(r.ctx, code)
		if err != nil {
			return nil, err
		}
		acc, err := accountByNumber(r.ctx, s.DB.Q(), u.AccountID) // the cached user carries no money
		if err != nil {
			return nil, err
		}
		amount = x.fromSystem(acc.Balance)
	} else if _, err := currency(r.ctx, s.DB.Q(), code); err != nil {
		return nil, err
	}
	lang := "en"
	if p.ext != nil {
		lang = p.ext.Language
	}
	if amount > money.Micro(1e15) || amount < -money.Micro(1e15) {
		return nil, apierr.New(apierr.InvalidArgument, "balance: too large to say")
	}
	return textBalance(amount, code, lang), nil
}

// textBalance spells amount (rounded to cents) in currency for the language.
func textBalance(amount money.Micro, code, lang string) string {
	amount = amount.Round(2)
	var out []string
	if amount < 0 {
		out = append(out, "digits/minus")
		amount = -amount
	}
	whole := int64(amount / money.One)
	cents := int64(amount%money.One) / 10_000
	ru := strings.HasPrefix(strings.ToLower(lang), "ru")
	w := currencyWords[code]
	if w.unit[0] == "" {
		lc := strings.ToLower(code)
		w = words{unit: [3]string{lc, lc, lc}, sub: [3]string{"cent", "cents", "cents"},
			ruUnit: [3]string{lc, lc, lc}, ruSub: [3]string{"cent", "centa", "centov"}}
	}
	if ru {
		out = append(out, sayRU(whole, w.ruUnitFem)...)
		out = append(out, w.ruUnit[ruForm(whole)])
		out = append(out, sayRU(cents, w.ruSubFem)...)
		out = append(out, w.ruSub[ruForm(cents)])
	} else {
		out = append(out, sayEN(whole)...)
		out = append(out, w.unit[enForm(whole)])
		out = append(out, sayEN(cents)...)
		out = append(out, w.sub[enForm(cents)])
	}
	return strings.Join(out, "&")
}

// words are a currency's sound names: unit and sub-unit, by plural form (English: one,
// other; Russian: one, few, many) and whether the Russian noun is feminine.
type words struct {
	unit, sub           [3]string
	ruUnit, ruSub       [3]string
	ruUnitFem, ruSubFem bool
}

var currencyWords = map[string]words{
	"EUR": {unit: [3]string{"euro", "euros", "euros"}, sub: [3]string{"cent", "cents", "cents"},
		ruUnit: [3]string{"euro", "euro", "euro"}, ruSub: [3]string{"cent", "centa", "centov"}},
	"USD": {unit: [3]string{"dollar", "dollars", "dollars"}, sub: [3]string{"cent", "cents", "cents"},
		ruUnit: [3]string{"dollar", "dollara", "dollarov"}, ruSub: [3]string{"cent", "centa", "centov"}},
	"RUB": {unit: [3]string{"ruble", "rubles", "rubles"}, sub: [3]string{"kopeck", "kopecks", "kopecks"},
		ruUnit: [3]string{"rubl", "rublya", "rubley"}, ruSub: [3]string{"kopeyka", "kopeyki", "kopeek"}, ruSubFem: true},
}

func enForm(n int64) int {
	if n == 1 {
		return 0
	}
	return 1
}

// ruForm is the Russian plural form of a count: 0 one (1, 21…), 1 few (2–4, 22–24…), 2 many.
func ruForm(n int64) int {
	switch {
	case n%100 >= 11 && n%100 <= 14:
		return 2
	case n%10 == 1:
		return 0
	case n%10 >= 2 && n%10 <= 4:
		return 1
	}
	return 2
}

func digit(n int64) string { return "digits/" + strconv.FormatInt(n, 10) }

// sayEN spells n >= 0 with Asterisk's English digit sounds.
func sayEN(n int64) []string {
	if n == 0 {
		return []string{"digits/0"}
	}
	var out []string
	for _, g := range []struct {
		size int64
		name string
	}{{1_000_000_000, "digits/billion"}, {1_000_000, "digits/million"}, {1_000, "digits/thousand"}} {
		if n >= g.size {
			out = append(out, sayEN(n/g.size)...)
			out = append(out, g.name)
			n %= g.size
		}
	}
	if n >= 100 {
		out = append(out, digit(n/100), "digits/hundred")
		n %= 100
	}
	switch {
	case n >= 20:
		out = append(out, digit(n/10*10))
		if n%10 != 0 {
			out = append(out, digit(n%10))
		}
	case n > 0:
		out = append(out, digit(n))
	}
	return out
}

// sayRU spells n >= 0 with Asterisk's Russian digit sounds; fem picks the feminine 1 and 2.
func sayRU(n int64, fem bool) []string {
	if n == 0 {
		return []string{"digits/0"}
	}
	var out []string
	groups := []struct {
		size  int64
		forms [3]string
		fem   bool
	}{
		{1_000_000_000, [3]string{"digits/billion", "digits/billion-a", "digits/billions"}, false},
		{1_000_000, [3]string{"digits/million", "digits/million-a", "digits/millions"}, false},
		{1_000, [3]string{"digits/thousand", "digits/thousands-i", "digits/thousands"}, true},
	}
	for _, g := range groups {
		if n >= g.size {
			k := n / g.size
			out = append(out, sayRUBelow1000(k, g.fem)...)
			out = append(out, g.forms[ruForm(k)])
			n %= g.size
		}
	}
	return append(out, sayRUBelow1000(n, fem)...)
}

func sayRUBelow1000(n int64, fem bool) []string {
	var out []string
	if n >= 1000 { // billions of billions: say the rest in full
		return sayRU(n, fem)
	}
	if n >= 100 {
		out = append(out, digit(n/100*100))
		n %= 100
	}
	switch {
	case n >= 20:
		out = append(out, digit(n/10*10))
		n %= 10
	case n >= 10:
		return append(out, digit(n))
	}
	switch {
	case n == 0:
	case fem && (n == 1 || n == 2):
		out = append(out, digit(n)+"f")
	default:
		out = append(out, digit(n))
	}
	return out
}
