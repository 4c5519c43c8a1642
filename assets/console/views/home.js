/* "Chats" with no chat in front: what to do next (go online, enable alerts, pick a tab). */

import { alerts } from "../alerts.js";
import * as app from "../app.js";
import { h, I, icon, put } from "../dom.js";
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
