package asterisk

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
)

func readAll(t *testing.T, wire string) []Message {
	t.Helper()
	r := newReader(strings.NewReader(wire))
	var out []Message
	for {
		m, err := r.next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("next: %v", err)
		}
		out = append(out, m)
	}
}

func TestReadMessage(t *testing.T) {
	msgs := readAll(t, "\r\nResponse: Success\r\nActionID: 1\r\nMessage: a: b: c\r\n\r\n"+
		"Event: VarSet\nVariable: X\nVariable: Y\nValue:\n\n")
	if len(msgs) != 2 {
		t.Fatalf("got %d messages", len(msgs))
	}
	if got := msgs[0].Get("message"); got != "a: b: c" {
		t.Errorf("split at first colon: %q", got)
	}
	if got := msgs[1].Values("Variable"); !slices.Equal(got, []string{"X", "Y"}) {
		t.Errorf("repeated keys: %v", got)
	}
	if msgs[1].Get("Value") != "" || len(msgs[1].Headers) != 4 {
		t.Errorf("empty value: %v", msgs[1])
	}
}

func TestReadFollows(t *testing.T) {
	msgs := readAll(t, "Response: Follows\r\nPrivilege: Command\r\nActionID: 7\r\n"+
		"ActionID-looking: text\nline: two\n\nlast--END COMMAND--\r\n\r\n"+
		"Response: Success\r\nActionID: 8\r\n\r\n")
	if len(msgs) != 2 {
		t.Fatalf("got %d messages: %v", len(msgs), msgs)
	}
	if msgs[0].Get("ActionID") != "7" {
		t.Errorf("ActionID = %q", msgs[0].Get("ActionID"))
	}
	want := []string{"ActionID-looking: text", "line: two", "", "last"}
	if got := msgs[0].Values("Output"); !slices.Equal(got, want) {
		t.Errorf("output = %q, want %q", got, want)
	}
	if msgs[1].Get("ActionID") != "8" {
		t.Errorf("next message lost: %v", msgs[1])
	}
}

func TestReadLimits(t *testing.T) {
	r := newReader(strings.NewReader("Key: " + strings.Repeat("x", maxLineLen+10) + "\r\n\r\n"))
	if _, err := r.next(); !errors.Is(err, errLineTooLong) {
		t.Errorf("long line: %v", err)
	}
	r = newReader(strings.NewReader("Response: Success\r\nActionID: 1"))
	if _, err := r.next(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated: %v", err)
	}
}

func TestBanner(t *testing.T) {
	for banner, ok := range map[string]bool{
		"Asterisk Call Manager/2.10.6\r\n": true,
		"Asterisk Call Manager/11.0.0\r\n": true,
		"SSH-2.0-OpenSSH_9.6\r\n":          false,
	} {
		_, err := newReader(strings.NewReader(banner)).readBanner()
		if (err == nil) != ok {
			t.Errorf("%q: err = %v", banner, err)
		}
	}
}

func TestAppendAction(t *testing.T) {
	got, err := appendAction(nil, "Hangup", []Header{{"Channel", "SIP/100-1"}})
	if err != nil || string(got) != "Action: Hangup\r\nChannel: SIP/100-1\r\n\r\n" {
		t.Errorf("got %q, %v", got, err)
	}
	if got := string(withActionID(got, "x1")); got != "Action: Hangup\r\nChannel: SIP/100-1\r\nActionID: x1\r\n\r\n" {
		t.Errorf("with ActionID: %q", got)
	}
	for _, bad := range []Header{{"Channel", "a\rb"}, {"Channel", "a\nb"}, {"Bad:Key", "x"}, {"", "x"}} {
		if _, err := appendAction(nil, "Hangup", []Header{bad}); !errors.Is(err, ErrInvalidValue) {
			t.Errorf("%q: err = %v, want ErrInvalidValue", bad, err)
		}
	}
}

const benchEvent = "Event: CoreShowChannel\r\nActionID: 1a2b3c-17\r\nChannel: SIP/100-0000001a\r\n" +
	"ChannelState: 6\r\nChannelStateDesc: Up\r\nCallerIDNum: 100\r\nCallerIDName: Alice\r\n" +
	"ConnectedLineNum: 200\r\nConnectedLineName: <unknown>\r\nLanguage: en\r\nAccountCode: \r\n" +
	"Context: from-internal\r\nExten: 200\r\nPriority: 1\r\nUniqueid: 1700000000.31\r\n" +
	"Linkedid: 1700000000.31\r\nApplication: Dial\r\nApplicationData: SIP/200,30\r\n" +
	"Duration: 00:01:05\r\nBridgeId: 9a1c4f2e-6b1d-4b5e-8d6a-0c2f5e7b9a11\r\n\r\n"

// repeatReader serves the same bytes forever.
type repeatReader struct {
	data string
	off  int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.data[r.off:])
		n += c
		r.off = (r.off + c) % len(r.data)
	}
	return n, nil
}

func BenchmarkReadMessage(b *testing.B) {
	r := newReader(&repeatReader{data: benchEvent})
	b.SetBytes(int64(len(benchEvent)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.next(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendAction(b *testing.B) {
	h := []Header{{"Channel", "Local/100@callback"}, {"Context", "callback"}, {"Exten", "200"}, {"Priority", "1"}, {"Async", "true"}}
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = appendAction(buf[:0], "Originate", h); err != nil {
			b.Fatal(err)
		}
	}
}
