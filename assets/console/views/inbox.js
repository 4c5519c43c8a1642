/* The inbox: messages visitors left while nobody was online, each with the state of its
 * e-mails (the notification, the reply): sent, queued (with the last error and the next try)
 * or failed. With [mail] configured, a message can be answered by e-mail from here. Below,
 * "Outgoing e-mail" lists the outbox. */

import * as app from "../app.js";
import { extLink, h, I, linkify, mailLink, put } from "../dom.js";
import { errorText } from "../errors.js";
import { hhmm, when } from "../format.js";
import { store } from "../store.js";
import { button, empty, panel } from "../ui.js";

const S = store.state;

/** What each kind of outbox mail is, for people. */
const KINDS = {
  offline_message: "Notification",
  offline_reply: "Reply",
  transcript: "Transcript",
  reply: "Chat reply",
};
const kindText = (kind) => KINDS[kind] || kind;

/** The open reply forms by message id: kept across redraws, so a draft survives a new
 * message or a mail state arriving while it is written. */
const forms = new Map();

export function mount(root, scope) {
  const list = h("div", { class: "inbox-list" });
  const outbox = h("section", { class: "outbox", "aria-labelledby": "outbox-title" });
  const box = panel("inbox");
  box.append(list, outbox);
  put(root, box);
  scope.region(["inbox", "mailEnabled"], () => {
    const focused = document.activeElement;
    const caret = focused && focused.selectionStart;
    const messages = S.inbox;
    for (const id of forms.keys())
      if (!messages.some((m) => m.id === id && !m.replied_at)) forms.delete(id);
    put(list, messages.length ? messages.map(item) : empty(I.inbox, "No offline messages yet."));
    if (focused && focused !== document.activeElement && list.contains(focused)) {
      focused.focus(); // the same node, moved: it keeps its text
      if (caret != null) focused.setSelectionRange(caret, caret);
    }
  });
  // A mail's state changes in place: an open reply form is left alone.
  scope.region(["inboxMail"], () => {
    for (const el of list.querySelectorAll(".inbox-mail[data-id]")) {
      const m = S.inbox.find((x) => x.id === Number(el.getAttribute("data-id")));
      if (m) put(el, mailStates(m.mail));
    }
  });
  scope.region(["mail", "mailEnabled"], () => put(outbox, outboxTable()));
  app.loadMail();
}

function item(m) {
  return h(
    "article",
    { class: "inbox-item" + (m.read ? "" : " unread"), "data-id": m.id },
    h(
      "div",
      { class: "inbox-top" },
      h("span", { class: "udot", title: m.read ? "Read" : "Unread" }),
      h("strong", { class: "inbox-name", text: m.name }),
      m.email ? mailLink(m.email, "inbox-email") : null,
      m.department ? h("span", { class: "dep-tag", text: m.department.name }) : null,
      h("span", { class: "spacer" }),
      h("time", { class: "muted", text: when(m.created_at) }),
    ),
    h("p", { class: "inbox-text" }, linkify(m.text || "")),
    h(
      "div",
      { class: "inbox-meta" },
      m.page_url || m.page_title
        ? h(
            "span",
            { class: "muted" },
            "From ",
            m.page_url ? extLink(m.page_url, m.page_title || m.page_url) : m.page_title,
          )
        : null,
      m.chat_id
        ? button({
            class: "link",
            text: "View the missed chat",
            onclick: () => app.openTranscript(m.chat_id),
          })
        : null,
      h("span", { class: "spacer" }),
      S.mailEnabled && !m.replied_at && !forms.has(m.id)
        ? button({
            class: "btn ghost small reply",
            text: "Reply by e-mail",
            onclick: () => {
              const form = replyForm(m);
              forms.set(m.id, form);
              store.touch("inbox");
              store.flush();
              form.querySelector("textarea").focus();
            },
          })
        : null,
      button({
        class: "btn ghost small mark",
        text: m.read ? "Mark as unread" : "Mark as read",
        onclick: () => app.markRead(m, !m.read),
      }),
    ),
    m.replied_at
      ? h(
          "div",
          { class: "inbox-reply" },
          h("div", { class: "muted", text: "Your reply, " + when(m.replied_at) }),
          h("p", { class: "inbox-reply-text", text: m.reply_text }),
        )
      : forms.get(m.id),
    h("div", { class: "inbox-mail", "data-id": m.id }, mailStates(m.mail)),
  );
}

