package asterisk

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/narayana/narayanad/asterisk/amisim"
)

func TestOriginateAnswered(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	c := newClient(t, sim.Addr())
	// createCallback's shape (DECISIONS §7).
	res, err := c.Originate(t.Context(), OriginateRequest{
		Channel:   "Local/100@callback",
		Context:   "callback",
		Exten:     "200",
		Priority:  1,
		CallerID:  `"Alice" <100>`,
		Timeout:   20 * time.Second,
		Variables: map[string]string{"B": "2", "A": "1"},
		Account:   "1001",
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Reason != ReasonAnswered || res.Uniqueid == "" || res.Channel != "Local/100@callback" {
		t.Errorf("result = %+v", res)
	}
	acts := sim.ActionsNamed("Originate")
	if len(acts) != 1 {
		t.Fatalf("got %d Originates", len(acts))
	}
	want := amisim.Msg(
		"Action", "Originate",
		"Channel", "Local/100@callback",
		"Context", "callback",
		"Exten", "200",
		"Priority", "1",
		"CallerID", `"Alice" <100>`,
		"Timeout", "20000",
		"Account", "1001",
		"Variable", "A=1",
		"Variable", "B=2",
		"Async", "true",
		"ActionID", acts[0].Get("ActionID"),
	)
	if !slices.Equal(acts[0], want) {
		t.Errorf("sent\n%v\nwant\n%v", acts[0], want)
	}
}

func TestOriginateFailures(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	sim.SetOriginateOutcome("busy", amisim.Busy)
	sim.SetOriginateOutcome("congested", amisim.Congestion)
	sim.SetOriginateOutcome("Local/silent@callback", amisim.NoAnswer)
	sim.SetOriginateOutcome("gone", amisim.Failure)
	sim.SetOriginateOutcome("hungup", amisim.HungUp)
	c := newClient(t, sim.Addr())
	for dest, want := range map[string]string{
		"busy":      "busy",
		"congested": "congestion",
		"silent":    "no answer",
		"gone":      "failure",
		"hungup":    "hung up",
	} {
		_, err := c.Originate(t.Context(), OriginateRequest{Channel: "Local/" + dest + "@callback", Context: "callback", Exten: "200"})
		var oe *OriginateError
		if !errors.As(err, &oe) || err.Error() != want {
			t.Errorf("%s: err = %v, want OriginateError %q", dest, err, want)
		}
	}
}

func TestOriginateRefused(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	c := newClient(t, sim.Addr())
	_, err := c.Originate(t.Context(), OriginateRequest{Channel: "nonsense", Context: "callback", Exten: "200"})
	var amiErr *Error
	if !errors.As(err, &amiErr) || amiErr.Message != "Invalid channel" {
		t.Fatalf("err = %v, want Invalid channel", err)
	}
}

func TestOriginateNeedsCallEvents(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	c := newClient(t, sim.Addr(), func(cfg *Config) { cfg.Events = "off" })
	if _, err := c.Originate(t.Context(), OriginateRequest{Channel: "Local/1@cb", Context: "cb", Exten: "2"}); err == nil {
		t.Fatal("Originate with Events off would wait forever; want an error")
	}
}

// Another session's OriginateResponse (other ActionID) must not complete ours.
func TestOriginateIgnoresOthersOutcome(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{OriginateDelay: 50 * time.Millisecond})
	sim.SetOriginateOutcome("200", amisim.Busy)
	c := newClient(t, sim.Addr())
	other := newClient(t, sim.Addr())
	done := make(chan error, 1)
	go func() {
		_, err := other.Originate(t.Context(), OriginateRequest{Channel: "SIP/200", Context: "cb", Exten: "1"})
		done <- err
	}()
	if _, err := c.Originate(t.Context(), OriginateRequest{Channel: "SIP/100", Context: "cb", Exten: "1"}); err != nil {
		t.Errorf("answered call: %v", err)
	}
	if err := <-done; err == nil || err.Error() != "busy" {
		t.Errorf("busy call: %v", err)
	}
}

func TestCoreShowChannels(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	c := newClient(t, sim.Addr())
	chans, err := c.CoreShowChannels(t.Context())
	if err != nil || len(chans) != 0 {
		t.Fatalf("empty model: %v, %v", chans, err)
	}
	sim.AddChannel(amisim.Channel{Name: "SIP/100-0000001a", CallerIDNum: "100", Context: "from-internal", Exten: "200", Duration: "01:02:03", Application: "Dial", ApplicationData: "SIP/200,30"})
	sim.AddChannel(amisim.Channel{Name: "SIP/200-0000001b", State: "Ringing"})
	chans, err = c.CoreShowChannels(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(chans) != 2 {
		t.Fatalf("got %d channels", len(chans))
	}
	got := chans[0]
	if got.Name != "SIP/100-0000001a" || got.State != "Up" || got.CallerIDNum != "100" || got.Exten != "200" ||
		got.Duration != time.Hour+2*time.Minute+3*time.Second || got.ApplicationData != "SIP/200,30" || got.Uniqueid == "" {
		t.Errorf("channel = %+v", got)
	}
	if chans[1].State != "Ringing" {
		t.Errorf("second channel state = %q", chans[1].State)
	}
}

func TestChannelsOf(t *testing.T) {
	chans := []Channel{
		{Name: "SIP/100-00000001"},
		{Name: "SIP/10-00000002"},
		{Name: "SIP/1000-00000003"},
		{Name: "PJSIP/100-00000004"},
		{Name: "Local/100@callback-00000005;1"},
		{Name: "SIP/my-peer-00000006"},
		{Name: "SIP/100"},
	}
	names := func(cs []Channel) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.Name)
		}
		return out
	}
	tests := []struct {
		tech string
		exts []string
		want []string
	}{
		{"SIP", []string{"10"}, []string{"SIP/10-00000002"}},
		{"SIP", []string{"100"}, []string{"SIP/100-00000001"}},
		{"", []string{"100"}, []string{"SIP/100-00000001", "PJSIP/100-00000004"}},
		{"PJSIP", []string{"100", "1000"}, []string{"PJSIP/100-00000004"}},
		{"SIP", []string{"my-peer"}, []string{"SIP/my-peer-00000006"}},
		{"SIP", nil, nil},
	}
	for _, tt := range tests {
		if got := names(ChannelsOf(chans, tt.tech, tt.exts)); !slices.Equal(got, tt.want) {
			t.Errorf("ChannelsOf(%q, %v) = %v, want %v", tt.tech, tt.exts, got, tt.want)
		}
	}
}

