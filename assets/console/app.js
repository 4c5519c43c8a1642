/* The running console: its state in the store, the event stream (stream.js's CuteLiveStream,
 * docs/PROTOCOL.md §3–§4), and the operator's commands. Events and answers only change the
 * store; the shell and the views draw from it (store.js). Nothing here touches the DOM.
 *
 * Store keys: me, conn, alerts, view, tabs, queue, team, inbox, mail (the outbox), mailEnabled,
 * departments (every department, §7.8), transfers (a Map by id: the transfers offered to me or
 * by me, changed in place),
 * inboxMail (an inbox message's mail changed in place), visitors (a Map, changed in
 * place), mon (the monitor's sort and filters), detail (the visitor open in the monitor), and per
 * chat ID: log:ID (its events), head:ID (its summary), outbox:ID, typing:ID, seen:ID,
 * uploads:ID (my files on their way, files.js); per
 * visitor ID: vrow:ID (the monitor row) and visitor:ID (the detail's visits and chats); direct
 * messages between operators: dms and dm:ID (direct.js). */

import { api, BASE, xsrfHeaders } from "./api.js";
import { alerts, flashTitle, setBadge, stopTitle } from "./alerts.js";
import * as direct from "./direct.js";
import { errorText } from "./errors.js";
import * as files from "./files.js";
import { ago, cid, dur } from "./format.js";
import { setText } from "./dom.js";
import { alertRepeat } from "./protocol.js";
import { local, store } from "./store.js";
import { toast, toastError } from "./ui.js";

const d = document;
const w = window;
const S = store.state;
let run = null; // this session's stream, timers and listeners

// -- state --------------------------------------------------------------------------------------

/** Start the console for a signed-in operator; `signedOut(message)` ends it. */
export function start(me, session, signedOut) {
  stop();
  const key = "op" + me.id;
  const saved = local.get(key) || {};
  store.set({
    me,
    publicUrl: (session && session.public_url) || BASE,
    conn: { state: "connecting", transport: null },
    alerts: 0,
    tabs: [],
    chats: new Map(), // id -> {id, summary, events, seen, typing, outbox, draft, rev}
    queue: [],
    team: [],
    departments: [],
    transfers: new Map(), // transfer id -> the transfer as last sent (docs/PROTOCOL.md §5.5)
    inbox: [],
    mail: [],
    mailEnabled: false,
    // The live traffic monitor ("Visitors"): the view operators open first.
    view: saved.view && saved.view.kind !== "chat" ? saved.view : { kind: "visitors" },
    visitors: new Map(), // visitor id -> monitor row (docs/PROTOCOL.md §7.5)
    visKnown: false,
    visitorInfo: new Map(), // visitor id -> {data} or {error}: the detail panel's history
    mon: Object.assign({ key: "time", dir: 1, q: "", state: "", ret: "" }, saved.mon || {}),
    detail: null,
    historyFilter: "closed",
  });
  for (const t of saved.tabs || []) {
    const c = chat(t.id);
    c.seen = t.seen || 0;
    c.outbox = (t.outbox || []).filter((m) => !m.acked);
    S.tabs.push(c.id);
  }
  if (saved.view && saved.view.kind === "chat" && S.tabs.includes(saved.view.id))
    S.view = saved.view;
  // arrived: chats whose tab this page opened for their first events (not restored ones).
  run = {
    key,
    signedOut,
    queueKnown: null,
    settingStatus: false,
    alertedAt: 0,
    arrived: new Set(),
  };
  direct.reset(me.id);
  run.stream = new w.CuteLiveStream({
    base: BASE,
    role: "operator",
    headers: xsrfHeaders,
    onState: (state, transport) => {
      store.set({ conn: { state, transport } });
      if (state === "connected") for (const id of S.tabs) flush(S.chats.get(id));
      if (state === "connected") for (const dm of S.dms.values()) direct.flush(dm);
    },
    onWelcome: welcome,
    onEvent: event,
    onFatal: () => signOut(errorText("not_authenticated")),
  });
  // Replay every open tab's whole transcript (cursor 0): no message is lost across a reload.
  for (const id of S.tabs) run.stream.cursors[id] = 0;
  run.stream.start();
  loadInbox();
  run.timers = [setInterval(tick, 1000), setInterval(loadInbox, 60000)];
  run.wake = () => {
    run.stream.kick();
    receipts();
    if (!d.hidden) markSeen();
    direct.markShownRead();
    updateTitle();
  };
  d.addEventListener("visibilitychange", run.wake);
  w.addEventListener("focus", run.wake);
  w.addEventListener("online", run.wake);
}

