/* The console's frame: the top bar (status, connection, alerts, my menu), the sidebar (the
 * queue, the navigation, the team), the chat tabs, and the view that fills the rest. Each part
 * is a region of the store (data-region names it) and redraws only when its keys change. */

import { alerts } from "./alerts.js";
import * as app from "./app.js";
import * as direct from "./direct.js";
import { dots, h, I, icon, put, setText } from "./dom.js";
import { store } from "./store.js";
import { brand, button, VIEW_TEXT } from "./ui.js";
import { VIEWS } from "./views/index.js";
import { drawQueue, drawTransfers } from "./views/queue.js";
import { passwordDialog } from "./views/password.js";
import { chooseStatus } from "./views/status.js";

const S = store.state;

const STATUS_TITLES = {
  online: "Online: take new chats",
  away: "Away: keep your chats, receive no new ones",
  offline: "Offline returns your open chats to the queue",
};

/** The navigation: view, icon, for administrators only. */
const NAV = [
  ["visitors", I.globe],
  ["home", I.chat],
  ["inbox", I.inbox],
  ["history", I.history],
  ["canned", I.canned],
  ["operators", I.users, true],
  ["departments", I.layers, true],
  ["rules", I.zap, true],
  ["widget", I.brush, true],
  ["embed", I.code],
];

/** Build the frame into `root` and keep it drawn until the returned end() is called. */
export function mountShell(root) {
  const scope = store.scope();
  const host = viewHost();
  const region = (name, el) => (el.setAttribute("data-region", name), el);
  const e = {
    status: region(
      "status",
      h("div", { class: "status-switch", role: "radiogroup", "aria-label": "Your status" }),
    ),
    conn: region("conn", h("div", { class: "conn" })),
    alerts: region("alerts", button({ class: "alerts-btn", onclick: () => alerts.arm() })),
    me: region("me", h("div", { class: "me" })),
    queueCount: region("queue", h("span", { class: "count" })),
    queue: region("queue", h("div", { class: "queue" })),
    transfers: region("transfers", h("div", { class: "transfers hidden" })),
    nav: region("nav", h("nav", { class: "nav" })),
    team: region("team", h("div", { class: "team" })),
    tabs: region("tabs", h("div", { class: "tabs", role: "tablist" })),
    view: region("view", h("section", { class: "view" })),
  };
  put(
    root,
    h(
      "div",
      { class: "shell" },
      h(
        "header",
        { class: "topbar" },
        brand(),
        e.status,
        h("div", { class: "spacer" }),
        e.conn,
        e.alerts,
        e.me,
      ),
      h(
        "div",
        { class: "layout" },
        h(
          "aside",
          { class: "sidebar" },
          e.transfers,
          h("div", { class: "side-title" }, h("span", { text: "Waiting" }), e.queueCount),
          e.queue,
          e.nav,
          e.team,
        ),
        h("main", { class: "main" }, e.tabs, e.view),
      ),
    ),
  );
  scope.region(["me"], () => drawStatus(e.status));
  scope.region(["conn"], () => drawConn(e.conn));
  scope.region(["alerts"], () => drawAlerts(e.alerts));
  scope.region(["me"], meMenu(e.me));
  scope.region(["queue", "me"], () => drawQueue(e.queueCount, e.queue));
  scope.region(["transfers", "me"], () => drawTransfers(e.transfers));
  scope.region(["view", "inbox", "me", "visitors", "tabs", "log:*", "seen:*"], nav(e.nav));
  scope.region(["team", "me", "dms", "view"], () => drawTeam(e.team));
  scope.region(["tabs", "view", "me", "log:*", "head:*", "typing:*", "seen:*"], tabs(e.tabs));
  scope.region(["view", "me"], () => host.draw(e.view));
  return () => (scope.end(), host.end());
}

function drawStatus(el) {
  const cur = S.me.status || "offline";
  put(
    el,
    ...["online", "away", "offline"].map((s) =>
      button({
        role: "radio",
        class: "status-opt " + s + (cur === s ? " on" : ""),
        "aria-checked": cur === s ? "true" : "false",
        "data-status": s,
        title: STATUS_TITLES[s],
        text: s[0].toUpperCase() + s.slice(1),
        onclick: () => chooseStatus(s),
      }),
    ),
  );
}

