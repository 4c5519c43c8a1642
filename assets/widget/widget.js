/* Cute Live Support widget loader: <script async src="https://SERVER/widget.js"></script>
 * The button (in a Shadow DOM), the visitor's token and page-view beacons (PROTOCOL.md §7.4).
 * Once the page is idle: stream.js + presence.js (presence, invitations). The chat window
 * (chat.js, chat.css) only when needed. One global: window.CuteLive. */
(function (w, d) {
  "use strict";
  if (w.CuteLive) return;
  const RE = /\/widget\.js(?:[?#].*)?$/;
  let me = d.currentScript;
  if (!me || !RE.test(me.src || "")) {
    const all = d.getElementsByTagName("script");
    me = null;
    for (let i = all.length - 1; i >= 0 && !me; i--) if (RE.test(all[i].src)) me = all[i];
  }
  if (!me) return;
  const server = me.src.replace(RE, "");
  const page = me.getAttribute("data-cutelive-mode") === "page";

  // Storage on the host site (first party): the token and state, under "cutelive.*".
  const mem = {};
  const lsGet = (k) => {
    try {
      const v = localStorage.getItem("cutelive." + k);
      return v == null ? mem[k] : v;
    } catch (e) {
      return mem[k];
    }
  };
  const lsSet = (k, v) => {
    mem[k] = v;
    try {
      if (v == null) localStorage.removeItem("cutelive." + k);
      else localStorage.setItem("cutelive." + k, v);
    } catch (e) {
      /* storage blocked: memory only */
    }
  };
  const jget = (k) => {
    try {
      return JSON.parse(lsGet(k)) || null;
    } catch (e) {
      return null;
    }
  };

  const K = {
    server,
    page,
    lsGet,
    lsSet,
    jget,
    jset: (k, v) => lsSet(k, v == null ? null : JSON.stringify(v)),
    // The standalone /chat page keeps its own state (it may share storage with same-origin pages).
    state: jget(page ? "page-state" : "state") || {},
    config: { online: false },
    online: false,
    save: () => K.jset(page ? "page-state" : "state", K.state),
    dept: me.getAttribute("data-department"),
  };

  const host = d.createElement("div");
  host.setAttribute("data-cutelive", "");
  host.setAttribute(
    "style",
    "all:initial!important;display:block!important;position:fixed!important;" +
      "z-index:2147483647!important;top:0!important;left:0!important;" +
      (page
        ? "width:100%!important;height:100%!important;"
        : "width:0!important;height:0!important;overflow:visible!important;"),
  );
  const root = host.attachShadow({ mode: "open" });
  K.root = root;

  const css = d.createElement("style");
  css.textContent =
    ":host{all:initial}" +
    ".cl-launcher{all:initial;position:fixed;bottom:20px;right:20px;cursor:pointer;border-radius:30px;" +
    "box-shadow:0 8px 24px rgba(15,23,42,.22);line-height:0;transition:transform .15s ease,box-shadow .15s ease}" +
    ".cl-launcher:hover{transform:translateY(-2px);box-shadow:0 12px 28px rgba(15,23,42,.28)}" +
    ".cl-launcher:focus-visible{outline:3px solid #93c5fd;outline-offset:3px}" +
    ".cl-left .cl-launcher{right:auto;left:20px}" +
    ".cl-launcher img{display:block;height:56px;width:auto;max-width:320px;border:0}" +
    ".cl-badge{position:absolute;top:-6px;right:-4px;min-width:22px;height:22px;padding:0 6px;" +
    "box-sizing:border-box;border-radius:11px;background:#e11d48;color:#fff;" +
    "font:700 12px/22px system-ui,sans-serif;text-align:center;" +
    "box-shadow:0 0 0 2px #fff}" +
    ".cl-hidden{display:none!important}";
  root.appendChild(css);
  const wrap = d.createElement("div");
  wrap.className = "cl-root";
  root.appendChild(wrap);
  K.wrap = wrap;

  const btn = d.createElement("button");
  btn.type = "button";
  btn.className = "cl-launcher cl-hidden";
  const img = d.createElement("img");
  img.alt = "";
  const badge = d.createElement("span");
  badge.className = "cl-badge cl-hidden";
  btn.append(img, badge);
  wrap.appendChild(btn);
  btn.addEventListener("click", () => K.open());

  /** The appearance an administrator set over the defaults, from /api/widget/config. */
  K.look = () => Object.assign({}, K.config.defaults, K.config.appearance);
  const safeUrl = (u) => {
    if (typeof u !== "string" || !u.trim()) return null;
    try {
      const x = new URL(u, server + "/");
      return /^https?:$/.test(x.protocol) ? x.href : null;
    } catch (e) {
      return null;
    }
  };
  K.safeUrl = safeUrl;

  // Online: the snippet's data-department's members, or anyone.
  K.avail = (x) => ((x.departments || []).find((p) => p.key === K.dept) || x).online;
  K.setOnline = (on) => {
    K.online = !!on;
    const a = K.look();
    const name = on ? "online" : "offline";
    const src = safeUrl(a["image_" + name]) || server + "/assets/img/" + name + ".svg";
    if (img.getAttribute("src") !== src) img.src = src;
    btn.setAttribute("aria-label", a["button_" + name] || "");
    btn.setAttribute("data-status", name);
    wrap.classList.toggle("cl-left", a.position === "left");
    if (K.chat) K.chat.availability(K.online);
  };

  K.setUnread = (n) => {
    badge.textContent = n > 99 ? "99+" : String(n);
    badge.classList.toggle("cl-hidden", !n);
  };

  /** Show or hide the floating button (hidden while the window is open). */
  K.showLauncher = (show) => btn.classList.toggle("cl-hidden", !show || page);

  // Our scripts, each loaded once and run in the order asked for (K.js: also the chat's, later).
  const scripts = {};
  const js = (K.js = (name) =>
    (scripts[name] =
      scripts[name] ||
      new Promise((r, j) => {
        const s = d.createElement("script");
        s.src = server + name;
        s.async = false;
        s.onload = r;
        s.onerror = () => j(delete scripts[name]);
        (d.head || d.documentElement).appendChild(s);
      })));
  /** The stream: presence and invitations. */
  K.realtime = () =>
    Promise.all([js("/assets/widget/stream.js"), js("/assets/widget/presence.js"), K.configP]);
  let loading = null;
  /** The chat window; resolves with K.chat. */
  K.load = () => {
    if (loading) return loading;
    const link = d.createElement("link");
    link.rel = "stylesheet";
    link.href = server + "/assets/widget/chat.css";
    const cssDone = new Promise((r) => (link.onload = link.onerror = r));
    root.insertBefore(link, wrap);
    return (loading = Promise.all([cssDone, K.realtime(), js("/assets/widget/chat.js")]).then(
      () => K.chat || Promise.reject(),
      (e) => {
        loading = null;
        throw e;
      },
    ));
  };

  // The visitor's token: one POST /api/visitor/token, then kept in the host site's storage.
  let tokenP = null;
  K.token = () => lsGet("token") || null;
  /** Resolves with a usable token; `bad` names one the server refused (it is replaced). */
  K.getToken = (bad) => {
    if (bad && bad === K.token()) lsSet("token", null);
    if (K.token()) return Promise.resolve(K.token());
    return (tokenP =
      tokenP ||
      fetch(server + "/api/visitor/token", { method: "POST", body: "{}", credentials: "omit" })
        .then((r) => (r.ok ? r.json() : Promise.reject(r)))
        .then((j) => (lsSet("token", j.token), j.token))
        .finally(() => (tokenP = null)));
  };

  // Page views: text/plain (no preflight), keepalive (outlives the page), no cookies.
  let lastUrl = null;
  let navT = 0;
  const beacon = (body, again) => {
    const token = K.token();
    fetch(server + "/api/visitor/track", {
      method: "POST",
      body: JSON.stringify(Object.assign(body, { token })),
      keepalive: true,
      credentials: "omit",
    }).then(
      (r) => r.status === 401 && !again && K.getToken(token).then(() => beacon(body, 1)),
      () => {},
    );
  };
  const track = () => {
    const url = location.href;
    const key = url.replace(/#(?![!/]).*$/, ""); // in-page anchors are not page views
    if (key === lastUrl || !/^https?:/.test(url)) return;
    const body = { url, title: d.title, referrer: lastUrl || d.referrer };
    lastUrl = key;
    K.getToken().then(
      () => beacon(body),
      () => {},
    );
  };
  // A history-API navigation: give the app a moment to set its new title.
  const nav = () => {
    clearTimeout(navT);
    navT = setTimeout(track, 100);
  };

  K.open = () => {
    K.state.open = true;
    K.state.min = false;
    K.save();
    K.showLauncher(false);
    K.load().then(
      (c) => c.open(),
      () => K.showLauncher(true),
    );
  };

  let timer = null;
  const refresh = () =>
    (K.configP = fetch(server + "/api/widget/config", { credentials: "omit", cache: "no-store" })
      .then((r) => r.json())
      .then(
        (c) => {
          K.config = c || {};
          K.setOnline(K.live ? K.online : K.avail(K.config));
          if (K.chat) K.chat.restyle();
          return 1;
        },
        () => 0,
      ));
  // Until the stream is up and the texts are in, re-check now and then.
  const tick = () => {
    clearTimeout(timer);
    timer = setTimeout(tick, 60000);
    if (!(K.live && K.config.defaults) && !d.hidden) refresh();
  };

  w.CuteLive = {
    version: 1,
    server,
    open: () => K.open(),
    minimize: () => K.chat && K.chat.minimize(),
    /** For the curious (and for tests). */
    status: () => ({
      online: K.online,
      open: !!K.state.open,
      connection: K.conn || "idle",
      transport: K.stream ? K.stream.transport : null,
    }),
    _k: K,
  };

  const start = () => {
    d.documentElement.appendChild(host);
    K.setOnline(false);
    K.setUnread(K.state.unread || 0);
    tick();
    d.addEventListener("visibilitychange", () => !d.hidden && !K.live && refresh());
    if (!page) {
      // (The pop-out /chat page is not the site's: no beacons, no early stream.)
      track();
      for (const m of ["pushState", "replaceState"]) {
        const orig = history[m];
        history[m] = function () {
          const r = orig.apply(this, arguments);
          nav();
          return r;
        };
      }
      w.addEventListener("popstate", nav);
      const idle = () =>
        (w.requestIdleCallback || setTimeout)(() => K.realtime().catch(() => {}), {
          timeout: 2000,
        });
      if (d.readyState === "complete") idle();
      else w.addEventListener("load", idle);
    }
    if (page || K.state.open || K.state.live) {
      // Reopen the window where the visitor left it (another page, a reload).
      K.load().then(
        (c) => c.restore(),
        () => K.showLauncher(true),
      );
      if (!K.state.open) K.showLauncher(true);
    } else {
      K.showLauncher(true);
    }
  };
  if (d.body) start();
  else d.addEventListener("DOMContentLoaded", start);
})(window, document);