/** Stop the stream, the timers and the listeners (signed out, or started again). */
export function stop() {
  if (!run) return;
  run.stream.stop();
  for (const t of run.timers) clearInterval(t);
  d.removeEventListener("visibilitychange", run.wake);
  w.removeEventListener("focus", run.wake);
  w.removeEventListener("online", run.wake);
  run = null;
  stopTitle();
}

/** End the console and say why (the sign-in screen shows `message`). */
export function signOut(message) {
  if (!run) return;
  const done = run.signedOut;
  stop();
  done(message);
}

export const live = () => S.conn.state === "connected";

/** Send a command on the stream; resolves with its ack (rejects with the error). */
export const command = (cmd) => run.stream.send(cmd);

function save() {
  if (!run) return; // signed out meanwhile
  local.set(run.key, {
    tabs: S.tabs.map((id) => {
      const c = S.chats.get(id);
      return { id, seen: c.seen, outbox: c.outbox.length ? c.outbox : undefined };
    }),
    view: S.view,
    mon: { key: S.mon.key, dir: S.mon.dir, state: S.mon.state, ret: S.mon.ret },
  });
}

/** A chat's record, made on first sight. */
export function chat(id) {
  id = Number(id);
  let c = S.chats.get(id);
  if (!c)
    S.chats.set(
      id,
      (c = {
        id,
        summary: null,
        events: [],
        seen: 0,
        typing: false,
        outbox: [],
        draft: "",
        rev: 0,
      }),
    );
  return c;
}

/** Merge what is known of a chat (a queue entry, an answer) into its summary. */
function summarize(c, s) {
  c.summary = Object.assign(c.summary || {}, s);
  store.touch("head:" + c.id);
  setReceipts(c, s.receipts);
}

/** Is the chat mine to write in: active with me, or pending with me (kept for my reply)? */
export const isMine = (s) =>
  !!(
    s &&
    (s.status === "active" || s.status === "pending") &&
    s.operator &&
    s.operator.id === S.me.id
  );

/** My open chats (in tabs): what going offline would hand over or keep. */
export const myOpenChats = () =>
  S.tabs.map((id) => S.chats.get(id)).filter((c) => c && isMine(c.summary));

/** A message or a file: what one party says to the other (unread, alerts). */
const isSaid = (ev) => ev.type === "message" || ev.type === "file";

export function unread(c) {
  let n = 0;
  for (const e of c.events) if (isSaid(e) && e.from === "visitor" && e.seq > c.seen) n++;
  return n;
}

const viewing = (c) => !d.hidden && S.view.kind === "chat" && S.view.id === c.id;

// -- the stream ---------------------------------------------------------------------------------

function welcome(ev) {
  if (ev.operator) store.set({ me: ev.operator });
  if (ev.departments) store.set({ departments: ev.departments });
  direct.welcome(ev.directs);
  for (const s of ev.chats || []) {
    const c = chat(s.id);
    summarize(c, s);
    if (isMine(s) || (s.status === "closed" && s.operator && s.operator.id === S.me.id))
      openTab(s.id, false);
  }
  for (const id of S.tabs) flush(S.chats.get(id));
  receipts();
}

