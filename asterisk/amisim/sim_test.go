package amisim

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// rawConn is a bare-hands AMI client for testing the simulator itself.
type rawConn struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(10 * time.Second)) // a hung test fails instead
	return &rawConn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(s)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawConn) line() string {
	c.t.Helper()
	l, err := c.br.ReadString('\n')
	if err != nil {
		c.t.Fatal(err)
	}
	return l
}

// msg reads one message (up to the blank line) as raw text.
func (c *rawConn) msg() string {
	c.t.Helper()
	var b strings.Builder
	for {
		l := c.line()
		b.WriteString(l)
		if l == "\r\n" {
			return b.String()
		}
	}
}

func (c *rawConn) login() {
	c.t.Helper()
	c.line() // banner
	c.send("Action: Login\r\nUsername: admin\r\nSecret: secret\r\nEvents: off\r\n\r\n")
	if m := c.msg(); !strings.Contains(m, "Authentication accepted") {
		c.t.Fatalf("login: %q", m)
	}
}

func TestBeforeLogin(t *testing.T) {
	sim := Start(t, Config{})
	c := dial(t, sim.Addr())
	if got := c.line(); got != "Asterisk Call Manager/9.0.0\r\n" {
		t.Fatalf("banner %q", got)
	}
	c.send("Action: CoreShowChannels\r\nActionID: 1\r\n\r\n")
	if got, want := c.msg(), "Response: Error\r\nActionID: 1\r\nMessage: Permission denied\r\n\r\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	c.send("Action: NoSuchThing\nActionID: 2\n\n") // bare LF is accepted
	if got := c.msg(); !strings.Contains(got, "Permission denied") {
		t.Errorf("unknown action before login: %q", got)
	}
}

func TestMiscActions(t *testing.T) {
	sim := Start(t, Config{})
	c := dial(t, sim.Addr())
	c.login()
	c.send("Action: NoSuchThing\r\nActionID: 3\r\n\r\n")
	if got, want := c.msg(), "Response: Error\r\nActionID: 3\r\nMessage: Invalid/unknown command: NoSuchThing. Use Action: ListCommands to show available commands.\r\n\r\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	c.send("\r\n")
	if got := c.msg(); got != "Response: Error\r\nMessage: Missing action in request\r\n\r\n" {
		t.Errorf("stray blank line: %q", got)
	}
	c.send("Action: Command\r\nCommand: " + strings.Repeat("x", 1100) + "\r\n\r\n")
	if got := c.msg(); !strings.Contains(got, "line too long") {
		t.Errorf("long line: %q", got)
	}
	c.send("Action: Ping\r\nActionID: 4\r\n\r\n")
	if got := c.msg(); !strings.HasPrefix(got, "Response: Success\r\nActionID: 4\r\nPing: Pong\r\nTimestamp: ") {
		t.Errorf("ping: %q", got)
	}
	c.send("Action: Hangup\r\nActionID: 5\r\n\r\n")
	if got := c.msg(); !strings.Contains(got, "No channel specified") {
		t.Errorf("hangup without channel: %q", got)
	}
	c.send("Action: Originate\r\nActionID: 6\r\nChannel: SIP/1\r\nExten: 2\r\n\r\n")
	if got := c.msg(); !strings.Contains(got, "requires 'Context' and 'Priority'") {
		t.Errorf("originate without context: %q", got)
	}
	c.send("Action: Logoff\r\nActionID: 7\r\n\r\n")
	if got, want := c.msg(), "Response: Goodbye\r\nActionID: 7\r\nMessage: Thanks for all the fish.\r\n\r\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if _, err := c.br.ReadByte(); !errors.Is(err, io.EOF) {
		t.Errorf("after Logoff: %v, want EOF", err)
	}
	// The over-long one was discarded unread, as Asterisk does.
	if n := len(sim.Actions()); n != 7 {
		t.Errorf("recorded %d actions, want 7", n)
	}
}

func TestFullyBootedAndFilter(t *testing.T) {
	sim := Start(t, Config{})
	c := dial(t, sim.Addr())
	c.line()
	c.send("Action: Login\r\nUsername: admin\r\nSecret: secret\r\nEvents: system\r\n\r\n")
	c.msg()
	if got := c.msg(); !strings.HasPrefix(got, "Event: FullyBooted\r\nPrivilege: system,all\r\n") {
		t.Errorf("want FullyBooted, got %q", got)
	}
	sim.Inject(Msg("Event", "Newstate", "Privilege", "call,all")) // filtered out
	sim.Inject(Msg("Event", "Reload", "Privilege", "system,all")) // passes
	if got := c.msg(); !strings.HasPrefix(got, "Event: Reload") {
		t.Errorf("got %q, want the system event only", got)
	}
}

