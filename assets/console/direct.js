/* Direct messages between operators (docs/PROTOCOL.md §5.6): one conversation per colleague,
 * kept by its own cursor (the highest seq applied). The welcome says how far each conversation
 * goes; what the cursor lacks comes from GET /api/console/direct/ID?after=CURSOR; a live
 * `direct` event is applied only when it is exactly the next one, and a gap fetches again. So
 * a reconnect or a reload shows each message once, in order.
 *
 * Store keys: dms (the list, unread counts), dm:ID (a conversation's messages, outbox, read
 * cursors). The outboxes (what I typed that the server has not acknowledged) are kept in this
 * browser, with their client ids, so a retry after a reload stores nothing twice. */

import { api } from "./api.js";
import { alerts } from "./alerts.js";
import * as app from "./app.js";
import { errorText } from "./errors.js";
import { cid } from "./format.js";
import { local, store } from "./store.js";

const d = document;
const S = store.state;
let me = null; // my operator id while signed in

/** Start afresh for a signed-in operator (every cursor at 0: the history is fetched again). */
export function reset(myId) {
  me = myId;
  const saved = local.get("dm" + myId) || {};
  const dms = new Map();
  store.set({ dms });
  for (const id in saved) {
    const dm = conversation(Number(id));
    dm.outbox = (saved[id] || []).filter((m) => !m.acked);
  }
}

/** A colleague's conversation, made on first sight. */
export function conversation(id) {
  id = Number(id);
  let dm = S.dms.get(id);
  if (!dm) {
    dm = {
      id,
      name: "",
      messages: [],
      cursor: 0,
      last_seq: 0,
      read_seq: 0,
      their_read_seq: 0,
      unread: 0,
      outbox: [],
      draft: "",
      fetching: false,
      again: false,
      flushing: false,
      known: false, // fetched at least once since this page started
    };
    S.dms.set(id, dm);
  }
  return dm;
}

/** The colleague's name: from the team, else from the conversation. */
export function nameOf(id) {
  const o = S.team.find((x) => x.id === id);
  const dm = S.dms.get(id);
  return (o && o.display_name) || (dm && dm.name) || "Operator #" + id;
}

export const totalUnread = () => {
  let n = 0;
  for (const dm of S.dms.values()) n += dm.unread;
  return n;
};

const viewing = (dm) =>
  !d.hidden && d.hasFocus() && S.view.kind === "direct" && S.view.id === dm.id;

/** The messages held are always seq 1 to the cursor: they give the unread count, unless a
 * fetch is still to bring some (then the welcome's count stands until it has). */
function changed(dm) {
  let n = 0;
  for (const m of dm.messages) if (m.from.id !== me && m.seq > dm.read_seq) n++;
  dm.unread = dm.cursor < dm.last_seq ? Math.max(n, dm.unread) : n;
  store.touch("dm:" + dm.id, "dms");
  app.updateTitle();
}

function save() {
  const out = {};
  for (const dm of S.dms.values()) if (dm.outbox.length) out[dm.id] = dm.outbox;
  local.set("dm" + me, out);
}

// -- what the server says -----------------------------------------------------------------------

/** The welcome's `directs`: after every (re)connection, fetch what each conversation lacks. */
export function welcome(list) {
  for (const s of list || []) {
    const dm = conversation(s.with);
    dm.name = s.name || dm.name;
    dm.last_seq = Math.max(dm.last_seq, s.last_seq);
    dm.read_seq = Math.max(dm.read_seq, s.read_seq);
    dm.their_read_seq = Math.max(dm.their_read_seq, s.their_read_seq);
    if (!dm.known) dm.unread = s.unread;
    if (s.last_seq > dm.cursor) fetchMissing(dm);
    changed(dm);
  }
  for (const dm of S.dms.values()) flush(dm);
}

/** A live `direct` event. */
export function event(ev) {
  const dm = conversation(ev.with);
  dm.name = ev.from.id === me ? ev.to.name : ev.from.name;
  dm.last_seq = Math.max(dm.last_seq, ev.seq);
  if (ev.seq <= dm.cursor) return; // already applied (fetched, or another tab's echo)
  if (ev.seq !== dm.cursor + 1) return fetchMissing(dm);
  apply(dm, ev);
  changed(dm);
  if (ev.from.id !== me) {
    if (viewing(dm)) markRead(dm);
    else if (app.live()) {
      alerts.beep(true);
      alerts.notify(
        ev.from.name + " (direct message)",
        ev.text.slice(0, 140),
        "cutelive-dm-" + dm.id,
        () => app.show({ kind: "direct", id: dm.id }),
      );
    }
  }
}

