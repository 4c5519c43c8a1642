/* A chat tab: the header (who, state, Transfer, End chat), the log with its internal notes and
 * files, what I am sending (messages, uploads), the visitor's typing, a transfer I offered, my reply or note box, and the
 * visitor's details beside it. */

import * as app from "../app.js";
import { cannedPicker } from "../canned.js";
import { dots, extLink, h, I, icon, linkify, mailLink, put } from "../dom.js";
import { errorText } from "../errors.js";
import { attachButton, drawUploads, dropZone, fileBubble } from "../files.js";
import { browserOf, dur, hhmm, when } from "../format.js";
import { invitationText, limit, mailEnabled } from "../protocol.js";
import { store } from "../store.js";
import { button, formDialog, lengthGuard } from "../ui.js";
import { departmentTags } from "./queue.js";

const S = store.state;

export function mount(root, scope, view) {
  const c = S.chats.get(view.id);
  const e = {
    head: h("div", { class: "chat-head" }),
    items: h("div", { class: "items" }),
    pending: h("div", { class: "pending" }),
    uploads: h("div", { class: "uploads" }),
    typing: h(
      "div",
      { class: "typing hidden" },
      dots({ class: "dots" }),
      h("span", { class: "typing-who" }),
      // The typing preview (§5.7): what the visitor has typed and not sent (not read aloud).
      h("span", { class: "typing-preview", "aria-live": "off" }),
    ),
    transfer: h("div", { class: "transfer-state hidden", "aria-live": "polite" }),
    compose: h("div", { class: "compose-wrap" }),
    side: h("aside", { class: "chat-side" }),
  };
  e.log = h("div", { class: "log", role: "log" }, e.items, e.pending, e.uploads, e.typing);
  for (const k of ["log", "head", "side", "compose", "transfer"])
    e[k].setAttribute("data-region", "chat-" + k);
  put(
    root,
    h(
      "div",
      { class: "chat-view", "data-chat": c.id },
      h("div", { class: "chat-main" }, e.head, e.log, e.transfer, e.compose),
      e.side,
    ),
  );
  const nearBottom = () => e.log.scrollHeight - e.log.scrollTop - e.log.clientHeight < 80;
  const toBottom = () => (e.log.scrollTop = e.log.scrollHeight);
  /** Draw, then scroll to the end if the log was at the end (or `force`). */
  const keepingBottom = (draw, force) => {
    const stick = nearBottom() || force;
    draw();
    if (stick) toBottom();
  };
  const id = c.id;
  scope.region(["log:" + id], log(c, e, keepingBottom));
  scope.region(["outbox:" + id], () => keepingBottom(() => drawPending(c, e.pending)));
  scope.region(["uploads:" + id], () => keepingBottom(() => drawUploads(c, e.uploads), true));
  // Files dropped on the chat, or pasted into it, are attached to my reply (never to a note).
  dropZone(
    root.querySelector(".chat-main"),
    c,
    () => app.isMine(c.summary) && !c.noteMode,
    () => errorText(app.isMine(c.summary) ? "attach_note" : "attach_not_mine"),
  );
  scope.region(["typing:" + id, "head:" + id], () =>
    keepingBottom(() => {
      const text = (c.typing && c.typingText) || "";
      e.typing.classList.toggle("hidden", !c.typing);
      e.typing.children[1].textContent =
        ((c.summary && c.summary.name) || "The visitor") +
        (text.trim() ? " is typing:" : " is typing\u2026");
      // A long text shows its end, where the visitor is typing now.
      const preview = e.typing.lastChild;
      preview.textContent = text.length > 300 ? "\u2026" + text.slice(-300) : text;
      preview.scrollTop = preview.scrollHeight;
    }),
  );
  // "Delivered", then "Seen", beside the time of my last message the visitor has got (§5.7).
  const rcpt = h("span", { class: "rcpt" });
  scope.region(["log:" + id, "rcpt:" + id], () => {
    const r = (c.receipts && c.receipts.visitor) || {};
    let m = null;
    for (const ev of c.events) if (ev.from === "operator" && ev.seq <= r.delivered) m = ev;
    const time = m && e.items.querySelector('.msg[data-seq="' + m.seq + '"] .msg-time');
    if (!time) return rcpt.remove();
    rcpt.textContent = r.read >= m.seq ? "Seen" : "Delivered";
    time.append(rcpt);
  });
  scope.region(["head:" + id, "me", "transfers"], () => drawHead(c, e.head));
  scope.region(["head:" + id, "transfers"], () => drawTransferState(c, e.transfer));
  // The visitor's current page comes live from the monitor (only their row redraws it).
  let nowOnKey = null;
  scope.region(["head:" + id, "vrow:*"], (changed) => {
    const vid = c.summary && c.summary.visitor_id;
    const r = vid && S.visitors.get(vid);
    // Only a change of what "Now on" shows (not the visitor's every activity) redraws it.
    const key = r ? [r.state === "left", r.url, r.title, r.pages, r.page_since].join("\u0001") : "";
    if (changed.has("head:" + id) || key !== nowOnKey) drawSide(c, e.side);
    nowOnKey = key;
  });
  scope.region(
    ["head:" + id, "me"],
    compose(c, e.compose, () => (store.flush(), toBottom())),
  );
  requestAnimationFrame(toBottom);
}

