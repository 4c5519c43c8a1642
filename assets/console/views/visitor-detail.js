/* The monitor's detail panel: the visitor now, the page trails of their visits, their chats. */

import * as app from "../app.js";
import { extLink, h, I, icon, put } from "../dom.js";
import { errorText } from "../errors.js";
import { ago, dur, hms, plural, when } from "../format.js";
import { store } from "../store.js";
import { button } from "../ui.js";
import { act, actButton, INV_LABEL, sourceOf, stateText } from "./visitors.js";

const S = store.state;

export function mountDetail(drawer, scope) {
  let shown = null;
  const e = {};
  scope.region(["detail", "vrow:*", "visitor:*", "me", "queue"], (changed) => {
    const det = S.detail;
    if (!det) {
      shown = null;
      return drawer.classList.add("hidden");
    }
    const id = det.id;
    const fresh = id !== shown;
    if (fresh) {
      shown = id;
      drawer.classList.remove("hidden");
      e.head = h("div", { class: "det-head" });
      e.now = h("dl", { class: "det-now" });
      e.hist = h("div", { class: "det-hist" });
      put(drawer, e.head, e.now, e.hist);
    }
    const info = S.visitorInfo.get(id);
    if (
      fresh ||
      changed.has("vrow:" + id) ||
      changed.has("me") ||
      changed.has("visitor:" + id) ||
      changed.has("queue")
    )
      drawNow(e, id, info);
    if (fresh || changed.has("visitor:" + id)) drawHistory(e.hist, info);
    // The visitor saw another page, or came back: their trail is longer now.
    const r = S.visitors.get(id);
    if (r && info && info.data && (r.pages !== info.pages || r.visit_number !== info.visit))
      app.loadVisitor(id);
  });
}

function drawNow(e, id, info) {
  const r = S.visitors.get(id) || (info && info.data && info.data.visitor) || null;
  const btn = button({
    class: "btn small",
    onclick: (ev) => {
      const action = ev.currentTarget.getAttribute("data-act");
      if (action) act(action, id);
    },
  });
  if (r) actButton(btn, r);
  put(
    e.head,
    h(
      "div",
      { class: "det-title" },
      h("h3", { title: r && r.name ? r.name : "", text: r && r.name ? r.name : "Visitor #" + id }),
      r && r.name ? h("span", { class: "muted", text: "#" + id }) : null,
      r ? h("span", { class: "pill st-" + r.state, text: stateText(r) }) : null,
    ),
    r ? btn : null,
    button(
      {
        class: "icon-btn det-close",
        title: "Close",
        "aria-label": "Close",
        onclick: app.closeDetail,
      },
      icon(I.x),
    ),
  );
  if (!r)
    return put(
      e.now,
      h("p", { class: "muted", text: info ? "Not on the site now." : "Loading\u2026" }),
    );
  const kv = (label, ...value) =>
    h(
      "div",
      { class: "kv" },
      h("dt", { text: label }),
      h("dd", {}, ...(value.filter((v) => v != null && v !== "").length ? value : ["\u2014"])),
    );
  const page = h(
    "span",
    { class: "page" },
    r.title ? h("span", { class: "page-title", text: r.title }) : null,
    r.url ? extLink(r.url) : null,
  );
  const left = !!r.left_at;
  const inv = r.invitation;
  // A waiting chat's time in the queue, counted from when it entered it (again, after a return).
  const queued = r.state === "waiting" && S.queue.find((q) => q.id === r.chat_id);
  const since = queued && (queued.queued_at || queued.created_at);
  put(
    e.now,
    since
      ? kv(
          "Waiting for",
          h("strong", { class: "det-wait", "data-dur": since, text: dur(Date.now() - since) }),
        )
      : null,
    r.email ? kv("E-mail", r.email) : null,
    kv("Current page", page),
    left
      ? kv("Left", when(r.left_at))
      : kv("On this page for", h("span", { "data-since": r.page_since, text: ago(r.page_since) })),
    kv(
      "Time on site",
      left
        ? dur(r.left_at - r.started_at)
        : h("span", { "data-dur": r.started_at, text: dur(Date.now() - r.started_at) }),
    ),
    kv("Pages this visit", String(r.pages)),
    left ? null : kv("Open tabs", String(r.tabs)),
    kv("Came from", ...sourceOf(r, true)),
    kv("Landing page", r.landing_url ? extLink(r.landing_url) : null),
    kv("Browser", [r.browser, r.os, r.device].filter(Boolean).join(" \u00b7 ")),
    kv("IP address", r.ip + (r.country ? " (" + r.country + ")" : "")),
    kv(
      "Visit",
      (r.visit_number > 1 ? "Returning: visit " + r.visit_number : "First visit") +
        (r.first_seen ? " \u00b7 first seen " + when(r.first_seen) : ""),
    ),
    inv
      ? kv(
          "Invitation",
          (INV_LABEL[inv.state] || inv.state) +
            (inv.operator ? " \u00b7 from " + inv.operator.name : " \u00b7 automatic"),
          inv.message ? h("div", { class: "muted small", text: inv.message }) : null,
        )
      : null,
  );
}

function trail(v) {
  return h(
    "ol",
    { class: "trail" },
    ...v.trail.map((p, i) =>
      h(
        "li",
        { class: i === v.trail.length - 1 ? "last" : "" },
        h("time", { text: hms(p.ts) }),
        h(
          "div",
          { class: "trail-page" },
          h("span", { class: "trail-title", text: p.title || "(no title)" }),
          extLink(p.url),
        ),
      ),
    ),
  );
}

const section = (title, ...kids) =>
  h("section", { class: "det-sec" }, h("h4", { text: title }), ...kids);

function earlierVisit(v) {
  return h(
    "details",
    { class: "visit" },
    h(
      "summary",
      {},
      h("strong", { text: "Visit " + v.number }),
      " \u00b7 " + when(v.started_at) + " \u00b7 " + plural(v.pages, "page", "pages"),
      v.search_terms || v.referrer
        ? h("div", {
            class: "muted small ellipsis-line",
            text:
              "from " + (v.search_terms ? "search \u201c" + v.search_terms + "\u201d" : v.referrer),
          })
        : null,
    ),
    trail(v),
  );
}

function drawHistory(el, info) {
  if (info && info.error)
    return put(el, h("p", { class: "form-error", text: errorText(info.error) }));
  const j = info && info.data;
  if (!j) return put(el, h("p", { class: "muted", text: "Loading the page trail\u2026" }));
  const here = j.visitor && j.visitor.state !== "left";
  const [cur, ...earlier] = j.visits;
  put(
    el,
    cur
      ? section(
          (here ? "Page trail of this visit" : "Page trail of the last visit") +
            " (" +
            cur.trail.length +
            ")",
          trail(cur),
        )
      : null,
    earlier.length
      ? section("Earlier visits (" + earlier.length + ")", ...earlier.map(earlierVisit))
      : null,
    section(
      "Chats (" + j.chats.length + ")",
      j.chats.length
        ? h(
            "ul",
            { class: "det-chats" },
            ...j.chats.map((c) =>
              h(
                "li",
                {},
                button(
                  { class: "link", onclick: () => app.openTranscript(c.id) },
                  (c.name || "Visitor") + " \u00b7 " + when(c.created_at),
                ),
                " ",
                h("span", { class: "pill " + c.status, text: c.status }),
                c.operator
                  ? h("span", { class: "muted small", text: " with " + c.operator.name })
                  : null,
              ),
            ),
          )
        : h("p", { class: "muted small", text: "No chats yet." }),
    ),
  );
}
