/* Cute Live Support: the visitor's realtime connection. widget.js loads it (after stream.js) once
 * the page is idle, on every page: presence rides on it (docs/PROTOCOL.md §7.4). It shows
 * invitations (§5.4) as a card by the button, on whatever page the visitor is, and hands
 * everything about chats to chat.js, loading that when a chat needs it. Text only: textContent. */
(function () {
  "use strict";
  const CL = window.CuteLive;
  const K = CL && CL._k;
  if (!K || K.connect || !K.Stream) return;
  const d = document;
  const w = window;
  const S = K.state;
  let backlog = []; // chat events that arrived before chat.js

  /** A limit of the server's (message_chars, name_chars, url_chars...). */
  K.limit = (name) => (K.config.limits || {})[name];
  /** The page the visitor is on, within the server's limits. */
  K.where = () => ({
    page_url: location.href.slice(0, K.limit("url_chars")),
    page_title: (d.title || "").slice(0, K.limit("title_chars")),
  });
  let connecting = false;
  let sent = null; // the token the stream last identified with
  let warned = false;
  let news = 0; // availability news (welcome, event) so far

  /** The snippet's department if the site has it; else null: site-wide (and a warning). */
  K.department = () => {
    const list = K.config.departments;
    const dep = K.dept && list && list.find((p) => p.key === K.dept);
    if (K.dept && list && !dep && !warned) {
      warned = true;
      console.warn("Cute Live Support: no department " + JSON.stringify(K.dept) + "; site-wide.");
    }
    return dep || null;
  };

  /** Ask the server who is online now (the window shows the server's state at that moment);
   * an `availability` that arrives meanwhile is newer, and wins. */
  K.checkOnline = () => {
    const asked = news;
    fetch(K.server + "/api/widget/config", { credentials: "omit", cache: "no-store" })
      .then((r) => r.json())
      .then(
        (c) => asked === news && available(c),
        () => {},
      );
  };
  /** A config or an `availability`: who is online, and in which departments. */
  function available(x) {
    if (x.departments) K.config.departments = x.departments;
    K.department();
    K.setOnline(K.avail(x));
  }

  /** Open the one stream of this page (idempotent). */
  K.connect = () => {
    if (K.stream || connecting) return;
    connecting = true;
    K.getToken().then(open, () => {
      connecting = false;
      setTimeout(K.connect, 5000);
    });
  };

  function open() {
    const hint = K.jget("transport");
    const s = (K.stream = new K.Stream({
      base: K.server,
      role: "visitor",
      token: () => (sent = K.token()),
      headers: () => ({ Authorization: "Bearer " + (sent = K.token()) }),
      preferPoll: !!(hint && hint.poll > Date.now() - 5 * 60 * 1000),
      onState: (st) => {
        K.conn = st;
        K.live = st === "connected";
        if (K.chat) K.chat.state(st);
      },
      onWelcome: (ev) => {
        K.welcome = ev;
        news++;
        // (A welcome without departments does not say where anyone is online: ask.)
        available(Object.assign({ departments: K.config.departments }, ev));
        if (!ev.departments && (K.config.departments || []).length) K.checkOnline();
        if (K.chat) K.chat.welcome(ev);
      },
      onEvent,
      onTransport: (m) => K.jset("transport", m === "poll" ? { poll: Date.now() } : null),
      onBadToken: () => {
        // The server forgot us (or the token was revoked): start over as a new visitor (unless
        // a beacon found out first and already has a new token).
        for (const k in s.cursors) delete s.cursors[k];
        backlog = [];
        K.welcome = null;
        drop();
        if (K.chat) K.chat.forget();
        return K.getToken(sent || "-");
      },
    }));
    // Replay the whole transcript of the visitor's current chat if the window will show it.
    if ((K.chat || K.page || S.open || S.live) && S.chat && S.chat !== S.dismissed)
      s.cursors[S.chat] = 0;
    s.start();
  }

  /** chat.js takes what arrived before it (the welcome is in K.welcome). */
  K.takeBacklog = () => {
    const b = backlog;
    backlog = [];
    return b;
  };

  function onEvent(ev) {
    switch (ev.type) {
      case "availability":
        news++;
        return available(ev);
      case "appearance":
        K.config.appearance = ev.appearance || {};
        K.setOnline(K.online);
        if (K.chat) K.chat.restyle();
        return restyle();
      case "invitation":
        return show(ev);
      case "invitation_expired":
      case "invitation_answered":
        return inv && inv.id === ev.id && drop();
    }
    if (K.chat) return K.chat.event(ev);
    if (ev.chat_id != null) {
      backlog.push(ev);
      K.load().catch(() => {});
    }
  }

  d.addEventListener("visibilitychange", () => K.stream && K.stream.kick());
  w.addEventListener("online", () => K.stream && K.stream.kick());
  w.addEventListener("pageshow", (e) => e.persisted && K.stream && K.stream.kick());

  // -- the invitation card -------------------------------------------------------------------

  const style = d.createElement("style");
  style.textContent =
    ".cl-invite{--a:#4f46e5;--t:#fff;position:fixed;right:20px;bottom:92px;width:320px;" +
    "max-width:calc(100vw - 40px);box-sizing:border-box;padding:16px;background:#fff;color:#0f172a;" +
    "border-radius:16px;box-shadow:0 18px 50px rgba(15,23,42,.25),0 2px 6px rgba(15,23,42,.08);" +
    "font:400 14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Arial,sans-serif;text-align:left;" +
    "animation:cl-inv .22s ease-out}" +
    ".cl-invite *{box-sizing:border-box}" +
    "@keyframes cl-inv{from{opacity:0;transform:translateY(10px)}}" +
    ".cl-left .cl-invite{right:auto;left:20px}" +
    ".cl-inv-head{display:flex;align-items:center;gap:10px;margin-bottom:10px}" +
    ".cl-inv-av{flex:none;width:38px;height:38px;border-radius:50%;background:var(--a);color:var(--t);" +
    "display:grid;place-items:center;font-weight:700;font-size:16px}" +
    ".cl-inv-who{flex:1;min-width:0}" +
    ".cl-inv-name{font-weight:700;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}" +
    ".cl-inv-sub{font-size:12px;color:#64748b;display:flex;align-items:center;gap:5px}" +
    ".cl-inv-sub:before{content:'';width:7px;height:7px;border-radius:50%;background:#22c55e}" +
    ".cl-inv-x{all:unset;cursor:pointer;width:28px;height:28px;border-radius:8px;display:grid;" +
    "place-items:center;color:#64748b;font-size:20px;line-height:1}" +
    ".cl-inv-x:hover{background:#f1f5f9;color:#0f172a}" +
    ".cl-inv-msg{margin:0 0 12px;padding:10px 13px;background:#f1f5f9;border-radius:4px 14px 14px 14px;" +
    "white-space:pre-wrap;overflow-wrap:anywhere;max-height:40vh;overflow:auto}" +
    ".cl-inv-in{display:block;width:100%;margin:0 0 10px;padding:9px 11px;border:1px solid #cbd5e1;" +
    "border-radius:10px;font:inherit;color:inherit;background:#fff;resize:none;outline:none}" +
    ".cl-inv-in:focus{border-color:var(--a);box-shadow:0 0 0 3px rgba(79,70,229,.15)}" +
    ".cl-inv-note{margin:-4px 0 10px;color:#b91c1c;font-size:13px}.cl-inv-note:empty{display:none}" +
    ".cl-inv-btns{display:flex;gap:8px}" +
    ".cl-inv-btns button{all:unset;flex:1;text-align:center;cursor:pointer;border-radius:10px;" +
    "padding:9px 10px;font-weight:600;border:1px solid #e2e8f0;color:#334155;background:#fff}" +
    ".cl-inv-btns .cl-inv-yes{background:var(--a);border-color:var(--a);color:var(--t)}" +
    ".cl-inv-btns button:focus-visible,.cl-inv-x:focus-visible{outline:3px solid #93c5fd}" +
    "@media (max-width:480px){.cl-invite,.cl-left .cl-invite{left:12px;right:12px;width:auto;max-width:none}}";
  K.root.appendChild(style);

  let card = null;
  let inv = null;
  let expiry = 0;
  const el = (tag, cls, text) => {
    const e = d.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  };
  const button = (cls, text, fn) => {
    const b = el("button", cls, text);
    b.type = "button";
    b.addEventListener("click", fn);
    return b;
  };
  const cid = () => Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
  const title = () => K.look().title || "";

  function restyle() {
    if (!card) return;
    const a = K.look();
    const ok = (c) => /^#[0-9a-f]{3,8}$/i.test(c || "");
    card.style.setProperty("--a", ok(a.color) ? a.color : "");
    card.style.setProperty("--t", ok(a.color_text) ? a.color_text : "");
  }

  function show(ev) {
    if (inv && inv.id === ev.id) return;
    drop();
    inv = ev;
    const who = ev.operator && ev.operator.name ? ev.operator.name : title();
    const input = el("textarea", "cl-inv-in");
    input.rows = 2;
    input.placeholder = "Write a reply\u2026";
    input.setAttribute("aria-label", "Your reply");
    // Over the length limit, an edit is refused with a note, never cut short.
    const max = K.limit("message_chars");
    const note = el("p", "cl-inv-note");
    note.setAttribute("role", "alert");
    let before = "";
    input.addEventListener("beforeinput", () => (before = input.value));
    input.addEventListener("input", () => {
      const n = Array.from(input.value).length;
      note.textContent = "";
      if (max && n > max) {
        input.value = before;
        note.textContent =
          "Not added: it would make the message " +
          n.toLocaleString("en") +
          " characters long; the limit is " +
          max.toLocaleString("en") +
          ".";
      }
    });
    input.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        accept(input.value.trim());
      }
    });
    const av = el("div", "cl-inv-av", (who.trim().charAt(0) || "?").toUpperCase());
    const head = el("div", "cl-inv-head");
    const names = el("div", "cl-inv-who");
    names.append(
      el("div", "cl-inv-name", who),
      el("div", "cl-inv-sub", ev.operator ? title() : "We\u2019re online"),
    );
    head.append(
      av,
      names,
      button("cl-inv-x", "\u00d7", () => decline()),
    );
    head.lastChild.setAttribute("aria-label", "No thanks");
    const btns = el("div", "cl-inv-btns");
    btns.append(
      button("cl-inv-no", "No thanks", () => decline()),
      button("cl-inv-yes", "Chat now", () => accept(input.value.trim())),
    );
    card = el("div", "cl-invite");
    card.setAttribute("role", "dialog");
    card.setAttribute("aria-live", "polite");
    card.setAttribute("aria-label", "Chat invitation from " + who);
    card.setAttribute("data-invitation", ev.id);
    card.append(
      head,
      el("p", "cl-inv-msg", ev.message || K.config.invitation_text),
      input,
      note,
      btns,
    );
    restyle();
    K.wrap.appendChild(card);
    K.coverInvitation(!!K.state.open);
    if (ev.expires_in) expiry = setTimeout(drop, (ev.expires_in + 2) * 1000);
  }

  /** An invitation is never drawn over the open chat window: it waits (until it expires)
   * for the window to be minimised. */
  K.coverInvitation = (covered) => {
    if (card) card.style.display = covered ? "none" : "";
  };

  function drop() {
    clearTimeout(expiry);
    if (card) card.remove();
    card = inv = null;
  }

  function decline() {
    if (!inv) return;
    K.stream.send({ type: "decline_invitation", invitation_id: inv.id }).catch(() => {});
    drop();
  }

  /** Accept: the chat window opens at once, in the chat the server creates for us. */
  function accept(text) {
    if (!inv) return;
    const cmd = Object.assign({ type: "accept_invitation", invitation_id: inv.id }, K.where());
    const profile = K.jget("profile") || {};
    if (typeof profile.name === "string" && profile.name.trim())
      cmd.name = profile.name.trim().slice(0, K.limit("name_chars"));
    if (text) {
      cmd.text = text;
      cmd.client_id = cid();
    }
    drop();
    K.accepting = true;
    K.open();
    const sent = K.stream.send(cmd);
    Promise.all([K.load(), sent.catch((e) => e)]).then(
      ([c, ack]) => {
        K.accepting = false;
        c.accepted(ack && ack.type === "ack" ? ack.chat : null, text, ack);
      },
      () => (K.accepting = false),
    );
  }

  if (!K.page) K.connect();
  if (K.configP) K.configP.then(K.department);
})();
