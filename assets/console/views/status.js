/* Changing my status. Going offline with open chats asks first: hand them over to a colleague
 * (at the head of the queue, marked as mine, with the whole conversation), or keep them as
 * pending conversations for a later reply. Away keeps them as they are. */

import * as app from "../app.js";
import { h } from "../dom.js";
import { store } from "../store.js";
import { button } from "../ui.js";

const d = document;
const S = store.state;

export function chooseStatus(status) {
  if (status === S.me.status) return;
  const open = app.myOpenChats();
  if (status !== "offline" || !open.length) return app.setStatus(status);
  const colleagues = S.team.some((o) => o.id !== S.me.id && o.status === "online");
  const n = open.length === 1 ? "1 open chat" : open.length + " open chats";
  const dlg = h("dialog", { class: "dialog offline-dialog" });
  const choose = (chats) => {
    dlg.close();
    app.setStatus("offline", chats);
  };
  dlg.append(
    h("h2", { text: "Go offline with " + n + "?" }),
    h("p", {
      class: "muted dialog-note",
      text: colleagues
        ? "Hand them over: they go to the head of the queue, marked as from you, with the whole conversation, for an online colleague to accept."
        : "Nobody else is online, so your chats stay yours as pending conversations: the visitors are told you stepped away, and your later reply reaches them.",
    }),
    h(
      "div",
      { class: "dialog-actions" },
      button({ class: "btn ghost", text: "Cancel", onclick: () => dlg.close() }),
      colleagues
        ? button({
            class: "btn ghost keep-chats",
            text: "Keep them (pending)",
            onclick: () => choose("keep"),
          })
        : null,
      button({
        class: "btn primary hand-over",
        text: colleagues ? "Hand them over" : "Go offline",
        onclick: () => choose("hand_over"),
      }),
    ),
  );
  dlg.addEventListener("close", () => dlg.remove());
  d.body.append(dlg);
  dlg.showModal();
}
