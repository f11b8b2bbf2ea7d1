package amisim

import (
	"bufio"
	"errors"
	"strings"
)

// Header is one "Key: Value" line.
type Header struct {
	Key, Value string
}

// Message is one AMI message in wire order; keys may repeat. Actions the
// simulator received and events a test injects are Messages.
type Message []Header

// Msg builds a Message from key, value pairs:
// Msg("Event", "Hangup", "Channel", "SIP/100-00000001").
func Msg(kv ...string) Message {
	if len(kv)%2 != 0 {
		panic("amisim.Msg: odd number of arguments")
	}
	m := make(Message, 0, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		m = append(m, Header{kv[i], kv[i+1]})
	}
	return m
}

// Get returns the first value of key (case-insensitive), or "".
func (m Message) Get(key string) string {
	for _, h := range m {
		if strings.EqualFold(h.Key, key) {
			return h.Value
		}
	}
	return ""
}

// Values returns every value of key in order.
func (m Message) Values(key string) []string {
	var vs []string
	for _, h := range m {
		if strings.EqualFold(h.Key, key) {
			vs = append(vs, h.Value)
		}
	}
	return vs
}

func (m Message) appendTo(buf []byte) []byte {
	for _, h := range m {
		buf = append(buf, h.Key...)
		buf = append(buf, ": "...)
		buf = append(buf, h.Value...)
		buf = append(buf, "\r\n"...)
	}
	return append(buf, "\r\n"...)
}

// maxLine is Asterisk's limit on one input line, CRLF included.
const maxLine = 1024

var errLineTooLong = errors.New("line too long")

// readAction reads one client message as Asterisk does: "\n" or "\r\n" line
// ends, a blank line ends the message (an empty message is returned as such:
// Asterisk answers it "Missing action in request"). A line over 1024 bytes
// spoils the message: it is read to its end and errLineTooLong returned.
func readAction(r *bufio.Reader) (Message, error) {
	var m Message
	var bad error
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		if len(line) > maxLine {
			bad = errLineTooLong
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			return m, bad
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		m = append(m, Header{strings.TrimSpace(k), strings.TrimLeft(v, " \t")})
	}
}
