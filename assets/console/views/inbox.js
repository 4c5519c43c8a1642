/* The inbox: messages visitors left while nobody was online. */

import * as app from "../app.js";
import { extLink, h, I, linkify, mailLink, put } from "../dom.js";
import { when } from "../format.js";
import { store } from "../store.js";
import { button, empty, panel } from "../ui.js";

export function mount(root, scope) {
  const list = h("div", { class: "inbox-list" });
  const box = panel("inbox");
  box.append(list);
  put(root, box);
  scope.region(["inbox"], () => {
    const messages = store.state.inbox;
    put(list, messages.length ? messages.map(item) : empty(I.inbox, "No offline messages yet."));
  });
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
      button({
        class: "btn ghost small mark",
        text: m.read ? "Mark as unread" : "Mark as read",
        onclick: () => app.markRead(m, !m.read),
      }),
    ),
  );
}