/** A `direct_read` event: my cursor (another tab read it) or the colleague's receipt. */
export function readEvent(ev) {
  const dm = conversation(ev.with);
  if (ev.reader === me) dm.read_seq = Math.max(dm.read_seq, ev.seq);
  else dm.their_read_seq = Math.max(dm.their_read_seq, ev.seq);
  changed(dm);
}

function apply(dm, ev) {
  dm.messages.push(ev);
  dm.cursor = ev.seq;
  if (dm.outbox.some((m) => m.client_id === ev.client_id)) {
    dm.outbox = dm.outbox.filter((m) => m.client_id !== ev.client_id);
    save();
  }
}

/** Fetch the messages after the cursor, in order (one request at a time; again if asked). */
export async function fetchMissing(dm) {
  if (dm.fetching) return void (dm.again = true);
  dm.fetching = true;
  try {
    for (;;) {
      dm.again = false;
      const j = await api("GET", "/api/console/direct/" + dm.id + "?after=" + dm.cursor);
      for (const ev of j.messages) if (ev.seq === dm.cursor + 1) apply(dm, ev);
      dm.read_seq = Math.max(dm.read_seq, j.read_seq);
      dm.their_read_seq = Math.max(dm.their_read_seq, j.their_read_seq);
      dm.last_seq = Math.max(dm.last_seq, dm.cursor);
      dm.known = true;
      changed(dm);
      if (!j.more && !dm.again) break;
    }
  } catch (e) {
    dm.error = errorText(e);
    store.touch("dm:" + dm.id);
  } finally {
    dm.fetching = false;
  }
  if (viewing(dm)) markRead(dm);
}

// -- what I do ----------------------------------------------------------------------------------

/** The conversation is on screen in a visible, focused window: it is read up to the cursor. */
export function markRead(dm) {
  if (!dm || !viewing(dm) || !app.live()) return;
  const theirs = dm.messages.filter((m) => m.from.id !== me);
  const last = theirs.length ? theirs[theirs.length - 1].seq : 0;
  if (last <= dm.read_seq) return;
  dm.read_seq = last;
  changed(dm);
  app.command({ type: "direct_read", operator_id: dm.id, seq: last }).catch(() => {});
}

/** Mark the conversation in front read (the window came back, the view changed). */
export function markShownRead() {
  if (S.view.kind === "direct" && S.dms) markRead(S.dms.get(S.view.id));
}

export function send(dm, text) {
  dm.outbox.push({ client_id: cid(), text });
  save();
  store.touch("dm:" + dm.id);
  flush(dm);
}

/** Try a message the server refused again (same client id: stored once at most). */
export function retry(dm, m) {
  delete m.failed;
  store.touch("dm:" + dm.id);
  flush(dm);
}

export function discard(dm, m) {
  dm.outbox = dm.outbox.filter((x) => x !== m);
  save();
  store.touch("dm:" + dm.id);
}

/** Send the outbox in order; a refused message stays, marked as failed, until retried. */
export async function flush(dm) {
  if (!dm || dm.flushing || !app.live()) return;
  dm.flushing = true;
  try {
    for (const m of dm.outbox.slice()) {
      if (m.acked || m.failed) continue;
      const cmd = { type: "direct", operator_id: dm.id, text: m.text, client_id: m.client_id };
      let ack = null;
      let err = null;
      try {
        ack = await app.command(cmd);
      } catch (x) {
        err = x || {};
      }
      if (ack) {
        m.acked = true;
        event(ack.direct); // the echo on my stream may come later: applied once either way
      } else if (err.error === "disconnected" || err.error === "timeout") break;
      else m.failed = errorText(err, "deliver");
    }
  } finally {
    dm.flushing = false;
    dm.outbox = dm.outbox.filter((m) => !m.acked);
    save();
    store.touch("dm:" + dm.id);
  }
}
