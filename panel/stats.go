package panel

import (
	"fmt"
	"html"
	"html/template"
	"sort"
	"strings"
	"time"
)

// stats draws the statistics of the last 14 days from getStats, one call a day, and the
// top directions from getLogs: charts are SVG made here (no script, no inline style).
func (p *Panel) stats(s *sess) (*view, error) {
	days := 14
	today := time.Now().UTC()
	who := s.q("user") // a user the caller manages (the gate checks `username`); empty: the caller
	var labels []string
	var calls, revenue []float64
	var total, success, seconds float64
	for i := days - 1; i >= 0; i-- {
		d := today.AddDate(0, 0, -i).Format("2006-01-02")
		st, err := s.call("getStats", "statistic", "true", "financials", "true", "date1", d+" 00:00:00", "date2", d+" 23:59:59", "username", who)
		if err != nil {
			return nil, err
		}
		m := toMap(st)
		stat, fin := toMap(m["stat"]), toMap(m["financials"])
		labels = append(labels, d[5:])
		calls = append(calls, fnum(stat["total_calls"]))
		revenue = append(revenue, fnum(fin["display_call_cost"]))
		total += fnum(stat["total_calls"])
		success += fnum(stat["success_calls"])
		seconds += fnum(stat["calls_duration"])
	}
	asr, acd := 0.0, 0.0
	if total > 0 {
		asr = 100 * success / total
	}
	if success > 0 {
		acd = seconds / success
	}
	from := today.AddDate(0, 0, -days+1).Format("2006-01-02")
	logs, err := s.call("getLogs", "from", from, "limit", "5000", "user", who)
	if err != nil {
		return nil, err
	}
	byDir := map[string]float64{}
	for _, r := range toList(logs) {
		if n := str(r["direction"]); n != "" {
			byDir[n] += fnum(r["time"]) / 60
		}
	}
	type dir struct {
		name string
		min  float64
	}
	var top []dir
	for n, m := range byDir {
		top = append(top, dir{n, m})
	}
	sort.Slice(top, func(i, j int) bool {
		return top[i].min > top[j].min || top[i].min == top[j].min && top[i].name < top[j].name
	})
	if len(top) > 8 {
		top = top[:8]
	}
	var tl []string
	var tm []float64
	for _, d := range top {
		tl, tm = append(tl, d.name), append(tm, d.min)
	}
	return &view{Title: "Statistics", Blocks: []block{
		{Form: &form{Action: Prefix + "stats", Method: "get", Submit: "Show", Fields: []field{
			{Name: "user", Label: "User (empty: yourself)", Type: "text", Value: who}}}},
		{ID: "summary", Heading: "Last 14 days", KV: [][2]string{
			{"Calls", fmt.Sprintf("%.0f", total)}, {"ASR", fmt.Sprintf("%.1f %%", asr)}, {"ACD", fmt.Sprintf("%.0f s", acd)},
			{"Minutes", fmt.Sprintf("%.1f", seconds/60)}}},
		{ID: "chartcalls", Heading: "Calls by day", SVG: bars(labels, calls, "%.0f")},
		{ID: "chartrevenue", Heading: "Revenue by day (" + s.cur() + ")", SVG: bars(labels, revenue, "%.2f")},
		{ID: "chartdirections", Heading: "Top directions (minutes)", SVG: hbars(tl, tm)},
	}}, nil
}

// bars is a vertical bar chart.
func bars(labels []string, vals []float64, format string) template.HTML {
	const w, h, pad = 760, 200, 24
	top := 0.0
	for _, v := range vals {
		top = max(top, v)
	}
	if top == 0 {
		top = 1
	}
	bw := float64(w-2*pad) / float64(max(1, len(vals)))
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%" role="img">`, w, h+30)
	fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#d9dde5"/>`, pad, h, w-pad, h)
	for i, v := range vals {
		bh := (h - pad) * v / top
		x := float64(pad) + float64(i)*bw
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#2453c9" rx="2"><title>%s: %s</title></rect>`,
			x+2, float64(h)-bh, bw-4, bh, html.EscapeString(labels[i]), html.EscapeString(fmt.Sprintf(format, v)))
		if v > 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, x+bw/2, float64(h)-bh-4, html.EscapeString(fmt.Sprintf(format, v)))
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, x+bw/2, h+16, html.EscapeString(labels[i]))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) // every text in it went through html.EscapeString
}

// hbars is a horizontal bar chart, for named values.
func hbars(labels []string, vals []float64) template.HTML {
	if len(vals) == 0 {
		return template.HTML(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 760 30" width="100%"><text x="0" y="18">—</text></svg>`)
	}
	const w, row, left = 760, 24, 200
	top := 0.0
	for _, v := range vals {
		top = max(top, v)
	}
	if top == 0 {
		top = 1
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%" role="img">`, w, row*len(vals)+4)
	for i, v := range vals {
		y := i * row
		bw := float64(w-left-80) * v / top
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="end">%s</text>`, left-8, y+16, html.EscapeString(labels[i]))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="#7a3db8" rx="2"/>`, left, y+4, max(bw, 1), row-8)
		fmt.Fprintf(&b, `<text x="%.1f" y="%d">%.1f</text>`, float64(left)+bw+6, y+16, v)
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
