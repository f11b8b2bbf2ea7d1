package billing

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/narayana/narayanad/apierr"
	"github.com/narayana/narayanad/asterisk"
	"github.com/narayana/narayanad/lua"
)

// Messages through the AMI the daemon already holds (docs/MESSAGING.md): SIP
// messages with MessageSend, voice messages as speech (createTTS's engine) that an
// originated call plays.

// voiceHandler is the route prefix of the built-in voice carrier: the user's SIP
// server calls the number and plays the text as speech.
const voiceHandler = "asterisk"

// voiceKeep is how long a voice file stays in voice_dir: Originate answers when the
// call is answered, while Playback is still reading the file, so files are removed
// by a later message, not by the one that wrote them.
const voiceKeep = time.Hour

// amiMessage sends sendSIPMessage's text with MessageSend to an extension of srv. A
// message Asterisk refuses is E_CARRIER_ERROR with its reason; a text the AMI line
// format cannot carry (over about 1000 bytes) is E_INVALID_ARGUMENT.
func (s *Service) amiMessage(r *Request, srv *SIPServer, ext, from, text string) (any, error) {
	c, err := s.amiClient(srv)
	if err != nil {
		return nil, err
	}
	tech := s.Config.SIPMessageTech
	if tech == "" {
		tech = "pjsip"
	}
	err = c.MessageSend(r.ctx, asterisk.MessageRequest{To: tech + ":" + ext, From: from, Body: text})
	var ae *asterisk.Error
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, asterisk.ErrInvalidValue):
		return nil, apierr.New(apierr.InvalidArgument, "text: too long for a SIP message through AMI")
	case errors.As(err, &ae) && ae.Action == "MessageSend":
		return nil, apierr.New(apierr.CarrierError, "Asterisk: %s", ae.Message)
	}
	return nil, amiError(err)
}

// voiceCall speaks text into voice_dir and has the user's SIP server call `to`
// through the callback context (Local/<to>@<callback_context>) and play it. It
// answers the call's Uniqueid once the callee answered; a call not answered is
// E_CARRIER_ERROR, so the next route is tried.
func (s *Service) voiceCall(r *Request, to, from, text string) (string, error) {
	dir := s.Config.VoiceDir
	if dir == "" {
		return "", apierr.New(apierr.CarrierError, "voice messages through Asterisk need voice_dir")
	}
	if strings.ContainsAny(dir, ",&|()\"'") {
		// Playback reads these as its own syntax.
		return "", apierr.New(apierr.CarrierError, "voice_dir %q cannot be given to Playback", dir)
	}
	u, err := r.User()
	if err != nil {
		return "", err
	}
	_, srv, err := s.userSIPServer(r)
	if err != nil {
		var ae *apierr.Error
		if errors.As(err, &ae) {
			return "", apierr.New(apierr.CarrierError, "no SIP server to call from: %s", ae.Message)
		}
		return "", err
	}
	c, err := s.amiClient(srv)
	if err != nil {
		return "", apierr.New(apierr.CarrierError, "SIP server %s has no AMI address", srv.Name)
	}
	e, err := s.ttsEngine()
	if err != nil {
		return "", apierr.New(apierr.TTSError, "no speech engine: espeak-ng is not installed")
	}
	lang := ttsLanguages[strings.ToLower(u.Language)]
	if lang == "" {
		lang = "en"
	}
	wav, err := e.Synthesize(r.ctx, text, lang)
	if err != nil {
		var le *lua.Error
		if errors.As(err, &le) {
			return "", apierr.New(apierr.TTSError, "%s", le.Message)
		}
		return "", apierr.New(apierr.TTSError, "speech failed")
	}
	wav, err = wav8k(wav)
	if err != nil {
		return "", apierr.New(apierr.TTSError, "%v", err)
	}
	b := make([]byte, 8)
	rand.Read(b)
	base := filepath.Join(dir, "narayana-voice-"+hex.EncodeToString(b))
	removeOldVoice(dir)
	if err := os.WriteFile(base+".wav", wav, 0o644); err != nil {
		s.Log.Error("voice: cannot write to voice_dir", "dir", dir, "err", err)
		return "", apierr.New(apierr.CarrierError, "voice message could not be stored")
	}
	cbctx := s.Config.CallbackContext
	if cbctx == "" {
		cbctx = "callback"
	}
	res, err := c.Originate(r.ctx, asterisk.OriginateRequest{
		Channel:     "Local/" + to + "@" + cbctx,
		Application: "Playback",
		Data:        base, // Playback picks the format by extension
		CallerID:    from,
	})
	if err != nil {
		os.Remove(base + ".wav")
		var oe *asterisk.OriginateError
		var ae *asterisk.Error
		switch {
		case errors.As(err, &oe):
			return "", apierr.New(apierr.CarrierError, "voice call to %s: %s", to, oe.Error())
		case errors.As(err, &ae):
			return "", apierr.New(apierr.CarrierError, "voice call to %s: %s", to, ae.Message)
		}
		return "", amiError(err)
	}
	return res.Uniqueid, nil
}