/** What each event that is not about one chat changes. */
const EVENTS = {
  queue: (ev) => setQueue(ev.chats || []),
  visitors(ev) {
    S.visitors = new Map();
    for (const r of ev.visitors || []) S.visitors.set(r.id, r);
    store.set({ visKnown: true });
    store.touch("visitors", S.detail ? "vrow:" + S.detail.id : "visitors");
    store.flush(); // the first view at once, not a frame later
  },
  visitors_changed(ev) {
    for (const r of ev.visitors || []) {
      S.visitors.set(r.id, r);
      store.touch("vrow:" + r.id);
    }
    for (const id of ev.gone || []) {
      S.visitors.delete(id);
      store.touch("vrow:" + id);
    }
    store.touch("visitors");
  },
  offline_message(ev) {
    const m = ev.message;
    if (!m || S.inbox.some((x) => x.id === m.id)) return;
    store.set({ inbox: [m].concat(S.inbox) });
    alerts.beep(true);
    alerts.notify(
      "Message from " + (m.name || "a visitor"),
      (m.text || "").slice(0, 140),
      "cutelive-inbox-" + m.id,
      () => show({ kind: "inbox" }),
    );
  },
  offline_message_replied: (ev) => ev.message && putMessage(ev.message),
  mail_changed(ev) {
    const mail = ev.mail;
    if (!mail) return;
    const put = (list) => {
      const i = list.findIndex((x) => x.id === mail.id);
      if (i < 0) list.unshift(mail);
      else list[i] = mail;
    };
    put(S.mail);
    const m = mail.offline_message_id && S.inbox.find((x) => x.id === mail.offline_message_id);
    if (m) put((m.mail = m.mail || []));
    store.touch("mail", "inboxMail");
  },
  departments: (ev) => store.set({ departments: ev.departments || [] }),
  transfer: (ev) => ev.transfer && putTransfer(ev.transfer),
  operators(ev) {
    store.set({ team: ev.operators || [] });
    // My own status may have changed in another console window.
    const mine = S.team.find((o) => o.id === S.me.id);
    const status = mine ? mine.status : "offline";
    if (status !== S.me.status && !run.settingStatus)
      store.set({ me: Object.assign({}, S.me, { status }) });
  },
  typing(ev) {
    const c = ev.from === "visitor" && S.chats.get(ev.chat_id);
    if (!c) return;
    clearTimeout(c.typingTimer);
    c.typing = !!ev.typing;
    // The typing preview (§5.7): what the visitor has in the box, not sent yet. A `typing`
    // without `text` (the text unchanged) keeps the last one.
    c.typingText = !c.typing ? "" : typeof ev.text === "string" ? ev.text : c.typingText || "";
    if (c.typing)
      c.typingTimer = setTimeout(
        () => ((c.typing = false), (c.typingText = ""), store.touch("typing:" + c.id)),
        (ev.expires_in || 6) * 1000,
      );
    store.touch("typing:" + c.id);
  },
  receipt(ev) {
    const c = S.chats.get(ev.chat_id);
    if (c) setReceipts(c, { [ev.party]: ev });
  },
  reset: (ev) => reload(ev.chat_id),
  direct: (ev) => (direct.event(ev), updateTitle()),
  direct_read: (ev) => (direct.readEvent(ev), updateTitle()),
  session_ended: (ev) => signOut(errorText({ error: ev.reason }, "session")),
  error: () => {},
};

function event(ev) {
  if (EVENTS[ev.type]) return EVENTS[ev.type](ev);
  if (ev.chat_id == null || ev.seq == null) return;
  const c = chat(ev.chat_id);
  apply(c, ev);
  const inv = ev.type === "chat_started" && ev.invitation;
  if (inv && inv.operator && inv.operator.id === S.me.id && !S.tabs.includes(c.id)) {
    // The visitor accepted my invitation, and the chat is mine already (its events reach
    // only the operator it is assigned to). Bring it to the front unless I am in a chat.
    toast("A visitor accepted your invitation.", "ok");
    alerts.beep(false);
    openTab(c.id, S.view.kind !== "chat");
    loadSummary(c);
  }
  if (!S.tabs.includes(c.id)) {
    openTab(c.id, false);
    run.arrived.add(c.id);
  }
  const mine = ev.type === "chat_accepted" && ev.assigned && ev.operator.id === S.me.id;
  if (mine && run.arrived.delete(c.id)) {
    // Routing gave me this chat (docs/PROTOCOL.md §5.5; its events come from seq 1): as loud
    // as a new chat in the queue, and in front unless I am in a chat. A reload (the tab
    // restored) does not announce it again.
    toast("A chat was assigned to you.", "ok");
    alerts.beep(true);
    alerts.notify("Chat assigned to you", "", "cutelive-assigned-" + c.id, () =>
      show({ kind: "chat", id: c.id }),
    );
    if (S.view.kind !== "chat") show({ kind: "chat", id: c.id });
    loadSummary(c);
  }
  markSeen();
  receipts();
  if (isSaid(ev) && ev.from === "visitor" && live() && !viewing(c)) {
    alerts.beep(true);
    const name = (c.summary && c.summary.name) || "Visitor";
    const said = ev.file ? "\ud83d\udcce " + ev.file.name : ev.text;
    alerts.notify(
      name + (ev.file ? " sent a file" : " wrote"),
      said.slice(0, 140),
      "cutelive-msg-" + c.id,
      () => show({ kind: "chat", id: c.id }),
    );
  }
  if (ev.type === "chat_missed") loadInbox();
  updateTitle();
  save();
}

