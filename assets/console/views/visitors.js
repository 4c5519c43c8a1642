/* The live traffic monitor: "Visitors" (docs/PROTOCOL.md §7.5).
 *
 * Rows live in the store's `visitors` (id -> row), seeded by `visitors` and updated by
 * `visitors_changed`. Drawing waits for the store's animation frame, so a burst of updates costs
 * one redraw, and only the rows in sight exist in the DOM (a pool of row elements, moved and
 * refilled as the list scrolls): 10,000 visitors draw as fast as 10. A row is ROW_H high unless
 * its visitor's name or state needs more lines: such a row is measured when drawn and its height
 * kept (until the table's width changes), and the rows below move down. Every field is the
 * visitor's own text. */

import * as app from "../app.js";
import { extLink, h, I, icon, put, safeHttp } from "../dom.js";
import { ago, dur, hhmm, hostOf, pathOf, plural, shortUrl } from "../format.js";
import { store } from "../store.js";
import { button, VIEW_TEXT } from "../ui.js";
import { mountDetail } from "./visitor-detail.js";
import { inviteDialog } from "./invite.js";

const S = store.state;
const ROW_H = 70; // px: the height of a monitor row with one line of name and state (console.css)

export const STATE_LABEL = {
  browsing: "Browsing",
  idle: "Idle",
  invited: "Invited",
  waiting: "Waiting for a chat",
  chatting: "Chatting",
  left: "Left",
};
const STATE_FILTER = [["", "All states"]].concat(
  Object.keys(STATE_LABEL).map((k) => [k, STATE_LABEL[k].replace(" for a chat", "")]),
);
const STATE_RANK = { chatting: 0, waiting: 1, invited: 2, browsing: 3, idle: 4, left: 5 };
export const INV_LABEL = {
  pending: "invitation pending",
  accepted: "accepted the invitation",
  declined: "declined the invitation",
  expired: "invitation expired",
};
/** Sort keys (ascending); SORT_DIR is the direction of a column's first click. */
const SORTS = {
  visitor: (r) => r.id,
  page: (r) => String(r.title || r.url || "").toLowerCase(),
  from: (r) => String(r.search_terms || hostOf(r.referrer) || "\uffff").toLowerCase(),
  pages: (r) => r.pages,
  time: (r, now) => (r.left_at || now) - r.started_at,
  device: (r) => String(r.browser + " " + r.os).toLowerCase(),
  state: (r) => (r.state in STATE_RANK ? STATE_RANK[r.state] : 9),
};
for (const k of ["visitor", "pages", "time", "state"]) SORTS[k].numeric = true;
const SORT_DIR = { visitor: -1, pages: -1, time: -1 };
const COLUMNS = [
  ["visitor", "Visitor"],
  ["page", "Current page"],
  ["from", "Came from"],
  ["pages", "Pages"],
  ["time", "On site"],
  ["device", "Browser & IP"],
  ["state", "State"],
  [null, ""],
];

/** Where a visitor came from: search keywords, the referring site, or "Direct". */
export function sourceOf(r, long) {
  if (r.search_terms)
    return [
      long ? h("span", { class: "kw", text: "Search" }) : icon(I.search, "kw-icon"),
      (long ? " " : "") + "\u201c" + r.search_terms + "\u201d",
      long && r.referrer ? h("div", {}, extLink(r.referrer)) : null,
    ].filter(Boolean);
  if (r.referrer) return [long ? extLink(r.referrer) : hostOf(r.referrer)];
  return [h("span", { class: "muted", text: "Direct" })];
}

export function stateText(r) {
  if (r.state === "chatting") {
    const op = r.operator;
    return "Chatting with " + (op ? (op.id === S.me.id ? "you" : op.name) : "an operator");
  }
  return STATE_LABEL[r.state] || r.state;
}

