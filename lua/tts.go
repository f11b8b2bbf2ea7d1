package lua

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
)

// TTS turns text into speech for createTTS. Replaceable: the daemon holds a TTS and
// tests may give it a fake.
type TTS interface {
	// Synthesize returns a WAV file of text spoken in lang (e.g. "en", "de", "pt-br").
	Synthesize(ctx context.Context, text, lang string) ([]byte, error)
}

// Espeak is the TTS backed by the espeak-ng program.
type Espeak struct {
	Path    string // program path; NewEspeak finds it on $PATH
	MaxText int    // longest text accepted [4000]
}

// NewEspeak finds espeak-ng on $PATH. When it is missing the error has code E_TTS_ERROR.
func NewEspeak() (*Espeak, error) {
	p, err := exec.LookPath("espeak-ng")
	if err != nil {
		return nil, &Error{Code: CodeTTS, Kind: ErrTTS, Message: "espeak-ng is not installed", Cause: err}
	}
	return &Espeak{Path: p}, nil
}

var langRE = regexp.MustCompile(`^[a-z]{2,3}([-_][A-Za-z0-9]{1,8}){0,2}$`)

// Synthesize runs `espeak-ng --stdout -v LANG --stdin` with text on standard input, so no
// text is ever read as an option.
func (e *Espeak) Synthesize(ctx context.Context, text, lang string) ([]byte, error) {
	fail := func(msg string, cause error) error {
		return &Error{Code: CodeTTS, Kind: ErrTTS, Message: msg, Cause: cause}
	}
	if e == nil || e.Path == "" {
		return nil, fail("espeak-ng is not installed", nil)
	}
	max := e.MaxText
	if max <= 0 {
		max = 4000
	}
	if strings.TrimSpace(text) == "" || len(text) > max {
		return nil, fail(fmt.Sprintf("text must be 1..%d bytes", max), nil)
	}
	if lang == "" {
		lang = "en"
	}
	if !langRE.MatchString(lang) {
		return nil, fail("invalid language "+lang, nil)
	}
	cmd := exec.CommandContext(ctx, e.Path, "--stdout", "-v", lang, "--stdin")
	cmd.Stdin = strings.NewReader(text)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fail(strings.TrimSpace("espeak-ng: "+err.Error()+" "+errb.String()), err)
	}
	wav := out.Bytes()
	if len(wav) < 44 || string(wav[:4]) != "RIFF" {
		return nil, fail("espeak-ng: no WAV output "+strings.TrimSpace(errb.String()), nil)
	}
	return wav, nil
}