/** How each chat event changes the chat's summary. */
const SUMMARY = {
  chat_started: (ev, s) =>
    Object.assign(s, {
      name: ev.name,
      email: ev.email,
      page_url: ev.page_url,
      page_title: ev.page_title,
      created_at: ev.ts,
      status: s.status || "waiting",
    }),
  chat_accepted: (ev, s) =>
    Object.assign(s, { status: "active", operator: ev.operator, accepted_at: ev.ts }),
  chat_requeued: (ev, s) =>
    Object.assign(s, {
      status: "waiting",
      operator: null,
      queued_at: ev.ts,
      handed_over_by: ev.reason === "handed_over" ? ev.operator : null,
    }),
  chat_pending: (ev, s) =>
    Object.assign(s, { status: "pending", operator: ev.operator, pending_since: ev.ts }),
  chat_resumed: (ev, s) =>
    Object.assign(s, { status: "active", operator: ev.operator, pending_since: null }),
  visitor_details: (ev, s) => Object.assign(s, { email: ev.email }),
  chat_rated: (ev, s) => Object.assign(s, { rating: ev.rating, rating_comment: ev.comment }),
  chat_missed: (ev, s) => (s.status = "missed"),
  chat_closed: (ev, s) => Object.assign(s, { status: "closed", closed_at: ev.ts }),
  chat_transferred: (ev, s) =>
    Object.assign(s, {
      operator: ev.operator,
      department: ev.department !== undefined ? ev.department : s.department,
    }),
};

function apply(c, ev) {
  c.events.push(ev);
  store.touch("log:" + c.id);
  const s = (c.summary = c.summary || { id: c.id, status: "waiting" });
  s.last_seq = ev.seq;
  if (SUMMARY[ev.type]) {
    SUMMARY[ev.type](ev, s);
    store.touch("head:" + c.id);
  }
  if ((ev.type === "message" && ev.from === "visitor") || ev.type === "chat_closed") {
    clearTimeout(c.typingTimer);
    if (c.typing) store.touch("typing:" + c.id);
    c.typing = false;
    c.typingText = "";
  }
  if (ev.type === "file") files.arrived(c, ev);
  const sent = ev.type === "message" || ev.type === "note";
  if (sent && c.outbox.some((m) => m.client_id === ev.client_id)) {
    c.outbox = c.outbox.filter((m) => m.client_id !== ev.client_id);
    store.touch("outbox:" + c.id);
  }
}

/** Load a chat's whole transcript again (after a reset, or to open a past chat). */
async function reload(id) {
  const cursors = run.stream.cursors;
  const c = chat(id);
  c.events = [];
  c.rev++;
  store.touch("log:" + c.id);
  try {
    const j = await api("GET", "/api/console/chats/" + id);
    c.summary = j.chat;
    for (const ev of j.events) {
      if (ev.seq === (cursors[id] || 0) + 1) {
        cursors[id] = ev.seq;
        apply(c, ev);
      }
    }
    summarize(c, j.chat);
  } catch (e) {
    if (e.status === 404) closeTab(c.id);
  }
}

/** The chat's summary with what events do not carry (browser, IP, visitor id). */
async function loadSummary(c) {
  try {
    const j = await api("GET", "/api/console/chats/" + c.id);
    summarize(c, Object.assign(j.chat, { status: c.summary.status }));
  } catch (e) {
    /* the events have the rest */
  }
}

function setQueue(list) {
  const before = run.queueKnown;
  run.queueKnown = new Set(list.map((c) => c.id));
  for (const s of list) if (S.chats.has(s.id)) summarize(S.chats.get(s.id), s);
  store.set({ queue: list });
  const fresh = before ? list.filter((s) => !before.has(s.id)) : [];
  if (fresh.length && S.me.status !== "offline") {
    run.alertedAt = Date.now();
    alerts.beep(false);
    const s = fresh[0];
    alerts.notify(
      "New chat: " + (s.name || "Visitor"),
      (s.first_message || "").slice(0, 140),
      "cutelive-chat-" + s.id,
      () => show({ kind: "home" }),
    );
  }
  updateTitle();
}

function markSeen() {
  if (d.hidden || S.view.kind !== "chat") return;
  const c = S.chats.get(S.view.id);
  if (!c || !c.events.length) return;
  const last = c.events[c.events.length - 1].seq;
  if (c.seen !== last) {
    c.seen = last;
    store.touch("seen:" + c.id);
    save();
  }
}