function drawConn(el) {
  const { state, transport } = S.conn;
  el.className = "conn " + state;
  put(
    el,
    h("span", { class: "dot" }),
    state === "connected"
      ? transport === "poll"
        ? "Connected (long-poll)"
        : "Connected"
      : state === "connecting"
        ? "Connecting\u2026"
        : "Reconnecting\u2026",
  );
}

function drawAlerts(el) {
  const armed = alerts.armed;
  const perm = "Notification" in window ? Notification.permission : "unsupported";
  el.className = "alerts-btn " + (armed ? "armed" : "off");
  put(el, icon(armed ? I.bell : I.bellOff), armed ? "Alerts on" : "Enable alerts");
  el.title = armed
    ? "Sound is on" +
      (perm === "granted"
        ? " and desktop notifications are allowed."
        : perm === "denied"
          ? "; desktop notifications are blocked in the browser settings."
          : ".")
    : "Browsers block sound until you click: click to hear new chats and get desktop notifications.";
  el.setAttribute("aria-pressed", armed ? "true" : "false");
}

/** My name and menu: drawn again only when my name changes (an open menu stays open). */
function meMenu(el) {
  let drawn = null;
  return () => {
    const name = S.me.display_name || S.me.username;
    if (name === drawn) return;
    drawn = name;
    const pick = (action) => () => ((menu.open = false), action());
    const menu = h(
      "details",
      { class: "me-menu" },
      h(
        "summary",
        {},
        h("span", { class: "avatar", text: (S.me.display_name || "?").charAt(0).toUpperCase() }),
        h("span", { class: "me-name", text: name }),
      ),
      h(
        "div",
        { class: "menu" },
        button(
          { class: "menu-item", onclick: pick(passwordDialog) },
          icon(I.key),
          "Change password",
        ),
        button(
          { class: "menu-item logout", onclick: pick(app.logout) },
          icon(I.logout),
          "Sign out",
        ),
      ),
    );
    put(el, menu);
  };
}

/** The navigation: built again only when I become or stop being an administrator; otherwise
 * the current item and the counts change in place. */
function nav(el) {
  let admin = null;
  let items = {};
  return (changed) => {
    const rebuild = S.me.is_admin !== admin;
    if (rebuild) {
      admin = S.me.is_admin;
      items = {};
      for (const [kind, ic, adminOnly] of NAV) {
        if (adminOnly && !admin) continue;
        items[kind] = button(
          { class: "nav-item", "data-nav": kind, onclick: () => app.show({ kind }) },
          icon(ic),
          h("span", { class: "nav-label", text: VIEW_TEXT[kind][0] }),
        );
      }
      // (with its text node from the start: the count then changes in place)
      items.visitors.append(h("span", { class: "count vis-count hidden" }, ""));
      items.home.append(h("span", { class: "count hot unread-count hidden" }, ""));
      put(el, Object.values(items));
    }
    for (const kind in items) items[kind].classList.toggle("on", S.view.kind === kind);
    if (rebuild || changed.has("inbox")) {
      const n = S.inbox.filter((m) => !m.read).length;
      const b = items.inbox;
      const count = b.querySelector(".count");
      if (!n) {
        if (count) count.remove();
      } else if (count) setText(count, String(n));
      else b.append(h("span", { class: "count hot", text: String(n) }));
    }
    {
      // Unread messages in all my chats (the Chats page lists them).
      let n = 0;
      for (const id of S.tabs) n += app.unread(S.chats.get(id));
      const count = items.home.lastChild;
      setText(count, n ? String(n) : "");
      count.classList.toggle("hidden", !n);
      count.title = n ? n + " unread" : "";
    }
    if (rebuild || changed.has("visitors")) {
      let n = 0;
      for (const r of S.visitors.values()) if (r.state !== "left") n++;
      const count = items.visitors.lastChild;
      setText(count, n ? n.toLocaleString("en") : "");
      count.classList.toggle("hidden", !n);
    }
  };
}

/** The team: colleagues online or away, and those I have direct messages with; a click opens
 * the conversation (views/direct.js), with its unread count. */
