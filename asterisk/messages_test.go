package asterisk

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/narayana/narayanad/asterisk/amisim"
)

// MessageSend's wire form as main/message.c's action_messagesend reads it.
func TestMessageSend(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	sim.FailMessagesTo("pjsip:404")
	c := newClient(t, sim.Addr())

	if err := c.MessageSend(t.Context(), MessageRequest{To: "pjsip:100", From: "200", Body: "Hello: world",
		Variables: map[string]string{"X-Narayana": "1"}}); err != nil {
		t.Fatal(err)
	}
	// A body with line breaks travels as Base64Body.
	if err := c.MessageSend(t.Context(), MessageRequest{To: "sip:100", Body: "line 1\nline 2"}); err != nil {
		t.Fatal(err)
	}
	acts := sim.ActionsNamed("MessageSend")
	want := amisim.Msg("Action", "MessageSend", "To", "pjsip:100", "From", "200", "Body", "Hello: world",
		"Variable", "X-Narayana=1", "ActionID", acts[0].Get("ActionID"))
	if !slices.Equal(acts[0], want) {
		t.Errorf("sent\n%v\nwant\n%v", acts[0], want)
	}
	if acts[1].Get("Base64Body") != "bGluZSAxCmxpbmUgMg==" || acts[1].Get("Body") != "" {
		t.Errorf("multi-line body sent as %v", acts[1])
	}
	got := sim.Messages()
	if len(got) != 2 || got[0].Body != "Hello: world" || got[1].Body != "line 1\nline 2" || got[1].To != "sip:100" {
		t.Fatalf("delivered: %+v", got)
	}

	var ae *Error
	if err := c.MessageSend(t.Context(), MessageRequest{To: "pjsip:404", Body: "x"}); !errors.As(err, &ae) || ae.Message != "Message failed to send." {
		t.Errorf("failed delivery: %v", err)
	}
	if err := c.MessageSend(t.Context(), MessageRequest{To: "xmpp:bob", Body: "x"}); !errors.As(err, &ae) || ae.Message != "Message technology not found." {
		t.Errorf("unknown tech: %v", err)
	}
	for _, bad := range []MessageRequest{
		{To: "100", Body: "x"},                                                   // no tech
		{To: "pjsip:100\r\nAction: Hangup", Body: "x"},                           // header injection
		{To: "pjsip:100", Body: strings.Repeat("a", 1301)},                       // over Asterisk's buffer
		{To: "pjsip:100", Body: strings.Repeat("a", 1100)},                       // a Body line over 1024 bytes
		{To: "pjsip:100", Body: "x", Variables: map[string]string{"A": "1,B=2"}}, // a second variable
	} {
		if err := c.MessageSend(t.Context(), bad); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	if n := len(sim.ActionsNamed("MessageSend")); n != 4 {
		t.Errorf("%d MessageSend actions reached Asterisk, want 4", n)
	}
}

// Originate with Application and Data instead of an extension (sendVoiceMessage).
func TestOriginateApplication(t *testing.T) {
	sim := amisim.Start(t, amisim.Config{})
	c := newClient(t, sim.Addr())
	res, err := c.Originate(t.Context(), OriginateRequest{Channel: "Local/79001234567@callback",
		Application: "Playback", Data: "/var/spool/narayana/voice-1", CallerID: "100"})
	if err != nil || res.Reason != ReasonAnswered {
		t.Fatalf("%+v %v", res, err)
	}
	a := sim.ActionsNamed("Originate")[0]
	want := amisim.Msg("Action", "Originate", "Channel", "Local/79001234567@callback", "Application", "Playback",
		"Data", "/var/spool/narayana/voice-1", "CallerID", "100", "Async", "true", "ActionID", a.Get("ActionID"))
	if !slices.Equal(a, want) {
		t.Errorf("sent\n%v\nwant\n%v", a, want)
	}
}