// -- receipts (docs/PROTOCOL.md §5.7) -------------------------------------------------------------

/** Merge a chat's receipt cursors (a summary's `receipts`, an ack's, a `receipt` event's, in my
 * numbering): they only move forward. Key rcpt:ID. */
function setReceipts(c, r) {
  if (!r) return;
  c.receipts = c.receipts || {};
  for (const party in r) {
    const o = (c.receipts[party] = c.receipts[party] || { delivered: 0, read: 0 });
    o.delivered = Math.max(o.delivered, r[party].delivered || 0);
    o.read = Math.max(o.read, r[party].read || 0);
  }
  store.touch("rcpt:" + c.id);
}

/** Tell the visitor how far I have got in each of my chats: what reached this console and,
 * while the chat is the tab shown in a visible, focused window, what I read. Coalesced: one
 * receipt per chat per burst of events. */
function receipts() {
  if (run && !run.receiptsDue) run.receiptsDue = setTimeout(sendReceipts, 200);
}

function sendReceipts() {
  const r = run;
  if (!r) return;
  r.receiptsDue = 0;
  if (!live()) return;
  for (const id of S.tabs) {
    const c = S.chats.get(id);
    const s = c && c.summary;
    if (!s || !s.operator || s.operator.id !== S.me.id) continue; // (only the chat's operator)
    let last = 0;
    for (const e of c.events) if (e.from === "visitor") last = e.seq;
    const mine = (c.receipts && c.receipts.operator) || {};
    const cmd = { type: "receipt", chat_id: c.id };
    if (viewing(c) && d.hasFocus() && last > Math.max(mine.read || 0, c.toldRead || 0))
      cmd.read = c.toldRead = last;
    else if (last > Math.max(mine.delivered || 0, c.toldDelivered || 0)) cmd.delivered = last;
    else continue;
    c.toldDelivered = last;
    r.stream.send(cmd).then(
      (ack) => setReceipts(c, ack.receipts),
      () => (c.toldRead = c.toldDelivered = 0), // told again after the next welcome
    );
  }
}

/** The badge and the tab title: waiting chats, transfers offered, unread messages. */
export function updateTitle() {
  const offered = incomingTransfers();
  const waiting = S.queue.length + offered.length;
  let n = 0;
  for (const id of S.tabs) n += unread(S.chats.get(id));
  n += direct.totalUnread();
  const away = d.hidden || !d.hasFocus();
  setBadge(waiting + n);
  if (offered.length && away) {
    const t = offered[offered.length - 1];
    flashTitle("(" + waiting + ") Transfer \u2014 " + ((t.chat && t.chat.name) || "Visitor"));
  } else if (waiting && away) {
    // The newest waiting visitor: the one the last alert was about.
    const at = (q) => q.queued_at || q.created_at || 0;
    const newest = S.queue.reduce((a, b) => (at(b) > at(a) ? b : a));
    flashTitle("(" + waiting + ") New chat \u2014 " + (newest.name || "Visitor"));
  } else if (n && away) flashTitle("(" + n + ") New message");
  else stopTitle();
}

/** While a chat waits unaccepted, the sound and the desktop notification come again every
 * `alert_repeat` seconds until someone accepts (the queue empties) — for an online operator. */
function escalate() {
  if (!S.queue.length || S.me.status !== "online") return;
  if (Date.now() - run.alertedAt < alertRepeat() * 1000) return;
  run.alertedAt = Date.now();
  const at = (q) => q.queued_at || q.created_at || 0;
  const oldest = S.queue.reduce((a, b) => (at(b) < at(a) ? b : a));
  alerts.beep(false);
  alerts.notify(
    (S.queue.length > 1 ? S.queue.length + " chats waiting" : "Still waiting: ") +
      (S.queue.length > 1 ? "" : oldest.name || "Visitor"),
    (oldest.first_message || "").slice(0, 140),
    "cutelive-waiting",
    () => show({ kind: "home" }),
  );
}

