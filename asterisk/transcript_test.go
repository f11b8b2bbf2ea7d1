package asterisk

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/narayana/narayanad/asterisk/amisim"
)

// These replay recorded exchanges (testdata/ami) to the client: the client
// must send exactly the C lines and make sense of exactly the S lines.

func transcript(name string) string { return filepath.Join("..", "testdata", "ami", name) }

func replayClient(t *testing.T, name string, edit ...func(*Config)) (*Client, *amisim.Replay) {
	r := amisim.StartReplay(t, transcript(name))
	return newClient(t, r.Addr(), edit...), r
}

func TestReplayLoginFailed(t *testing.T) {
	c, _ := replayClient(t, "login_failed.txt", func(cfg *Config) { cfg.Secret = "wrong"; cfg.ReconnectMin = time.Hour })
	err := c.Ping(t.Context())
	var amiErr *Error
	if !errors.As(err, &amiErr) || amiErr.Message != "Authentication failed" {
		t.Fatalf("err = %v, want Authentication failed", err)
	}
}

func TestReplayCoreShowChannels(t *testing.T) {
	c, r := replayClient(t, "coreshowchannels.txt")
	chans, err := c.CoreShowChannels(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := []Channel{{
		Name: "SIP/100-0000001a", State: "Up", CallerIDNum: "100", CallerIDName: "Alice",
		ConnectedLineNum: "200", ConnectedLineName: "<unknown>", Context: "from-internal", Exten: "200",
		Priority: "1", Uniqueid: "1700000000.31", Linkedid: "1700000000.31", Application: "Dial",
		ApplicationData: "SIP/200,30", BridgeID: "9a1c4f2e-6b1d-4b5e-8d6a-0c2f5e7b9a11", Duration: 65 * time.Second,
	}, {
		Name: "SIP/200-0000001b", State: "Up", CallerIDNum: "200", CallerIDName: "Bob",
		ConnectedLineNum: "100", ConnectedLineName: "Alice", Context: "from-internal",
		Priority: "1", Uniqueid: "1700000000.32", Linkedid: "1700000000.31", Application: "AppDial",
		ApplicationData: "(Outgoing Line)", BridgeID: "9a1c4f2e-6b1d-4b5e-8d6a-0c2f5e7b9a11", Duration: 64 * time.Second,
	}}
	if len(chans) != len(want) {
		t.Fatalf("got %d channels, want %d", len(chans), len(want))
	}
	for i := range want {
		if chans[i] != want[i] {
			t.Errorf("channel %d:\n got %+v\nwant %+v", i, chans[i], want[i])
		}
	}
	if r.Completed() != 1 {
		t.Errorf("transcript not played to the end")
	}
}

func testReplayCommand(t *testing.T, name string) {
	c, _ := replayClient(t, name)
	ctx := t.Context()
	out, err := c.Command(ctx, "sip show peers")
	want := "Name/username             Host                                    Dyn Forcerport Comedia    ACL Port     Status      Description\n" +
		"100/100                   192.168.1.10                             D  Auto (No)  No             5060     OK (12 ms)\n" +
		"\n" +
		"1 sip peers [Monitored: 1 online, 0 offline Unmonitored: 0 online, 0 offline]"
	if err != nil || out != want {
		t.Errorf("sip show peers = %q, %v\nwant %q", out, err, want)
	}
	_, err = c.Command(ctx, "pjsip reload")
	var amiErr *Error
	if want := "No such command 'pjsip reload' (type 'core show help pjsip' for other possible commands)"; !errors.As(err, &amiErr) || amiErr.Message != want {
		t.Errorf("pjsip reload: %v", err)
	}
	if out, err := c.Command(ctx, "sip reload"); err != nil || out != "" {
		t.Errorf("sip reload = %q, %v", out, err)
	}
}

func TestReplayCommandAsterisk13(t *testing.T) { testReplayCommand(t, "command_ast13.txt") }
func TestReplayCommandAsterisk20(t *testing.T) { testReplayCommand(t, "command_ast20.txt") }

func TestReplayOriginateBusy(t *testing.T) {
	c, r := replayClient(t, "originate_busy.txt")
	_, err := c.Originate(t.Context(), OriginateRequest{
		Channel:   "Local/100@callback",
		Context:   "callback",
		Exten:     "200",
		CallerID:  `"Alice" <100>`,
		Timeout:   30 * time.Second,
		Account:   "1001",
		Variables: map[string]string{"BILLING_ID": "42"},
	})
	var oe *OriginateError
	if !errors.As(err, &oe) || oe.Reason != ReasonBusy || err.Error() != "busy" {
		t.Fatalf("err = %v, want busy", err)
	}
	if r.Completed() != 1 {
		t.Errorf("transcript not played to the end")
	}
	// The unrelated events, the other daemon's OriginateResponse included,
	// went to Events().
	for _, want := range []string{"Newchannel", "OriginateResponse"} {
		select {
		case ev := <-c.Events():
			if ev.Get("Event") != want {
				t.Errorf("event %v, want %s", ev, want)
			}
		default:
			t.Errorf("missing event %s", want)
		}
	}
}
