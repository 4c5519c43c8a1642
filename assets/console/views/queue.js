/* The queue and "Chats": the visitors waiting for an operator (in the sidebar, on every view),
 * and the Chats view while no chat is in front: what to do next (go online, enable alerts,
 * pick a tab). */

import { alerts } from "../alerts.js";
import * as app from "../app.js";
import { h, I, icon, put, setText } from "../dom.js";
import { ago } from "../format.js";
import { store } from "../store.js";
import { button } from "../ui.js";

const S = store.state;

export function mount(root, scope) {
  scope.region(["me", "tabs", "alerts"], () => {
    const online = S.me.status === "online";
    put(
      root,
      h(
        "div",
        { class: "home" },
        h("div", { class: "home-icon" }, icon(I.chat)),
        h("h2", { text: S.tabs.length ? "Pick a chat from the tabs above" : "No open chats" }),
        h("p", {
          text: online
            ? "New chats appear in the Waiting list on the left \u2014 press Accept to open one in its own tab."
            : "You are " + (S.me.status || "offline") + ". Switch to Online to receive chats.",
        }),
        !online
          ? button({
              class: "btn primary",
              text: "Go online",
              onclick: () => app.setStatus("online"),
            })
          : null,
        !alerts.armed
          ? button(
              { class: "btn ghost", onclick: () => alerts.arm() },
              icon(I.bell),
              "Enable alerts",
            )
          : null,
      ),
    );
  });
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
            title: "Waiting for",
            "data-since": s.created_at,
            text: ago(s.created_at),
          }),
        ),
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
