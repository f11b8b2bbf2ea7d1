package billing

import (
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/asterisk/amisim"
)

// sendSIPMessage without a "sip" script handler goes out through the AMI of the
// target's SIP server as MessageSend.
func TestSIPMessageThroughAMI(t *testing.T) {
	eachEnv(t, func(t *testing.T, e *env) {
		amiEnv(t, e)
		sim := amisim.Start(t, amisim.Config{})
		e.amiServer("pbx1", "10.0.0.1", sim.Addr(), amisim.DefaultSecret)
		e.register(admin(), "alice", 11, "sip_server", "10.0.0.1", "sip_extension", "10001")
		e.register(admin(), "bob", 11, "sip_server", "10.0.0.1", "sip_extension", "10002")

		e.ok(e.do(e.web, "sendSIPMessage", user("alice", "to", "10002", "text", "Hello Bob")))
		e.ok(e.do(e.web, "sendSIPMessage", user("alice", "to", "10002", "text", "two\nlines", "callerid", "Desk")))
		got := sim.Messages()
		if len(got) != 2 || got[0].To != "pjsip:10002" || got[0].From != "10001" || got[0].Body != "Hello Bob" ||
			got[1].Body != "two\nlines" || got[1].From != "Desk" {
			t.Fatalf("messages: %+v", got)
		}
		if a := sim.ActionsNamed("MessageSend")[1]; a.Get("Base64Body") == "" {
			t.Fatalf("a multi-line text went as %v", a)
		}
		// chan_sip's technology when configured.
		e.s.Config.SIPMessageTech = "sip"
		e.ok(e.do(e.web, "sendSIPMessage", user("bob", "to", "10001", "text", "hi")))
		if m := sim.Messages()[2]; m.To != "sip:10001" || m.From != "10002" {
			t.Fatalf("chan_sip message: %+v", m)
		}
		// Asterisk cannot deliver it: E_CARRIER_ERROR with Asterisk's reason.
		sim.FailMessagesTo("sip:10001")
		a := e.do(e.web, "sendSIPMessage", user("bob", "to", "10001", "text", "hi"))
		e.fails(a, apierr.CarrierError, 200)
		if !strings.Contains(a.Description, "Message failed to send.") {
			t.Fatalf("description: %s", a.Body)
		}
		// Too long for an AMI line; nothing reaches Asterisk.
		n := len(sim.ActionsNamed("MessageSend"))
		e.fails(e.do(e.web, "sendSIPMessage", user("bob", "to", "10001", "text", strings.Repeat("x", 1200))), apierr.InvalidArgument, 400)
		if len(sim.ActionsNamed("MessageSend")) != n {
			t.Fatal("an oversized message reached Asterisk")
		}
		e.fails(e.do(e.web, "sendSIPMessage", user("bob", "to", "10009", "text", "x")), apierr.InvalidSMSTo, 200)
		// Asterisk down.
		sim.SetSilent(true)
		e.fails(e.do(e.web, "sendSIPMessage", user("bob", "to", "10001", "text", "hi")), apierr.AsteriskQueryError, 200)
	})
}

// sendVoiceMessage through a route whose prefix is `asterisk`: espeak-ng speaks the
// text into voice_dir as 8 kHz WAV and the user's SIP server calls the number and
// plays it; charged once, when the call was answered.
func TestVoiceMessageThroughAMI(t *testing.T) {
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Skip("espeak-ng is not installed (.ci/run installs it): voice messages need a speech engine")
	}
	eachEnv(t, func(t *testing.T, e *env) {
		amiEnv(t, e)
		e.s.Config.AsteriskTimeout = 5 * time.Second // espeak-ng under -race on a busy machine
		dir := t.TempDir()
		e.s.Config.VoiceDir = dir
		sim := amisim.Start(t, amisim.Config{})
		e.amiServer("pbx1", "10.0.0.1", sim.Addr(), amisim.DefaultSecret)
		d := e.s.DB
		execSQL(t, d, `INSERT INTO directions (code, id, name) VALUES ('49', 9, 'Germany')`)
		pbx := insertID(t, d, `INSERT INTO routes (name, type, prefix) VALUES ('PBX voice', 'sms', 'asterisk')`)
		tariff := insertID(t, d, `INSERT INTO rates (name, bill_type, multiplier) VALUES ('voice', 'byminute', 1000000)`)
		execSQL(t, d, `INSERT INTO rate_entries (rates_id, direction_id, priority, cost, route_id) VALUES (?, 9, 1, 200000, ?)`, tariff, pbx)
		execSQL(t, d, `UPDATE rating_version SET version = version + 1`)
		e.s.ratingChanged(context.Background())
		e.register(admin(), "alice", 11, "sip_server", "10.0.0.1", "sip_extension", "10001", "balance", "1")
		e.updateUser("alice", "rates", itoa(int(tariff)))

		a := e.ok(e.do(e.web, "sendVoiceMessage", user("alice", "to", "+49 30 123456", "text", "Your code is 1 2 3 4", "callerid", "4930000000")))
		id := a.Response.(interface{ String() string }).String()
		o := sim.ActionsNamed("Originate")
		if len(o) != 1 || o[0].Get("Channel") != "Local/4930123456@callback" || o[0].Get("Application") != "Playback" ||
			o[0].Get("CallerID") != "4930000000" || !strings.HasPrefix(o[0].Get("Data"), dir+"/narayana-voice-") {
			t.Fatalf("Originate: %v", o)
		}
		wav, err := os.ReadFile(o[0].Get("Data") + ".wav")
		if err != nil {
			t.Fatal(err)
		}
		// What Asterisk's format_wav plays: PCM, mono, 8000 Hz, 16 bits, and speech in it.
		if string(wav[:4]) != "RIFF" || binary.LittleEndian.Uint16(wav[20:]) != 1 || binary.LittleEndian.Uint16(wav[22:]) != 1 ||
			binary.LittleEndian.Uint32(wav[24:]) != 8000 || binary.LittleEndian.Uint16(wav[34:]) != 16 || len(wav) < 44+8000 {
			t.Fatalf("voice file header % x, %d bytes", wav[:44], len(wav))
		}
		if got := balance(t, e, "alice"); got != 800_000 {
			t.Fatalf("balance after a voice message: %s", got)
		}
		if a := e.ok(e.do(e.web, "deliveryReport", user("alice", "id", id))); a.Response != "SMS Deliv" {
			t.Fatalf("deliveryReport: %s", a.Body)
		}

		// Busy: no route left, nothing charged, no file left behind.
		sim.SetOriginateOutcome("4930999999", amisim.Busy)
		a = e.do(e.web, "sendVoiceMessage", user("alice", "to", "4930999999", "text", "hello", "callerid", "4930000000"))
		e.fails(a, apierr.CarrierError, 200)
		if !strings.Contains(a.Description, "busy") {
			t.Fatalf("busy: %s", a.Body)
		}
		if files, _ := os.ReadDir(dir); len(files) != 1 {
			t.Fatalf("voice_dir holds %d files", len(files))
		}
		// The asterisk route carries voice only.
		e.fails(e.do(e.web, "sendSMS", user("alice", "to", "4930123456", "text", "x", "callerid", "4930000000")), apierr.CarrierError, 200)
		// Without voice_dir the route is off.
		e.s.Config.VoiceDir = ""
		e.fails(e.do(e.web, "sendVoiceMessage", user("alice", "to", "4930123456", "text", "x", "callerid", "4930000000")), apierr.CarrierError, 200)
		if got := balance(t, e, "alice"); got != 800_000 {
			t.Fatalf("balance after failures: %s", got)
		}
		checkLedger(t, e)
	})
}