/** The row's (and the detail's) action: Invite, Invited (pending), Open chat, or none. */
export function actButton(b, r) {
  const online = S.me.status === "online";
  const inv = r.invitation;
  b.disabled = false;
  b.classList.remove("hidden");
  b.removeAttribute("title");
  if (r.state === "left") {
    b.classList.add("hidden");
    b.removeAttribute("data-act");
  } else if (r.chat_id && (r.state === "chatting" || r.state === "waiting")) {
    b.className = "btn ghost small open-chat";
    b.textContent = "Open chat";
    b.setAttribute("data-act", "chat");
  } else if (inv && inv.state === "pending") {
    b.className = "btn ghost small invited";
    b.textContent = "Invited";
    b.disabled = true;
    b.title = "Waiting for the visitor to answer";
    b.removeAttribute("data-act");
  } else {
    b.className = "btn primary small invite";
    b.textContent = "Invite";
    b.setAttribute("data-act", "invite");
    b.disabled = !online;
    b.title = online ? "Invite this visitor to chat" : "Go online to invite visitors";
  }
}

/** What a row's (or the detail's) button does. */
export function act(action, id) {
  const r = S.visitors.get(id);
  if (action === "invite") return inviteDialog(id);
  if (action === "chat" && r && r.chat_id) return app.openTranscript(r.chat_id);
}

export function mount(root, scope) {
  // tops[i]: where the i-th row of `list` starts; heights: the rows taller than ROW_H, by id.
  const m = { list: [], pool: [], force: true, tops: new Float64Array(1), heights: new Map() };
  const mon = () => S.mon;
  const search = h("input", {
    type: "search",
    class: "mon-q",
    name: "q",
    placeholder: "Filter by page title or URL\u2026",
    "aria-label": "Filter by current page",
    value: mon().q,
  });
  search.addEventListener("input", () => app.saveMon({ q: search.value }));
  const select = (name, label, opts) => {
    const sel = h(
      "select",
      { class: "select", name, "aria-label": label },
      ...opts.map(([v, l]) => h("option", { value: v, text: l })),
    );
    sel.value = mon()[name];
    sel.addEventListener("change", () => app.saveMon({ [name]: sel.value }));
    return sel;
  };
  m.count = h("div", { class: "mon-count", role: "status" });
  m.shown = h("span", { class: "muted small" });
  m.thead = h(
    "div",
    { class: "mon-head-row", role: "row" },
    ...COLUMNS.map(([key, label]) =>
      key
        ? button(
            {
              class: "mon-th",
              role: "columnheader",
              "data-sort": key,
              title: "Sort by " + label.toLowerCase(),
              onclick: () => sortBy(key),
            },
            label,
            h("span", { class: "arrow" }),
          )
        : h("div", { class: "mon-th", role: "columnheader" }),
    ),
  );
  m.body = h("div", { class: "mon-body", role: "rowgroup" });
  m.empty = h("div", { class: "mon-empty hidden" }, icon(I.globe), h("p"));
  m.scroll = h("div", { class: "mon-scroll", role: "table", "aria-label": "Visitors on the site" });
  m.scroll.append(m.thead, m.body, m.empty);
  m.scroll.addEventListener("scroll", () => store.touch("monScroll"), { passive: true });
  m.body.addEventListener("click", (e) => {
    const row = e.target.closest(".mon-row");
    if (!row) return;
    const id = Number(row.getAttribute("data-visitor"));
    const b = e.target.closest("button[data-act]");
    if (b) return act(b.getAttribute("data-act"), id);
    if (e.target.closest("a[href]")) return; // the page link opens the page
    app.openDetail(id);
  });
  m.body.addEventListener("keydown", (e) => {
    const row = e.target.closest(".mon-row");
    if (row && e.target === row && e.key === "Enter")
      app.openDetail(Number(row.getAttribute("data-visitor")));
  });
  const drawer = h("aside", { class: "mon-detail hidden", "aria-label": "Visitor details" });
  put(
    root,
    h(
      "div",
      { class: "mon", "data-region": "monitor" },
      h(
        "div",
        { class: "mon-top" },
        h(
          "div",
          { class: "mon-title" },
          h("h2", { text: VIEW_TEXT.visitors[0] }),
          m.count,
          m.shown,
        ),
        h(
          "div",
          { class: "mon-filters" },
          h("label", { class: "mon-search" }, icon(I.search), search),
          select("state", "State", STATE_FILTER),
          select("ret", "New or returning", [
            ["", "New and returning"],
            ["returning", "Returning only"],
            ["new", "New only"],
          ]),
        ),
      ),
      m.scroll,
      drawer,
    ),
  );
  scope.region(["visitors", "visKnown", "mon", "me", "detail", "monScroll"], (changed) => {
    if (changed.has("visitors") || changed.has("mon") || changed.has("visKnown")) {
      m.list = list();
      m.force = true;
      if (m.heights.size)
        for (const id of m.heights.keys()) if (!S.visitors.has(id)) m.heights.delete(id);
      place(m);
      header(m);
    }
    if (changed.has("me") || changed.has("detail")) m.force = true; // Invite buttons, the "on" row
    rows(m);
  });
  let width = 0;
  scope.resized(m.scroll, (entry) => {
    const w = Math.round(entry.contentRect.width);
    if (w === width) return;
    width = w; // names wrap differently: measure the rows again
    m.heights.clear();
    m.force = true;
    place(m);
    store.touch("monScroll");
  });
  mountDetail(drawer, scope);
  scope.on(document, "keydown", (e) => {
    if (e.key === "Escape" && S.detail && !document.querySelector("dialog[open]"))
      app.closeDetail();
  });
}