/** The log, kept by hand: new events are appended (a message costs one node, whatever the
 * length of the chat); only a reloaded transcript (rev changed) is drawn again from the top. */
function log(c, e, keepingBottom) {
  let drawn = 0;
  let rev = -1;
  return () => {
    if (rev !== c.rev || drawn > c.events.length) {
      rev = c.rev;
      drawn = 0;
      put(e.items);
      if (!c.events.length)
        e.items.append(h("p", { class: "empty-small", text: "Loading the transcript\u2026" }));
    }
    if (drawn === c.events.length) return;
    const last = c.events[c.events.length - 1];
    const mine = last.type === "message" && last.from === "operator";
    keepingBottom(() => {
      if (!drawn) put(e.items);
      for (; drawn < c.events.length; drawn++) {
        const n = eventNode(c, c.events[drawn], c.events[drawn - 1]);
        if (n) e.items.append(n);
      }
    }, mine);
  };
}

/** The line an event other than a message leaves in the log; `actor` is the operator who did
 * it ("You" for me), `name` their name whoever they are. */
const SYSTEM = {
  chat_accepted: (ev, actor, name) =>
    ev.assigned
      ? "Assigned to " + (actor === "You" ? "you" : name) + " by routing"
      : actor + " joined",
  chat_requeued: (ev, actor, name) =>
    ev.reason === "handed_over"
      ? actor + " handed the chat over; it went to the head of the queue"
      : name + " went offline; the chat went back to the queue",
  chat_pending: (ev, actor) =>
    (ev.operator
      ? (actor === "You" ? "You went" : actor + " went") + " offline"
      : "Nobody took it") + "; the conversation is kept as pending for a later reply",
  chat_resumed: (ev, actor) => (actor === "You" ? "You are" : actor + " is") + " back",
  visitor_details: (ev) => "The visitor left the address " + ev.email,
  chat_rated: (ev) =>
    "The visitor rated the chat " +
    "\u2605".repeat(ev.rating) +
    "\u2606".repeat(5 - ev.rating) +
    (ev.comment ? ": \u201c" + ev.comment + "\u201d" : ""),
  chat_missed: () => "Nobody answered in time; the visitor was offered the message form",
  chat_transferred: (ev) => {
    const who = (o) => (!o ? "an operator" : o.id === S.me.id ? "you" : o.name);
    return (
      "Transferred from " +
      who(ev.from) +
      " to " +
      who(ev.operator) +
      (ev.department ? " (" + ev.department.name + ")" : "")
    );
  },
  chat_closed: (ev, actor) =>
    ({ visitor: "The visitor ended the chat", operator: actor + " ended the chat" })[ev.by] ||
    "The chat was closed",
};