/** Once a second: the clocks ("waiting for", "on this page", "on site") move on, in place. */
function tick() {
  escalate();
  for (const el of d.querySelectorAll("[data-since]"))
    setText(el, ago(Number(el.getAttribute("data-since"))));
  const now = Date.now();
  for (const el of d.querySelectorAll("[data-dur]"))
    setText(el, dur(now - Number(el.getAttribute("data-dur"))));
  for (const el of d.querySelectorAll("[data-until]"))
    setText(
      el,
      Math.max(0, Math.ceil((Number(el.getAttribute("data-until")) - now) / 1000)) + " s",
    );
  // An offer whose end I never heard of (it ended while I was disconnected) leaves after its
  // deadline; one still offered would have come again after the reconnection's welcome.
  for (const [id, t] of S.transfers)
    if (t.state === "offered" && t.until && now - t.until > 5000) {
      S.transfers.delete(id);
      store.touch("transfers");
      updateTitle();
    }
}

// -- commands -----------------------------------------------------------------------------------

export function show(view) {
  store.set({ view });
  save();
  markSeen();
  receipts();
  direct.markShownRead();
  updateTitle();
}

/** Set my status; `chats` (hand_over or keep) says what becomes of my open chats when I go
 * offline (the shell asks first). */
export async function setStatus(status, chats) {
  const r = run;
  r.settingStatus = true;
  let now = status;
  try {
    const cmd = { type: "status", status };
    if (chats) cmd.chats = chats;
    const ack = await r.stream.send(cmd);
    now = ack.status || status;
  } catch (e) {
    now = S.me.status;
    toastError(e);
  }
  r.settingStatus = false;
  store.set({ me: Object.assign({}, S.me, { status: now }) });
}

export async function accept(id, btn) {
  if (btn) btn.disabled = true;
  try {
    const ack = await run.stream.send({ type: "accept", chat_id: id });
    const c = chat(ack.chat ? ack.chat.id : id);
    summarize(c, ack.chat || {});
    openTab(c.id, true);
  } catch (e) {
    if (btn) btn.disabled = false;
    toastError(e);
  }
}

/** Send a reply to the visitor, or (`note`) an internal note only operators see. */
export function send(c, text, note) {
  c.outbox.push(note ? { client_id: cid(), text, note: true } : { client_id: cid(), text });
  store.touch("outbox:" + c.id);
  save();
  flush(c);
}

/** Send a chat's outbox in order; a message the server refuses stays, marked as failed. */
async function flush(c) {
  if (!c || c.flushing || !live()) return;
  c.flushing = true;
  try {
    for (const m of c.outbox.slice()) {
      if (m.acked || m.failed) continue;
      const type = m.note ? "note" : "message";
      const cmd = { type, chat_id: c.id, text: m.text, client_id: m.client_id };
      const e = await run.stream.send(cmd).then(
        () => null,
        (x) => x || {},
      );
      if (!e) m.acked = true;
      else if (e.error === "disconnected" || e.error === "timeout") break;
      else if (e.retry_after) {
        // rate_limited, storage_full: the same message goes again (same client_id) then
        setTimeout(() => flush(c), e.retry_after * 1000);
        break;
      } else m.failed = errorText(e, "deliver");
    }
  } finally {
    c.flushing = false;
    store.touch("outbox:" + c.id);
    if (run) save();
  }
}

export async function closeChat(c) {
  try {
    await run.stream.send({ type: "close", chat_id: c.id });
  } catch (e) {
    toastError(e);
  }
}

// -- transfers (docs/PROTOCOL.md §5.5) -----------------------------------------------------------

/** The transfers offered to me (or to a department of mine) that wait for an answer. */
export const incomingTransfers = () =>
  Array.from(S.transfers.values()).filter((t) => t.state === "offered" && t.from.id !== S.me.id);

/** The last transfer of a chat that I offered, whatever its state (null: none to show). */
export function outgoingTransfer(chatId) {
  let last = null;
  // (the Map keeps the order transfers were first offered in: the last match is the newest)
  for (const t of S.transfers.values()) if (t.chat_id === chatId && t.from.id === S.me.id) last = t;
  return last;
}

/** How many of a department's members are online (`others`: besides me), from the team's
 * live statuses; the department's own count until the team is known. */
export function departmentOnline(dep, others) {
  if (!S.team.length) return Math.max(0, (dep.online || 0) - (others && isMember(dep) ? 1 : 0));
  return S.team.filter(
    (o) => o.status === "online" && dep.members.includes(o.id) && !(others && o.id === S.me.id),
  ).length;
}

const isMember = (dep) => S.me.status === "online" && dep.members.includes(S.me.id);

