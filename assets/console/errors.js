/* What the console says when something goes wrong: ONE table from error codes (the server's,
 * docs/PROTOCOL.md §8, and the client's own: network, disconnected, timeout) to the words an
 * operator reads. The console's translation will replace this table, so no other module writes
 * an error text. A "context:code" entry says it better where the context changes the advice. */

const TEXTS = {
  network: "Cannot reach the server. Check your connection.",
  disconnected: "Not connected \u2014 try again in a moment.",
  timeout: "The server did not answer in time. Try again.",
  not_authenticated: "Your session has ended. Please sign in again.",
  rate_limited: "Too many requests. Please wait a moment.",
  bad_setup_token: "That setup token is not right. Copy it again from the server log.",
  setup_done: "An administrator already exists. Please sign in.",
  login_failed: "Wrong username or password.",
  "password:login_failed": "That is not your current password.",
  login_throttled: (e) =>
    "Too many attempts. Try again in " + Math.ceil((e.retry_after || 60) / 60) + " min.",
  passwords_differ: "The passwords do not match.",
  username_taken: "That username is taken.",
  chat_taken: "Another operator already took this chat.",
  status_not_online: "Set your status to Online to accept chats.",
  "invite:status_not_online": "Set your status to Online to invite visitors.",
  "invite:rate_limited": "Too many invitations in a short time. Please wait a moment.",
  visitor_left: "This visitor has left the site.",
  visitor_chatting: "This visitor is already in a chat.",
  "deliver:chat_closed": "Not delivered: the chat is closed",
  "deliver:*": (e) => "Not delivered: " + (e.message || e.error),
  rule_incomplete: "A name and a message, please.",
  mail_not_configured: "E-mail is not set up on this server ([mail] in its configuration).",
  already_replied: "This message has been answered already.",
  whole_numbers: "Counts and seconds are whole numbers.",
  // Departments and transfers (docs/PROTOCOL.md §5.5, §7.8).
  "department:duplicate": (e) =>
    e.field === "key" ? "Another department has this key." : "Another department has this name.",
  unknown_department: "That department no longer exists.",
  "canned:duplicate": "Another reply already has this shortcut.",
  department_offline: "Nobody else in that department is online.",
  unknown_operator: "That operator no longer exists.",
  operator_disabled: "That operator is disabled.",
  operator_not_online: "That colleague is not online any more.",
  transfer_pending: "This chat already has a transfer waiting for an answer.",
  "transfer:not_assigned": "Only the chat\u2019s operator can transfer it.",
  "transfer:not_found": "That transfer was answered or has ended.",
  "transfer:forbidden": "That transfer is not offered to you.",
  transfer_incomplete: "Choose a colleague or a department.",
  // Files (docs/PROTOCOL.md §7.10): `max` is the limit in words, `kinds` the types allowed.
  file_too_big: (e) =>
    "\u201c" + e.name + "\u201d is " + e.size + ": files can be at most " + e.max + ".",
  file_empty: (e) => "\u201c" + e.name + "\u201d is empty.",
  "upload:file_too_large": (e) => "Not sent: the file is larger than " + (e.max || "allowed") + ".",
  "upload:file_type_not_allowed": (e) =>
    "Not sent: " +
    (e.kind ? e.kind + " files are" : "this kind of file is") +
    " not accepted." +
    (e.kinds ? " Accepted: " + e.kinds + "." : ""),
  "upload:chat_closed": "Not sent: the chat is closed.",
  "upload:forbidden": "Not sent: this chat is not yours any more.",
  "upload:network": "Not sent: the connection failed.",
  "upload:*": (e) => "Not sent: " + (e.message || e.error),
  "file:not_found": "This file is no longer available.",
  attach_note: "Files go to the visitor: switch to Reply to attach one.",
  attach_not_mine: "You can attach files only to your own open chats.",
  // Why a session ended (the session_ended event's reason).
  "session:disabled": "Your account was disabled.",
  "session:password_changed": "Your password was changed. Please sign in again.",
  "session:*": "You were signed out.",
};

/** The words for an error ({error, message, field, ...} or a code); `context` picks a better
 * entry where there is one. A server message without an entry keeps its field name. */
export function errorText(error, context) {
  const e = typeof error === "string" ? { error } : error || {};
  const text =
    (context && (TEXTS[context + ":" + e.error] || TEXTS[context + ":*"])) || TEXTS[e.error];
  if (typeof text === "function") return text(e);
  if (text) return text;
  if (e.message) return (e.field ? e.field + ": " : "") + e.message;
  if (e.status) return "The server answered " + e.status + ".";
  return "Something went wrong" + (e.error ? " (" + e.error + ")." : ".");
}

/** An error of the console's own, thrown where a form finds a problem before any request. */
export const fail = (code) => ({ error: code });