function eventNode(c, ev, prev) {
  if (ev.type === "chat_started")
    return ev.invitation ? invitedStart(ev) : systemLine("Chat started", ev);
  const name = ev.operator && ev.operator.name ? ev.operator.name : "An operator";
  const actor = ev.operator && ev.operator.id === S.me.id ? "You" : name;
  if (SYSTEM[ev.type]) return systemLine(SYSTEM[ev.type](ev, actor, name), ev);
  if (ev.type === "note") return noteNode(ev.text, actor, ev.ts, ev.transfer, ev.seq);
  if (ev.type !== "message" && ev.type !== "file") return null;
  const vis = ev.from === "visitor";
  const same = continues(ev, prev);
  return h(
    "div",
    { class: "msg " + (vis ? "them" : "me") + (same ? " cont" : ""), "data-seq": ev.seq },
    same
      ? null
      : h("div", {
          class: "msg-from",
          text: vis ? (c.summary && c.summary.name) || "Visitor" : actor,
        }),
    ev.file ? fileBubble(ev.file, keepFoot) : h("div", { class: "bubble" }, linkify(ev.text)),
    h("div", { class: "msg-time", text: hhmm(ev.ts) }),
  );
}

/** An image that loaded made the log taller: if its foot was in sight, it stays in sight. */
function keepFoot(img) {
  const log = img.closest(".log");
  if (log && log.scrollHeight - log.scrollTop - log.clientHeight - img.offsetHeight < 80)
    log.scrollTop = log.scrollHeight;
}

/** Does a message continue the one before it (same side, same operator)? It has no name then. */
function continues(ev, prev) {
  if (!prev || !/^(message|file)$/.test(prev.type) || prev.from !== ev.from) return false;
  return (
    ev.from === "visitor" || !!(prev.operator && ev.operator && prev.operator.id === ev.operator.id)
  );
}

/** An internal note: set apart from the conversation, and saying that the visitor never sees
 * it. `at` is its time (null: not sent yet, `state` says how far it got). */
function noteNode(text, actor, at, transfer, seq, state) {
  return h(
    "div",
    { class: "note-item" + (transfer ? " transfer-note" : ""), "data-seq": seq },
    h(
      "div",
      { class: "note-head" },
      icon(I.note),
      h("strong", { text: actor }),
      h("span", {
        text: (transfer ? "Transfer note" : "Internal note") + " \u00b7 only operators see this",
      }),
      h("span", { class: "note-time", text: at ? hhmm(at) : state }),
    ),
    h("div", { class: "note-text" }, linkify(text)),
  );
}

const systemLine = (text, ev) =>
  h("div", { class: "sys" }, h("span", { text: text + " \u00b7 " + hhmm(ev.ts) }));

/** A chat from an invitation: its message was the first thing the visitor saw. */
function invitedStart(ev) {
  const op = ev.invitation.operator;
  const byMe = op && op.id === S.me.id;
  const from = byMe
    ? "your invitation"
    : op
      ? op.name + "\u2019s invitation"
      : "an automatic invitation";
  return h(
    "div",
    { class: "started" },
    systemLine("Chat started from " + from, ev),
    h(
      "div",
      { class: "msg me invited" },
      h("div", {
        class: "msg-from",
        text: byMe ? "You (invitation)" : op ? op.name : "Invitation",
      }),
      h("div", { class: "bubble" }, linkify(ev.invitation.message || invitationText())),
      h("div", { class: "msg-time", text: hhmm(ev.ts) }),
    ),
  );
}

/** What I sent that the server has not echoed yet (or refused). */
function drawPending(c, el) {
  put(
    el,
    ...c.outbox.map((m) =>
      m.note
        ? h(
            "div",
            { class: "note-pending" + (m.failed ? " failed" : "") },
            noteNode(
              m.text,
              "You",
              null,
              false,
              null,
              m.failed || (m.acked ? "Saved" : "Saving\u2026"),
            ),
          )
        : h(
            "div",
            { class: "msg me pending" + (m.failed ? " failed" : "") },
            h("div", { class: "bubble" }, linkify(m.text)),
            h("div", { class: "msg-time", text: m.failed || (m.acked ? "Sent" : "Sending\u2026") }),
          ),
    ),
  );
}

const STATUS_LABEL = {
  waiting: "Waiting",
  active: "Active",
  pending: "Pending",
  closed: "Closed",
  missed: "Missed",
};