/** Where a transfer goes, in words: "Bob", "Sales". */
export const transferTarget = (t) =>
  t.to_operator ? t.to_operator.name : t.to_department ? t.to_department.name : "?";

/** A transfer as the server sent it (offered, or a change of state). */
function putTransfer(t) {
  const old = S.transfers.get(t.id);
  // expires_in counts from now; a deadline keeps the countdown right across redraws.
  t.until = t.state === "offered" ? Date.now() + (t.expires_in || 0) * 1000 : null;
  S.transfers.set(t.id, t);
  store.touch("transfers");
  if (t.chat && S.chats.has(t.chat_id)) summarize(S.chats.get(t.chat_id), t.chat);
  const incoming = t.from.id !== S.me.id;
  if (incoming && t.state === "offered" && !old) {
    alerts.beep(false);
    const who = (t.chat && t.chat.name) || "a visitor";
    alerts.notify(
      t.from.name + " transfers a chat with " + who,
      (t.note || (t.chat && t.chat.first_message) || "").slice(0, 140),
      "cutelive-transfer-" + t.id,
      () => w.focus(),
    );
  }
  // The chat in front shows the outcome in place; elsewhere a toast says it.
  const inView = S.view.kind === "chat" && S.view.id === t.chat_id && !d.hidden;
  const ended = old && old.state === "offered" && t.state !== "offered" && t.state !== "accepted";
  if (!incoming && ended && !inView)
    toast(
      transferTarget(t) +
        (t.state === "declined" ? " declined the transfer." : " did not answer the transfer.") +
        " The chat stays yours.",
    );
  updateTitle();
}

/** Offer my chat to a colleague (`to.operator_id`) or a department (`to.department`). */
export async function transfer(c, to, note) {
  const cmd = Object.assign({ type: "transfer", chat_id: c.id }, to);
  if (note) cmd.note = note;
  const ack = await run.stream.send(cmd);
  if (ack.transfer) putTransfer(ack.transfer);
}

/** Take a chat a colleague offered me: it opens in a tab, as an accepted chat does. */
export async function acceptTransfer(t, btn) {
  if (btn) btn.disabled = true;
  try {
    const ack = await run.stream.send({ type: "accept_transfer", transfer_id: t.id });
    const c = chat(ack.chat ? ack.chat.id : t.chat_id);
    summarize(c, ack.chat || {});
    if (S.transfers.get(t.id) === t)
      putTransfer(Object.assign({}, t, { state: "accepted", chat: ack.chat || t.chat }));
    openTab(c.id, true);
  } catch (e) {
    if (btn) btn.disabled = false;
    gone(t, e);
  }
}

export async function declineTransfer(t, btn) {
  if (btn) btn.disabled = true;
  try {
    await run.stream.send({ type: "decline_transfer", transfer_id: t.id });
    if (S.transfers.get(t.id) === t) putTransfer(Object.assign({}, t, { state: "declined" }));
  } catch (e) {
    if (btn) btn.disabled = false;
    gone(t, e);
  }
}

/** A transfer answered elsewhere (a colleague took it, it expired) leaves its card. */
function gone(t, e) {
  toastError(e, "transfer");
  if (e.error === "not_found" || e.error === "forbidden") {
    S.transfers.delete(t.id);
    store.touch("transfers");
    updateTitle();
  }
}

/** Forget the outcome of a transfer I offered (its note in the chat is dismissed). */
export function dismissTransfer(t) {
  S.transfers.delete(t.id);
  store.touch("transfers");
}

/** Tell the visitor whether I am typing (at most every 3 s while I am). */
export function typing(c, text) {
  if (!live() || !isMine(c.summary)) return;
  const has = text.trim() !== "";
  const now = Date.now();
  if (has && (!c.typingOn || now - c.typingAt >= 3000)) {
    c.typingOn = true;
    c.typingAt = now;
    run.stream.send({ type: "typing", chat_id: c.id, typing: true }).catch(() => {});
  } else if (!has && c.typingOn) {
    c.typingOn = false;
    run.stream.send({ type: "typing", chat_id: c.id, typing: false }).catch(() => {});
  }
}

export function openTab(id, activate) {
  const c = chat(id);
  if (!S.tabs.includes(c.id)) {
    store.set({ tabs: S.tabs.concat(c.id) });
    if (!(c.id in run.stream.cursors)) run.stream.cursors[c.id] = 0;
  }
  if (activate) show({ kind: "chat", id: c.id });
  save();
  return c;
}