func TestHangup(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	sim.AddChannel(amisim.Channel{Name: "SIP/100-00000001"})
	sim.AddChannel(amisim.Channel{Name: "SIP/101-00000002"})
	c := newClient(t, sim.Addr())
	if err := c.Hangup(t.Context(), "SIP/100-00000001"); err != nil {
		t.Fatal(err)
	}
	if chans := sim.Channels(); len(chans) != 1 || chans[0].Name != "SIP/101-00000002" {
		t.Errorf("left %v", chans)
	}
	err := c.Hangup(t.Context(), "SIP/100-00000001")
	var amiErr *Error
	if !errors.As(err, &amiErr) || amiErr.Message != "No such channel" {
		t.Errorf("second hangup: %v, want No such channel", err)
	}
	if err := c.Hangup(t.Context(), "/.*/"); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("regex through Hangup: %v, want ErrInvalidValue", err)
	}
	if got := sim.ActionsNamed("Hangup")[0].Get("Channel"); got != "SIP/100-00000001" {
		t.Errorf("sent Channel %q", got)
	}
}

func TestHangupMatching(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	for _, n := range []string{"SIP/100-00000001", "SIP/100-00000002", "SIP/1000-00000003", "SIP/200-00000004"} {
		sim.AddChannel(amisim.Channel{Name: n})
	}
	c := newClient(t, sim.Addr())
	n, err := c.HangupMatching(t.Context(), "^SIP/100-.*$")
	if err != nil || n != 2 {
		t.Fatalf("HangupMatching = %d, %v; want 2", n, err)
	}
	if got := sim.ActionsNamed("Hangup")[0].Get("Channel"); got != "/^SIP/100-.*$/" {
		t.Errorf("sent Channel %q", got)
	}
	n, err = c.HangupMatching(t.Context(), "^IAX2/.*$")
	if err != nil || n != 0 {
		t.Fatalf("no match: %d, %v; want 0, nil", n, err)
	}
	if len(sim.Channels()) != 2 {
		t.Errorf("left %v", sim.Channels())
	}
	// The Hangup events the hang-ups cause are ordinary events.
	if ev := <-c.Events(); ev.Get("Event") != "Hangup" {
		t.Errorf("event = %v, want Hangup", ev)
	}
}

func TestCommand(t *testing.T) {
	const peers = "Name/username             Host                                    Dyn Forcerport Comedia    ACL Port     Status      Description\n" +
		"100/100                   192.168.1.10                             D  Auto (No)  No             5060     OK (12 ms)\n" +
		"\n" +
		"1 sip peers [Monitored: 1 online, 0 offline Unmonitored: 0 online, 0 offline]"
	for _, legacy := range []bool{false, true} {
		name := map[bool]string{false: "asterisk20", true: "asterisk13"}[legacy]
		t.Run(name, func(t *testing.T) {
			sim := amisim.Start(t, amisim.Config{LegacyCommand: legacy})
			sim.SetCommand("dialplan show", "key: value: with colons\n--not the end--\n\n\ntail")
			c := newClient(t, sim.Addr())
			ctx := t.Context()

			out, err := c.Command(ctx, "sip show peers")
			if err != nil || out != peers {
				t.Errorf("sip show peers = %q, %v", out, err)
			}
			out, err = c.Command(ctx, "dialplan show")
			if want := "key: value: with colons\n--not the end--\n\n\ntail"; err != nil || out != want {
				t.Errorf("dialplan show = %q, %v; want %q", out, err, want)
			}
			out, err = c.Command(ctx, "sip reload")
			if err != nil || out != "" {
				t.Errorf("sip reload = %q, %v", out, err)
			}
			_, err = c.Command(ctx, "pjsip reload")
			var amiErr *Error
			if !errors.As(err, &amiErr) || !strings.HasPrefix(amiErr.Message, "No such command 'pjsip reload'") {
				t.Errorf("unknown command: %v", err)
			}
			_, err = c.Command(ctx, "module unload chan_sip.so")
			if !errors.As(err, &amiErr) || amiErr.Message != "Command blacklisted" {
				t.Errorf("blacklisted: %v", err)
			}
			// The connection is still in step after all that.
			if err := c.Ping(ctx); err != nil {
				t.Error(err)
			}
		})
	}
}

// A Command on a server that refuses the login answers the login's error (it once
// dereferenced the missing answer).
func TestCommandAfterRefusedLogin(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{AuthFailDelay: time.Millisecond})
	c := New(Config{Address: sim.Addr(), Username: "admin", Secret: "wrong", ActionTimeout: 500 * time.Millisecond})
	defer c.Close()
	_, err := c.Command(context.Background(), "core show version")
	var ae *Error
	if !errors.As(err, &ae) || ae.Message != "Authentication failed" {
		t.Fatalf("Command after a refused login: %v", err)
	}
}