function drawHead(c, el) {
  const s = c.summary || {};
  const t = app.outgoingTransfer(c.id);
  const offered = !!(t && t.state === "offered");
  const confirm = h(
    "div",
    { class: "confirm hidden" },
    h("span", { text: "End this chat for both of you?" }),
    button({
      class: "btn danger small confirm-end",
      text: "End chat",
      onclick: () => app.closeChat(c),
    }),
    button({
      class: "btn ghost small",
      text: "Cancel",
      onclick: () => confirm.classList.add("hidden"),
    }),
  );
  put(
    el,
    h(
      "div",
      { class: "chat-title" },
      h("span", {
        class: "avatar big",
        text: (s.name || "V").trim().charAt(0).toUpperCase() || "V",
      }),
      h(
        "div",
        {},
        h("h2", { class: "chat-name", text: s.name || "Visitor" }),
        h(
          "div",
          { class: "chat-sub" },
          h("span", { class: "pill " + (s.status || ""), text: STATUS_LABEL[s.status] || "" }),
          departmentTags(s),
          s.rating
            ? h("span", {
                class: "rating",
                title: s.rating_comment || "Rated " + s.rating + " of 5",
                text: "\u2605".repeat(s.rating) + "\u2606".repeat(5 - s.rating),
              })
            : null,
          s.page_title || s.page_url
            ? h("span", { class: "chat-page", text: s.page_title || s.page_url })
            : null,
        ),
      ),
    ),
    app.isMine(s) && s.status === "active"
      ? button(
          {
            class: "btn ghost small transfer",
            disabled: offered,
            title: offered
              ? "A transfer of this chat waits for an answer"
              : "Pass this chat to a colleague or a department",
            onclick: () => transferDialog(c),
          },
          icon(I.transfer),
          "Transfer",
        )
      : null,
    app.isMine(s)
      ? button({
          class: "btn ghost small end-chat",
          text: "End chat",
          onclick: () => confirm.classList.remove("hidden"),
        })
      : null,
    confirm,
  );
}

/** A transfer I offered of this chat: waiting for an answer, or why the chat stayed mine. An
 * accepted one shows nothing here (the log says "Transferred from you to ..."). */
function drawTransferState(c, el) {
  const t = app.outgoingTransfer(c.id);
  const show = t && t.state !== "accepted";
  el.classList.toggle("hidden", !show);
  if (!show) return put(el);
  el.className = "transfer-state " + t.state;
  const to = app.transferTarget(t);
  if (t.state === "offered")
    return put(
      el,
      icon(I.transfer),
      h("span", { class: "transfer-text", text: "Transfer to " + to + " offered\u2026 " }),
      h("span", {
        class: "muted",
        title: "The offer ends in",
        "data-until": t.until,
        text: Math.max(0, Math.ceil((t.until - Date.now()) / 1000)) + " s",
      }),
    );
  put(
    el,
    icon(I.transfer),
    h("span", {
      class: "transfer-text",
      text:
        (t.state === "declined"
          ? to + " declined the transfer."
          : "Nobody answered the transfer to " + to + " in time.") + " The chat stays yours.",
    }),
    button({
      class: "btn ghost small dismiss",
      text: "OK",
      onclick: () => app.dismissTransfer(t),
    }),
  );
}

/** Who I can pass a chat to: colleagues online, and departments with someone online but me. */
function transferDialog(c) {
  const colleagues = S.team.filter((o) => o.id !== S.me.id && o.status === "online");
  const deps = S.departments.map((dep) => [dep, app.departmentOnline(dep, true)]);
  const target = h(
    "select",
    { class: "select transfer-to", name: "to", required: true },
    h("option", { value: "", text: "Choose\u2026" }),
    deps.length
      ? h(
          "optgroup",
          { label: "Departments" },
          ...deps.map(([dep, n]) =>
            h("option", {
              value: "department:" + dep.key,
              disabled: !n,
              text: dep.name + (n ? " (" + n + " online)" : " (nobody online)"),
            }),
          ),
        )
      : null,
    h(
      "optgroup",
      { label: "Colleagues online" },
      ...colleagues.map((o) => h("option", { value: "operator:" + o.id, text: o.display_name })),
    ),
  );
  const note = h("textarea", {
    class: "transfer-note",
    name: "note",
    rows: 3,
    placeholder: "What should they know? Only operators see this note.",
  });
  const counter = lengthGuard(note, limit("transfer_note_chars") || 1000, true);
  const nobody = !colleagues.length && !deps.some(([, n]) => n);
  formDialog({
    title: "Transfer the chat with " + ((c.summary && c.summary.name) || "the visitor"),
    class: "transfer-dialog",
    byField: true,
    context: "transfer",
    note: nobody
      ? "Nobody else is online right now."
      : "The chat stays yours until they accept; the whole transcript goes with it.",
    fields: [
      h(
        "label",
        { class: "field", "data-field": "target" },
        h("span", { class: "field-label", text: "To" }),
        target,
      ),
      h(
        "label",
        { class: "field", "data-field": "note" },
        h("span", { class: "field-label", text: "Note (optional)" }),
        note,
        counter,
      ),
    ],
    submit: "Offer the chat",
    done: "Transfer offered.",
    action: async () => {
      const [kind, value] = target.value.split(/:(.*)/s);
      if (!value) throw { error: "transfer_incomplete", field: "target" };
      const to = kind === "operator" ? { operator_id: Number(value) } : { department: value };
      try {
        await app.transfer(c, to, note.value.trim());
      } catch (e) {
        // The server names `operator_id` or `department`; both are the "To" field here.
        if (e.field === "operator_id" || e.field === "department") e.field = "target";
        throw e;
      }
    },
  });
}

