package asterisk

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Header is one "Key: Value" line of an AMI message.
type Header struct {
	Key, Value string
}

// Message is one AMI message (a response or an event). Headers keep their
// wire order and may repeat (Output, Variable, ChanVariable), so they are a
// list, not a map. Keys are compared case-insensitively, as Asterisk does.
type Message struct {
	Headers []Header
}

// Get returns the first value of key, or "".
func (m Message) Get(key string) string {
	for _, h := range m.Headers {
		if strings.EqualFold(h.Key, key) {
			return h.Value
		}
	}
	return ""
}

// Values returns every value of key in wire order.
func (m Message) Values(key string) []string {
	var vs []string
	for _, h := range m.Headers {
		if strings.EqualFold(h.Key, key) {
			vs = append(vs, h.Value)
		}
	}
	return vs
}

// String renders m as it would appear on the wire, for logs and test failures.
func (m Message) String() string {
	var b strings.Builder
	for _, h := range m.Headers {
		b.WriteString(h.Key)
		b.WriteString(": ")
		b.WriteString(h.Value)
		b.WriteString("\r\n")
	}
	return b.String()
}

// Limits of what the reader accepts. Asterisk itself refuses client lines over
// 1024 bytes; what it sends can be longer (CLI output, long variables), so the
// reader allows more but stays bounded so a broken peer cannot exhaust memory.
const (
	maxLineLen      = 64 << 10
	maxMessageLines = 1 << 16
	maxOutLineLen   = 1024 // what Asterisk accepts from us, CRLF included
)

// endCommand ends the raw output of an Asterisk 13 Command answer.
const endCommand = "--END COMMAND--"

var errLineTooLong = errors.New("asterisk: line too long")

// reader splits an AMI byte stream into messages.
type reader struct {
	br *bufio.Reader
}

func newReader(r io.Reader) *reader {
	return &reader{br: bufio.NewReaderSize(r, 4096)}
}

// readLine returns the next line without its "\r\n" or "\n".
func (r *reader) readLine() (string, error) {
	line, err := r.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		// Rare long line: collect it piece by piece, up to the limit.
		buf := append([]byte(nil), line...)
		for err == bufio.ErrBufferFull && len(buf) <= maxLineLen {
			line, err = r.br.ReadSlice('\n')
			buf = append(buf, line...)
		}
		if len(buf) > maxLineLen {
			return "", errLineTooLong
		}
		line = buf
	}
	if err != nil {
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return "", err
	}
	line = bytes.TrimSuffix(line[:len(line)-1], []byte{'\r'})
	return string(line), nil
}

// readBanner reads the greeting Asterisk sends on connect.
func (r *reader) readBanner() (string, error) {
	line, err := r.readLine()
	if err != nil {
		return "", err
	}
	const prefix = "Asterisk Call Manager/"
	if !strings.HasPrefix(line, prefix) {
		return "", fmt.Errorf("asterisk: unexpected banner %q", line)
	}
	return strings.TrimPrefix(line, prefix), nil
}

// next reads one message. Blank lines between messages are skipped.
func (r *reader) next() (Message, error) {
	var m Message
	for {
		line, err := r.readLine()
		if err != nil {
			return Message{}, err
		}
		if line == "" {
			if len(m.Headers) == 0 {
				continue
			}
			return m, nil
		}
		if len(m.Headers) >= maxMessageLines {
			return Message{}, errors.New("asterisk: message has too many lines")
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			// Not a header; nothing in the protocol sends this outside
			// Command output, which is handled below. Skip it.
			continue
		}
		v = strings.TrimLeft(v, " \t")
		m.Headers = append(m.Headers, Header{k, v})
		if strings.EqualFold(k, "Response") && strings.EqualFold(v, "Follows") {
			return r.readFollows(m)
		}
	}
}

// readFollows reads the rest of an Asterisk 13 Command answer: Privilege and
// ActionID headers, then raw CLI text (bare "\n" line ends, blank lines
// allowed) until --END COMMAND--. Each text line becomes an Output header so
// callers see one shape for both Command forms.
func (r *reader) readFollows(m Message) (Message, error) {
	inText := false
	for {
		line, err := r.readLine()
		if err != nil {
			return Message{}, err
		}
		if len(m.Headers) >= maxMessageLines {
			return Message{}, errors.New("asterisk: command output has too many lines")
		}
		if text, ok := strings.CutSuffix(line, endCommand); ok {
			// Output that lacks a final newline runs into the marker.
			if text != "" {
				m.Headers = append(m.Headers, Header{"Output", text})
			}
			// The marker is followed by the blank line that ends the message.
			if b, _ := r.br.Peek(1); len(b) == 1 && (b[0] == '\r' || b[0] == '\n') {
				if _, err := r.readLine(); err != nil {
					return Message{}, err
				}
			}
			return m, nil
		}
		if !inText {
			if k, v, ok := strings.Cut(line, ":"); ok && (strings.EqualFold(k, "ActionID") || strings.EqualFold(k, "Privilege")) {
				m.Headers = append(m.Headers, Header{k, strings.TrimLeft(v, " \t")})
				continue
			}
			inText = true
		}
		m.Headers = append(m.Headers, Header{"Output", line})
	}
}

// appendAction renders an action. It refuses values that would break the
// framing (CR or LF) or that Asterisk would refuse (lines over 1024 bytes):
// a value from an API caller must never be able to inject a header.
func appendAction(buf []byte, action string, headers []Header) ([]byte, error) {
	buf, err := appendHeader(buf, "Action", action)
	if err != nil {
		return nil, err
	}
	for _, h := range headers {
		if buf, err = appendHeader(buf, h.Key, h.Value); err != nil {
			return nil, err
		}
	}
	return append(buf, '\r', '\n'), nil
}

func appendHeader(buf []byte, key, value string) ([]byte, error) {
	if key == "" || strings.ContainsAny(key, ":\r\n") {
		return nil, fmt.Errorf("%w: header name %q", ErrInvalidValue, key)
	}
	if strings.ContainsAny(value, "\r\n") {
		return nil, fmt.Errorf("%w: %s contains CR or LF", ErrInvalidValue, key)
	}
	if len(key)+2+len(value)+2 > maxOutLineLen {
		return nil, fmt.Errorf("%w: %s is longer than Asterisk accepts", ErrInvalidValue, key)
	}
	buf = append(buf, key...)
	buf = append(buf, ':', ' ')
	buf = append(buf, value...)
	return append(buf, '\r', '\n'), nil
}