/** The reply form of a message: the text, Send and Cancel, and the error in words. */
function replyForm(m) {
  const text = h("textarea", {
    class: "reply-text",
    name: "reply",
    rows: 4,
    required: true,
    "aria-label": "Reply to " + (m.name || "the visitor"),
    placeholder: "Your answer, sent to " + m.email,
  });
  const err = h("p", { class: "form-error", role: "alert" });
  const send = h("button", { type: "submit", class: "btn primary small", text: "Send reply" });
  return h(
    "form",
    {
      class: "inbox-reply-form",
      onsubmit: async (e) => {
        e.preventDefault();
        err.textContent = "";
        send.disabled = true;
        try {
          await app.replyTo(m, text.value.trim());
          forms.delete(m.id);
        } catch (x) {
          err.textContent = errorText(x, "reply");
        } finally {
          send.disabled = false;
        }
      },
    },
    text,
    err,
    h(
      "div",
      { class: "dialog-actions" },
      button({
        class: "btn ghost small",
        text: "Cancel",
        onclick: () => {
          forms.delete(m.id);
          store.touch("inbox");
        },
      }),
      send,
    ),
  );
}

/** One line per e-mail about a message: what it is and where it stands. */
function mailStates(mails) {
  return (mails || []).map((mail) =>
    h(
      "div",
      { class: "mail-state", "data-kind": mail.kind, "data-state": mail.state },
      h("span", { class: "muted", text: kindText(mail.kind) + " e-mail" }),
      statePill(mail),
      h("span", { class: "mail-detail", text: stateDetail(mail) }),
    ),
  );
}

const STATES = { sent: "Sent", queued: "Queued", failed: "Failed" };
const statePill = (mail) =>
  h("span", { class: "pill mail-" + mail.state, text: STATES[mail.state] || mail.state });

/** "to ann@example.org, Today 10:02"; "connection refused · next try at 10:05 (2 tries so
 * far)"; the error it failed with. The outbox table has a column for the recipient. */
function stateDetail(mail, recipient = true) {
  const to = recipient ? "to " + mail.recipient : "";
  if (mail.state === "sent") return (to ? to + ", " : "") + when(mail.sent_at);
  if (mail.state === "failed")
    return (mail.last_error || "not accepted") + " \u00b7 after " + tries(mail.attempts);
  if (!mail.attempts) return to || "waiting for its first try";
  return (
    (mail.last_error || "not accepted yet") +
    " \u00b7 next try at " +
    hhmm(mail.next_attempt_at) +
    " (" +
    tries(mail.attempts) +
    " so far)"
  );
}

const tries = (n) => n + (n === 1 ? " try" : " tries");

/** The outbox: every e-mail, newest first. */
function outboxTable() {
  const mails = S.mail;
  return [
    h("h3", { id: "outbox-title", class: "outbox-title", text: "Outgoing e-mail" }),
    S.mailEnabled
      ? null
      : h("p", {
          class: "muted",
          text: "E-mail is not set up ([mail] in the configuration): messages stay in this inbox only.",
        }),
    mails.length
      ? h(
          "table",
          { class: "table outbox-table" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ["State", "What", "To", "Subject", "Queued", "Details"].map((t) =>
                h("th", { text: t }),
              ),
            ),
          ),
          h(
            "tbody",
            {},
            mails.map((mail) =>
              h(
                "tr",
                { "data-mail": mail.id, "data-state": mail.state },
                h("td", {}, statePill(mail)),
                h("td", { text: kindText(mail.kind) }),
                h("td", { class: "ellipsis", title: mail.recipient, text: mail.recipient }),
                h("td", { class: "ellipsis", title: mail.subject, text: mail.subject }),
                h("td", { text: when(mail.created_at) }),
                h("td", { class: "mail-detail", text: stateDetail(mail, false) }),
              ),
            ),
          ),
        )
      : h("p", { class: "muted", text: "No e-mail yet." }),
  ];
}
