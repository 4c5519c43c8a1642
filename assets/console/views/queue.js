/* The queue and "Chats": the visitors waiting for an operator (in the sidebar, on every view),
 * and the Chats page: every open chat — mine (active and pending) with the last message and
 * unread count, the waiting ones with how long they wait, and colleagues' — plus what to do
 * next (go online, enable alerts). */

import { alerts } from "../alerts.js";
import * as app from "../app.js";
import { h, I, icon, put, setText } from "../dom.js";
import { ago } from "../format.js";
import { api } from "../api.js";
import { store } from "../store.js";
import { button } from "../ui.js";
import { chooseStatus } from "./status.js";

const S = store.state;

export function mount(root, scope) {
  const head = h("div", { class: "chats-head" });
  const body = h("div", { class: "chats-page", "data-region": "chats-page" });
  put(root, h("div", { class: "chats-wrap" }, head, body));
  scope.region(["me", "alerts"], () => drawHead(head));
  // Colleagues' open chats come from the server (the console streams only its own).
  const others = { list: [], known: false };
  const load = async () => {
    try {
      const j = await api("GET", "/api/console/chats?status=open&limit=200");
      others.list = j.chats || [];
      others.known = true;
      store.touch("chats-open");
    } catch (e) {
      /* shown as it was; the next change loads again */
    }
  };
  scope.region(["queue", "tabs"], () => scope.later(300, load));
  scope.every(15000, load);
  scope.region(["tabs", "queue", "head:*", "log:*", "seen:*", "chats-open"], () =>
    drawLists(body, others),
  );
}

function drawHead(el) {
  const online = S.me.status === "online";
  put(
    el,
    !online
      ? h(
          "div",
          { class: "chats-hint" },
          h("span", {
            text: "You are " + (S.me.status || "offline") + ". Switch to Online to receive chats.",
          }),
          button({
            class: "btn primary small",
            text: "Go online",
            onclick: () => chooseStatus("online"),
          }),
        )
      : null,
    !alerts.armed
      ? button(
          { class: "btn ghost small", onclick: () => alerts.arm() },
          icon(I.bell),
          "Enable alerts",
        )
      : null,
  );
}

/** The chat's department and whether it was offered to everyone (escalated), as tags. */
export function departmentTags(s) {
  return [
    s.department ? h("span", { class: "dep-tag", text: s.department.name }) : null,
    s.escalated_at
      ? h("span", {
          class: "dep-tag escalated",
          title: "Nobody in its department took it in time, so every operator sees it",
          text: "Escalated",
        })
      : null,
  ];
}

/** One open chat as a row: who, state, the last message, how long, unread. */
function chatRow(s, { unread = 0, last = null, onclick }) {
  const state =
    s.status === "waiting"
      ? s.handed_over_by
        ? "Waiting \u00b7 from " + s.handed_over_by.name
        : "Waiting"
      : s.status === "pending"
        ? "Pending" + (s.operator ? " \u00b7 " + s.operator.name : "")
        : "Active" + (s.operator ? " \u00b7 " + s.operator.name : "");
  const since =
    s.status === "waiting" ? s.queued_at || s.created_at : s.pending_since || s.accepted_at;
  return h(
    "button",
    { type: "button", class: "chat-row " + s.status, "data-chat": s.id, onclick },
    h("span", { class: "avatar", text: (s.name || "V").trim().charAt(0).toUpperCase() || "V" }),
    h(
      "span",
      { class: "chat-row-main" },
      h(
        "span",
        { class: "chat-row-top" },
        h("span", { class: "chat-row-name", text: s.name || "Visitor" }),
        departmentTags(s),
        h("span", { class: "chat-row-state", text: state }),
      ),
      h("span", {
        class: "chat-row-last",
        text: last ? (last.from === "visitor" ? "" : "\u21a9 ") + last.text : s.first_message || "",
      }),
    ),
    h(
      "span",
      { class: "chat-row-side" },
      since
        ? h("span", {
            class: "chat-row-since",
            title: s.status === "waiting" ? "Waiting for" : "For",
            "data-since": since,
            text: ago(since),
          })
        : null,
      unread ? h("span", { class: "badge", text: String(unread) }) : null,
    ),
  );
}

function lastOf(c) {
  for (let i = c.events.length - 1; i >= 0; i--)
    if (c.events[i].type === "message") return c.events[i];
  return null;
}

function section(title, rows, empty) {
  return h(
    "section",
    { class: "chats-section" },
    h("h3", {}, title, h("span", { class: "count", text: String(rows.length) })),
    rows.length
      ? h("div", { class: "chat-rows" }, rows)
      : h("p", { class: "empty-small", text: empty }),
  );
}

/** What a row shows, as one string: the lists are drawn again only when it changes, so a row
 * is never replaced under the pointer by an identical one (a click would be lost). */
