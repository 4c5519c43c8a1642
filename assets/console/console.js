/* Cute Live Support: the operator console (/console/). Same origin as the API; cookie session,
 * CSRF header on every state-changing request, one event stream (stream.js).
 * Everything a visitor controls is put into the page with textContent, never as markup. */
(function () {
  "use strict";
  const d = document;
  const w = window;
  const Stream = w.CuteLiveStream;
  const app = d.getElementById("app");
  const BASE = location.origin;
  const EMAIL = /^[^@\s"<>]+@[^@\s.<>"]+(\.[^@\s.<>"]+)+$/;

  // -- helpers -----------------------------------------------------------------------------------

  function h(tag, props, ...kids) {
    const el = d.createElement(tag);
    for (const k in props || {}) {
      const v = props[k];
      if (v == null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.slice(0, 2) === "on") el.addEventListener(k.slice(2), v);
      else if (k === "value") el.value = v;
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of kids.flat()) if (c != null && c !== false) el.append(c);
    return el;
  }
  /** Replace an element's children, skipping null/false (replaceChildren would print "null"). */
  const put = (el, ...kids) =>
    el.replaceChildren(...kids.flat().filter((k) => k != null && k !== false));
  const SVG = "http://www.w3.org/2000/svg";
  function icon(paths, cls) {
    const s = d.createElementNS(SVG, "svg");
    s.setAttribute("viewBox", "0 0 24 24");
    s.setAttribute("class", "icon " + (cls || ""));
    s.setAttribute("aria-hidden", "true");
    for (const p of paths.split("|")) {
      const e = d.createElementNS(SVG, "path");
      e.setAttribute("d", p);
      s.append(e);
    }
    return s;
  }
  const I = {
    chat: "M21 12a8 8 0 0 1-11.6 7.1L4 20l1.1-4.4A8 8 0 1 1 21 12z",
    inbox: "M22 12h-6l-2 3h-4l-2-3H2|M5.5 5h13L22 12v6a2 2 0 0 1-2 2H4a2 2 0 0 1-2-2v-6z",
    history: "M3 12a9 9 0 1 0 3-6.7L3 8|M3 3v5h5|M12 7v5l3 2",
    users:
      "M16 21v-2a4 4 0 0 0-4-4H6a4 4 0 0 0-4 4v2|M9 11a4 4 0 1 0 0-8 4 4 0 0 0 0 8z|M22 21v-2a4 4 0 0 0-3-3.9|M16 3.1a4 4 0 0 1 0 7.8",
    code: "M16 18l6-6-6-6|M8 6l-6 6 6 6",
    bell: "M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9|M13.7 21a2 2 0 0 1-3.4 0",
    bellOff:
      "M13.7 21a2 2 0 0 1-3.4 0|M18.6 13A17.9 17.9 0 0 1 18 8|M6.3 6.3A6 6 0 0 0 6 8c0 7-3 9-3 9h14|M18 8a6 6 0 0 0-9.3-5|M2 2l20 20",
    send: "M22 2 11 13|M22 2l-7 20-4-9-9-4 20-7z",
    x: "M6 6l12 12|M18 6 6 18",
    logout: "M9 21H5a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2h4|M16 17l5-5-5-5|M21 12H9",
    key: "M21 2l-2 2m-7.6 7.6a5.5 5.5 0 1 1-7.8 7.8 5.5 5.5 0 0 1 7.8-7.8zm0 0L15.5 7.5m0 0 3 3L22 7l-3-3m-3.5 3.5L19 4",
    brush: "M12 20h9|M16.5 3.5a2.1 2.1 0 0 1 3 3L7 19l-4 1 1-4z",
    copy: "M9 9h11v11H9z|M5 15H4a1 1 0 0 1-1-1V4a1 1 0 0 1 1-1h10a1 1 0 0 1 1 1v1",
    globe:
      "M12 22a10 10 0 1 0 0-20 10 10 0 0 0 0 20z|M2 12h20|M12 2a15 15 0 0 1 4 10 15 15 0 0 1-4 10 15 15 0 0 1-4-10 15 15 0 0 1 4-10z",
    zap: "M13 2 3 14h9l-1 8 10-12h-9l1-8z",
    search: "M11 19a8 8 0 1 0 0-16 8 8 0 0 0 0 16z|M21 21l-4.3-4.3",
    wave: "M7 11V6a2 2 0 0 1 4 0v5|M11 10V4a2 2 0 0 1 4 0v7|M15 9a2 2 0 0 1 4 0v5a7 7 0 0 1-7 7h-1a7 7 0 0 1-6-3.4L3.3 14a2 2 0 0 1 3.4-2L8 14",
  };
  const URL_RE = /\bhttps?:\/\/[^\s<>"']+/gi;
  /** What the widget shows when an invitation has no message of its own. */
  const INVITE_TEXT = "Hi! Can we help you with anything?";
  function safeHttp(u) {
    try {
      const x = new URL(u);
      return x.protocol === "http:" || x.protocol === "https:" ? x.href : null;
    } catch (e) {
      return null;
    }
  }
  function extLink(url, label) {
    const href = safeHttp(url);
    return href
      ? h("a", { href, target: "_blank", rel: "noopener noreferrer", text: label || url })
      : d.createTextNode(label || url || "");
  }
  /** Text with http(s) URLs as links; nothing else is ever interpreted. */
  function linkify(text) {
    text = String(text);
    const frag = d.createDocumentFragment();
    let last = 0;
    text.replace(URL_RE, (m, at) => {
      if (at < last) return m;
      const url = m.replace(/[),.;:!?\]}'"]+$/, "");
      frag.append(text.slice(last, at), extLink(url));
      last = at + url.length;
      return m;
    });
    frag.append(text.slice(last));
    return frag;
  }
  const pad = (n) => String(n).padStart(2, "0");
  const hhmm = (ts) => new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  function when(ts) {
    if (!ts) return "\u2014";
    const dt = new Date(ts);
    const today = new Date().toDateString() === dt.toDateString();
    return today
      ? "Today " + hhmm(ts)
      : dt.toLocaleDateString([], { day: "numeric", month: "short", year: "numeric" }) +
          " " +
          hhmm(ts);
  }
  function ago(ts) {
    const s = Math.max(0, Math.floor((Date.now() - ts) / 1000));
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " min";
    const hr = Math.floor(m / 60);
    return hr < 24 ? hr + " h " + pad(m % 60) + " min" : Math.floor(hr / 24) + " d";
  }
  /** A duration as it ticks: "42 s", "4 min 07 s", "1 h 05 min". */
  function dur(ms) {
    const s = Math.max(0, Math.floor(ms / 1000));
    if (s < 60) return s + " s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + " min " + pad(s % 60) + " s";
    return Math.floor(m / 60) + " h " + pad(m % 60) + " min";
  }
  /** host + path of a URL, for a compact line; the text itself if it is not a URL. */
  function shortUrl(u) {
    try {
      const x = new URL(u);
      return x.host + (x.pathname === "/" ? "" : x.pathname) + x.search + x.hash;
    } catch (e) {
      return u || "";
    }
  }
  /** The path (and query) of a URL: pages of one site, told apart. */
  function pathOf(u) {
    try {
      const x = new URL(u);
      return x.pathname + x.search + x.hash;
    } catch (e) {
      return u || "";
    }
  }
  function hostOf(u) {
    try {
      return new URL(u).host || u;
    } catch (e) {
      return u || "";
    }
  }
  function browserOf(ua) {
    if (!ua) return "\u2014";
    const B = [
      ["Edge", /Edg(?:e|A|iOS)?\/(\d+)/],
      ["Opera", /OPR\/(\d+)/],
      ["Samsung Internet", /SamsungBrowser\/(\d+)/],
      ["Firefox", /(?:Firefox|FxiOS)\/(\d+)/],
      ["Chrome", /(?:HeadlessChrome|Chrome|CriOS)\/(\d+)/],
      ["Safari", /Version\/(\d+)[^ ]* (?:Mobile\/\S+ )?Safari/],
    ];
    const O = [
      ["iOS", /iPhone|iPad|iPod/],
      ["Android", /Android/],
      ["Windows", /Windows/],
      ["ChromeOS", /CrOS/],
      ["macOS", /Mac OS X|Macintosh/],
      ["Linux", /Linux/],
    ];
    let b = null;
    for (const [n, re] of B) {
      const m = re.exec(ua);
      if (m) {
        b = n + " " + m[1];
        break;
      }
    }
    const o = O.find(([, re]) => re.test(ua));
    if (!b) return ua.length > 60 ? ua.slice(0, 60) + "\u2026" : ua;
    return b + (o ? " on " + o[0] : "");
  }
  // -- the monitor's vocabulary ----------------------------------------------------------------

  const ROW_H = 60; // px: every monitor row has the same height (the list is virtual)
  const STATE_LABEL = {
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
  const INV_LABEL = {
    pending: "invitation pending",
    accepted: "accepted the invitation",
    declined: "declined the invitation",
    expired: "invitation expired",
  };
  const INVITE_ERRORS = {
    visitor_left: "This visitor has left the site.",
    visitor_chatting: "This visitor is already in a chat.",
    status_not_online: "Set your status to Online to invite visitors.",
    rate_limited: "Too many invitations in a short time. Please wait a moment.",
    disconnected: "Not connected \u2014 try again in a moment.",
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
  const chatsText = (n) => (n === 1 ? "1 chat before" : n + " chats before");
  const hms = (ts) =>
    new Date(ts).toLocaleTimeString([], {
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hour12: false,
    });
  /** Where a visitor came from: search keywords, the referring site, or "Direct". */
  function sourceOf(r, long) {
    if (r.search_terms)
      return [
        long ? h("span", { class: "kw", text: "Search" }) : icon(I.search, "kw-icon"),
        (long ? " " : "") + "\u201c" + r.search_terms + "\u201d",
        long && r.referrer ? h("div", {}, extLink(r.referrer)) : null,
      ].filter(Boolean);
    if (r.referrer) return [long ? extLink(r.referrer) : hostOf(r.referrer)];
    return [h("span", { class: "muted", text: "Direct" })];
  }
  /** An invitation rule's conditions in words. */
  function ruleText(c) {
    const out = [];
    if (c.url_contains) out.push("page URL contains \u201c" + c.url_contains + "\u201d");
    if (c.referrer_contains) out.push("came from \u201c" + c.referrer_contains + "\u201d");
    if (c.min_pages) out.push("at least " + c.min_pages + (c.min_pages === 1 ? " page" : " pages"));
    if (c.min_time_on_page) out.push(c.min_time_on_page + " s on the page");
    if (c.min_time_on_site) out.push(c.min_time_on_site + " s on the site");
    if (c.returning === true) out.push("returning visitors");
    if (c.returning === false) out.push("new visitors");
    return out.length ? out.join(" \u00b7 ") : "Every visitor";
  }

  const cid = () => Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  const store = {
    get(k) {
      try {
        return JSON.parse(localStorage.getItem("cutelive.console." + k));
      } catch (e) {
        return null;
      }
    },
    set(k, v) {
      try {
        localStorage.setItem("cutelive.console." + k, JSON.stringify(v));
      } catch (e) {
        /* storage full or blocked */
      }
    },
  };

  // -- the API ----------------------------------------------------------------------------------

  let xsrf = "";
  async function api(method, path, body) {
    const opts = { method, credentials: "same-origin", cache: "no-store", headers: {} };
    if (method !== "GET") {
      opts.headers["X-XSRFToken"] = xsrf;
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body || {});
    }
    let r;
    try {
      r = await fetch(BASE + path, opts);
    } catch (e) {
      throw { error: "network", message: "Cannot reach the server. Check your connection." };
    }
    let j = null;
    try {
      j = await r.json();
    } catch (e) {
      /* not JSON */
    }
    if (!r.ok) {
      const err = Object.assign(
        {
          status: r.status,
          error: "http_" + r.status,
          message: "The server answered " + r.status + ".",
        },
        j || {},
      );
      if (err.error === "not_authenticated" && path !== "/api/console/session")
        sessionLost("Your session has ended. Please sign in again.");
      throw err;
    }
    return j;
  }

  function toast(text, kind) {
    let box = d.querySelector(".toasts");
    if (!box) d.body.append((box = h("div", { class: "toasts", role: "status" })));
    const t = h("div", { class: "toast " + (kind || ""), text });
    box.append(t);
    setTimeout(() => t.classList.add("out"), 4200);
    setTimeout(() => t.remove(), 4600);
  }

  // -- boot: setup, login or the console --------------------------------------------------------

  async function boot(message) {
    let s;
    try {
      s = await api("GET", "/api/console/session");
    } catch (e) {
      put(
        app,
        h(
          "div",
          { class: "auth" },
          h(
            "div",
            { class: "auth-card" },
            brand(),
            h("p", { class: "form-error", text: e.message || "Cannot reach the server." }),
            h("button", { class: "btn primary", text: "Try again", onclick: () => boot() }),
          ),
        ),
      );
      return;
    }
    xsrf = s.xsrf;
    if (s.operator) return startConsole(s.operator, s);
    if (s.setup_required) return showSetup();
    showLogin(message);
  }

  function brand() {
    return h(
      "div",
      { class: "brand" },
      h("span", { class: "brand-mark" }, icon(I.chat)),
      h("span", { class: "brand-name", text: "Cute Live Support" }),
    );
  }

  function field(label, input, hint) {
    return h(
      "label",
      { class: "field" },
      h("span", { class: "field-label", text: label }),
      input,
      hint ? h("span", { class: "field-hint", text: hint }) : null,
    );
  }

  function authScreen(title, sub, fields, button, onsubmit, message) {
    const err = h("p", { class: "form-error", role: "alert", text: message || "" });
    const btn = h("button", { type: "submit", class: "btn primary block", text: button });
    const form = h(
      "form",
      {
        class: "auth-card",
        onsubmit: async (e) => {
          e.preventDefault();
          err.textContent = "";
          btn.disabled = true;
          try {
            await onsubmit(err);
          } catch (x) {
            err.textContent = x.message || String(x);
          } finally {
            btn.disabled = false;
          }
        },
      },
      brand(),
      h("h1", { class: "auth-title", text: title }),
      sub ? h("p", { class: "auth-sub", text: sub }) : null,
      fields,
      err,
      btn,
    );
    put(app, h("div", { class: "auth" }, form));
    const first = form.querySelector("input");
    if (first) first.focus();
  }

  function showSetup() {
    const token = h("input", {
      name: "setup_token",
      autocomplete: "off",
      required: true,
      spellcheck: "false",
    });
    const user = h("input", {
      name: "username",
      autocomplete: "username",
      required: true,
      pattern: "[a-z0-9._\\-]{1,64}",
      maxlength: 64,
    });
    const name = h("input", {
      name: "display_name",
      autocomplete: "name",
      required: true,
      maxlength: 100,
    });
    const pw = h("input", {
      name: "password",
      type: "password",
      autocomplete: "new-password",
      required: true,
      minlength: 8,
    });
    const pw2 = h("input", {
      name: "password2",
      type: "password",
      autocomplete: "new-password",
      required: true,
      minlength: 8,
    });
    authScreen(
      "Create the first administrator",
      "Welcome! Copy the setup token from the server log (the line that says \u201csetup token\u201d), then choose your account.",
      [
        field("Setup token", token),
        field("Username", user, "Lower-case letters, digits, dot, dash, underscore."),
        field("Display name", name, "Visitors see this name."),
        field("Password", pw, "At least 8 characters."),
        field("Repeat password", pw2),
      ],
      "Create administrator",
      async () => {
        if (pw.value !== pw2.value) throw { message: "The passwords do not match." };
        const r = await api("POST", "/api/console/setup", {
          setup_token: token.value.trim(),
          username: user.value.trim(),
          display_name: name.value.trim(),
          password: pw.value,
        }).catch((e) => {
          throw {
            message:
              e.error === "bad_setup_token"
                ? "That setup token is not right. Copy it again from the server log."
                : e.error === "setup_done"
                  ? "An administrator already exists. Please sign in."
                  : e.message,
          };
        });
        const s = await api("GET", "/api/console/session");
        xsrf = s.xsrf;
        startConsole(r.operator || s.operator, s);
      },
    );
  }

  function showLogin(message) {
    const user = h("input", {
      name: "username",
      autocomplete: "username",
      required: true,
      autocapitalize: "none",
      spellcheck: "false",
    });
    const pw = h("input", {
      name: "password",
      type: "password",
      autocomplete: "current-password",
      required: true,
    });
    authScreen(
      "Sign in",
      "Operators and administrators sign in here.",
      [field("Username", user), field("Password", pw)],
      "Sign in",
      async () => {
        const r = await api("POST", "/api/console/login", {
          username: user.value.trim(),
          password: pw.value,
        }).catch((e) => {
          pw.value = "";
          throw {
            message:
              e.error === "login_failed"
                ? "Wrong username or password."
                : e.error === "login_throttled"
                  ? "Too many attempts. Try again in " +
                    Math.ceil((e.retry_after || 60) / 60) +
                    " min."
                  : e.message,
          };
        });
        const s = await api("GET", "/api/console/session");
        xsrf = s.xsrf;
        startConsole(r.operator || s.operator, s);
      },
      message,
    );
  }

  let C = null; // the running console

  function sessionLost(message) {
    if (!C) return;
    C.stop();
    C = null;
    stopTitle();
    showLogin(message);
  }

  // -- alerts: sound (WebAudio), desktop notification, flashing title ---------------------------

  const alerts = {
    wanted: store.get("alerts") === true,
    ctx: null,
    get armed() {
      return !!(this.ctx && this.ctx.state === "running");
    },
    arm() {
      try {
        const AC = w.AudioContext || w.webkitAudioContext;
        if (!this.ctx && AC) this.ctx = new AC();
        if (this.ctx && this.ctx.state !== "running")
          this.ctx.resume().then(() => C && C.renderAlerts());
      } catch (e) {
        /* no audio */
      }
      if ("Notification" in w && Notification.permission === "default") {
        Notification.requestPermission().then(() => C && C.renderAlerts());
      }
      this.wanted = true;
      store.set("alerts", true);
      if (C) C.renderAlerts();
    },
    beep(soft) {
      const ctx = this.ctx;
      if (!ctx || ctx.state !== "running") return;
      const t0 = ctx.currentTime + 0.01;
      const notes = soft
        ? [[660, 0]]
        : [
            [880, 0],
            [1320, 0.16],
          ];
      for (const [f, at] of notes) {
        const o = ctx.createOscillator();
        const g = ctx.createGain();
        o.type = "sine";
        o.frequency.value = f;
        g.gain.setValueAtTime(0.0001, t0 + at);
        g.gain.exponentialRampToValueAtTime(soft ? 0.12 : 0.25, t0 + at + 0.02);
        g.gain.exponentialRampToValueAtTime(0.0001, t0 + at + 0.14);
        o.connect(g).connect(ctx.destination);
        o.start(t0 + at);
        o.stop(t0 + at + 0.16);
      }
    },
    notify(title, body, tag, onclick) {
      if (!("Notification" in w) || Notification.permission !== "granted" || d.hasFocus()) return;
      try {
        const n = new Notification(title, { body, tag, silent: true });
        n.onclick = () => {
          w.focus();
          if (onclick) onclick();
          n.close();
        };
      } catch (e) {
        /* some platforms only allow notifications from a service worker */
      }
    },
  };
  // Browsers allow sound only after an interaction: arm on the first one if alerts were wanted.
  const armOnGesture = () => alerts.wanted && !alerts.armed && alerts.arm();
  d.addEventListener("pointerdown", armOnGesture, true);
  d.addEventListener("keydown", armOnGesture, true);

  const baseTitle = "Console \u2014 Cute Live Support";
  let titleTimer = null;
  function flashTitle(text) {
    if (titleTimer) clearInterval(titleTimer);
    let on = false;
    titleTimer = setInterval(() => {
      on = !on;
      d.title = on ? text : baseTitle;
    }, 1000);
    d.title = text;
  }
  function stopTitle() {
    if (titleTimer) clearInterval(titleTimer);
    titleTimer = null;
    d.title = baseTitle;
  }

  // -- the console --------------------------------------------------------------------------------

  function startConsole(me, session) {
    if (C) C.stop();
    C = new Console(me, session);
  }

  class Console {
    constructor(me, session) {
      this.me = me;
      this.publicUrl = (session && session.public_url) || BASE;
      this.key = "op" + me.id;
      const saved = store.get(this.key) || {};
      this.tabs = []; // chat ids, in tab order
      this.chats = {}; // id -> {id, summary, events, seen, typing, outbox, draft, loaded}
      this.queue = [];
      this.queueKnown = null;
      this.team = [];
      this.inbox = [];
      // The live traffic monitor ("Visitors"): the view operators open first.
      this.view = saved.view && saved.view.kind !== "chat" ? saved.view : { kind: "visitors" };
      this.vis = new Map(); // visitor id -> monitor row (docs/PROTOCOL.md §7.5)
      this.visKnown = false;
      this.mon = Object.assign(
        { key: "time", dir: 1, q: "", state: "", ret: "" },
        saved.mon || {},
        { list: [], dirty: true, detail: null },
      );
      this.conn = "connecting";
      this.timers = [];
      for (const t of saved.tabs || []) {
        const c = this.chat(t.id);
        c.seen = t.seen || 0;
        c.outbox = (t.outbox || []).filter((m) => !m.acked);
        this.tabs.push(t.id);
      }
      if (saved.view && saved.view.kind === "chat" && this.tabs.includes(saved.view.id))
        this.view = saved.view;
      this.build();
      this.stream = new Stream({
        base: BASE,
        role: "operator",
        headers: () => ({ "X-XSRFToken": xsrf }),
        onState: (s, mode) => {
          this.conn = s;
          this.transport = mode;
          this.renderConn();
        },
        onWelcome: (ev) => this.welcome(ev),
        onEvent: (ev) => this.event(ev),
        onFatal: () => sessionLost("Your session has ended. Please sign in again."),
      });
      // Replay every open tab's whole transcript (cursor 0): no message is lost across a reload.
      for (const id of this.tabs) this.stream.cursors[id] = 0;
      this.stream.start();
      this.loadInbox();
      this.timers.push(setInterval(() => this.tick(), 1000));
      this.timers.push(setInterval(() => this.loadInbox(), 60000));
      this.onVis = () => {
        this.stream.kick();
        if (!d.hidden) this.markSeen();
        this.updateTitle();
      };
      d.addEventListener("visibilitychange", this.onVis);
      this.onKey = (e) => {
        if (e.key === "Escape" && this.mon.detail && !d.querySelector("dialog[open]"))
          this.closeDetail();
      };
      d.addEventListener("keydown", this.onKey);
      w.addEventListener("focus", this.onVis);
      w.addEventListener("online", this.onVis);
      this.render();
    }

    stop() {
      this.stream.stop();
      cancelAnimationFrame(this.monRaf);
      d.removeEventListener("keydown", this.onKey);
      for (const t of this.timers) clearInterval(t);
      d.removeEventListener("visibilitychange", this.onVis);
      w.removeEventListener("focus", this.onVis);
      w.removeEventListener("online", this.onVis);
    }

    save() {
      store.set(this.key, {
        tabs: this.tabs.map((id) => {
          const c = this.chats[id];
          return { id, seen: c.seen, outbox: c.outbox.length ? c.outbox : undefined };
        }),
        view: this.view,
        mon: { key: this.mon.key, dir: this.mon.dir, state: this.mon.state, ret: this.mon.ret },
      });
    }

    chat(id) {
      id = Number(id);
      return (this.chats[id] = this.chats[id] || {
        id,
        summary: null,
        events: [],
        seen: 0,
        typing: false,
        outbox: [],
        draft: "",
      });
    }

    // -- stream events --

    welcome(ev) {
      if (ev.operator) {
        this.me = ev.operator;
        this.renderTop();
      }
      for (const s of ev.chats || []) {
        const c = this.chat(s.id);
        c.summary = Object.assign(c.summary || {}, s);
        if (
          s.operator &&
          s.operator.id === this.me.id &&
          (s.status === "active" || s.status === "closed")
        )
          this.openTab(s.id, false);
      }
      this.render();
      for (const id of this.tabs) this.flush(this.chats[id]);
    }

    event(ev) {
      switch (ev.type) {
        case "queue":
          return this.setQueue(ev.chats || []);
        case "visitors":
          this.vis = new Map();
          for (const r of ev.visitors || []) this.vis.set(r.id, r);
          this.visKnown = true;
          this.monChanged();
          return this.monFrame(); // the first view at once, not a frame later
        case "visitors_changed":
          for (const r of ev.visitors || []) this.vis.set(r.id, r);
          for (const id of ev.gone || []) this.vis.delete(id);
          return this.monChanged(ev.visitors || []);
        case "offline_message":
          if (ev.message && !this.inbox.some((m) => m.id === ev.message.id)) {
            this.inbox.unshift(ev.message);
            alerts.beep(true);
            alerts.notify(
              "Message from " + (ev.message.name || "a visitor"),
              (ev.message.text || "").slice(0, 140),
              "cutelive-inbox-" + ev.message.id,
              () => this.show({ kind: "inbox" }),
            );
            this.renderNav();
            if (this.view.kind === "inbox") this.renderInbox();
          }
          return;
        case "operators": {
          this.team = ev.operators || [];
          // My own status may have changed in another console window.
          const mine = this.team.find((o) => o.id === this.me.id);
          const status = mine ? mine.status : "offline";
          if (status !== this.me.status && !this.settingStatus) {
            this.me.status = status;
            this.renderTop();
            this.renderQueue();
            if (this.view.kind === "home") this.renderHome();
          }
          return this.renderTeam();
        }
        case "typing": {
          if (ev.from !== "visitor") return;
          const c = this.chats[ev.chat_id];
          if (!c) return;
          clearTimeout(c.typingTimer);
          c.typing = !!ev.typing;
          if (c.typing)
            c.typingTimer = setTimeout(
              () => ((c.typing = false), this.renderTyping(c)),
              (ev.expires_in || 6) * 1000,
            );
          return this.renderTyping(c);
        }
        case "reset":
          return this.reload(ev.chat_id);
        case "session_ended":
          return sessionLost(
            ev.reason === "disabled"
              ? "Your account was disabled."
              : ev.reason === "password_changed"
                ? "Your password was changed. Please sign in again."
                : "You were signed out.",
          );
        case "error":
          return;
      }
      if (ev.chat_id == null || ev.seq == null) return;
      const c = this.chat(ev.chat_id);
      this.apply(c, ev);
      const inv = ev.type === "chat_started" && ev.invitation;
      if (inv && inv.operator && inv.operator.id === this.me.id && !this.tabs.includes(c.id)) {
        // The visitor accepted my invitation, and the chat is mine already (its events reach
        // only the operator it is assigned to). Bring it to the front unless I am in a chat.
        toast("A visitor accepted your invitation.", "ok");
        alerts.beep(false);
        this.openTab(c.id, this.view.kind !== "chat");
        this.loadSummary(c);
      }
      if (!this.tabs.includes(c.id)) this.openTab(c.id, false);
      if (this.view.kind === "chat" && this.view.id === c.id) this.appendEvent(c, ev);
      else this.renderTabs();
      if (this.view.kind === "chat" && this.view.id === c.id) {
        this.markSeen();
        this.renderChatHead(c);
        this.renderSide(c);
        this.renderCompose(c);
      }
      if (
        ev.type === "message" &&
        ev.from === "visitor" &&
        this.live &&
        (d.hidden || !this.isViewing(c))
      ) {
        alerts.beep(true);
        const name = (c.summary && c.summary.name) || "Visitor";
        alerts.notify(name + " wrote", ev.text.slice(0, 140), "cutelive-msg-" + c.id, () =>
          this.show({ kind: "chat", id: c.id }),
        );
      }
      if (ev.type === "chat_missed") this.loadInbox();
      this.updateTitle();
      this.save();
    }

    apply(c, ev) {
      c.events.push(ev);
      const s = (c.summary = c.summary || { id: c.id, status: "waiting" });
      switch (ev.type) {
        case "chat_started":
          Object.assign(s, {
            name: ev.name,
            email: ev.email,
            page_url: ev.page_url,
            page_title: ev.page_title,
            created_at: ev.ts,
          });
          if (!s.status) s.status = "waiting";
          break;
        case "message":
          if (ev.from === "visitor") {
            c.typing = false;
            clearTimeout(c.typingTimer);
          }
          c.outbox = c.outbox.filter((m) => m.client_id !== ev.client_id);
          break;
        case "chat_accepted":
          Object.assign(s, { status: "active", operator: ev.operator, accepted_at: ev.ts });
          break;
        case "chat_requeued":
          Object.assign(s, { status: "waiting", operator: null });
          break;
        case "chat_missed":
          s.status = "missed";
          break;
        case "chat_closed":
          Object.assign(s, { status: "closed", closed_at: ev.ts });
          c.typing = false;
          break;
      }
      s.last_seq = ev.seq;
    }

    async reload(id) {
      const c = this.chat(id);
      c.events = [];
      try {
        const j = await api("GET", "/api/console/chats/" + id);
        c.summary = j.chat;
        for (const ev of j.events) {
          if (ev.seq === (this.stream.cursors[id] || 0) + 1) {
            this.stream.cursors[id] = ev.seq;
            this.apply(c, ev);
          }
        }
        c.summary = Object.assign(c.summary, j.chat);
      } catch (e) {
        if (e.status === 404) {
          this.closeTab(id);
          return;
        }
      }
      if (this.view.kind === "chat" && this.view.id === id) this.renderView();
      this.renderTabs();
    }

    /** The chat's summary with what events do not carry (browser, IP, visitor id). */
    async loadSummary(c) {
      try {
        const j = await api("GET", "/api/console/chats/" + c.id);
        c.summary = Object.assign(c.summary || {}, j.chat, { status: c.summary.status });
      } catch (e) {
        return;
      }
      if (this.view.kind === "chat" && this.view.id === c.id) this.renderSide(c);
    }

    setQueue(list) {
      const before = this.queueKnown;
      this.queue = list;
      this.queueKnown = new Set(list.map((c) => c.id));
      for (const s of list) {
        const c = this.chats[s.id];
        if (c) c.summary = Object.assign(c.summary || {}, s);
      }
      const fresh = before ? list.filter((s) => !before.has(s.id)) : [];
      if (fresh.length && this.me.status !== "offline") {
        alerts.beep(false);
        const s = fresh[0];
        alerts.notify(
          "New chat: " + (s.name || "Visitor"),
          (s.first_message || "").slice(0, 140),
          "cutelive-chat-" + s.id,
          () => this.show({ kind: "home" }),
        );
      }
      this.renderQueue();
      this.updateTitle();
    }

    get live() {
      return this.conn === "connected";
    }

    isViewing(c) {
      return !d.hidden && this.view.kind === "chat" && this.view.id === c.id;
    }

    unread(c) {
      let n = 0;
      for (const e of c.events)
        if (e.type === "message" && e.from === "visitor" && e.seq > c.seen) n++;
      return n;
    }

    markSeen() {
      if (d.hidden || this.view.kind !== "chat") return;
      const c = this.chats[this.view.id];
      if (!c || !c.events.length) return;
      const last = c.events[c.events.length - 1].seq;
      if (c.seen !== last) {
        c.seen = last;
        this.save();
        this.renderTabs();
      }
    }

    updateTitle() {
      const waiting = this.queue.length;
      let unread = 0;
      for (const id of this.tabs) unread += this.unread(this.chats[id]);
      const away = d.hidden || !d.hasFocus();
      if (waiting && away)
        flashTitle("(" + waiting + ") New chat \u2014 " + (this.queue[0].name || "Visitor"));
      else if (unread && away) flashTitle("(" + unread + ") New message");
      else stopTitle();
    }

    tick() {
      for (const el of d.querySelectorAll("[data-since]"))
        el.textContent = ago(Number(el.getAttribute("data-since")));
      const now = Date.now();
      for (const el of d.querySelectorAll("[data-dur]"))
        el.textContent = dur(now - Number(el.getAttribute("data-dur")));
    }

    // -- commands --

    async setStatus(status) {
      this.settingStatus = true;
      try {
        const ack = await this.stream.send({ type: "status", status });
        this.me.status = ack.status || status;
      } catch (e) {
        toast(
          e.error === "disconnected"
            ? "Not connected \u2014 try again in a moment."
            : e.message || "Could not change the status.",
          "error",
        );
      }
      this.settingStatus = false;
      this.renderTop();
      this.renderQueue();
      if (this.view.kind === "home") this.renderHome();
    }

    async accept(id, btn) {
      if (btn) btn.disabled = true;
      try {
        const ack = await this.stream.send({ type: "accept", chat_id: id });
        const c = this.chat(ack.chat ? ack.chat.id : id);
        c.summary = Object.assign(c.summary || {}, ack.chat || {});
        this.openTab(c.id, true);
      } catch (e) {
        if (btn) btn.disabled = false;
        toast(
          e.error === "chat_taken"
            ? "Another operator already took this chat."
            : e.error === "status_not_online"
              ? "Set your status to Online to accept chats."
              : e.error === "disconnected"
                ? "Not connected \u2014 try again in a moment."
                : e.message || "Could not accept the chat.",
          "error",
        );
      }
    }

    send(c, text) {
      c.outbox.push({ client_id: cid(), text });
      this.save();
      this.renderPending(c);
      this.flush(c);
    }

    async flush(c) {
      if (!c || c.flushing || !this.live) return;
      c.flushing = true;
      try {
        for (const m of c.outbox.slice()) {
          if (m.acked || m.failed) continue;
          try {
            await this.stream.send({
              type: "message",
              chat_id: c.id,
              text: m.text,
              client_id: m.client_id,
            });
            m.acked = true;
          } catch (e) {
            if (e.error === "disconnected" || e.error === "timeout") break;
            if (e.error === "rate_limited") {
              setTimeout(() => this.flush(c), (e.retry_after || 3) * 1000);
              break;
            }
            m.failed =
              e.error === "chat_closed"
                ? "Not delivered: the chat is closed"
                : "Not delivered: " + (e.message || e.error);
          }
        }
      } finally {
        c.flushing = false;
        this.save();
        if (this.view.kind === "chat" && this.view.id === c.id) this.renderPending(c);
      }
    }

    async closeChat(c) {
      try {
        await this.stream.send({ type: "close", chat_id: c.id });
      } catch (e) {
        toast(e.message || "Could not end the chat.", "error");
      }
    }

    typing(c, input) {
      if (!this.live || !c.summary || c.summary.status !== "active") return;
      const has = input.value.trim() !== "";
      const now = Date.now();
      if (has && (!c.typingOn || now - c.typingAt >= 3000)) {
        c.typingOn = true;
        c.typingAt = now;
        this.stream.send({ type: "typing", chat_id: c.id, typing: true }).catch(() => {});
      } else if (!has && c.typingOn) {
        c.typingOn = false;
        this.stream.send({ type: "typing", chat_id: c.id, typing: false }).catch(() => {});
      }
    }

    openTab(id, activate) {
      id = Number(id);
      const c = this.chat(id);
      if (!this.tabs.includes(id)) {
        this.tabs.push(id);
        if (!(id in this.stream.cursors)) this.stream.cursors[id] = this.stream.cursors[id] || 0;
      }
      if (activate) this.show({ kind: "chat", id });
      else this.renderTabs();
      this.save();
      return c;
    }

    async openTranscript(id) {
      const c = this.chat(id);
      if (!this.tabs.includes(c.id)) {
        this.tabs.push(c.id);
        if (!c.events.length) {
          this.stream.cursors[c.id] = 0;
          await this.reload(c.id);
          c.seen = c.events.length ? c.events[c.events.length - 1].seq : 0;
        }
      }
      this.show({ kind: "chat", id: c.id });
      this.save();
    }

    closeTab(id) {
      const i = this.tabs.indexOf(id);
      if (i < 0) return;
      this.tabs.splice(i, 1);
      delete this.stream.cursors[id];
      if (this.view.kind === "chat" && this.view.id === id) {
        const next = this.tabs[Math.min(i, this.tabs.length - 1)];
        this.show(next != null ? { kind: "chat", id: next } : { kind: "home" });
      } else this.renderTabs();
      this.save();
    }

    show(view) {
      this.view = view;
      this.save();
      this.renderNav();
      this.renderTabs();
      this.renderView();
      this.markSeen();
      this.updateTitle();
    }

    // -- inbox --

    async loadInbox() {
      try {
        const j = await api("GET", "/api/console/offline-messages");
        this.inbox = j.messages || [];
      } catch (e) {
        return;
      }
      this.renderNav();
      if (this.view.kind === "inbox") this.renderView();
    }

    // -- rendering: the frame --

    build() {
      this.el = {};
      const e = this.el;
      e.status = h("div", {
        class: "status-switch",
        role: "radiogroup",
        "aria-label": "Your status",
      });
      e.alerts = h("button", { type: "button", class: "alerts-btn", onclick: () => alerts.arm() });
      e.conn = h("div", { class: "conn" });
      e.me = h("div", { class: "me" });
      e.top = h(
        "header",
        { class: "topbar" },
        brand(),
        e.status,
        h("div", { class: "spacer" }),
        e.conn,
        e.alerts,
        e.me,
      );
      e.queueCount = h("span", { class: "count" });
      e.queue = h("div", { class: "queue" });
      e.nav = h("nav", { class: "nav" });
      e.team = h("div", { class: "team" });
      e.side = h(
        "aside",
        { class: "sidebar" },
        h("div", { class: "side-title" }, h("span", { text: "Waiting" }), e.queueCount),
        e.queue,
        e.nav,
        e.team,
      );
      e.tabs = h("div", { class: "tabs", role: "tablist" });
      e.view = h("section", { class: "view" });
      e.main = h("main", { class: "main" }, e.tabs, e.view);
      put(app, h("div", { class: "shell" }, e.top, h("div", { class: "layout" }, e.side, e.main)));
    }

    render() {
      this.renderTop();
      this.renderQueue();
      this.renderNav();
      this.renderTeam();
      this.renderTabs();
      this.renderView();
    }

    renderConn() {
      const e = this.el.conn;
      e.className = "conn " + this.conn;
      put(
        e,
        h("span", { class: "dot" }),
        this.conn === "connected"
          ? this.transport === "poll"
            ? "Connected (long-poll)"
            : "Connected"
          : this.conn === "connecting"
            ? "Connecting\u2026"
            : "Reconnecting\u2026",
      );
      if (this.conn === "connected") for (const id of this.tabs) this.flush(this.chats[id]);
    }

    renderAlerts() {
      const e = this.el.alerts;
      const armed = alerts.armed;
      const perm = "Notification" in w ? Notification.permission : "unsupported";
      e.className = "alerts-btn " + (armed ? "armed" : "off");
      put(e, icon(armed ? I.bell : I.bellOff), armed ? "Alerts on" : "Enable alerts");
      e.title = armed
        ? "Sound is on" +
          (perm === "granted"
            ? " and desktop notifications are allowed."
            : perm === "denied"
              ? "; desktop notifications are blocked in the browser settings."
              : ".")
        : "Browsers block sound until you click: click to hear new chats and get desktop notifications.";
      e.setAttribute("aria-pressed", armed ? "true" : "false");
      if (
        this.view.kind === "home" &&
        this.el.view.querySelector(".home") &&
        this.homeArmed !== armed
      )
        this.renderHome();
      this.homeArmed = armed;
    }

    renderTop() {
      const cur = this.me.status || "offline";
      this.mon.force = true; // Invite buttons depend on my status
      this.monSchedule();
      put(
        this.el.status,
        ...["online", "away", "offline"].map((s) =>
          h("button", {
            type: "button",
            role: "radio",
            class: "status-opt " + s + (cur === s ? " on" : ""),
            "aria-checked": cur === s ? "true" : "false",
            "data-status": s,
            title:
              s === "offline"
                ? "Offline returns your open chats to the queue"
                : s === "away"
                  ? "Away: keep your chats, receive no new ones"
                  : "Online: take new chats",
            text: s[0].toUpperCase() + s.slice(1),
            onclick: () => s !== this.me.status && this.setStatus(s),
          }),
        ),
      );
      this.renderConn();
      this.renderAlerts();
      const menu = h(
        "div",
        { class: "menu" },
        h(
          "button",
          { type: "button", class: "menu-item", onclick: () => this.passwordDialog() },
          icon(I.key),
          "Change password",
        ),
        h(
          "button",
          { type: "button", class: "menu-item logout", onclick: () => this.logout() },
          icon(I.logout),
          "Sign out",
        ),
      );
      put(
        this.el.me,
        h(
          "details",
          { class: "me-menu" },
          h(
            "summary",
            {},
            h("span", {
              class: "avatar",
              text: (this.me.display_name || "?").charAt(0).toUpperCase(),
            }),
            h("span", { class: "me-name", text: this.me.display_name || this.me.username }),
          ),
          menu,
        ),
      );
    }

    renderQueue() {
      this.el.queueCount.textContent = String(this.queue.length);
      this.el.queueCount.classList.toggle("hot", this.queue.length > 0);
      const online = this.me.status === "online";
      if (!this.queue.length) {
        put(this.el.queue, h("p", { class: "empty-small", text: "No one is waiting." }));
        return;
      }
      put(
        this.el.queue,
        ...this.queue.map((s) =>
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
              ? h("p", {
                  class: "qpage",
                  title: s.page_url || "",
                  text: s.page_title || s.page_url,
                })
              : null,
            h("button", {
              type: "button",
              class: "btn primary small accept",
              text: "Accept",
              disabled: !online,
              title: online ? "Take this chat" : "Set your status to Online to accept chats",
              onclick: (e) => this.accept(s.id, e.currentTarget),
            }),
          ),
        ),
      );
    }

    renderNav() {
      const unreadInbox = this.inbox.filter((m) => !m.read).length;
      const item = (kind, label, ic, count) =>
        h(
          "button",
          {
            type: "button",
            class: "nav-item" + (this.view.kind === kind ? " on" : ""),
            "data-nav": kind,
            onclick: () => this.show({ kind }),
          },
          icon(ic),
          h("span", { class: "nav-label", text: label }),
          count ? h("span", { class: "count hot", text: String(count) }) : null,
        );
      const visitors = item("visitors", "Visitors", I.globe);
      visitors.append((this.el.visCount = h("span", { class: "count vis-count" })));
      put(
        this.el.nav,
        visitors,
        item("home", "Chats", I.chat),
        item("inbox", "Inbox", I.inbox, unreadInbox),
        item("history", "History", I.history),
        this.me.is_admin ? item("operators", "Operators", I.users) : null,
        this.me.is_admin ? item("rules", "Invitation rules", I.zap) : null,
        this.me.is_admin ? item("widget", "Widget", I.brush) : null,
        item("embed", "Embed code", I.code),
      );
      this.renderVisCount();
    }

    renderTeam() {
      const others = this.team.filter((o) => o.id !== this.me.id);
      put(
        this.el.team,
        h("div", { class: "side-title small", text: "Team" }),
        others.length
          ? h(
              "ul",
              { class: "team-list" },
              ...others.map((o) =>
                h(
                  "li",
                  {},
                  h("span", { class: "sdot " + o.status }),
                  h("span", { text: o.display_name }),
                ),
              ),
            )
          : h("p", { class: "empty-small", text: "No other operators online." }),
      );
    }

    renderTabs() {
      const e = this.el.tabs;
      e.classList.toggle("empty", !this.tabs.length);
      put(
        e,
        ...this.tabs.map((id) => {
          const c = this.chats[id];
          const s = c.summary || {};
          const n = this.unread(c);
          const on = this.view.kind === "chat" && this.view.id === id;
          const mine = s.status === "active" && s.operator && s.operator.id === this.me.id;
          return h(
            "div",
            {
              class: "tab" + (on ? " on" : "") + (mine ? "" : " ended"),
              role: "tab",
              "aria-selected": on ? "true" : "false",
              "data-chat": id,
              onclick: () => this.show({ kind: "chat", id }),
            },
            h("span", {
              class:
                "sdot " +
                (s.status === "active" ? "online" : s.status === "waiting" ? "away" : "offline"),
            }),
            h("span", { class: "tab-name", text: s.name || "Chat #" + id }),
            c.typing
              ? h("span", { class: "tab-typing", title: "Typing\u2026" }, h("i"), h("i"), h("i"))
              : null,
            n ? h("span", { class: "badge unread", text: String(n) }) : null,
            !mine
              ? h(
                  "button",
                  {
                    type: "button",
                    class: "tab-close",
                    title: "Close tab",
                    "aria-label": "Close tab",
                    onclick: (ev) => {
                      ev.stopPropagation();
                      this.closeTab(id);
                    },
                  },
                  icon(I.x),
                )
              : null,
          );
        }),
      );
    }

    renderTyping(c) {
      this.renderTabs();
      if (this.view.kind === "chat" && this.view.id === c.id && this.el.typing) {
        const stick = this.nearBottom();
        this.el.typing.classList.toggle("hidden", !c.typing);
        this.el.typing.lastChild.textContent =
          ((c.summary && c.summary.name) || "The visitor") + " is typing\u2026";
        if (stick) this.toBottom();
      }
    }

    renderView() {
      const v = this.view;
      this.el.view.className = "view view-" + v.kind;
      this.mon.body = null; // the monitor's DOM, while it is the view
      if (v.kind === "chat" && this.chats[v.id]) return this.renderChat(this.chats[v.id]);
      if (v.kind === "visitors") return this.renderVisitors();
      if (v.kind === "rules" && this.me.is_admin) return this.renderRules();
      if (v.kind === "inbox") return this.renderInbox();
      if (v.kind === "history") return this.renderHistory();
      if (v.kind === "operators" && this.me.is_admin) return this.renderOperators();
      if (v.kind === "embed") return this.renderEmbed();
      if (v.kind === "widget" && this.me.is_admin) return this.renderWidget();
      this.renderHome();
    }

    renderHome() {
      this.homeArmed = alerts.armed;
      const online = this.me.status === "online";
      put(
        this.el.view,
        h(
          "div",
          { class: "home" },
          h("div", { class: "home-icon" }, icon(I.chat)),
          h("h2", { text: this.tabs.length ? "Pick a chat from the tabs above" : "No open chats" }),
          h("p", {
            text: online
              ? "New chats appear in the Waiting list on the left \u2014 press Accept to open one in its own tab."
              : "You are " + (this.me.status || "offline") + ". Switch to Online to receive chats.",
          }),
          !online
            ? h("button", {
                type: "button",
                class: "btn primary",
                text: "Go online",
                onclick: () => this.setStatus("online"),
              })
            : null,
          !alerts.armed
            ? h(
                "button",
                { type: "button", class: "btn ghost", onclick: () => alerts.arm() },
                icon(I.bell),
                "Enable alerts",
              )
            : null,
        ),
      );
    }

    // -- the live traffic monitor: "Visitors" (docs/PROTOCOL.md §7.5) --
    //
    // Rows live in this.vis (id -> row), seeded by `visitors` and updated by `visitors_changed`.
    // Drawing waits for the next animation frame, so a burst of updates costs one redraw, and
    // only the rows in sight exist in the DOM (a pool of row elements, moved and refilled as the
    // list scrolls): 10,000 visitors draw as fast as 10. Every field is the visitor's own text.

    monChanged(rows) {
      const m = this.mon;
      m.dirty = true;
      if (m.detail && (!rows || rows.some((r) => r.id === m.detail.id))) m.detail.rowChanged = true;
      this.monSchedule();
    }

    monSchedule() {
      if (this.monRaf || !this.mon) return;
      this.monRaf = requestAnimationFrame(() => {
        this.monRaf = 0;
        this.monFrame();
      });
    }

    onlineCount() {
      let n = 0;
      for (const r of this.vis.values()) if (r.state !== "left") n++;
      return n;
    }

    renderVisCount() {
      const n = (this.mon.online = this.onlineCount());
      const e = this.el && this.el.visCount;
      if (!e) return;
      e.textContent = n ? n.toLocaleString("en") : "";
      e.classList.toggle("hidden", !n);
    }

    monFrame() {
      const m = this.mon;
      if (m.dirty) this.renderVisCount(); // and m.online
      if (this.view.kind !== "visitors" || !m.body) return;
      if (m.dirty) {
        m.dirty = false;
        m.list = this.monList();
        m.force = true;
        m.body.style.height = m.list.length * ROW_H + "px";
        this.monHeader();
      }
      this.monRows();
      const det = m.detail;
      if (det && det.rowChanged) {
        det.rowChanged = false;
        this.renderDetailNow();
        const r = this.vis.get(det.id);
        if (r && det.data && (r.pages !== det.pages || r.visit_number !== det.visit))
          this.loadDetail();
      }
    }

    /** The rows that pass the filters, sorted (ties by id). */
    monList() {
      const m = this.mon;
      const q = m.q.trim().toLowerCase();
      const now = Date.now();
      const key = SORTS[m.key] || SORTS.time;
      const dir = m.dir;
      let out = [];
      if (!q && !m.state && !m.ret) out = Array.from(this.vis.values());
      else
        for (const r of this.vis.values()) {
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

    monHeader() {
      const m = this.mon;
      const online = m.online;
      m.count.setAttribute("data-count", String(online));
      put(
        m.count,
        h("span", { class: "live-dot" }),
        h("strong", { text: online.toLocaleString("en") }),
        " online",
      );
      const shown = m.list.length;
      m.shown.textContent =
        shown !== this.vis.size ? shown.toLocaleString("en") + " shown (filtered)" : "";
      for (const b of m.thead.querySelectorAll("[data-sort]")) {
        const on = b.getAttribute("data-sort") === m.key;
        b.classList.toggle("on", on);
        b.setAttribute("aria-sort", on ? (m.dir > 0 ? "ascending" : "descending") : "none");
        b.lastChild.textContent = on ? (m.dir > 0 ? "\u2191" : "\u2193") : "";
      }
      m.empty.classList.toggle("hidden", shown > 0);
      m.empty.lastChild.textContent = !this.visKnown
        ? "Connecting\u2026"
        : this.vis.size
          ? "No visitor matches these filters."
          : "Nobody is on the site right now. Visitors appear here the moment they open a page with the widget.";
    }

    /** Fill the rows in sight (plus a few above and below) from the pool. */
    monRows() {
      const m = this.mon;
      const top = m.scroll.scrollTop - m.body.offsetTop;
      const first = Math.max(0, Math.floor(top / ROW_H) - 4);
      const last = Math.min(m.list.length, Math.ceil((top + m.scroll.clientHeight) / ROW_H) + 4);
      while (m.pool.length < last - first) m.pool.push(this.monRowEl());
      const online = this.me.status === "online";
      const now = Date.now();
      m.pool.forEach((slot, i) => {
        const idx = first + i;
        if (idx >= last) {
          if (slot.r) {
            slot.r = null;
            slot.el.classList.add("hidden");
          }
          return;
        }
        if (m.force || slot.r !== m.list[idx] || slot.i !== idx)
          this.monFill(slot, m.list[idx], idx, online, now);
      });
      m.force = false;
    }

    monRowEl() {
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
      s.btn = h("button", { type: "button", class: "btn small" });
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
      this.mon.body.append(s.el);
      return s;
    }

    monFill(s, r, idx, online, now) {
      s.r = r;
      s.i = idx;
      const det = this.mon.detail;
      s.el.className =
        "mon-row st-" + r.state + (det && det.id === r.id ? " on" : "") + (idx % 2 ? " odd" : "");
      s.el.style.transform = "translateY(" + idx * ROW_H + "px)";
      s.el.setAttribute("data-visitor", r.id);
      s.who.textContent = "#" + r.id;
      if (r.visit_number > 1)
        put(
          s.ret,
          h("span", { class: "ret", text: "Returning" }),
          " visit " +
            r.visit_number +
            (r.previous_chats ? " \u00b7 " + chatsText(r.previous_chats) : ""),
        );
      else put(s.ret, "New visitor");
      // Current page: only an http(s) URL becomes a link.
      const href = safeHttp(r.url);
      s.page.textContent = r.title || r.url || "\u2014";
      if (href) s.page.setAttribute("href", href);
      else s.page.removeAttribute("href");
      s.page.title = r.url || "";
      s.url.textContent = shortUrl(r.url);
      s.url.title = r.url || "";
      put(s.src, ...sourceOf(r));
      s.src.title = r.referrer || "";
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
        s.onpage.firstChild.textContent = "this page ";
        s.since.setAttribute("data-since", r.page_since || r.started_at);
        s.since.textContent = ago(r.page_since || r.started_at);
      }
      s.dev.textContent = [r.browser, r.os].filter(Boolean).join(" \u00b7 ") || "Unknown browser";
      s.dev.title = s.dev.textContent + (r.device ? " \u00b7 " + r.device : "");
      s.ip.textContent = [r.device, r.ip, r.country].filter(Boolean).join(" \u00b7 ");
      s.pill.className = "pill st-" + r.state;
      s.pill.textContent = this.stateText(r);
      s.pill.title = s.pill.textContent;
      put(s.sub, ...this.subText(r));
      this.actButton(s.btn, r, online);
    }

    stateText(r) {
      if (r.state === "chatting") {
        const op = r.operator;
        return "Chatting with " + (op ? (op.id === this.me.id ? "you" : op.name) : "an operator");
      }
      return STATE_LABEL[r.state] || r.state;
    }

    /** The line under the state: open tabs and the answer to the last invitation. */
    subText(r) {
      const out = [];
      if (r.state !== "left" && r.tabs)
        out.push(h("span", { class: "tabs-n", text: r.tabs === 1 ? "1 tab" : r.tabs + " tabs" }));
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

    /** The row's (and the detail's) action: Invite, Invited (pending), Open chat, or none. */
    actButton(b, r, online) {
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

    monAct(act, id) {
      const r = this.vis.get(id);
      if (act === "invite") return this.inviteDialog(id);
      if (act === "chat" && r && r.chat_id) return this.openTranscript(r.chat_id);
    }

    monSort(key) {
      const m = this.mon;
      if (m.key === key) m.dir = -m.dir;
      else {
        m.key = key;
        m.dir = SORT_DIR[key] || 1;
      }
      m.dirty = true;
      this.save();
      this.monSchedule();
    }

    renderVisitors() {
      const m = this.mon;
      const search = h("input", {
        type: "search",
        class: "mon-q",
        name: "q",
        placeholder: "Filter by page title or URL\u2026",
        "aria-label": "Filter by current page",
        value: m.q,
      });
      search.addEventListener("input", () => {
        m.q = search.value;
        m.dirty = true;
        this.monSchedule();
      });
      const select = (name, label, opts) => {
        const sel = h(
          "select",
          { class: "select", name, "aria-label": label },
          ...opts.map(([v, l]) => h("option", { value: v, text: l })),
        );
        sel.value = m[name];
        sel.addEventListener("change", () => {
          m[name] = sel.value;
          m.dirty = true;
          this.monSchedule();
        });
        return sel;
      };
      m.count = h("div", { class: "mon-count", role: "status" });
      m.shown = h("span", { class: "muted small" });
      m.thead = h(
        "div",
        { class: "mon-head-row", role: "row" },
        ...COLUMNS.map(([key, label]) =>
          key
            ? h(
                "button",
                {
                  type: "button",
                  class: "mon-th",
                  role: "columnheader",
                  "data-sort": key,
                  title: "Sort by " + label.toLowerCase(),
                  onclick: () => this.monSort(key),
                },
                label,
                h("span", { class: "arrow" }),
              )
            : h("div", { class: "mon-th", role: "columnheader" }),
        ),
      );
      m.body = h("div", { class: "mon-body", role: "rowgroup" });
      m.empty = h("div", { class: "mon-empty hidden" }, icon(I.globe), h("p"));
      m.scroll = h(
        "div",
        { class: "mon-scroll", role: "table", "aria-label": "Visitors on the site" },
        m.thead,
        m.body,
        m.empty,
      );
      m.pool = [];
      m.scroll.addEventListener("scroll", () => this.monSchedule(), { passive: true });
      m.body.addEventListener("click", (e) => {
        const row = e.target.closest(".mon-row");
        if (!row) return;
        const id = Number(row.getAttribute("data-visitor"));
        const b = e.target.closest("button[data-act]");
        if (b) return this.monAct(b.getAttribute("data-act"), id);
        if (e.target.closest("a[href]")) return; // the page link opens the page
        this.openDetail(id);
      });
      m.body.addEventListener("keydown", (e) => {
        const row = e.target.closest(".mon-row");
        if (row && e.target === row && e.key === "Enter")
          this.openDetail(Number(row.getAttribute("data-visitor")));
      });
      m.drawer = h("aside", { class: "mon-detail hidden", "aria-label": "Visitor details" });
      put(
        this.el.view,
        h(
          "div",
          { class: "mon" },
          h(
            "div",
            { class: "mon-top" },
            h("div", { class: "mon-title" }, h("h2", { text: "Visitors" }), m.count, m.shown),
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
          m.drawer,
        ),
      );
      m.dirty = true;
      if (m.detail) this.renderDetail();
      this.monFrame();
    }

    // -- the monitor's detail panel: the visitor now, page trails, earlier visits, chats --

    openDetail(id) {
      const m = this.mon;
      m.detail = { id, data: null, pages: null, visit: null };
      m.force = true;
      this.renderDetail();
      this.monSchedule();
      this.loadDetail();
    }

    closeDetail() {
      const m = this.mon;
      m.detail = null;
      m.force = true;
      if (m.drawer) m.drawer.classList.add("hidden");
      this.monSchedule();
    }

    async loadDetail() {
      const det = this.mon.detail;
      if (!det) return;
      if (det.busy) {
        det.again = true;
        return;
      }
      det.busy = true;
      const r = this.vis.get(det.id);
      det.pages = r ? r.pages : det.pages;
      det.visit = r ? r.visit_number : det.visit;
      try {
        det.data = await api("GET", "/api/console/visitors/" + det.id);
        det.error = null;
      } catch (e) {
        det.error = e.message || "Could not load the visitor.";
      }
      det.busy = false;
      if (this.mon.detail !== det) return;
      if (det.again) {
        det.again = false;
        return this.loadDetail();
      }
      this.renderDetailHistory();
    }

    renderDetail() {
      const m = this.mon;
      const det = m.detail;
      if (!m.drawer || !det) return;
      m.drawer.classList.remove("hidden");
      m.dHead = h("div", { class: "det-head" });
      m.dNow = h("dl", { class: "det-now" });
      m.dHist = h("div", { class: "det-hist" });
      put(m.drawer, m.dHead, m.dNow, m.dHist);
      this.renderDetailNow();
      this.renderDetailHistory();
    }

    detailRow() {
      const det = this.mon.detail;
      return this.vis.get(det.id) || (det.data && det.data.visitor) || null;
    }

    renderDetailNow() {
      const m = this.mon;
      const det = m.detail;
      if (!det || !m.dNow) return;
      const r = this.detailRow();
      const btn = h("button", {
        type: "button",
        class: "btn small",
        onclick: (e) => {
          const act = e.currentTarget.getAttribute("data-act");
          if (act) this.monAct(act, det.id);
        },
      });
      if (r) this.actButton(btn, r, this.me.status === "online");
      put(
        m.dHead,
        h(
          "div",
          { class: "det-title" },
          h("h3", { text: "Visitor #" + det.id }),
          r ? h("span", { class: "pill st-" + r.state, text: this.stateText(r) }) : null,
        ),
        r ? btn : null,
        h(
          "button",
          {
            type: "button",
            class: "icon-btn det-close",
            title: "Close",
            "aria-label": "Close",
            onclick: () => this.closeDetail(),
          },
          icon(I.x),
        ),
      );
      if (!r) {
        put(
          m.dNow,
          h("p", { class: "muted", text: det.data ? "Not on the site now." : "Loading\u2026" }),
        );
        return;
      }
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
      put(
        m.dNow,
        kv("Current page", page),
        left
          ? kv("Left", when(r.left_at))
          : kv(
              "On this page for",
              h("span", { "data-since": r.page_since, text: ago(r.page_since) }),
            ),
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
        r.invitation
          ? kv(
              "Invitation",
              (INV_LABEL[r.invitation.state] || r.invitation.state) +
                (r.invitation.operator
                  ? " \u00b7 from " + r.invitation.operator.name
                  : " \u00b7 automatic"),
              r.invitation.message
                ? h("div", { class: "muted small", text: r.invitation.message })
                : null,
            )
          : null,
      );
    }

    renderDetailHistory() {
      const m = this.mon;
      const det = m.detail;
      if (!det || !m.dHist) return;
      if (det.error) return put(m.dHist, h("p", { class: "form-error", text: det.error }));
      const j = det.data;
      if (!j) return put(m.dHist, h("p", { class: "muted", text: "Loading the page trail\u2026" }));
      const trail = (v) =>
        h(
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
      const here = j.visitor && j.visitor.state !== "left";
      const [cur, ...earlier] = j.visits;
      put(
        m.dHist,
        cur
          ? h(
              "section",
              { class: "det-sec" },
              h("h4", {
                text:
                  (here ? "Page trail of this visit" : "Page trail of the last visit") +
                  " (" +
                  cur.trail.length +
                  ")",
              }),
              trail(cur),
            )
          : null,
        earlier.length
          ? h(
              "section",
              { class: "det-sec" },
              h("h4", { text: "Earlier visits (" + earlier.length + ")" }),
              ...earlier.map((v) =>
                h(
                  "details",
                  { class: "visit" },
                  h(
                    "summary",
                    {},
                    h("strong", { text: "Visit " + v.number }),
                    " \u00b7 " +
                      when(v.started_at) +
                      " \u00b7 " +
                      v.pages +
                      (v.pages === 1 ? " page" : " pages"),
                    v.search_terms || v.referrer
                      ? h("div", {
                          class: "muted small ellipsis-line",
                          text:
                            "from " +
                            (v.search_terms
                              ? "search \u201c" + v.search_terms + "\u201d"
                              : v.referrer),
                        })
                      : null,
                  ),
                  trail(v),
                ),
              ),
            )
          : null,
        h(
          "section",
          { class: "det-sec" },
          h("h4", { text: "Chats (" + j.chats.length + ")" }),
          j.chats.length
            ? h(
                "ul",
                { class: "det-chats" },
                ...j.chats.map((c) =>
                  h(
                    "li",
                    {},
                    h(
                      "button",
                      { type: "button", class: "link", onclick: () => this.openTranscript(c.id) },
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

    inviteDialog(id) {
      const r = this.vis.get(id);
      const msg = h("textarea", {
        name: "message",
        rows: 3,
        maxlength: 500,
        placeholder: INVITE_TEXT,
      });
      this.dialog(
        "Invite visitor #" + id + " to chat",
        [
          r && (r.title || r.url)
            ? h("p", {
                class: "muted dialog-note",
                text: "Now on \u201c" + (r.title || r.url) + "\u201d",
              })
            : null,
          field(
            "Message (optional)",
            msg,
            "The visitor sees your name and this message at once, on whatever page they are.",
          ),
        ],
        "Send invitation",
        async () => {
          try {
            await this.stream.send({ type: "invite", visitor_id: id, message: msg.value.trim() });
          } catch (e) {
            throw { message: INVITE_ERRORS[e.error] || e.message || "Could not invite." };
          }
          toast("Invitation sent.", "ok");
        },
      );
      requestAnimationFrame(() => msg.focus());
    }

    // -- administration: automatic invitation rules --

    async renderRules() {
      const body = h("div", {}, h("p", { class: "muted", text: "Loading\u2026" }));
      put(
        this.el.view,
        h(
          "div",
          { class: "panel" },
          h(
            "div",
            { class: "panel-head" },
            h("h2", { text: "Invitation rules" }),
            h("p", {
              class: "muted",
              text: "Invite visitors automatically when a rule matches. Rules fire only while an operator is online, at most once per visitor and visit.",
            }),
            h("button", {
              type: "button",
              class: "btn primary add-rule",
              text: "Add rule",
              onclick: () => this.ruleDialog(null),
            }),
          ),
          body,
        ),
      );
      let j;
      try {
        j = await api("GET", "/api/console/invite-rules");
      } catch (e) {
        put(body, h("p", { class: "form-error", text: e.message }));
        return;
      }
      if (this.view.kind !== "rules") return;
      if (!j.rules.length) {
        put(
          body,
          h(
            "div",
            { class: "empty" },
            icon(I.zap),
            h("p", { text: "No rules yet. Add one to greet visitors on the pages that matter." }),
          ),
        );
        return;
      }
      put(
        body,
        h(
          "table",
          { class: "table rules" },
          h(
            "thead",
            {},
            h("tr", {}, ...["Rule", "When", "Message", "On", ""].map((t) => h("th", { text: t }))),
          ),
          h(
            "tbody",
            {},
            ...j.rules.map((rule) => {
              const on = h("input", { type: "checkbox", class: "switch", "aria-label": "Enabled" });
              on.checked = rule.enabled;
              on.addEventListener("change", () =>
                this.patchRule(
                  rule,
                  { enabled: on.checked },
                  "Rule " + (on.checked ? "enabled." : "disabled."),
                ),
              );
              return h(
                "tr",
                { class: rule.enabled ? "" : "disabled", "data-rule": rule.id },
                h("td", {}, h("strong", { text: rule.name })),
                h("td", { class: "rule-when", text: ruleText(rule.conditions) }),
                h("td", { class: "rule-msg", text: rule.message }),
                h("td", {}, on),
                h(
                  "td",
                  { class: "actions" },
                  h("button", {
                    type: "button",
                    class: "btn ghost small edit",
                    text: "Edit",
                    onclick: () => this.ruleDialog(rule),
                  }),
                  h("button", {
                    type: "button",
                    class: "btn danger-ghost small delete",
                    text: "Delete",
                    onclick: () => this.deleteRule(rule),
                  }),
                ),
              );
            }),
          ),
        ),
      );
    }

    async patchRule(rule, patch, done) {
      try {
        await api("PATCH", "/api/console/invite-rules/" + rule.id, patch);
        toast(done || "Saved.", "ok");
      } catch (e) {
        toast(e.message || "Could not save.", "error");
      }
      if (this.view.kind === "rules") this.renderRules();
    }

    deleteRule(rule) {
      this.dialog(
        "Delete the rule \u201c" + rule.name + "\u201d?",
        [h("p", { class: "muted", text: "Invitations it already sent stay as they are." })],
        "Delete",
        async () => {
          await api("DELETE", "/api/console/invite-rules/" + rule.id);
          toast("Rule deleted.", "ok");
          if (this.view.kind === "rules") this.renderRules();
        },
      );
    }

    ruleDialog(rule) {
      const c = (rule && rule.conditions) || {};
      const text = (name, value, placeholder) =>
        h("input", { name, value: value == null ? "" : value, placeholder, maxlength: 500 });
      const num = (name, value) =>
        h("input", {
          name,
          type: "number",
          min: 0,
          step: 1,
          value: value == null ? "" : value,
          placeholder: "any",
        });
      const f = {
        name: h("input", {
          name: "name",
          required: true,
          maxlength: 100,
          value: rule ? rule.name : "",
        }),
        message: h("textarea", { name: "message", required: true, rows: 3, maxlength: 500 }),
        url_contains: text("url_contains", c.url_contains, "/pricing"),
        referrer_contains: text("referrer_contains", c.referrer_contains, "google."),
        min_pages: num("min_pages", c.min_pages),
        min_time_on_page: num("min_time_on_page", c.min_time_on_page),
        min_time_on_site: num("min_time_on_site", c.min_time_on_site),
        returning: h(
          "select",
          { class: "select", name: "returning" },
          h("option", { value: "", text: "New and returning visitors" }),
          h("option", { value: "true", text: "Returning visitors only" }),
          h("option", { value: "false", text: "New visitors only" }),
        ),
        enabled: h("input", { type: "checkbox", name: "enabled" }),
      };
      f.message.value = rule ? rule.message : "";
      f.returning.value = c.returning == null ? "" : String(c.returning);
      f.enabled.checked = rule ? rule.enabled : true;
      this.dialog(
        rule ? "Edit the rule" : "Add an invitation rule",
        [
          field("Name", f.name, "For you; visitors do not see it."),
          field("Message", f.message, "What the visitor reads in the invitation."),
          h("h3", { class: "dialog-sub", text: "When (all of these)" }),
          h(
            "div",
            { class: "two" },
            field("Page URL contains", f.url_contains),
            field("Came from (referrer contains)", f.referrer_contains),
          ),
          h(
            "div",
            { class: "three" },
            field("At least pages", f.min_pages),
            field("Seconds on the page", f.min_time_on_page),
            field("Seconds on the site", f.min_time_on_site),
          ),
          field("Who", f.returning),
          h("label", { class: "check" }, f.enabled, h("span", { text: "Enabled" })),
        ],
        rule ? "Save" : "Add rule",
        async () => {
          const conditions = {};
          for (const k of ["url_contains", "referrer_contains"])
            if (f[k].value.trim()) conditions[k] = f[k].value.trim();
          for (const k of ["min_pages", "min_time_on_page", "min_time_on_site"]) {
            const v = f[k].value.trim();
            if (!v) continue;
            if (!/^\d+$/.test(v)) throw { message: "Counts and seconds are whole numbers." };
            conditions[k] = Number(v);
          }
          if (f.returning.value) conditions.returning = f.returning.value === "true";
          const body = {
            name: f.name.value.trim(),
            message: f.message.value.trim(),
            enabled: f.enabled.checked,
            conditions,
          };
          if (!body.name || !body.message) throw { message: "A name and a message, please." };
          await (
            rule
              ? api("PATCH", "/api/console/invite-rules/" + rule.id, body)
              : api("POST", "/api/console/invite-rules", body)
          ).catch((e) => {
            throw { message: (e.field ? e.field + ": " : "") + (e.message || "Could not save.") };
          });
          toast(rule ? "Rule saved." : "Rule added.", "ok");
          if (this.view.kind === "rules") this.renderRules();
        },
      );
    }

    // -- rendering: a chat --

    nearBottom() {
      const l = this.el.log;
      return !l || l.scrollHeight - l.scrollTop - l.clientHeight < 80;
    }
    toBottom() {
      if (this.el.log) this.el.log.scrollTop = this.el.log.scrollHeight;
    }

    renderChat(c) {
      const e = this.el;
      e.chatHead = h("div", { class: "chat-head" });
      e.items = h("div", { class: "items" });
      e.pending = h("div", { class: "pending" });
      e.typing = h(
        "div",
        { class: "typing hidden" },
        h("span", { class: "dots" }, h("i"), h("i"), h("i")),
        h("span"),
      );
      e.log = h("div", { class: "log", role: "log" }, e.items, e.pending, e.typing);
      e.compose = h("div", { class: "compose-wrap" });
      e.sidePanel = h("aside", { class: "chat-side" });
      put(
        e.view,
        h(
          "div",
          { class: "chat-view", "data-chat": c.id },
          h("div", { class: "chat-main" }, e.chatHead, e.log, e.compose),
          e.sidePanel,
        ),
      );
      let prev = null;
      for (const ev of c.events) {
        const n = this.eventNode(c, ev, prev);
        if (n) e.items.append(n);
        prev = ev;
      }
      if (!c.events.length)
        e.items.append(h("p", { class: "empty-small", text: "Loading the transcript\u2026" }));
      this.renderPending(c);
      this.renderChatHead(c);
      this.renderSide(c);
      this.renderCompose(c);
      this.renderTyping(c);
      requestAnimationFrame(() => this.toBottom());
    }

    appendEvent(c, ev) {
      const e = this.el;
      const stick = this.nearBottom() || (ev.type === "message" && ev.from === "operator");
      if (c.events.length === 1) put(e.items);
      const n = this.eventNode(c, ev, c.events[c.events.length - 2]);
      if (n) e.items.append(n);
      if (ev.type === "message") this.renderPending(c);
      this.renderTyping(c);
      if (stick) this.toBottom();
    }

    eventNode(c, ev, prev) {
      const who = ev.operator && ev.operator.name ? ev.operator.name : "An operator";
      const sys = (text) =>
        h("div", { class: "sys" }, h("span", { text: text + " \u00b7 " + hhmm(ev.ts) }));
      switch (ev.type) {
        case "chat_started": {
          const inv = ev.invitation;
          if (!inv) return sys("Chat started");
          // From an invitation: its message was the first thing the visitor saw.
          const op = inv.operator;
          const byMe = op && op.id === this.me.id;
          return h(
            "div",
            { class: "started" },
            sys(
              "Chat started from " +
                (byMe
                  ? "your invitation"
                  : op
                    ? op.name + "\u2019s invitation"
                    : "an automatic invitation"),
            ),
            h(
              "div",
              { class: "msg me invited" },
              h("div", {
                class: "msg-from",
                text: byMe ? "You (invitation)" : op ? op.name : "Invitation",
              }),
              h("div", { class: "bubble" }, linkify(inv.message || INVITE_TEXT)),
              h("div", { class: "msg-time", text: hhmm(ev.ts) }),
            ),
          );
        }
        case "chat_accepted":
          return sys((ev.operator && ev.operator.id === this.me.id ? "You" : who) + " joined");
        case "chat_requeued":
          return sys(who + " went offline; the chat went back to the queue");
        case "chat_missed":
          return sys("Nobody answered in time; the visitor was offered the message form");
        case "chat_closed":
          return sys(
            ev.by === "visitor"
              ? "The visitor ended the chat"
              : ev.by === "operator"
                ? (ev.operator && ev.operator.id === this.me.id ? "You" : who) + " ended the chat"
                : "The chat was closed",
          );
        case "message": {
          const vis = ev.from === "visitor";
          const mine = !vis && ev.operator && ev.operator.id === this.me.id;
          const same =
            prev &&
            prev.type === "message" &&
            prev.from === ev.from &&
            (vis || (prev.operator && ev.operator && prev.operator.id === ev.operator.id));
          const name = vis ? (c.summary && c.summary.name) || "Visitor" : mine ? "You" : who;
          return h(
            "div",
            { class: "msg " + (vis ? "them" : "me") + (same ? " cont" : ""), "data-seq": ev.seq },
            !same ? h("div", { class: "msg-from", text: name }) : null,
            h("div", { class: "bubble" }, linkify(ev.text)),
            h("div", { class: "msg-time", text: hhmm(ev.ts) }),
          );
        }
      }
      return null;
    }

    renderPending(c) {
      if (!this.el.pending || this.view.kind !== "chat" || this.view.id !== c.id) return;
      put(
        this.el.pending,
        ...c.outbox.map((m) =>
          h(
            "div",
            { class: "msg me pending" + (m.failed ? " failed" : "") },
            h("div", { class: "bubble" }, linkify(m.text)),
            h("div", { class: "msg-time", text: m.failed || (m.acked ? "Sent" : "Sending\u2026") }),
          ),
        ),
      );
    }

    renderChatHead(c) {
      const s = c.summary || {};
      const label =
        { waiting: "Waiting", active: "Active", closed: "Closed", missed: "Missed" }[s.status] ||
        "";
      const mine = s.status === "active" && s.operator && s.operator.id === this.me.id;
      const confirm = h(
        "div",
        { class: "confirm hidden" },
        h("span", { text: "End this chat for both of you?" }),
        h("button", {
          type: "button",
          class: "btn danger small confirm-end",
          text: "End chat",
          onclick: () => this.closeChat(c),
        }),
        h("button", {
          type: "button",
          class: "btn ghost small",
          text: "Cancel",
          onclick: () => confirm.classList.add("hidden"),
        }),
      );
      put(
        this.el.chatHead,
        h(
          "div",
          { class: "chat-title" },
          h("span", {
            class: "avatar big",
            text: (s.name || "V").trim().charAt(0).toUpperCase() || "V",
          }),
          h(
            "div",
            {},
            h("h2", { class: "chat-name", text: s.name || "Visitor" }),
            h(
              "div",
              { class: "chat-sub" },
              h("span", { class: "pill " + (s.status || ""), text: label }),
              s.page_title || s.page_url
                ? h("span", { class: "chat-page", text: s.page_title || s.page_url })
                : null,
            ),
          ),
        ),
        mine
          ? h("button", {
              type: "button",
              class: "btn ghost small end-chat",
              text: "End chat",
              onclick: () => confirm.classList.remove("hidden"),
            })
          : null,
        confirm,
      );
    }

    renderCompose(c) {
      const s = c.summary || {};
      const mine = s.status === "active" && s.operator && s.operator.id === this.me.id;
      const e = this.el.compose;
      if (!mine) {
        const why =
          s.status === "closed"
            ? "This chat is closed. The transcript stays here until you close the tab."
            : s.status === "missed"
              ? "Nobody answered this chat in time; the visitor was offered the message form."
              : s.status === "waiting"
                ? "This chat is back in the queue."
                : s.status === "active"
                  ? "Another operator has this chat."
                  : "";
        put(e, h("div", { class: "compose-note", text: why }));
        this.el.input = null;
        return;
      }
      if (this.el.input && e.contains(this.el.input) && this.el.input.dataset.chat === String(c.id))
        return;
      const input = h("textarea", {
        class: "compose-input",
        rows: 2,
        maxlength: 5000,
        placeholder: "Write a reply\u2026  (Enter to send, Shift+Enter for a new line)",
        "aria-label": "Reply",
        "data-chat": c.id,
      });
      input.value = c.draft || "";
      const send = () => {
        const text = input.value.trim();
        if (!text) return;
        input.value = "";
        c.draft = "";
        c.typingOn = false;
        this.send(c, text);
        this.toBottom();
      };
      input.addEventListener("input", () => {
        c.draft = input.value;
        this.typing(c, input);
      });
      input.addEventListener("keydown", (ev) => {
        if (ev.key === "Enter" && !ev.shiftKey && !ev.isComposing) {
          ev.preventDefault();
          send();
        }
      });
      put(
        e,
        h(
          "div",
          { class: "compose" },
          input,
          h(
            "button",
            {
              type: "button",
              class: "btn primary send",
              title: "Send",
              "aria-label": "Send",
              onclick: () => (send(), input.focus()),
            },
            icon(I.send),
          ),
        ),
      );
      this.el.input = input;
      requestAnimationFrame(() => input.focus());
    }

    renderSide(c) {
      const s = c.summary || {};
      const row = (label, value) =>
        h(
          "div",
          { class: "kv" },
          h("dt", { text: label }),
          h("dd", {}, value == null || value === "" ? "\u2014" : value),
        );
      const email = s.email
        ? EMAIL.test(s.email)
          ? h("a", { href: "mailto:" + s.email, text: s.email })
          : s.email
        : null;
      const page =
        s.page_url || s.page_title
          ? h(
              "span",
              { class: "page" },
              s.page_title ? h("span", { class: "page-title", text: s.page_title }) : null,
              s.page_url ? extLink(s.page_url) : null,
            )
          : null;
      put(
        this.el.sidePanel,
        h("h3", { text: "Visitor" }),
        h(
          "dl",
          {},
          row("Name", s.name),
          row("E-mail", email),
          row("Started on", page),
          row(
            "Browser",
            s.user_agent ? h("span", { title: s.user_agent, text: browserOf(s.user_agent) }) : null,
          ),
          row("IP address", s.ip),
          row("Started", s.created_at ? when(s.created_at) : null),
          row(
            "Accepted",
            s.accepted_at
              ? when(s.accepted_at) + (s.operator ? " by " + s.operator.name : "")
              : null,
          ),
          s.closed_at ? row("Ended", when(s.closed_at)) : null,
          row("Chat", "#" + c.id),
          s.visitor_id
            ? row(
                "Visits",
                h("button", {
                  type: "button",
                  class: "link visitor-link",
                  text: "Visitor #" + s.visitor_id + ": page trail and visits",
                  onclick: () => {
                    this.show({ kind: "visitors" });
                    this.openDetail(s.visitor_id);
                  },
                }),
              )
            : null,
        ),
      );
    }

    // -- rendering: inbox, history, operators, embed --

    renderInbox() {
      const list = this.inbox;
      const box = h(
        "div",
        { class: "panel" },
        h(
          "div",
          { class: "panel-head" },
          h("h2", { text: "Inbox" }),
          h("p", { class: "muted", text: "Messages left while nobody was online." }),
        ),
      );
      if (!list.length)
        box.append(
          h("div", { class: "empty" }, icon(I.inbox), h("p", { text: "No offline messages yet." })),
        );
      for (const m of list) {
        const item = h(
          "article",
          { class: "inbox-item" + (m.read ? "" : " unread"), "data-id": m.id },
          h(
            "div",
            { class: "inbox-top" },
            h("span", { class: "udot", title: m.read ? "Read" : "Unread" }),
            h("strong", { class: "inbox-name", text: m.name }),
            m.email
              ? EMAIL.test(m.email)
                ? h("a", { class: "inbox-email", href: "mailto:" + m.email, text: m.email })
                : h("span", { class: "inbox-email", text: m.email })
              : null,
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
              ? h("button", {
                  type: "button",
                  class: "link",
                  text: "View the missed chat",
                  onclick: () => this.openTranscript(m.chat_id),
                })
              : null,
            h("span", { class: "spacer" }),
            h("button", {
              type: "button",
              class: "btn ghost small mark",
              text: m.read ? "Mark as unread" : "Mark as read",
              onclick: () => this.markRead(m, !m.read),
            }),
          ),
        );
        box.append(item);
      }
      put(this.el.view, box);
    }

    async markRead(m, read) {
      try {
        const r = await api("PATCH", "/api/console/offline-messages/" + m.id, { read });
        Object.assign(m, r.message || r, { read });
      } catch (e) {
        toast(e.message || "Could not update the message.", "error");
      }
      this.renderNav();
      if (this.view.kind === "inbox") this.renderInbox();
    }

    async renderHistory() {
      const sel = h(
        "select",
        { class: "select", "aria-label": "Which chats" },
        ...[
          ["closed", "Closed"],
          ["missed", "Missed"],
          ["mine", "Mine"],
          ["active", "Active"],
          ["", "All"],
        ].map(([v, l]) => h("option", { value: v, text: l })),
      );
      sel.value = this.historyFilter || "closed";
      const body = h(
        "div",
        { class: "history-list" },
        h("p", { class: "muted", text: "Loading\u2026" }),
      );
      sel.addEventListener("change", () => {
        this.historyFilter = sel.value;
        this.renderHistory();
      });
      put(
        this.el.view,
        h(
          "div",
          { class: "panel" },
          h(
            "div",
            { class: "panel-head" },
            h("h2", { text: "History" }),
            h("p", { class: "muted", text: "Past chats stay readable as transcripts." }),
            sel,
          ),
          body,
        ),
      );
      let j;
      try {
        j = await api(
          "GET",
          "/api/console/chats?limit=100" + (sel.value ? "&status=" + sel.value : ""),
        );
      } catch (e) {
        put(body, h("p", { class: "form-error", text: e.message || "Could not load the chats." }));
        return;
      }
      if (this.view.kind !== "history") return;
      if (!j.chats.length) {
        put(
          body,
          h("div", { class: "empty" }, icon(I.history), h("p", { text: "No chats here yet." })),
        );
        return;
      }
      put(
        body,
        h(
          "table",
          { class: "table" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ...["Visitor", "Started", "Operator", "Status", "Page"].map((t) =>
                h("th", { text: t }),
              ),
            ),
          ),
          h(
            "tbody",
            {},
            ...j.chats.map((s) =>
              h(
                "tr",
                {
                  class: "clickable",
                  "data-chat": s.id,
                  tabindex: 0,
                  onclick: () => this.openTranscript(s.id),
                  onkeydown: (e) => e.key === "Enter" && this.openTranscript(s.id),
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
                h("td", {
                  class: "ellipsis",
                  title: s.page_url || "",
                  text: s.page_title || s.page_url || "\u2014",
                }),
              ),
            ),
          ),
        ),
      );
    }

    async renderOperators() {
      const body = h("div", {}, h("p", { class: "muted", text: "Loading\u2026" }));
      const add = h("button", {
        type: "button",
        class: "btn primary",
        text: "Add operator",
        onclick: () => this.operatorDialog(null),
      });
      put(
        this.el.view,
        h(
          "div",
          { class: "panel" },
          h(
            "div",
            { class: "panel-head" },
            h("h2", { text: "Operators" }),
            h("p", {
              class: "muted",
              text: "People who answer chats. Administrators can also manage operators.",
            }),
            add,
          ),
          body,
        ),
      );
      let j;
      try {
        j = await api("GET", "/api/console/operators");
      } catch (e) {
        put(body, h("p", { class: "form-error", text: e.message }));
        return;
      }
      if (this.view.kind !== "operators") return;
      put(
        body,
        h(
          "table",
          { class: "table" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              ...["Name", "Username", "Role", "Status", ""].map((t) => h("th", { text: t })),
            ),
          ),
          h(
            "tbody",
            {},
            ...j.operators.map((o) =>
              h(
                "tr",
                { class: o.disabled ? "disabled" : "", "data-operator": o.username },
                h("td", {}, h("strong", { text: o.display_name })),
                h("td", { class: "mono", text: o.username }),
                h("td", { text: o.is_admin ? "Administrator" : "Operator" }),
                h(
                  "td",
                  {},
                  o.disabled
                    ? h("span", { class: "pill closed", text: "disabled" })
                    : h(
                        "span",
                        { class: "status-label" },
                        h("span", { class: "sdot " + (o.status || "offline") }),
                        o.status || "offline",
                      ),
                ),
                h(
                  "td",
                  { class: "actions" },
                  h("button", {
                    type: "button",
                    class: "btn ghost small edit",
                    text: "Edit",
                    onclick: () => this.operatorDialog(o),
                  }),
                  h("button", {
                    type: "button",
                    class: "btn ghost small reset",
                    text: "Reset password",
                    onclick: () => this.resetDialog(o),
                  }),
                  o.id !== this.me.id
                    ? h("button", {
                        type: "button",
                        class:
                          "btn small " + (o.disabled ? "ghost enable" : "danger-ghost disable"),
                        text: o.disabled ? "Enable" : "Disable",
                        onclick: () => this.patchOperator(o, { disabled: !o.disabled }),
                      })
                    : null,
                ),
              ),
            ),
          ),
        ),
      );
    }

    async patchOperator(o, patch) {
      try {
        await api("PATCH", "/api/console/operators/" + o.id, patch);
        toast("Saved.", "ok");
      } catch (e) {
        toast(e.message || "Could not save.", "error");
      }
      if (this.view.kind === "operators") this.renderOperators();
    }

    dialog(title, fields, button, onsubmit) {
      const err = h("p", { class: "form-error", role: "alert" });
      const dlg = h("dialog", { class: "dialog" });
      const form = h(
        "form",
        {
          method: "dialog",
          onsubmit: async (e) => {
            e.preventDefault();
            err.textContent = "";
            try {
              await onsubmit();
              dlg.close();
            } catch (x) {
              err.textContent = x.message || String(x);
            }
          },
        },
        h("h2", { text: title }),
        fields,
        err,
        h(
          "div",
          { class: "dialog-actions" },
          h("button", {
            type: "button",
            class: "btn ghost",
            text: "Cancel",
            onclick: () => dlg.close(),
          }),
          h("button", { type: "submit", class: "btn primary", text: button }),
        ),
      );
      dlg.append(form);
      dlg.addEventListener("close", () => dlg.remove());
      d.body.append(dlg);
      dlg.showModal();
      return dlg;
    }

    operatorDialog(o) {
      const user = h("input", {
        name: "username",
        required: true,
        maxlength: 64,
        autocomplete: "off",
        value: o ? o.username : "",
        disabled: !!o,
      });
      const name = h("input", {
        name: "display_name",
        required: true,
        maxlength: 100,
        value: o ? o.display_name : "",
      });
      const pw = h("input", {
        name: "password",
        type: "password",
        minlength: 8,
        autocomplete: "new-password",
        required: !o,
      });
      const admin = h("input", { name: "is_admin", type: "checkbox" });
      admin.checked = !!(o && o.is_admin);
      this.dialog(
        o ? "Edit " + o.display_name : "Add an operator",
        [
          field(
            "Username",
            user,
            o
              ? "Usernames cannot be changed."
              : "Lower-case letters, digits, dot, dash, underscore.",
          ),
          field("Display name", name, "Visitors see this name."),
          o ? null : field("Password", pw, "At least 8 characters. Share it with them safely."),
          h(
            "label",
            { class: "check" },
            admin,
            h("span", { text: "Administrator (can manage operators)" }),
          ),
        ],
        o ? "Save" : "Add operator",
        async () => {
          if (o) {
            await api("PATCH", "/api/console/operators/" + o.id, {
              display_name: name.value.trim(),
              is_admin: admin.checked,
            });
          } else {
            await api("POST", "/api/console/operators", {
              username: user.value.trim(),
              display_name: name.value.trim(),
              password: pw.value,
              is_admin: admin.checked,
            }).catch((e) => {
              throw {
                message: e.error === "username_taken" ? "That username is taken." : e.message,
              };
            });
          }
          toast(o ? "Saved." : "Operator added.", "ok");
          if (this.view.kind === "operators") this.renderOperators();
        },
      );
    }

    resetDialog(o) {
      const pw = h("input", {
        name: "password",
        type: "password",
        minlength: 8,
        required: true,
        autocomplete: "new-password",
      });
      this.dialog(
        "Reset the password of " + o.display_name,
        [
          h("p", { class: "muted", text: "Their other sessions end at once." }),
          field("New password", pw, "At least 8 characters."),
        ],
        "Set password",
        async () => {
          await api("PATCH", "/api/console/operators/" + o.id, { password: pw.value });
          toast("Password changed.", "ok");
        },
      );
    }

    passwordDialog() {
      const cur = h("input", {
        name: "current_password",
        type: "password",
        required: true,
        autocomplete: "current-password",
      });
      const pw = h("input", {
        name: "new_password",
        type: "password",
        minlength: 8,
        required: true,
        autocomplete: "new-password",
      });
      this.dialog(
        "Change your password",
        [
          field("Current password", cur),
          field("New password", pw, "At least 8 characters. Your other sessions end."),
        ],
        "Change password",
        async () => {
          await api("POST", "/api/console/password", {
            current_password: cur.value,
            new_password: pw.value,
          });
          toast("Password changed.", "ok");
        },
      );
    }

    async logout() {
      try {
        await api("POST", "/api/console/logout", {});
      } catch (e) {
        /* signed out anyway */
      }
      this.stop();
      C = null;
      stopTitle();
      const s = await api("GET", "/api/console/session").catch(() => null);
      if (s) xsrf = s.xsrf;
      showLogin("You are signed out.");
    }

    async renderWidget() {
      const box = h(
        "div",
        { class: "panel" },
        h(
          "div",
          { class: "panel-head" },
          h("h2", { text: "Widget" }),
          h("p", {
            class: "muted",
            text: "How the chat looks on your site. Changes reach open pages at once; the embed code stays the same.",
          }),
        ),
      );
      put(this.el.view, box);
      let st;
      try {
        st = await api("GET", "/api/console/settings");
      } catch (e) {
        box.append(h("p", { class: "form-error", text: e.message }));
        return;
      }
      if (this.view.kind !== "widget") return;
      if (st.public_url) this.publicUrl = st.public_url;
      const a = st.appearance || {};
      const inputs = {};
      const DEF = {
        color: "#4f46e5",
        color_text: "#ffffff",
        title: "Live Support",
        button_online: "Live Support \u2014 we're online",
        button_offline: "Leave a message",
        button_start: "Start chat",
        button_send: "Send message",
        greeting: "Hi there! Ask us anything \u2014 we usually reply in a few minutes.",
        waiting: "Waiting for an operator\u2026",
        offline_prompt:
          "We\u2019re away right now. Leave a message and we\u2019ll get back to you by e-mail.",
        thanks: "Thank you! Your message has been sent.",
      };
      const preview = h("div", { class: "wprev" });
      const renderPreview = () => {
        const col = /^#[0-9a-f]{3,6}$/i.test(inputs.color.value) ? inputs.color.value : DEF.color;
        const fg = /^#[0-9a-f]{3,6}$/i.test(inputs.color_text.value)
          ? inputs.color_text.value
          : DEF.color_text;
        const img = (k, state) => {
          const u = inputs[k].value.trim();
          return h("img", {
            class: "wprev-img",
            alt: state,
            src: u && (safeHttp(u) || u.startsWith("/")) ? u : "/assets/img/" + state + ".svg",
          });
        };
        put(
          preview,
          h(
            "div",
            { class: "wprev-win" },
            h(
              "div",
              { class: "wprev-head", style: "background:" + col + ";color:" + fg },
              h("strong", { text: inputs.title.value || DEF.title }),
              h("span", { text: "We\u2019re online" }),
            ),
            h(
              "div",
              { class: "wprev-body" },
              h("p", { text: inputs.greeting.value || DEF.greeting }),
              h("span", {
                class: "wprev-btn",
                style: "background:" + col + ";color:" + fg,
                text: inputs.button_start.value || DEF.button_start,
              }),
            ),
          ),
          h(
            "div",
            { class: "wprev-buttons" },
            img("image_online", "online"),
            img("image_offline", "offline"),
          ),
          h("p", {
            class: "muted small",
            text: "Position: " + (inputs.position.value || "right") + " corner",
          }),
        );
      };
      const text = (k, label, hint) => {
        inputs[k] = h("input", {
          name: k,
          value: a[k] || "",
          placeholder: DEF[k] || "",
          maxlength: 100,
        });
        return field(label, inputs[k], hint);
      };
      const para = (k, label) => {
        inputs[k] = h("textarea", { name: k, rows: 2, maxlength: 500, placeholder: DEF[k] });
        inputs[k].value = a[k] || "";
        return field(label, inputs[k]);
      };
      const color = (k, label) => {
        inputs[k] = h("input", {
          name: k,
          value: a[k] || "",
          placeholder: DEF[k],
          maxlength: 7,
          class: "mono",
        });
        const pick = h("input", {
          type: "color",
          value: a[k] || DEF[k],
          "aria-label": label + " picker",
        });
        pick.addEventListener("input", () => {
          inputs[k].value = pick.value;
          renderPreview();
        });
        inputs[k].addEventListener(
          "input",
          () => /^#[0-9a-f]{6}$/i.test(inputs[k].value) && (pick.value = inputs[k].value),
        );
        return h(
          "label",
          { class: "field" },
          h("span", { class: "field-label", text: label }),
          h("div", { class: "color-row" }, pick, inputs[k]),
        );
      };
      inputs.position = h(
        "select",
        { class: "select", name: "position" },
        h("option", { value: "right", text: "Bottom right" }),
        h("option", { value: "left", text: "Bottom left" }),
      );
      inputs.position.value = a.position || "right";
      const origins = h("textarea", {
        name: "allowed_origins",
        rows: 3,
        placeholder: "https://www.example.com",
      });
      origins.value = (st.allowed_origins || []).join("\n");
      const err = h("p", { class: "form-error", role: "alert" });
      const form = h(
        "form",
        {
          class: "settings",
          onsubmit: async (e) => {
            e.preventDefault();
            err.textContent = "";
            const appearance = {};
            for (const k of Object.keys(inputs)) appearance[k] = inputs[k].value.trim();
            if (appearance.position === "right") appearance.position = "";
            try {
              await api("PATCH", "/api/console/settings", {
                appearance,
                allowed_origins: origins.value.split(/[\s,]+/).filter(Boolean),
              });
              toast("Saved. Open pages update at once.", "ok");
            } catch (x) {
              err.textContent = (x.field ? x.field + ": " : "") + (x.message || "Could not save.");
            }
          },
        },
        h(
          "div",
          { class: "settings-grid" },
          h(
            "div",
            {},
            h("h3", { text: "Colours and position" }),
            h(
              "div",
              { class: "two" },
              color("color", "Accent colour"),
              color("color_text", "Text on the accent"),
            ),
            field("Position", inputs.position),
            h("h3", { text: "Button images" }),
            text(
              "image_online",
              "Image when online",
              "An http(s) URL or a path on this server; empty: the default.",
            ),
            text("image_offline", "Image when offline"),
            h("h3", { text: "Texts" }),
            text("title", "Window title"),
            h(
              "div",
              { class: "two" },
              text("button_online", "Button label (online)"),
              text("button_offline", "Button label (offline)"),
            ),
            h(
              "div",
              { class: "two" },
              text("button_start", "Start button"),
              text("button_send", "Send button"),
            ),
            para("greeting", "Greeting"),
            para("waiting", "While waiting"),
            para("offline_prompt", "Offline prompt"),
            para("thanks", "Thank-you text"),
            h("h3", { text: "Allowed sites" }),
            field(
              "Origins allowed to use the widget",
              origins,
              "One per line, like https://www.example.com. Empty: any site." +
                ((st.allowed_origins_config || []).length
                  ? " Also allowed by the config file: " + st.allowed_origins_config.join(", ")
                  : ""),
            ),
            err,
            h("button", { type: "submit", class: "btn primary", text: "Save" }),
          ),
          h("div", { class: "settings-preview" }, h("h3", { text: "Preview" }), preview),
        ),
      );
      inputs.image_online.maxLength = inputs.image_offline.maxLength = 2048;
      inputs.button_start.maxLength = inputs.button_send.maxLength = 40;
      form.addEventListener("input", renderPreview);
      form.addEventListener("change", renderPreview);
      renderPreview();
      box.append(form);
    }

    async renderEmbed() {
      if (!this.publicUrlChecked) {
        this.publicUrlChecked = true;
        try {
          const st = await api("GET", "/api/console/settings");
          if (st.public_url) this.publicUrl = st.public_url;
        } catch (e) {
          /* location.origin it is */
        }
        if (this.view.kind !== "embed") return;
      }
      const base = this.publicUrl.replace(/\/$/, "");
      const block = (title, text, code) => {
        const pre = h("pre", { class: "code" }, h("code", { text: code }));
        return h(
          "div",
          { class: "embed-block" },
          h("h3", { text: title }),
          h("p", { class: "muted", text }),
          pre,
          h(
            "button",
            {
              type: "button",
              class: "btn ghost small copy",
              onclick: () => {
                (navigator.clipboard ? navigator.clipboard.writeText(code) : Promise.reject()).then(
                  () => toast("Copied.", "ok"),
                  () => {
                    const r = d.createRange();
                    r.selectNodeContents(pre);
                    const sel = w.getSelection();
                    sel.removeAllRanges();
                    sel.addRange(r);
                  },
                );
              },
            },
            icon(I.copy),
            "Copy",
          ),
        );
      };
      put(
        this.el.view,
        h(
          "div",
          { class: "panel" },
          h(
            "div",
            { class: "panel-head" },
            h("h2", { text: "Embed code" }),
            h("p", { class: "muted", text: "Put Live Support on your web site." }),
          ),
          block(
            "The widget (recommended)",
            "Paste this one tag into every page, just before </body>. It shows the Live Support button and opens the chat in the page.",
            '<script async src="' + base + '/widget.js"></script>',
          ),
          block(
            "An image link (no JavaScript)",
            "For e-mails or pages where scripts are not allowed: the image shows whether you are online and opens the chat page.",
            '<a href="' +
              base +
              '/chat" target="_blank" rel="noopener"><img src="' +
              base +
              '/api/button" alt="Live Support" width="236" height="56"></a>',
          ),
          block(
            "A plain link",
            "Opens the chat in its own window.",
            '<a href="' + base + '/chat" target="_blank" rel="noopener">Chat with us</a>',
          ),
          h(
            "p",
            { class: "muted" },
            "Try it on the demo site: ",
            h("a", {
              href: base + "/demo/",
              target: "_blank",
              rel: "noopener",
              text: base + "/demo/",
            }),
          ),
        ),
      );
    }
  }

  boot();
})();
