/* What the console knows of the server's rules, from GET /api/console/session `protocol`: field
 * limits, the widget's appearance keys (kind, limit, default), the invitation's default text and
 * the invitation rules' conditions. The server is the one place that knows them; nothing here
 * repeats a number or a text of its own. */

let doc = { limits: {}, appearance: {}, invitation_text: "", rule_conditions: {} };

export const setProtocol = (p) => (doc = Object.assign({}, doc, p || {}));

/** A limit by name (message_chars, password_min_chars, ...); undefined if the server has none,
 * and h() then leaves the attribute out. */
export const limit = (name) => doc.limits[name];

/** The widget's appearance keys in display order: {key: {kind, limit, default}}. */
export const appearanceKeys = () => doc.appearance;

/** What the widget shows when an invitation has no message of its own. */
export const invitationText = () => doc.invitation_text;

/** The conditions an invitation rule may have: {name: "str" | "count" | "bool"}. */
export const ruleConditions = () => doc.rule_conditions;

/** Whether the server sends e-mail ([mail] is configured). */
export const mailEnabled = () => !!doc.mail;

/** The upload limits (docs/PROTOCOL.md §7.10): {max_size (bytes), types (empty: any)}. */
export const fileLimits = () => doc.files || {};

/** Seconds between repeated alerts while a chat waits unaccepted. */
export const alertRepeat = () => doc.alert_repeat || 30;
