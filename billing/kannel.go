package billing

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/narayana/narayanad/apierr"
)

// The built-in Kannel carrier (docs/MESSAGING.md): an SMS route whose prefix is
// `kannel` sends through Kannel's smsbox sendsms interface once kannel_sendsms_url is
// set. Kannel answers sendsms without a message id, so the daemon makes one (the
// message's external_id) and puts it in the dlr-url; Kannel calls that URL
// (receiveDeliveryReport with msg_handler=kannel) with its report type in %d.
// Inbound messages come through an sms-service's get-url calling receiveSMS.

// kannelHandler is the route prefix (handler name) of the built-in Kannel carrier.
const kannelHandler = "kannel"

// kannelTimeout bounds one sendsms request: smsbox answers once bearerbox has queued
// the message, not once it is delivered.
const kannelTimeout = 10 * time.Second

// kannelOn reports whether the built-in Kannel carrier is configured.
func (s *Service) kannelOn() bool { return s.Config.KannelSendURL != "" }

// kannelSend submits one message through sendsms and answers the id the delivery
// reports will carry. Kannel accepts with HTTP 202 and "0: Accepted for delivery" or
// "3: Queued for later delivery"; anything else is E_CARRIER_ERROR with its text.
func (s *Service) kannelSend(ctx context.Context, to, from, text string) (string, error) {
	b := make([]byte, 8)
	rand.Read(b)
	ref := "kannel-" + hex.EncodeToString(b)
	q := url.Values{}
	q.Set("username", s.Config.KannelUser)
	q.Set("password", s.Config.KannelPassword)
	q.Set("from", from)
	q.Set("to", to)
	q.Set("text", text)
	// Kannel converts from charset to the message coding: GSM 7-bit for plain text,
	// UCS-2 (coding 2) for anything beyond ASCII.
	q.Set("charset", "UTF-8")
	q.Set("coding", "0")
	for _, c := range text {
		if c > 0x7e {
			q.Set("coding", "2")
			break
		}
	}
	if s.Config.KannelSMSC != "" {
		q.Set("smsc", s.Config.KannelSMSC)
	}
	if base := s.Config.KannelDLRURL; base != "" && s.Config.KannelDLRMask > 0 {
		if !strings.HasSuffix(base, "/") {
			base += "/"
		}
		q.Set("dlr-mask", strconv.Itoa(s.Config.KannelDLRMask))
		// Kannel puts the report type where %d stands.
		q.Set("dlr-url", base+"receiveDeliveryReport?msg_handler="+kannelHandler+"&id="+ref+"&status=%d")
	}
	u := s.Config.KannelSendURL
	if strings.Contains(u, "?") {
		u += "&" + q.Encode()
	} else {
		u += "?" + q.Encode()
	}
	ctx, cancel := context.WithTimeout(ctx, kannelTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", apierr.New(apierr.CarrierError, "kannel: bad kannel_sendsms_url")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		// The URL carries the password: say where, not what.
		return "", apierr.New(apierr.CarrierError, "kannel at %s is unreachable", req.URL.Host)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	answer := strings.TrimSpace(string(body))
	if (resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK) &&
		(strings.HasPrefix(answer, "0:") || strings.HasPrefix(answer, "3:")) {
		return ref, nil
	}
	return "", apierr.New(apierr.CarrierError, "kannel refused the message: HTTP %d %s", resp.StatusCode, answer)
}

// kannelStatus reads a Kannel report type (dlr-mask bits, one per report):
// 1 delivered to the phone, 2 not delivered, 4 buffered, 8 accepted by the SMSC,
// 16 refused by the SMSC.
func kannelStatus(v string) (string, bool) {
	switch strings.TrimSpace(v) {
	case "1":
		return "DELIVERED", true
	case "2", "16":
		return "UNDELIVERED", true
	case "4", "8":
		return "ACCEPTED", true
	}
	return "", false
}