function sortBy(key) {
  const m = S.mon;
  if (m.key === key) app.saveMon({ dir: -m.dir });
  else app.saveMon({ key, dir: SORT_DIR[key] || 1 });
}

/** The rows that pass the filters, sorted (ties by id). */
function list() {
  const m = S.mon;
  const q = m.q.trim().toLowerCase();
  const now = Date.now();
  const key = SORTS[m.key] || SORTS.time;
  const dir = m.dir;
  let out = [];
  if (!q && !m.state && !m.ret) out = Array.from(S.visitors.values());
  else
    for (const r of S.visitors.values()) {
      if (m.state && r.state !== m.state) continue;
      if (m.ret === "returning" && !(r.visit_number > 1)) continue;
      if (m.ret === "new" && r.visit_number > 1) continue;
      if (
        q &&
        !String(r.title || "")
          .toLowerCase()
          .includes(q) &&
        !String(r.url || "")
          .toLowerCase()
          .includes(q)
      )
        continue;
      out.push(r);
    }
  if (key.numeric) {
    // Numbers: compare in place (no allocation: this runs for every batch of updates).
    out.sort((a, b) => (key(a, now) - key(b, now) || a.id - b.id) * dir);
    return out;
  }
  const keyed = out.map((r) => [key(r, now), r]);
  keyed.sort((a, b) => (a[0] < b[0] ? -dir : a[0] > b[0] ? dir : (a[1].id - b[1].id) * dir));
  return keyed.map((x) => x[1]);
}

function header(m) {
  let online = 0;
  for (const r of S.visitors.values()) if (r.state !== "left") online++;
  m.count.setAttribute("data-count", String(online));
  put(
    m.count,
    h("span", { class: "live-dot" }),
    h("strong", { text: online.toLocaleString("en") }),
    " online",
  );
  const shown = m.list.length;
  m.shown.textContent =
    shown !== S.visitors.size ? shown.toLocaleString("en") + " shown (filtered)" : "";
  for (const b of m.thead.querySelectorAll("[data-sort]")) {
    const on = b.getAttribute("data-sort") === S.mon.key;
    b.classList.toggle("on", on);
    b.setAttribute("aria-sort", on ? (S.mon.dir > 0 ? "ascending" : "descending") : "none");
    b.lastChild.textContent = on ? (S.mon.dir > 0 ? "\u2191" : "\u2193") : "";
  }
  m.empty.classList.toggle("hidden", shown > 0);
  m.empty.lastChild.textContent = !S.visKnown
    ? "Connecting\u2026"
    : S.visitors.size
      ? "No visitor matches these filters."
      : "Nobody is on the site right now. Visitors appear here the moment they open a page with the widget.";
}

