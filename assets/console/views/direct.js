/* A conversation with a colleague (direct messages, docs/PROTOCOL.md §5.6): who and whether
 * they are online, the messages in their order, what I am sending (with retry for a refused
 * one), and the composer. Everything typed is shown as text. */

import * as app from "../app.js";
import * as direct from "../direct.js";
import { h, I, icon, linkify, put } from "../dom.js";
import { hhmm, when } from "../format.js";
import { store } from "../store.js";
import { button, lengthGuard } from "../ui.js";

const S = store.state;

export function mount(root, scope, view) {
  const dm = direct.conversation(view.id);
  const e = {
    head: h("div", { class: "chat-head dm-head" }),
    items: h("div", { class: "items" }),
    pending: h("div", { class: "pending" }),
    compose: h("div", { class: "compose-wrap" }),
  };
  e.log = h("div", { class: "log", role: "log" }, e.items, e.pending);
  put(
    root,
    h(
      "div",
      { class: "chat-view dm-view", "data-dm": dm.id },
      h("div", { class: "chat-main" }, e.head, e.log, e.compose),
    ),
  );
  const nearBottom = () => e.log.scrollHeight - e.log.scrollTop - e.log.clientHeight < 80;
  const toBottom = () => (e.log.scrollTop = e.log.scrollHeight);
  scope.region(["team", "dms"], () => drawHead(dm, e.head));
  scope.region(["dm:" + dm.id], () => {
    const stick = nearBottom();
    drawLog(dm, e.items);
    drawPending(dm, e.pending);
    if (stick) toBottom();
  });
  compose(dm, e.compose, () => (store.flush(), toBottom()));
  if (!dm.known) direct.fetchMissing(dm);
  direct.markRead(dm);
  requestAnimationFrame(toBottom);
}

function drawHead(dm, el) {
  const o = S.team.find((x) => x.id === dm.id);
  const status = o ? o.status : "offline";
  const name = direct.nameOf(dm.id);
  put(
    el,
    h(
      "div",
      { class: "chat-title" },
      h("span", { class: "avatar big", text: name.trim().charAt(0).toUpperCase() || "?" }),
      h(
        "div",
        {},
        h("h2", { class: "chat-name dm-name", text: name }),
        h(
          "div",
          { class: "chat-sub" },
          h("span", { class: "status-label" }, h("span", { class: "sdot " + status }), status),
          h("span", {
            class: "muted",
            text:
              "\u00b7 Direct message" +
              (status === "offline" ? ": they will read it when they are back" : ""),
          }),
        ),
      ),
    ),
  );
}

/** The messages, drawn again as a whole: a conversation between colleagues stays short. */
function drawLog(dm, el) {
  const me = S.me.id;
  const lastMine = [...dm.messages].reverse().find((m) => m.from.id === me);
  const nodes = [];
  let prev = null;
  for (const m of dm.messages) {
    const mine = m.from.id === me;
    const same = prev && prev.from.id === m.from.id && m.ts - prev.ts < 5 * 60000;
    const seen = m === lastMine && dm.their_read_seq >= m.seq;
    nodes.push(
      h(
        "div",
        { class: "msg " + (mine ? "me" : "them") + (same ? " cont" : ""), "data-seq": m.seq },
        same ? null : h("div", { class: "msg-from", text: mine ? "You" : m.from.name }),
        h("div", { class: "bubble" }, linkify(m.text)),
        h("div", {
          class: "msg-time",
          title: when(m.ts),
          text: hhmm(m.ts) + (seen ? " \u00b7 Seen" : ""),
        }),
      ),
    );
    prev = m;
  }
  if (!nodes.length && !dm.outbox.length)
    nodes.push(
      h("p", {
        class: "empty-small dm-empty",
        text: dm.error
          ? dm.error
          : dm.known
            ? "No messages yet. Only you and " + direct.nameOf(dm.id) + " see this conversation."
            : "Loading\u2026",
      }),
    );
  put(el, ...nodes);
}

/** What I sent that the server has not acknowledged yet, or refused (with Retry). */
function drawPending(dm, el) {
  put(
    el,
    ...dm.outbox.map((m) =>
      h(
        "div",
        { class: "msg me pending" + (m.failed ? " failed" : "") },
        h("div", { class: "bubble" }, linkify(m.text)),
        h(
          "div",
          { class: "msg-time" },
          m.failed || "Sending\u2026",
          m.failed
            ? button({
                class: "link dm-retry",
                text: "Retry",
                onclick: () => direct.retry(dm, m),
              })
            : null,
          m.failed
            ? button({
                class: "link dm-discard",
                text: "Discard",
                onclick: () => direct.discard(dm, m),
              })
            : null,
        ),
      ),
    ),
  );
}

function compose(dm, el, sent) {
  const input = h("textarea", {
    class: "compose-input",
    rows: 2,
    "data-dm": dm.id,
    "aria-label": "Message to " + direct.nameOf(dm.id),
    placeholder:
      "Write to " + direct.nameOf(dm.id) + "\u2026  (Enter to send, Shift+Enter for a new line)",
    value: dm.draft || "",
  });
  const lengthNote = lengthGuard(input);
  const send = () => {
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    dm.draft = "";
    direct.send(dm, text);
    sent();
  };
  input.addEventListener("input", () => (dm.draft = input.value));
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      send();
    }
  });
  const sendBtn = button(
    {
      class: "btn primary send",
      title: "Send",
      "aria-label": "Send",
      onclick: () => (send(), input.focus()),
    },
    icon(I.send),
  );
  put(el, lengthNote, h("div", { class: "compose" }, input, sendBtn));
  requestAnimationFrame(() => input.focus());
  app.updateTitle();
}