// removeOldVoice removes the voice files older than voiceKeep.
func removeOldVoice(dir string) {
	old, _ := filepath.Glob(filepath.Join(dir, "narayana-voice-*.wav"))
	for _, f := range old {
		if st, err := os.Stat(f); err == nil && time.Since(st.ModTime()) > voiceKeep {
			os.Remove(f)
		}
	}
}

// wav8k converts a 16-bit PCM WAV (espeak-ng speaks at 22050 Hz) into the 8 kHz
// mono 16-bit WAV that Asterisk's format_wav plays (it refuses other rates):
// channels are mixed, and each output sample is the mean of the input samples it
// stands for (a box filter, enough against aliasing for speech).
func wav8k(in []byte) ([]byte, error) {
	if len(in) < 12 || string(in[:4]) != "RIFF" || string(in[8:12]) != "WAVE" {
		return nil, fmt.Errorf("not a WAV file")
	}
	var rate, channels, bits int
	var data []byte
	for p := 12; p+8 <= len(in); {
		id, size := string(in[p:p+4]), int(binary.LittleEndian.Uint32(in[p+4:p+8]))
		body := in[p+8:]
		if size >= 0 && size < len(body) {
			body = body[:size] // a streamed WAV says 0 or too much: take what there is
		}
		switch id {
		case "fmt ":
			if len(body) < 16 || binary.LittleEndian.Uint16(body[0:2]) != 1 {
				return nil, fmt.Errorf("not a PCM WAV file")
			}
			channels = int(binary.LittleEndian.Uint16(body[2:4]))
			rate = int(binary.LittleEndian.Uint32(body[4:8]))
			bits = int(binary.LittleEndian.Uint16(body[14:16]))
		case "data":
			if size == 0 {
				body = in[p+8:]
			}
			data = body
		}
		if id == "data" {
			break
		}
		p += 8 + size + size%2
	}
	if rate <= 0 || channels <= 0 || bits != 16 || data == nil {
		return nil, fmt.Errorf("want a 16-bit PCM WAV, got %d Hz, %d channels, %d bits", rate, channels, bits)
	}
	frame := 2 * channels
	n := len(data) / frame
	sample := func(i int) int {
		sum := 0
		for ch := range channels {
			sum += int(int16(binary.LittleEndian.Uint16(data[i*frame+2*ch:])))
		}
		return sum / channels
	}
	const outRate = 8000
	outN := int(int64(n) * outRate / int64(rate))
	out := make([]byte, 44+2*outN)
	for i := range outN {
		lo := int(int64(i) * int64(rate) / outRate)
		hi := max(int(int64(i+1)*int64(rate)/outRate), lo+1)
		hi = min(hi, n)
		sum := 0
		for j := lo; j < hi; j++ {
			sum += sample(j)
		}
		v := 0
		if hi > lo {
			v = sum / (hi - lo)
		}
		binary.LittleEndian.PutUint16(out[44+2*i:], uint16(int16(v)))
	}
	copy(out[0:], "RIFF")
	binary.LittleEndian.PutUint32(out[4:], uint32(36+2*outN))
	copy(out[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(out[16:], 16)
	binary.LittleEndian.PutUint16(out[20:], 1) // PCM
	binary.LittleEndian.PutUint16(out[22:], 1) // mono
	binary.LittleEndian.PutUint32(out[24:], outRate)
	binary.LittleEndian.PutUint32(out[28:], outRate*2)
	binary.LittleEndian.PutUint16(out[32:], 2)
	binary.LittleEndian.PutUint16(out[34:], 16)
	copy(out[36:], "data")
	binary.LittleEndian.PutUint32(out[40:], uint32(2*outN))
	return out, nil
}