function rowKey(s, unread, last) {
  const h = s.handed_over_by ? s.handed_over_by.name : "";
  const op = s.operator ? s.operator.name : "";
  const l = last ? last.seq + ":" + last.text : s.first_message || "";
  const dep = (s.department ? s.department.name : "") + (s.escalated_at ? "!" : "");
  return [s.id, s.status, s.name, op, h, dep, s.queued_at, s.pending_since, unread, l].join(
    "\u0001",
  );
}

function drawLists(el, others) {
  const mine = app.myOpenChats();
  const mineIds = new Set(mine.map((c) => c.id));
  const waitingIds = new Set(S.queue.map((q) => q.id));
  const theirs = others.list.filter(
    (s) => !mineIds.has(s.id) && !waitingIds.has(s.id) && s.status !== "waiting",
  );
  const key = [
    mine.map((c) => rowKey(c.summary, app.unread(c), lastOf(c))).join("\n"),
    S.queue.map((q) => rowKey(q, 0, null)).join("\n"),
    theirs.map((s) => rowKey(s, 0, s.last_message)).join("\n"),
    others.known,
  ].join("\u0002");
  if (el.drawn === key) return;
  el.drawn = key;
  put(
    el,
    section(
      "Yours",
      mine.map((c) =>
        chatRow(c.summary, {
          unread: app.unread(c),
          last: lastOf(c),
          onclick: () => app.show({ kind: "chat", id: c.id }),
        }),
      ),
      "No chats of yours are open.",
    ),
    section(
      "Waiting",
      S.queue.map((q) =>
        chatRow(q, {
          last: null,
          onclick: () => app.openTranscript(q.id),
        }),
      ),
      "No one is waiting.",
    ),
    section(
      "Colleagues\u2019",
      theirs.map((s) =>
        chatRow(s, { last: s.last_message, onclick: () => app.openTranscript(s.id) }),
      ),
      others.known ? "No colleague has an open chat." : "Loading\u2026",
    ),
  );
}

/** The waiting chats, each with its Accept button (enabled while I am online). */
export function drawQueue(count, list) {
  setText(count, String(S.queue.length));
  count.classList.toggle("hot", S.queue.length > 0);
  const online = S.me.status === "online";
  if (!S.queue.length)
    return put(list, h("p", { class: "empty-small", text: "No one is waiting." }));
  put(
    list,
    ...S.queue.map((s) =>
      h(
        "div",
        { class: "qcard", "data-chat": s.id },
        h(
          "div",
          { class: "qcard-top" },
          h("span", { class: "qname", text: s.name || "Visitor" }),
          h("span", {
            class: "qwait",
            title: "Waiting for (since it entered the queue)",
            "data-since": s.queued_at || s.created_at,
            text: ago(s.queued_at || s.created_at),
          }),
        ),
        s.department || s.escalated_at ? h("div", { class: "qtags" }, departmentTags(s)) : null,
        s.handed_over_by
          ? h("p", {
              class: "qfrom",
              text: "Handed over by " + s.handed_over_by.name,
            })
          : null,
        h("p", { class: "qmsg", text: s.first_message || "" }),
        s.page_url || s.page_title
          ? h("p", { class: "qpage", title: s.page_url || "", text: s.page_title || s.page_url })
          : null,
        button({
          class: "btn primary small accept",
          text: "Accept",
          disabled: !online,
          title: online ? "Take this chat" : "Set your status to Online to accept chats",
          onclick: (ev) => app.accept(s.id, ev.currentTarget),
        }),
      ),
    ),
  );
}

/** The chats colleagues offer me (transfers, docs/PROTOCOL.md §5.5), each with who offers it,
 * their note and the visitor's first words, and Accept / Decline. Nothing when there are none. */
export function drawTransfers(el) {
  const offered = app.incomingTransfers();
  el.classList.toggle("hidden", !offered.length);
  if (!offered.length) return put(el);
  put(
    el,
    h("div", { class: "side-title" }, h("span", { text: "Transferred to you" })),
    ...offered.map((t) => {
      const s = t.chat || {};
      return h(
        "div",
        { class: "qcard tcard", "data-transfer": t.id, "data-chat": t.chat_id },
        h(
          "div",
          { class: "qcard-top" },
          h("span", { class: "qname", text: s.name || "Visitor" }),
          h("span", {
            class: "qwait",
            title: "The offer ends in",
            "data-until": t.until,
            text: Math.max(0, Math.ceil((t.until - Date.now()) / 1000)) + " s",
          }),
        ),
        h("p", {
          class: "qfrom",
          text:
            "From " + t.from.name + (t.to_department ? " to " + t.to_department.name : " to you"),
        }),
        t.note ? h("p", { class: "tnote", text: t.note }) : null,
        s.first_message ? h("p", { class: "qmsg", text: s.first_message }) : null,
        h(
          "div",
          { class: "tcard-actions" },
          button({
            class: "btn ghost small decline",
            text: "Decline",
            onclick: (ev) => app.declineTransfer(t, ev.currentTarget),
          }),
          button({
            class: "btn primary small accept",
            text: "Accept",
            onclick: (ev) => app.acceptTransfer(t, ev.currentTarget),
          }),
        ),
      );
    }),
  );
}
