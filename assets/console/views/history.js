/* History: past chats, readable as transcripts. */

import { api } from "../api.js";
import * as app from "../app.js";
import { h, I } from "../dom.js";
import { when } from "../format.js";
import { store } from "../store.js";
import { adminPage, input } from "../ui.js";

const FILTERS = [
  ["closed", "Closed"],
  ["missed", "Missed"],
  ["pending", "Pending"],
  ["mine", "Mine"],
  ["active", "Active"],
  ["", "All"],
];

export function mount(root, scope) {
  const filter = input({
    options: FILTERS,
    value: store.state.historyFilter,
    "aria-label": "Which chats",
  });
  const reload = adminPage(scope, root, "history", {
    action: filter,
    bodyClass: "history-list",
    load: () =>
      api(
        "GET",
        "/api/console/chats?limit=100" + (filter.value ? "&status=" + filter.value : ""),
      ).then((j) => j.chats),
    columns: ["Visitor", "Started", "Operator", "Status", "Rating", "Page"],
    empty: [I.history, "No chats here yet."],
    row: (s) =>
      h(
        "tr",
        {
          class: "clickable",
          "data-chat": s.id,
          tabindex: 0,
          onclick: () => app.openTranscript(s.id),
          onkeydown: (e) => e.key === "Enter" && app.openTranscript(s.id),
        },
        h(
          "td",
          {},
          h("strong", { text: s.name || "Visitor" }),
          s.email ? h("div", { class: "muted", text: s.email }) : null,
        ),
        h("td", { text: when(s.created_at) }),
        h("td", { text: s.operator ? s.operator.name : "\u2014" }),
        h("td", {}, h("span", { class: "pill " + s.status, text: s.status })),
        h(
          "td",
          { class: "rating-cell", title: s.rating_comment || "" },
          s.rating
            ? h("span", {
                class: "rating",
                text: "\u2605".repeat(s.rating) + "\u2606".repeat(5 - s.rating),
              })
            : "\u2014",
          s.rating_comment ? h("div", { class: "muted small", text: s.rating_comment }) : null,
        ),
        h("td", {
          class: "ellipsis",
          title: s.page_url || "",
          text: s.page_title || s.page_url || "\u2014",
        }),
      ),
  });
  filter.addEventListener("change", () => {
    store.set({ historyFilter: filter.value, "page:history": null });
    reload();
  });
}