const NOT_MINE = {
  closed: "This chat is closed. The transcript stays here until you close the tab.",
  missed: "Nobody answered this chat in time; the visitor was offered the message form.",
  waiting: "This chat is back in the queue.",
  active: "Another operator has this chat.",
  pending: "This conversation is pending with a colleague who went offline.",
};

/** Where my reply to a pending conversation goes. */
function pendingNote(s) {
  const where = !mailEnabled()
    ? "E-mail is not set up, so if they have left, your reply waits for their next visit."
    : s.email
      ? "If they have left, it is e-mailed to " + s.email + " with a link back to this chat."
      : "They have not left an e-mail address, so if they have left, your reply waits for their next visit.";
  return h(
    "div",
    { class: "pending-note" },
    h("strong", { text: "Pending. " }),
    "Your reply reaches the visitor in the chat window if they are on the site. " + where,
  );
}

/** The box at the bottom, kept across redraws with what I typed. In my chat it writes a reply
 * to the visitor or, switched to "Note", an internal note only operators see; in a colleague's
 * open chat it writes notes only, under the line that says why I cannot reply. A closed chat
 * has just that line. */
function compose(c, el, sent) {
  let built = null; // "mine", "notes" or null: what the box was built for
  return () => {
    const s = c.summary || {};
    const mine = app.isMine(s);
    const open = s.status === "active" || s.status === "pending" || s.status === "waiting";
    const want = mine ? "mine" : open ? "notes" : null;
    const why = mine ? null : notMine(c, s);
    if (want && want === built) {
      const old = el.querySelector(".pending-note, .compose-note");
      if (old) old.remove();
      const note = mine ? (s.status === "pending" ? pendingNote(s) : null) : why;
      if (note) el.prepend(note);
      return;
    }
    const before = built;
    built = want;
    if (!want) return put(el, why);
    if (!mine) c.noteMode = true;
    else if (before === "notes") c.noteMode = false; // it became mine (accepted): replies again
    const input = h("textarea", {
      class: "compose-input",
      rows: 2,
      "data-chat": c.id,
      value: c.draft || "",
    });
    const lengthNote = lengthGuard(input); // before the listeners below: they see no refused edit
    // Before Enter-to-send below: an open list of canned replies takes Enter.
    const canned = cannedPicker(input, () => c.summary);
    const modes = mine
      ? h(
          "div",
          { class: "compose-modes", role: "group", "aria-label": "Write" },
          button({ class: "mode mode-reply", text: "Reply", onclick: () => setMode(false) }),
          button({ class: "mode mode-note", onclick: () => setMode(true) }, icon(I.note), "Note"),
        )
      : null;
    const box = h("div", { class: "compose" }, input, canned);
    const setMode = (note) => {
      if (note && !c.noteMode) app.typing(c, ""); // a note is not the visitor's business
      c.noteMode = note;
      box.classList.toggle("note", note);
      input.placeholder = note
        ? "Write an internal note\u2026  Only operators see it."
        : "Write a reply\u2026  (Enter to send, Shift+Enter for a new line, / for canned replies)";
      input.setAttribute("aria-label", note ? "Internal note" : "Reply");
      sendBtn.title = note ? "Save the note" : "Send";
      sendBtn.setAttribute("aria-label", sendBtn.title);
      if (modes) {
        modes.firstChild.setAttribute("aria-pressed", note ? "false" : "true");
        modes.lastChild.setAttribute("aria-pressed", note ? "true" : "false");
      }
      input.focus();
    };
    const send = () => {
      const text = input.value.trim();
      if (!text) return;
      input.value = "";
      c.draft = "";
      if (!c.noteMode) c.typingOn = false;
      app.send(c, text, !!c.noteMode);
      sent();
    };
    input.addEventListener("input", () => {
      c.draft = input.value;
      if (!c.noteMode) app.typing(c, input.value);
    });
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        send();
      }
    });
    const sendBtn = button(
      { class: "btn primary send", onclick: () => (send(), input.focus()) },
      icon(I.send),
    );
    if (mine) box.append(...attachButton(c));
    box.append(sendBtn);
    setMode(!!c.noteMode);
    put(el, mine ? (s.status === "pending" ? pendingNote(s) : null) : why, modes, lengthNote, box);
    requestAnimationFrame(() => input.focus());
  };
}