/** Open a chat's transcript in a tab (a past chat, a missed one, a visitor's). */
export async function openTranscript(id) {
  const c = chat(id);
  if (!S.tabs.includes(c.id)) {
    store.set({ tabs: S.tabs.concat(c.id) });
    if (!c.events.length) {
      run.stream.cursors[c.id] = 0; // replayed from the start, after the transcript below
      await reload(c.id);
      c.seen = c.events.length ? c.events[c.events.length - 1].seq : 0;
    }
  }
  show({ kind: "chat", id: c.id });
}

export function closeTab(id) {
  const i = S.tabs.indexOf(id);
  if (i < 0) return;
  const tabs = S.tabs.filter((t) => t !== id);
  store.set({ tabs });
  delete run.stream.cursors[id];
  if (S.view.kind === "chat" && S.view.id === id) {
    const next = tabs[Math.min(i, tabs.length - 1)];
    show(next != null ? { kind: "chat", id: next } : { kind: "home" });
  }
  save();
}

export async function loadInbox() {
  try {
    const j = await api("GET", "/api/console/offline-messages");
    store.set({ inbox: j.messages || [], mailEnabled: !!j.mail_enabled });
  } catch (e) {
    /* the next minute */
  }
}

export async function markRead(m, read) {
  try {
    const r = await api("PATCH", "/api/console/offline-messages/" + m.id, { read });
    Object.assign(m, r.message || r, { read });
  } catch (e) {
    toastError(e);
  }
  store.set({ inbox: S.inbox.slice() });
}

/** Answer an offline message by e-mail; the answer replaces the message in the inbox. */
export async function replyTo(m, text) {
  putMessage(await api("POST", "/api/console/offline-messages/" + m.id + "/reply", { text }));
}

/** How far a mail has got: an answer sent before a mail_changed that came first must not
 * take its state back. */
const progress = (mail) => mail.attempts * 2 + (mail.state === "queued" ? 0 : 1);
const later = (known, mail) => (known && progress(known) > progress(mail) ? known : mail);

/** A message as the server sent it replaces the inbox's copy, keeping newer mail states. */
function putMessage(m) {
  const old = S.inbox.find((x) => x.id === m.id);
  const mails = (old && old.mail) || [];
  m.mail = (m.mail || []).map((mail) =>
    later(
      mails.find((x) => x.id === mail.id),
      mail,
    ),
  );
  store.set({ inbox: S.inbox.map((x) => (x.id === m.id ? m : x)) });
}

/** The outbox, newest first (then kept current by mail_changed). */
export async function loadMail() {
  try {
    const j = await api("GET", "/api/console/mail");
    const mail = (j.mail || []).map((x) =>
      later(
        S.mail.find((k) => k.id === x.id),
        x,
      ),
    );
    store.set({ mail, mailEnabled: !!j.mail_enabled });
  } catch (e) {
    /* shown again when the Inbox is opened */
  }
}

export const invite = (visitorId, message) =>
  run.stream.send({ type: "invite", visitor_id: visitorId, message });

// -- the monitor's detail panel ---------------------------------------------------------------

export function saveMon(patch) {
  store.set({ mon: Object.assign({}, S.mon, patch) });
  save();
}

/** Open a visitor in the monitor's detail panel and load their visits and chats. */
export function openDetail(id) {
  S.visitorInfo.delete(id); // "Loading…" until this look's answer
  store.set({ detail: { id } });
  loadVisitor(id);
}

export const closeDetail = () => store.set({ detail: null });

/** Load a visitor's history into visitorInfo (one request at a time per visitor). */
const loading = new Map(); // visitor id -> whether to load again when the answer is back

export async function loadVisitor(id) {
  const busy = loading;
  if (busy.has(id)) return busy.set(id, true); // once more when this one is back
  busy.set(id, false);
  const r = S.visitors.get(id);
  const info = { pages: r && r.pages, visit: r && r.visit_number };
  try {
    info.data = await api("GET", "/api/console/visitors/" + id);
  } catch (e) {
    info.error = e;
  }
  S.visitorInfo.set(id, info);
  store.touch("visitor:" + id);
  const again = busy.get(id);
  busy.delete(id);
  if (again) loadVisitor(id);
}

export async function logout() {
  try {
    await api("POST", "/api/console/logout", {});
  } catch (e) {
    /* signed out anyway */
  }
  signOut("You are signed out.");
}