func TestSyncOriginate(t *testing.T) {
	sim := Start(t, Config{})
	sim.SetDefaultOutcome(Busy)
	c := dial(t, sim.Addr())
	c.login()
	c.send("Action: Originate\r\nActionID: 1\r\nChannel: SIP/100\r\nContext: c\r\nExten: 1\r\nPriority: 1\r\n\r\n")
	if got := c.msg(); got != "Response: Error\r\nActionID: 1\r\nMessage: Originate failed\r\n\r\n" {
		t.Errorf("got %q", got)
	}
}

// The simulator must answer a transcript's C lines with exactly its S lines,
// so tests against the simulator and replays of real exchanges agree.
func TestSimulatorMatchesTranscripts(t *testing.T) {
	tests := []struct {
		file  string
		cfg   Config
		setup func(*Server)
	}{
		{file: "login_failed.txt"},
		{file: "command_ast20.txt"},
		{file: "command_ast13.txt", cfg: Config{LegacyCommand: true}},
		{file: "coreshowchannels.txt", setup: func(s *Server) {
			s.AddChannel(Channel{Name: "SIP/100-0000001a", CallerIDNum: "100", CallerIDName: "Alice",
				ConnectedLineNum: "200", ConnectedLineName: "<unknown>", Context: "from-internal", Exten: "200",
				Uniqueid: "1700000000.31", Application: "Dial", ApplicationData: "SIP/200,30",
				Duration: "00:01:05", BridgeID: "9a1c4f2e-6b1d-4b5e-8d6a-0c2f5e7b9a11"})
			s.AddChannel(Channel{Name: "SIP/200-0000001b", CallerIDNum: "200", CallerIDName: "Bob",
				ConnectedLineNum: "100", ConnectedLineName: "Alice", Context: "from-internal",
				Uniqueid: "1700000000.32", Linkedid: "1700000000.31", Application: "AppDial",
				ApplicationData: "(Outgoing Line)", Duration: "00:01:04", BridgeID: "9a1c4f2e-6b1d-4b5e-8d6a-0c2f5e7b9a11"})
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			steps, err := LoadTranscript(filepath.Join("..", "..", "testdata", "ami", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			sim := Start(t, tt.cfg)
			if tt.setup != nil {
				tt.setup(sim)
			}
			c := dial(t, sim.Addr())
			playAgainst(t, c, steps)
		})
	}
}

// playAgainst sends the C lines and checks that the server sends exactly
// the S lines, then closes if the transcript says CLOSE.
func playAgainst(t *testing.T, c *rawConn, steps []Step) {
	const id = "tid-42"
	var want []byte
	check := func() {
		if len(want) == 0 {
			return
		}
		got := make([]byte, len(want))
		n, err := io.ReadFull(c.br, got)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("server sent %q (%v)\nwant        %q", got[:n], err, want)
		}
		want = want[:0]
	}
	for _, st := range steps {
		switch {
		case st.Close:
			check()
			if b, err := c.br.ReadByte(); !errors.Is(err, io.EOF) {
				t.Fatalf("want close, got %q, %v", b, err)
			}
			return
		case st.Client:
			check()
			c.send(strings.ReplaceAll(st.Text, ActionIDVar, id))
		default:
			want = append(want, strings.ReplaceAll(st.Text, ActionIDVar, id)...)
		}
	}
	check()
}

func TestParseTranscript(t *testing.T) {
	steps, err := ParseTranscript("# c\nS: a\r\nS|  b\nS|\nS:\nC: x: ${ActionID}\nC:\nCLOSE\n")
	if err != nil {
		t.Fatal(err)
	}
	want := []Step{{Text: "a\r\n"}, {Text: " b\n"}, {Text: "\n"}, {Text: "\r\n"}, {Client: true, Text: "x: ${ActionID}\r\n"}, {Client: true, Text: "\r\n"}, {Close: true}}
	if len(steps) != len(want) {
		t.Fatalf("steps = %+v", steps)
	}
	for i := range want {
		if steps[i] != want[i] {
			t.Errorf("step %d = %+v, want %+v", i, steps[i], want[i])
		}
	}
	if _, err := ParseTranscript("X: nope"); err == nil {
		t.Error("bad line accepted")
	}
	if id, ok := matchLine("ActionID: ${ActionID}\r\n", "ActionID: ab-1\r\n"); !ok || id != "ab-1" {
		t.Errorf("matchLine = %q, %v", id, ok)
	}
}