/** Why I cannot reply in this chat (and, for a pending one, the button that takes it over). */
function notMine(c, s) {
  const takeOver =
    s.status === "pending"
      ? button({
          class: "btn primary small take-over",
          text: "Take it over",
          onclick: (ev) => app.accept(c.id, ev.currentTarget),
        })
      : null;
  const text =
    s.status === "active" && s.operator
      ? s.operator.name + " has this chat."
      : NOT_MINE[s.status] || "";
  return h("div", { class: "compose-note", text }, takeOver);
}

/** The visitor beside the chat: name, e-mail, page, browser, IP, times, their visits. */
/** The page the visitor is on now, from the live monitor (or that they left the site). */
function nowOn(s) {
  const r = s.visitor_id && S.visitors.get(s.visitor_id);
  if (!r) return null;
  if (r.state === "left") return h("span", { class: "muted", text: "Left the site" });
  return h(
    "span",
    { class: "page now-on" },
    r.title ? h("span", { class: "page-title", text: r.title }) : null,
    r.url ? extLink(r.url) : null,
    // A visitor whose pages were not tracked (no page view yet) has no time on a page.
    r.page_since
      ? h(
          "span",
          { class: "muted small" },
          r.pages + (r.pages === 1 ? " page" : " pages") + " this visit \u00b7 here for ",
          h("span", { "data-dur": r.page_since, text: dur(Date.now() - r.page_since) }),
        )
      : null,
  );
}

function drawSide(c, el) {
  const s = c.summary || {};
  const row = (label, value) =>
    h(
      "div",
      { class: "kv" },
      h("dt", { text: label }),
      h("dd", {}, value == null || value === "" ? "\u2014" : value),
    );
  const page =
    s.page_url || s.page_title
      ? h(
          "span",
          { class: "page" },
          s.page_title ? h("span", { class: "page-title", text: s.page_title }) : null,
          s.page_url ? extLink(s.page_url) : null,
        )
      : null;
  put(
    el,
    h("h3", { text: "Visitor" }),
    h(
      "dl",
      {},
      row("Name", s.name),
      row("E-mail", s.email ? mailLink(s.email) : null),
      row("Now on", nowOn(s)),
      row("Started on", page),
      row(
        "Browser",
        s.user_agent ? h("span", { title: s.user_agent, text: browserOf(s.user_agent) }) : null,
      ),
      row("IP address", s.ip),
      row("Started", s.created_at ? when(s.created_at) : null),
      row(
        "Accepted",
        s.accepted_at ? when(s.accepted_at) + (s.operator ? " by " + s.operator.name : "") : null,
      ),
      s.closed_at ? row("Ended", when(s.closed_at)) : null,
      row("Chat", "#" + c.id),
      s.visitor_id
        ? row(
            "Visits",
            button({
              class: "link visitor-link",
              text: "Visitor #" + s.visitor_id + ": page trail and visits",
              onclick: () => {
                app.show({ kind: "visitors" });
                app.openDetail(s.visitor_id);
              },
            }),
          )
        : null,
    ),
  );
}
