// Package asterisk is narayanad's client for the Asterisk Manager Interface (AMI).
//
// A Client owns one TCP connection to one Asterisk. The connection is opened
// on first use, shared by every caller (actions are told apart by ActionID, so
// many can be in flight at once), kept alive with Ping and reopened with
// exponential backoff after a drop. A Manager keeps one Client per SIP server.
//
// The operations the billing layer needs (Originate, CoreShowChannels, Hangup,
// HangupMatching, Command, MessageSend, Ping) are methods on Client. Errors come in three
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
//
// # Wire facts added for messages and dialplans
//
// Read in Asterisk's source (master, the same in 13 to 22 where noted), in the
// manner of AMI.md; the simulator answers the same way.
//
// MessageSend (main/message.c, action_messagesend; registered with class
// "message", so the manager user needs `write = message`; since Asterisk 11):
//   - Destination, else To, is "tech:destination" (pjsip:100, sip:100); the
//     technology is the text before ':'. Neither: "No 'To' address specified.".
//     Destination is newer (16+); To alone works everywhere, so we send To.
//   - From: for PJSIP a SIP URI or "user[@domain]" (res_pjsip.c,
//     ast_sip_update_from).
//   - Body must not hold line breaks; Base64Body takes precedence and is
//     decoded into a 1301-byte buffer (so at most 1300 bytes of body).
//   - Variable: repeatable, each a comma-separated list of name=value.
//   - Answers: "Message successfully sent" (Success); "Message technology not
//     found.", "Message failed to send." (Error).
//
// Originate with an application (main/manager.c, action_originate):
// Application and Data replace Context/Exten/Priority; the OriginateResponse
// then has empty Context and Exten. Applications that can run system
// commands (System, Exec, …) need the system write class ("Originate Access
// Forbidden: app or data blacklisted"); Playback does not.
//
// UpdateConfig (main/manager.c, action_updateconfig): SrcFilename and
// DstFilename (both required: "Filename not specified"), optional Reload and
// PreserveEffectiveContext, then Action-000000 … with Cat-/Var-/Value-/Match-/
// Line-/Options-NNNNNN. It loads SrcFilename through the configuration parser,
// edits the parsed categories and saves them: Asterisk then reads its own
// re-serialisation, not the bytes sent, and a long file needs many actions
// (1024-byte lines, 128 headers a message). Dialplans therefore reach Asterisk
// through an #exec include instead (main/config.c: needs `execincludes = yes`;
// the command's stdout is parsed like an included file on every reload; see
// docs/DIALPLAN.md).
package asterisk
