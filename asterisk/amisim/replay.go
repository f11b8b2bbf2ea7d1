package amisim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
)

// A transcript is a recorded AMI exchange, one wire line per text line:
//
//	# comment
//	S: Asterisk Call Manager/2.10.6   server sends the text and "\r\n"
//	S| raw text                       server sends the text and a bare "\n"
//	S:                                server sends an empty line
//	C: Action: Ping                   client must send exactly the text and "\r\n"
//	C:                                client must send the empty line
//	CLOSE                             server closes the connection
//
// ${ActionID} in a C line matches any text and captures it; in an S line it
// is replaced by the last captured value. Blank lines are ignored.

// Step is one line of a transcript.
type Step struct {
	Client bool   // sent by the client, else by the server
	Close  bool   // the server closes the connection
	Text   string // the line with its line end ("\r\n" or "\n")
}

// ActionIDVar is the ActionID placeholder of transcripts.
const ActionIDVar = "${ActionID}"

// ParseTranscript reads a transcript.
func ParseTranscript(data string) ([]Step, error) {
	var steps []Step
	for i, line := range strings.Split(data, "\n") {
		line = strings.TrimSuffix(line, "\r")
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case line == "CLOSE":
			steps = append(steps, Step{Close: true})
		case line == "S:" || line == "C:":
			steps = append(steps, Step{Client: line == "C:", Text: "\r\n"})
		case strings.HasPrefix(line, "S: "), strings.HasPrefix(line, "C: "):
			steps = append(steps, Step{Client: line[0] == 'C', Text: line[3:] + "\r\n"})
		case line == "S|":
			steps = append(steps, Step{Text: "\n"})
		case strings.HasPrefix(line, "S| "):
			steps = append(steps, Step{Text: line[3:] + "\n"})
		default:
			return nil, fmt.Errorf("transcript line %d: cannot parse %q", i+1, line)
		}
	}
	return steps, nil
}

// LoadTranscript reads and parses a transcript file.
func LoadTranscript(path string) ([]Step, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseTranscript(string(data))
}

// matchLine compares a client line with an expected one, capturing the
// ActionID placeholder.
func matchLine(want, got string) (id string, ok bool) {
	before, after, has := strings.Cut(want, ActionIDVar)
	if !has {
		return "", want == got
	}
	if len(got) < len(before)+len(after) || !strings.HasPrefix(got, before) || !strings.HasSuffix(got, after) {
		return "", false
	}
	return got[len(before) : len(got)-len(after)], true
}

// Replay is a server that plays a transcript to every connection: it sends
// the S lines and checks that the client sends exactly the C lines. After
// the last line it keeps the connection open (reading and discarding) until
// the client or Close ends it.
type Replay struct {
	steps []Step
	ln    net.Listener
	wg    sync.WaitGroup

	mu    sync.Mutex
	errs  []error
	conns map[net.Conn]struct{}
	ended int
}

// NewReplay starts a replay server on 127.0.0.1 at a free port.
func NewReplay(steps []Step) (*Replay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Replay{steps: steps, ln: ln, conns: make(map[net.Conn]struct{})}
	r.wg.Add(1)
	go r.accept()
	return r, nil
}

// StartReplay loads a transcript file and starts a replay server for the
// test; at the end of the test it closes it and fails tb on any mismatch.
func StartReplay(tb testing.TB, path string) *Replay {
	tb.Helper()
	steps, err := LoadTranscript(path)
	if err != nil {
		tb.Fatalf("amisim: %v", err)
	}
	r, err := NewReplay(steps)
	if err != nil {
		tb.Fatalf("amisim: %v", err)
	}
	tb.Cleanup(func() {
		r.Close()
		if err := r.Err(); err != nil {
			tb.Errorf("amisim replay of %s: %v", path, err)
		}
	})
	return r
}

// Addr is the host:port to dial.
func (r *Replay) Addr() string { return r.ln.Addr().String() }

// Err reports every difference between what clients sent and the transcript.
func (r *Replay) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return errors.Join(r.errs...)
}

// Completed is how many connections went through the whole transcript: the
// client sent every C line, and the last S lines are on their way.
func (r *Replay) Completed() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ended
}

// Close stops the server and closes its connections.
func (r *Replay) Close() error {
	err := r.ln.Close()
	r.mu.Lock()
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.wg.Wait()
	return err
}

func (r *Replay) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
}

func (r *Replay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		r.conns[c] = struct{}{}
		r.mu.Unlock()
		r.wg.Add(1)
		go r.play(c)
	}
}

func (r *Replay) play(c net.Conn) {
	defer r.wg.Done()
	defer func() {
		r.mu.Lock()
		delete(r.conns, c)
		r.mu.Unlock()
		c.Close()
	}()
	br := bufio.NewReader(c)
	var id string
	var out []byte
	flush := func() bool {
		if len(out) == 0 {
			return true
		}
		_, err := c.Write(out)
		out = out[:0]
		return err == nil
	}
	for i, st := range r.steps {
		switch {
		case st.Close:
			// Counted before the last write, so a client that has read it
			// sees the count.
			r.finished()
			flush()
			return
		case st.Client:
			// Server lines before a client line go out together, as one
			// answer does.
			if !flush() {
				return
			}
			got, err := br.ReadString('\n')
			if err != nil {
				r.fail(fmt.Errorf("step %d: want client line %q, got %v", i+1, st.Text, err))
				return
			}
			captured, ok := matchLine(st.Text, got)
			if !ok {
				r.fail(fmt.Errorf("step %d: client sent %q, want %q", i+1, got, st.Text))
				return
			}
			if captured != "" {
				id = captured
			}
		default:
			out = append(out, strings.ReplaceAll(st.Text, ActionIDVar, id)...)
		}
	}
	r.finished()
	if !flush() {
		return
	}
	io.Copy(io.Discard, c)
}

func (r *Replay) finished() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended++
}
