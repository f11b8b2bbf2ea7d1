// Package asterisk is narayanad's client for the Asterisk Manager Interface (AMI).
//
// A Client owns one TCP connection to one Asterisk. The connection is opened
// on first use, shared by every caller (actions are told apart by ActionID, so
// many can be in flight at once), kept alive with Ping and reopened with
// exponential backoff after a drop. A Manager keeps one Client per SIP server.
//
// The operations the billing layer needs (Originate, CoreShowChannels, Hangup,
// HangupMatching, Command, Ping) are methods on Client. Errors come in three
// kinds so the API layer can map them without reading text:
//
//   - ErrInvalidValue: a caller's value would break the wire format (CR/LF);
//   - *Error: Asterisk answered with Response: Error (Message is its text);
//   - *NetError: Asterisk was unreachable, dropped the connection or did not
//     answer in time;
//
// and *OriginateError for a call that was queued but did not get answered.
//
// The wire facts this package follows are in shared/AMI.md. The simulator its
// tests run against is in the amisim subpackage.
package asterisk
