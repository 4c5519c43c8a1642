/* A chat tab: the header (who, state, End chat), the log, what I am sending, the visitor's
 * typing, my reply box, and the visitor's details beside it. */

import * as app from "../app.js";
import { dots, extLink, h, I, icon, linkify, mailLink, put } from "../dom.js";
import { browserOf, dur, hhmm, when } from "../format.js";
import { invitationText, mailEnabled } from "../protocol.js";
import { store } from "../store.js";
import { button, lengthGuard } from "../ui.js";

const S = store.state;

export function mount(root, scope, view) {
  const c = S.chats.get(view.id);
  const e = {
    head: h("div", { class: "chat-head" }),
    items: h("div", { class: "items" }),
    pending: h("div", { class: "pending" }),
    typing: h("div", { class: "typing hidden" }, dots({ class: "dots" }), h("span")),
    compose: h("div", { class: "compose-wrap" }),
    side: h("aside", { class: "chat-side" }),
  };
  e.log = h("div", { class: "log", role: "log" }, e.items, e.pending, e.typing);
  for (const k of ["log", "head", "side", "compose"]) e[k].setAttribute("data-region", "chat-" + k);
  put(
    root,
    h(
      "div",
      { class: "chat-view", "data-chat": c.id },
      h("div", { class: "chat-main" }, e.head, e.log, e.compose),
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
  scope.region(["typing:" + id, "head:" + id], () =>
    keepingBottom(() => {
      e.typing.classList.toggle("hidden", !c.typing);
      e.typing.lastChild.textContent =
        ((c.summary && c.summary.name) || "The visitor") + " is typing\u2026";
    }),
  );
  scope.region(["head:" + id, "me"], () => drawHead(c, e.head));
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
  chat_accepted: (ev, actor) => actor + " joined",
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
  if (ev.type !== "message") return null;
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
    h("div", { class: "bubble" }, linkify(ev.text)),
    h("div", { class: "msg-time", text: hhmm(ev.ts) }),
  );
}

/** Does a message continue the one before it (same side, same operator)? It has no name then. */
function continues(ev, prev) {
  if (!prev || prev.type !== "message" || prev.from !== ev.from) return false;
  return (
    ev.from === "visitor" || !!(prev.operator && ev.operator && prev.operator.id === ev.operator.id)
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
      h(
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

/** My reply box while the chat is mine (kept across redraws, with what I typed), else a note
 * that says why I cannot write. */
function compose(c, el, sent) {
  let input = null;
  return () => {
    const s = c.summary || {};
    if (!app.isMine(s)) {
      input = null;
      const takeOver =
        s.status === "pending"
          ? button({
              class: "btn primary small take-over",
              text: "Take it over",
              onclick: (ev) => app.accept(c.id, ev.currentTarget),
            })
          : null;
      return put(el, h("div", { class: "compose-note", text: NOT_MINE[s.status] || "" }, takeOver));
    }
    const note = s.status === "pending" ? pendingNote(s) : null;
    if (input) {
      const old = el.querySelector(".pending-note");
      if (old) old.remove();
      if (note) el.prepend(note);
      return;
    }
    input = h("textarea", {
      class: "compose-input",
      rows: 2,
      placeholder: "Write a reply\u2026  (Enter to send, Shift+Enter for a new line)",
      "aria-label": "Reply",
      "data-chat": c.id,
      value: c.draft || "",
    });
    const lengthNote = lengthGuard(input); // before the listeners below: they see no refused edit
    const send = () => {
      const text = input.value.trim();
      if (!text) return;
      input.value = "";
      c.draft = "";
      c.typingOn = false;
      app.send(c, text);
      sent();
    };
    input.addEventListener("input", () => {
      c.draft = input.value;
      app.typing(c, input.value);
    });
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault();
        send();
      }
    });
    const ta = input;
    put(
      el,
      note,
      lengthNote,
      h(
        "div",
        { class: "compose" },
        input,
        button(
          {
            class: "btn primary send",
            title: "Send",
            "aria-label": "Send",
            onclick: () => (send(), ta.focus()),
          },
          icon(I.send),
        ),
      ),
    );
    requestAnimationFrame(() => ta.focus());
  };
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
    h(
      "span",
      { class: "muted small" },
      r.pages + (r.pages === 1 ? " page" : " pages") + " this visit \u00b7 here for ",
      h("span", { "data-dur": r.page_since, text: dur(Date.now() - r.page_since) }),
    ),
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
