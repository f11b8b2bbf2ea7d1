package lua

import (
	"context"
	"errors"
	"os/exec"
	"testing"
)

func TestEspeak(t *testing.T) {
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		t.Skip("espeak-ng not installed (apt-get install -y espeak-ng)")
	}
	e, err := NewEspeak()
	if err != nil {
		t.Fatal(err)
	}
	var tts TTS = e
	wav, err := tts.Synthesize(context.Background(), "-v Your balance is 5 euro", "en")
	if err != nil {
		t.Fatal(err)
	}
	if len(wav) < 1000 || string(wav[:4]) != "RIFF" || string(wav[8:12]) != "WAVE" {
		t.Fatalf("not a WAV file: %d bytes", len(wav))
	}
	for _, c := range []struct{ text, lang string }{{"", "en"}, {"hi", "--help"}, {"hi", "en; rm"}} {
		if _, err := tts.Synthesize(context.Background(), c.text, c.lang); Code(err) != CodeTTS || !errors.Is(err, ErrTTS) {
			t.Errorf("Synthesize(%q, %q): %v", c.text, c.lang, err)
		}
	}
}

func TestEspeakMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := NewEspeak(); Code(err) != CodeTTS {
		t.Fatalf("NewEspeak without espeak-ng: %v", err)
	}
	var e *Espeak
	if _, err := e.Synthesize(context.Background(), "x", "en"); Code(err) != CodeTTS {
		t.Fatalf("nil Espeak: %v", err)
	}
}