/** Where each row starts, from the heights measured so far, and the list's whole height. */
function place(m) {
  const n = m.list.length;
  if (m.tops.length !== n + 1) m.tops = new Float64Array(n + 1);
  const hs = m.heights;
  for (let i = 0; i < n; i++)
    m.tops[i + 1] = m.tops[i] + ((hs.size && hs.get(m.list[i].id)) || ROW_H);
  m.body.style.height = m.tops[n] + "px";
}

/** The index of the row at `y` px from the top of the list (binary search on `tops`). */
function rowAt(m, y) {
  let lo = 0;
  let hi = m.list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (m.tops[mid + 1] <= y) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Fill the rows in sight (plus a few above and below) from the pool; measure the rows just
 * filled, and when one is taller or shorter than assumed, place the rows again. */
function rows(m, again) {
  const top = m.scroll.scrollTop - m.body.offsetTop;
  const first = Math.max(0, rowAt(m, top) - 4);
  const last = Math.min(m.list.length, rowAt(m, top + m.scroll.clientHeight) + 5);
  while (m.pool.length < last - first) m.pool.push(rowEl(m.body));
  const now = Date.now();
  const filled = [];
  m.pool.forEach((slot, i) => {
    const idx = first + i;
    if (idx >= last) {
      if (slot.r) {
        slot.r = null;
        slot.el.classList.add("hidden");
      }
      return;
    }
    if (m.force || slot.r !== m.list[idx] || slot.i !== idx) {
      fill(slot, m.list[idx], idx, now);
      filled.push(slot);
    }
    if (slot.y !== m.tops[idx]) {
      slot.y = m.tops[idx];
      slot.el.style.transform = "translateY(" + slot.y + "px)";
    }
  });
  m.force = false;
  let moved = false;
  for (const slot of filled) {
    const id = slot.r.id;
    const height = slot.el.offsetHeight;
    if (height === (m.heights.get(id) || ROW_H)) continue;
    if (height > ROW_H) m.heights.set(id, height);
    else m.heights.delete(id);
    moved = true;
  }
  if (moved && !again) {
    place(m);
    rows(m, true);
  }
}

function rowEl(body) {
  const cell = (cls, ...kids) => h("div", { class: "mon-c " + cls, role: "cell" }, ...kids);
  const s = {};
  s.who = h("div", { class: "l1 vid" });
  s.ret = h("div", { class: "l2" });
  s.page = h("a", { class: "l1 page-link", target: "_blank", rel: "noopener noreferrer" });
  s.url = h("div", { class: "l2" });
  s.src = h("div", { class: "l1" });
  s.land = h("div", { class: "l2" });
  s.pages = h("div", { class: "l1 num" });
  s.time = h("div", { class: "l1 num" });
  s.since = h("span");
  s.onpage = h("div", { class: "l2" }, "page ", s.since);
  s.onpage.title = "Time on the current page";
  s.dev = h("div", { class: "l1" });
  s.ip = h("div", { class: "l2" });
  s.pill = h("span", { class: "pill" });
  s.sub = h("div", { class: "l2" });
  s.btn = button({ class: "btn small" });
  s.el = h(
    "div",
    { class: "mon-row hidden", role: "row", tabindex: 0 },
    cell("c-who", s.who, s.ret),
    cell("c-page", s.page, s.url),
    cell("c-from", s.src, s.land),
    cell("c-pages", s.pages),
    cell("c-time", s.time, s.onpage),
    cell("c-dev", s.dev, s.ip),
    cell("c-state", h("div", { class: "l1" }, s.pill), s.sub),
    cell("c-act", s.btn),
  );
  body.append(s.el);
  return s;
}

function fill(s, r, idx, now) {
  s.r = r;
  s.i = idx;
  const det = S.detail;
  s.el.className =
    "mon-row st-" + r.state + (det && det.id === r.id ? " on" : "") + (idx % 2 ? " odd" : "");
  s.el.setAttribute("data-visitor", r.id);
  // A name given in a chat, else the number; the number stays on the second line.
  s.who.textContent = r.name || "#" + r.id;
  s.who.title = r.name || "";
  const number = r.name ? "#" + r.id + " \u00b7 " : "";
  if (r.visit_number > 1)
    put(
      s.ret,
      number,
      h("span", { class: "ret", text: "Returning" }),
      " visit " +
        r.visit_number +
        (r.previous_chats
          ? " \u00b7 " + plural(r.previous_chats, "chat", "chats") + " before"
          : ""),
    );
  else put(s.ret, number + "New visitor");
  // Current page: only an http(s) URL becomes a link.
  const href = safeHttp(r.url);
  s.page.textContent = r.title || r.url || "\u2014";
  if (href) s.page.setAttribute("href", href);
  else s.page.removeAttribute("href");
  s.page.title = [r.title, r.url].filter(Boolean).join("\n"); // whole, where it ends in "…"
  s.url.textContent = shortUrl(r.url);
  s.url.title = r.url || "";
  put(s.src, ...sourceOf(r));
  s.src.title = [r.search_terms && "\u201c" + r.search_terms + "\u201d", r.referrer]
    .filter(Boolean)
    .join("\n");
  s.land.textContent = r.landing_url ? "Landed on " + pathOf(r.landing_url) : "";
  s.land.title = r.landing_url || "";
  s.pages.textContent = String(r.pages);
  if (r.left_at) {
    s.time.removeAttribute("data-dur");
    s.time.textContent = dur(r.left_at - r.started_at);
    s.since.removeAttribute("data-since");
    s.onpage.firstChild.textContent = "left ";
    s.since.textContent = hhmm(r.left_at);
  } else {
    s.time.setAttribute("data-dur", r.started_at);
    s.time.textContent = dur(now - r.started_at);
    s.onpage.firstChild.textContent = "page ";
    s.since.setAttribute("data-since", r.page_since || r.started_at);
    s.since.textContent = ago(r.page_since || r.started_at);
  }
  s.dev.textContent = [r.browser, r.os].filter(Boolean).join(" \u00b7 ") || "Unknown browser";
  s.dev.title = s.dev.textContent + (r.device ? " \u00b7 " + r.device : "");
  s.ip.textContent = [r.device, r.ip, r.country].filter(Boolean).join(" \u00b7 ");
  s.ip.title = s.ip.textContent;
  s.pill.className = "pill st-" + r.state;
  s.pill.textContent = stateText(r);
  s.pill.title = s.pill.textContent;
  put(s.sub, ...subText(r));
  actButton(s.btn, r);
}

/** The line under the state: open tabs and the answer to the last invitation. */
function subText(r) {
  const out = [];
  if (r.state !== "left" && r.tabs)
    out.push(h("span", { class: "tabs-n", text: plural(r.tabs, "tab", "tabs") }));
  const inv = r.invitation;
  if (inv) {
    if (out.length) out.push(" \u00b7 ");
    out.push(
      h("span", {
        class: "inv inv-" + inv.state,
        title:
          "Invitation" +
          (inv.operator ? " from " + inv.operator.name : " (automatic)") +
          (inv.message ? ": " + inv.message : ""),
        text: INV_LABEL[inv.state] || inv.state,
      }),
    );
  }
  return out;
}