function drawTeam(el) {
  const others = S.team.filter((o) => o.id !== S.me.id);
  for (const dm of S.dms.values())
    if (
      dm.id !== S.me.id &&
      (dm.messages.length || dm.last_seq) &&
      !others.some((o) => o.id === dm.id)
    )
      others.push({ id: dm.id, display_name: direct.nameOf(dm.id), status: "offline" });
  const total = direct.totalUnread();
  put(
    el,
    h(
      "div",
      { class: "side-title small" },
      h("span", { text: "Team" }),
      total
        ? h("span", { class: "count hot dm-total", title: total + " unread", text: String(total) })
        : null,
    ),
    others.length
      ? h(
          "ul",
          { class: "team-list" },
          ...others.map((o) => {
            const dm = S.dms.get(o.id);
            const n = dm ? dm.unread : 0;
            const on = S.view.kind === "direct" && S.view.id === o.id;
            return h(
              "li",
              {},
              button(
                {
                  class: "team-dm" + (on ? " on" : "") + (n ? " unread" : ""),
                  "data-operator": o.id,
                  title: "Message " + o.display_name + (o.status === "offline" ? " (offline)" : ""),
                  onclick: () => app.show({ kind: "direct", id: o.id }),
                },
                h("span", { class: "sdot " + o.status }),
                h("span", { class: "team-name", text: o.display_name }),
                n ? h("span", { class: "badge unread", text: String(n) }) : null,
              ),
            );
          }),
        )
      : h("p", { class: "empty-small", text: "No other operators online." }),
  );
}

/** The chat tabs. A tab is drawn again only when what it shows changed (name, state, typing,
 * unread count, being in front): a message in the chat in front changes no tab. */
function tabs(el) {
  const drawn = new Map(); // chat id -> {sig, el}
  return () => {
    el.classList.toggle("empty", !S.tabs.length);
    const want = S.tabs.map((id) => {
      const c = S.chats.get(id);
      const s = c.summary || {};
      const t = {
        name: s.name || "Chat #" + id,
        status: s.status,
        mine: app.isMine(s),
        on: S.view.kind === "chat" && S.view.id === id,
        typing: c.typing,
        unread: app.unread(c),
      };
      const sig = JSON.stringify(t);
      const old = drawn.get(id);
      return old && old.sig === sig ? old : { sig, el: tab(id, t) };
    });
    drawn.clear();
    want.forEach((t, i) => {
      drawn.set(S.tabs[i], t);
      if (el.children[i] !== t.el) el.insertBefore(t.el, el.children[i] || null);
    });
    while (el.children.length > want.length) el.lastChild.remove();
  };
}

function tab(id, t) {
  return h(
    "div",
    {
      class: "tab" + (t.on ? " on" : "") + (t.mine ? "" : " ended"),
      role: "tab",
      "aria-selected": t.on ? "true" : "false",
      "data-chat": id,
      onclick: () => app.show({ kind: "chat", id }),
    },
    h("span", {
      class:
        "sdot " + (t.status === "active" ? "online" : t.status === "waiting" ? "away" : "offline"),
    }),
    h("span", { class: "tab-name", text: t.name }),
    t.typing ? dots({ class: "tab-typing", title: "Typing\u2026" }) : null,
    t.unread ? h("span", { class: "badge unread", text: String(t.unread) }) : null,
    !t.mine
      ? button(
          {
            class: "tab-close",
            title: "Close tab",
            "aria-label": "Close tab",
            onclick: (ev) => {
              ev.stopPropagation();
              app.closeTab(id);
            },
          },
          icon(I.x),
        )
      : null,
  );
}

/** The view: mounted again when another view (or another chat) is chosen; the view draws its
 * own regions in its own scope, which ends when it is left. */
function viewHost() {
  let shown = null;
  let scope = null;
  const end = () => scope && scope.end();
  const draw = (el) => {
    const v = S.view;
    let kind = VIEWS[v.kind] && (!VIEWS[v.kind].admin || S.me.is_admin) ? v.kind : "home";
    if (kind === "chat" && !S.chats.has(v.id)) kind = "home";
    const key = kind + (kind === "chat" || kind === "direct" ? ":" + v.id : "");
    if (key === shown) return;
    shown = key;
    end();
    scope = store.scope();
    el.className = "view view-" + kind;
    VIEWS[kind].mount(el, scope, v);
  };
  return { draw, end };
}
