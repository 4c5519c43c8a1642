/* Cute Live Support: the visitor's chat window. Loaded on demand by widget.js (which owns the one
 * global, window.CuteLive) into its Shadow DOM; the stream it talks over is presence.js's (K.stream),
 * which hands it every chat event. Everything anyone typed is put into the page with textContent;
 * only http(s) URLs become links. */
(function () {
  "use strict";
  const CL = window.CuteLive;
  const K = CL && CL._k;
  if (!K || K.chat || !K.connect) return;
  const d = document;
  const w = window;
  const server = K.server;
  const serverOrigin = new URL(server).origin;
  const S = K.state; // persisted in localStorage "cutelive.state"
  const EMAIL = /^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$/;

  // -- small DOM helpers -----------------------------------------------------------------------

  function h(tag, props, ...kids) {
    const el = d.createElement(tag);
    for (const k in props || {}) {
      const v = props[k];
      if (v == null || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.slice(0, 2) === "on") el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of kids.flat()) if (c != null && c !== false) el.append(c);
    return el;
  }
  /** Replace an element's children, skipping null/false (replaceChildren would print "null"). */
  const put = (el, ...kids) =>
    el.replaceChildren(...kids.flat().filter((k) => k != null && k !== false));
  const SVG = "http://www.w3.org/2000/svg";
  function icon(paths) {
    const s = d.createElementNS(SVG, "svg");
    s.setAttribute("viewBox", "0 0 24 24");
    s.setAttribute("class", "cl-icon");
    s.setAttribute("aria-hidden", "true");
    for (const p of paths.split("|")) {
      const e = d.createElementNS(SVG, "path");
      e.setAttribute("d", p);
      s.append(e);
    }
    return s;
  }
  const I = {
    min: "M5 12h14",
    close: "M6 6l12 12|M18 6 6 18",
    pop: "M14 4h6v6|M20 4l-9 9|M19 14v5a1 1 0 0 1-1 1H5a1 1 0 0 1-1-1V6a1 1 0 0 1 1-1h5",
    send: "M22 2 11 13|M22 2l-7 20-4-9-9-4 20-7z",
    chat: "M21 12a8 8 0 0 1-11.6 7.1L4 20l1.1-4.4A8 8 0 1 1 21 12z",
    mail: "M4 6h16v12H4z|M4 7l8 6 8-6",
    check: "M20 6 9 17l-5-5",
    clip: "M21.4 11 12.2 20.2a6 6 0 0 1-8.5-8.5l9.2-9.2a4 4 0 0 1 5.7 5.7l-9.2 9.2a2 2 0 0 1-2.8-2.8l8.5-8.5",
  };
  const URL_RE = /\bhttps?:\/\/[^\s<>"']+/gi;
  /** Text with http(s) URLs as links; nothing else is ever interpreted. */
  function linkify(text) {
    const frag = d.createDocumentFragment();
    let last = 0;
    String(text).replace(URL_RE, (m, at) => {
      if (at < last) return m;
      const url = m.replace(/[),.;:!?\]}'"]+$/, "");
      frag.append(text.slice(last, at));
      const href = K.safeUrl(url);
      frag.append(
        href ? h("a", { href, target: "_blank", rel: "noopener noreferrer", text: url }) : url,
      );
      last = at + url.length;
      return m;
    });
    frag.append(text.slice(last));
    return frag;
  }
  /** Characters as the server counts them: code points (an emoji is one, not two). */
  const chars = (s) => s.length - (s.match(/[\uD800-\uDBFF](?=[\uDC00-\uDFFF])/g) || []).length;
  /** Keep a message box within the server's message_chars: a counter near the limit, and an
   * edit that would pass it (typed, pasted, dropped) refused with a message, the text left as
   * it was (a maxlength would cut a paste without a word). The line that shows both; guard a
   * box before its own input listeners, which then never see a refused edit. */
  function lengthGuard(box) {
    let max = 0;
    // The server's limit, read when the box is used (the config may come after the window).
    const readMax = () => (max = K.limit("message_chars") || Infinity);
    const note = h("div", { class: "cl-len", "aria-live": "polite" });
    const fmt = (n) => n.toLocaleString("en");
    let before = box.value;
    let shown = null;
    const show = (refusal) => {
      readMax();
      box.setAttribute("data-max-chars", max); // where tests can read it
      const n = chars((shown = box.value));
      note.classList.toggle("cl-refused", !!refusal);
      note.textContent = refusal || (n >= max * 0.9 ? fmt(n) + " / " + fmt(max) : "");
    };
    const refuse = (n, how) =>
      show(
        how === "typed"
          ? "This message is at the limit of " + fmt(max) + " characters."
          : how +
              ": it would make the message " +
              fmt(n) +
              " characters long; the limit is " +
              fmt(max) +
              ".",
      );
    box.addEventListener("paste", (e) => {
      readMax();
      const v = box.value;
      const pasted = e.clipboardData ? e.clipboardData.getData("text/plain") : "";
      const total =
        chars(v) -
        chars(v.slice(box.selectionStart, box.selectionEnd)) +
        chars(pasted.replace(/\r\n?/g, "\n"));
      if (total > max) {
        e.preventDefault();
        refuse(total, "Not pasted");
      }
    });
    // The text before each edit, to put back when the edit would pass the limit.
    box.addEventListener("beforeinput", () => (before = box.value));
    box.addEventListener("input", (e) => {
      readMax();
      const n = chars(box.value);
      if (n > max) {
        const caret = Math.max(0, box.selectionEnd - (box.value.length - before.length));
        box.value = before;
        box.setSelectionRange(caret, caret);
        e.stopImmediatePropagation();
        return refuse(n, n === chars(before) + 1 ? "typed" : "Not added");
      }
      show();
    });
    // A value set by the page (sent, restored) shows its count when the box is back in use.
    for (const type of ["focus", "keyup"])
      box.addEventListener(type, () => box.value !== shown && show());
    show();
    return note;
  }
  const hhmm = (ts) => new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const cid = () =>
    Date.now().toString(36) +
    "-" +
    Math.random().toString(36).slice(2, 10) +
    Math.random().toString(36).slice(2, 6);
  const look = () => K.look();
  const txt = (key) => look()[key] || "";

  // -- state -----------------------------------------------------------------------------------

  let conn = K.conn || "idle";
  let welcomed = false;
  let reloading = false;
  const chats = {};
  let cur = null;
  let outbox = (K.jget("outbox") || []).filter((m) => !m.acked);
  let starting = K.jget("starting");
  let leaving = null;
  /** A department that went offline as the visitor started a chat: leave it a message. */
  let offDept = null;
  let popup = null;
  const profile = K.jget("profile") || {};
  /** Open: waiting, active, or pending (answered, its operator away; kept for a reply). */
  const isOpen = (c) =>
    !!c && (c.status === "waiting" || c.status === "active" || c.status === "pending");
  const save = () => {
    S.live = isOpen(cur);
    K.save();
  };
  const saveOutbox = () => K.jset("outbox", outbox.length ? outbox : null);

  // -- the window --------------------------------------------------------------------------------

  const el = {};
  const win = h("div", {
    class: "cl-window cl-hidden" + (K.page ? " cl-page" : ""),
    role: "dialog",
    "aria-label": "Live Support chat",
  });
  el.avatar = h("div", { class: "cl-avatar" }, icon(I.chat));
  el.title = h("div", { class: "cl-title" });
  el.sub = h("div", { class: "cl-sub" });
  const hbtn = (cls, label, ic, fn) =>
    h(
      "button",
      { type: "button", class: "cl-hbtn " + cls, title: label, "aria-label": label, onclick: fn },
      icon(ic),
    );
  el.pop = hbtn("cl-popout", "Open in a new window", I.pop, () => popOut());
  el.min = hbtn("cl-minimize", "Minimise", I.min, () => minimize());
  el.end = hbtn("cl-end", "End chat", I.close, () => askEnd());
  win.append(
    h(
      "div",
      { class: "cl-head" },
      el.avatar,
      h("div", { class: "cl-head-text" }, el.title, el.sub),
      h(
        "div",
        { class: "cl-head-actions" },
        K.page ? null : el.pop,
        K.page ? null : el.min,
        el.end,
      ),
    ),
  );
  el.banner = h(
    "div",
    { class: "cl-banner cl-hidden", role: "status" },
    h("span", { class: "cl-spin" }),
    "Reconnecting\u2026",
  );
  el.confirm = h(
    "div",
    { class: "cl-confirm cl-hidden" },
    h("span", { text: "End this chat?" }),
    h("button", {
      type: "button",
      class: "cl-btn cl-danger cl-confirm-end",
      text: "End chat",
      onclick: () => endChat(),
    }),
    h("button", {
      type: "button",
      class: "cl-btn cl-ghost",
      text: "Cancel",
      onclick: () => el.confirm.classList.add("cl-hidden"),
    }),
  );
  el.body = h("div", { class: "cl-body" });
  win.append(
    el.banner,
    el.confirm,
    el.body,
    h("div", { class: "cl-foot", text: "Cute Live Support" }),
  );
  K.wrap.append(win);

  // The pre-chat / leave-a-message form: one form, two modes, so typed text survives a switch.
  el.name = h("input", {
    class: "cl-input cl-in-name",
    name: "name",
    maxlength: K.limit("name_chars"),
    autocomplete: "name",
  });
  el.email = h("input", {
    class: "cl-input cl-in-email",
    name: "email",
    type: "email",
    maxlength: K.limit("email_chars"),
    autocomplete: "email",
  });
  el.text = h("textarea", {
    class: "cl-input cl-in-text",
    name: "message",
    rows: 4,
  });
  el.textNote = lengthGuard(el.text);
  el.intro = h("p", { class: "cl-intro" });
  el.emailHint = h("em");
  el.formErr = h("p", { class: "cl-error", role: "alert" });
  el.submit = h("button", { type: "submit", class: "cl-btn cl-primary cl-submit" });
  el.dept = h("select", {
    class: "cl-input cl-in-dept",
    name: "department",
    onchange: () => (el.deptErr.textContent = ""),
  });
  el.back = h("button", {
    type: "button",
    class: "cl-btn cl-ghost cl-back",
    text: "Choose another department",
    onclick: () => ((offDept = null), render()),
  });
  el.form = h(
    "form",
    { class: "cl-form", novalidate: true, onsubmit: (e) => (e.preventDefault(), submitForm()) },
    el.intro,
    (el.deptField = h(
      "label",
      { class: "cl-field" },
      h("span", { class: "cl-label" }, "Department"),
      el.dept,
      (el.deptErr = h("span", { class: "cl-error cl-err-department", role: "alert" })),
    )),
    (el.nameField = h(
      "label",
      { class: "cl-field" },
      h("span", { class: "cl-label" }, "Your name", (el.nameHint = h("em"))),
      el.name,
      (el.nameErr = h("span", { class: "cl-error cl-err-name", role: "alert" })),
    )),
    (el.emailField = h(
      "label",
      { class: "cl-field" },
      h("span", { class: "cl-label" }, "E-mail", el.emailHint),
      el.email,
      (el.emailErr = h("span", { class: "cl-error cl-err-email", role: "alert" })),
    )),
    h(
      "label",
      { class: "cl-field" },
      h("span", { class: "cl-label" }, "Message"),
      el.text,
      (el.textErr = h("span", { class: "cl-error cl-err-text", role: "alert" })),
    ),
    el.textNote,
    el.formErr,
    el.submit,
    el.back,
  );
  /** A validation error beside its field ("form": under the form). */
  const fieldErr = (field, text) => {
    for (const [k, e] of [
      ["department", el.deptErr],
      ["name", el.nameErr],
      ["email", el.emailErr],
      ["text", el.textErr],
      ["form", el.formErr],
    ])
      e.textContent = k === field ? text : "";
  };
  /** Where the server's error about a field goes: beside it, if the form shows it. */
  const errAt = (e) => {
    const f = { department: el.deptField, name: el.nameField, email: el.emailField, text: el.text };
    return f.hasOwnProperty(e.field) && !f[e.field].classList.contains("cl-hidden")
      ? e.field
      : "form";
  };
  el.name.value = profile.name || "";
  el.email.value = profile.email || "";
  el.text.value = (S.draft && S.draft.text) || "";
  el.form.addEventListener("input", () => {
    S.draft = { text: el.text.value };
    K.jset("profile", { name: el.name.value, email: el.email.value });
    save();
  });

  // The conversation.
  el.items = h("div", { class: "cl-items" });
  el.pending = h("div", { class: "cl-pending-list" });
  el.queue = h("span", { class: "cl-queue" });
  el.waiting = h(
    "div",
    { class: "cl-waiting cl-hidden" },
    h("span", { class: "cl-dots" }, h("i"), h("i"), h("i")),
    h("span", { class: "cl-waiting-text" }),
    el.queue,
  );
  el.typing = h(
    "div",
    { class: "cl-typing cl-hidden", "aria-live": "polite" },
    h("span", { class: "cl-dots" }, h("i"), h("i"), h("i")),
    h("span", { class: "cl-typing-text" }),
  );
  el.log = h(
    "div",
    { class: "cl-log", role: "log", "aria-live": "polite" },
    el.items,
    el.pending,
    el.waiting,
    el.typing,
  );
  el.input = h("textarea", {
    class: "cl-compose-input",
    rows: 1,
    placeholder: "Type your message\u2026",
    "aria-label": "Message",
  });
  el.inputNote = lengthGuard(el.input);
  el.send = h(
    "button",
    { type: "button", class: "cl-send", title: "Send", "aria-label": "Send" },
    icon(I.send),
  );
  // Files (§7.10): the paperclip opens the file chooser at once (inside the click); files.js
  // comes only when a file is chosen, pasted or dropped, or a file event is shown.
  el.file = h("input", {
    type: "file",
    multiple: true,
    class: "cl-hidden",
    tabindex: -1,
    onchange: () => {
      for (const f of el.file.files) attach(f);
      el.file.value = "";
    },
  });
  el.attach = h(
    "button",
    {
      type: "button",
      class: "cl-attach",
      title: "Attach a file",
      "aria-label": "Attach a file",
      onclick: () => el.file.click(),
    },
    icon(I.clip),
  );
  el.compose = h(
    "div",
    { class: "cl-compose" },
    el.inputNote,
    el.attach,
    el.file,
    el.input,
    el.send,
  );
  // Pending: the operator went away; the visitor may leave an address for the reply.
  el.away = h("div", { class: "cl-away cl-hidden", role: "status" });
  el.awayEmail = h("input", {
    class: "cl-input cl-away-email",
    type: "email",
    name: "email",
    placeholder: "you@example.com",
    maxlength: K.limit("email_chars"),
    autocomplete: "email",
    "aria-label": "Your e-mail address",
  });
  el.awayErr = h("p", { class: "cl-error", role: "alert" });
  el.awayForm = h(
    "form",
    { class: "cl-away-form", novalidate: true, onsubmit: (e) => (e.preventDefault(), saveEmail()) },
    el.awayEmail,
    h("button", { type: "submit", class: "cl-btn cl-primary cl-away-save", text: "Save" }),
  );
  // Ended: rate the chat, get the transcript by e-mail, or start again.
  el.rate = h("div", { class: "cl-rate" });
  el.ended = h(
    "div",
    { class: "cl-ended cl-hidden" },
    h("span", { class: "cl-ended-text", text: "This chat has ended." }),
    el.rate,
    h("button", {
      type: "button",
      class: "cl-btn cl-primary cl-new",
      text: "Start a new chat",
      onclick: () => newChat(),
    }),
  );
  el.chat = h("div", { class: "cl-chat" }, el.log, el.away, el.compose, el.ended);

  el.thanks = h("div", { class: "cl-thanks" });
  el.loading = h(
    "div",
    { class: "cl-loading" },
    h("span", { class: "cl-spin" }),
    h("span", { text: "Connecting\u2026" }),
  );

  // -- rendering ---------------------------------------------------------------------------------

  function restyle() {
    const a = look();
    const color = /^#[0-9a-f]{3,8}$/i.test(a.color || "") ? a.color : "";
    const fg = /^#[0-9a-f]{3,8}$/i.test(a.color_text || "") ? a.color_text : "";
    win.style.setProperty("--cl-accent", color);
    win.style.setProperty("--cl-on-accent", fg);
    win.classList.toggle("cl-left", a.position === "left");
    render();
  }

  let shown = null;
  function viewName() {
    if (S.thanks) return "thanks";
    if (cur && cur.id !== S.dismissed) return cur.status === "missed" ? "offline" : "chat";
    if (K.accepting || reloading) return "loading";
    if (S.chat && S.chat !== S.dismissed && !welcomed) return "loading";
    return (K.online && !offDept) || starting ? "prechat" : "offline";
  }

  function render() {
    const v = viewName();
    if (v !== shown) {
      shown = v;
      put(
        el.body,
        v === "chat"
          ? el.chat
          : v === "thanks"
            ? el.thanks
            : v === "loading"
              ? el.loading
              : el.form,
      );
      win.setAttribute("data-view", v);
      if (v === "chat") renderLog();
    }
    if (v === "prechat" || v === "offline") renderForm(v);
    if (v === "thanks") renderThanks();
    renderHead();
    if (v === "chat") renderChatState(), renderReceipt();
  }

  function renderHead() {
    const op =
      cur &&
      cur.id !== S.dismissed &&
      (cur.status === "active" || cur.status === "pending") &&
      cur.operator;
    el.title.textContent = op ? op.name : txt("title");
    let sub;
    const team = (cur && cur.dept && cur.dept.name) || "Support"; // the chat's department
    if (op && (cur.status === "pending" || /^(away|offline)$/.test(cur.operatorStatus || "")))
      sub = team + " \u00b7 away";
    else if (op) sub = team + " \u00b7 online";
    else if (shown === "chat" && cur.status === "waiting") sub = txt("waiting");
    else if (shown === "chat") sub = "Chat ended";
    else sub = K.online && !offDept ? "We\u2019re online" : "Leave us a message";
    el.sub.textContent = sub;
    put(
      el.avatar,
      op
        ? h("span", { text: (op.name || "?").trim().charAt(0).toUpperCase() || "?" })
        : icon(I.chat),
    );
    el.avatar.classList.toggle(
      "cl-online",
      (!!op && cur.status === "active") || (shown !== "chat" && K.online && !offDept),
    );
    const open = cur && cur.id !== S.dismissed && isOpen(cur);
    el.end.title = open ? "End chat" : "Close";
    el.end.setAttribute("aria-label", el.end.title);
    if (!open) el.confirm.classList.add("cl-hidden");
  }

  function renderForm(mode) {
    const missed = cur && cur.id !== S.dismissed && cur.status === "missed";
    const off = mode === "offline";
    el.form.setAttribute("data-mode", mode);
    el.intro.textContent = missed
      ? "Sorry, nobody was free to answer. Leave a message and we\u2019ll reply by e-mail."
      : offDept
        ? "Nobody in " +
          offDept.name +
          " is online right now. Leave a message and we\u2019ll reply by e-mail."
        : off
          ? txt("offline_prompt")
          : txt("greeting");
    renderDepts(off);
    // Widget settings ask for each field: required, optional or not at all. The offline form
    // always needs an address to answer to, and a name.
    const ask = (k) => (off ? "required" : txt("ask_" + k));
    el.nameField.classList.toggle("cl-hidden", ask("name") === "hidden");
    el.emailField.classList.toggle("cl-hidden", ask("email") === "hidden");
    el.nameHint.textContent = ask("name") === "optional" ? " (optional)" : "";
    el.emailHint.textContent = ask("email") === "optional" ? " (optional)" : "";
    el.email.required = ask("email") === "required";
    if (missed && !el.text.value) {
      el.text.value = cur.events
        .filter((e) => e.type === "message" && e.from === "visitor")
        .map((e) => e.text)
        .join("\n");
    }
    if (missed && !el.name.value) el.name.value = cur.name || "";
    if (missed && !el.email.value) el.email.value = cur.email || "";
    const busy = off ? !!leaving : !!starting;
    el.submit.disabled = busy;
    el.submit.textContent = busy
      ? conn === "connected"
        ? "Sending\u2026"
        : "Connecting\u2026"
      : off
        ? txt("button_send")
        : txt("button_start");
  }

  /** The departments the visitor may choose: those with someone online, unless the snippet
   * fixed one (§5.5). Redrawn only when the list changes, so an open list stays open. */
  let deptList = null;
  function renderDepts(off) {
    const all = K.config.departments || [];
    const deps = K.department() ? [] : all.filter((p) => p.online);
    el.deptField.classList.toggle("cl-hidden", off || !deps.length);
    el.back.classList.toggle("cl-hidden", !offDept || !deps.length);
    if (off) return; // (the choice is kept for when the form is back)
    const list = JSON.stringify(deps);
    if (list === deptList) return;
    deptList = list;
    const was = el.dept.value;
    const lost = was && !deps.some((p) => p.key === was);
    // One department: it is the choice; else the visitor chooses (again, if theirs went).
    put(
      el.dept,
      deps.length > 1 || lost
        ? h("option", { value: "", text: "Choose a department\u2026" })
        : null,
      deps.map((p) => h("option", { value: p.key, text: p.name })),
    );
    if (!lost) {
      if (was) el.dept.value = was;
    } else if (deps.length) {
      const gone = all.find((p) => p.key === was);
      el.deptErr.textContent =
        (gone ? gone.name : "Your department") +
        " has just gone offline. Please choose another department.";
    }
  }

  function renderThanks() {
    const t = S.thanks || {};
    put(
      el.thanks,
      h("div", { class: "cl-thanks-icon" }, icon(I.check)),
      h("h3", {
        class: "cl-thanks-title",
        text: txt("thanks"),
      }),
      h("p", {
        class: "cl-thanks-text",
        text: t.email ? "We\u2019ll reply to " + t.email + " as soon as we can." : "",
      }),
      h("button", {
        type: "button",
        class: "cl-btn cl-ghost cl-done",
        text: "Done",
        onclick: () => doneThanks(),
      }),
    );
  }

  function renderChatState() {
    const open = isOpen(cur);
    el.compose.classList.toggle("cl-hidden", !open);
    el.ended.classList.toggle("cl-hidden", open);
    el.waiting.classList.toggle("cl-hidden", cur.status !== "waiting");
    el.waiting.children[1].textContent = txt("waiting");
    // Where the chat stands in the queue (§5.5 queue_position), while it waits.
    const q = cur.status === "waiting" && cur.queue;
    const wait = q && q.estimated_wait != null ? Math.max(1, Math.round(q.estimated_wait / 60)) : 0;
    el.queue.textContent = q
      ? "You are number " +
        q.position +
        " in the queue" +
        (wait ? " \u00b7 about " + wait + " min" : "")
      : "";
    renderAway();
    if (!open) {
      showTyping(false);
      renderRate();
    }
  }

  /** A pending conversation: told honestly, with where the reply will come. */
  function renderAway() {
    const pending = cur.status === "pending";
    el.away.classList.toggle("cl-hidden", !pending);
    if (!pending) return;
    const who = cur.operator && cur.operator.name ? cur.operator.name : "Our operator";
    const mail = !!K.config.mail;
    let where = " when you\u2019re back on the site.";
    if (mail && cur.email)
      where = ", and we\u2019ll e-mail it to " + cur.email + " if you\u2019ve left.";
    else if (mail)
      where =
        " \u2014 or leave your e-mail address and we\u2019ll send it there if you\u2019ve left.";
    put(
      el.away,
      h("p", {
        class: "cl-away-text",
        text:
          who + " had to step away. Your conversation is kept: the reply will appear here" + where,
      }),
      mail && !cur.email ? el.awayForm : null,
      mail && !cur.email ? el.awayErr : null,
    );
  }

  async function saveEmail() {
    const email = el.awayEmail.value.trim();
    el.awayErr.textContent = "";
    if (!EMAIL.test(email)) {
      el.awayErr.textContent = "Please enter a valid e-mail address.";
      return;
    }
    try {
      const ack = await K.stream.send({ type: "set_email", chat_id: cur.id, email });
      if (ack.chat && chats[ack.chat.id]) chats[ack.chat.id].email = ack.chat.email;
      render();
    } catch (e) {
      el.awayErr.textContent = (e && e.message) || "Could not save the address. Try again.";
    }
  }

  /** After the chat: rate it (when an operator answered) and get the transcript by e-mail. */
  let rateFor = null;
  function renderRate() {
    const key = cur.id + ":" + (cur.rating || 0);
    if (rateFor === key) return;
    rateFor = key;
    const answered = cur.events.some((e) => e.type === "chat_accepted");
    const parts = [];
    if (answered && cur.rating) {
      parts.push(h("p", { class: "cl-rated", text: "Thank you for rating this chat." }));
    } else if (answered) {
      parts.push(...rateForm());
    }
    if (K.config.mail) parts.push(transcriptForm());
    put(el.rate, ...parts);
    toBottom(); // the log shrank: keep its last lines in sight
  }

  function rateForm() {
    const comment = h("textarea", {
      class: "cl-input cl-rate-comment",
      rows: 2,
      maxlength: 1000,
      placeholder: "Anything to add? (optional)",
      "aria-label": "Comment",
    });
    let stars = 0;
    const err = h("p", { class: "cl-error", role: "alert" });
    const send = h("button", {
      type: "button",
      class: "cl-btn cl-primary cl-rate-send",
      text: "Send rating",
      disabled: true,
      onclick: () => {
        const c = cur;
        K.stream
          .send({ type: "rate", chat_id: c.id, rating: stars, comment: comment.value.trim() })
          .then(
            () => ((c.rating = stars), render()),
            (e) => (err.textContent = (e && e.message) || "Could not send. Try again."),
          );
      },
    });
    const starBtns = [1, 2, 3, 4, 5].map((n) =>
      h("button", {
        type: "button",
        class: "cl-star",
        "data-rating": n,
        "aria-label": n + " of 5",
        title: n + " of 5",
        text: "\u2605",
        onclick: () => {
          stars = n;
          for (const b of starBtns)
            b.classList.toggle("cl-on", Number(b.getAttribute("data-rating")) <= n);
          send.disabled = false;
        },
      }),
    );
    return [
      h("p", { class: "cl-rate-q", text: "How was this chat?" }),
      h("div", { class: "cl-stars" }, starBtns),
      comment,
      err,
      send,
    ];
  }

  function transcriptForm() {
    const addr = h("input", {
      class: "cl-input cl-transcript-email",
      type: "email",
      placeholder: "you@example.com",
      value: cur.email || profile.email || "",
      "aria-label": "E-mail address for the transcript",
    });
    const note = h("p", { class: "cl-transcript-note", role: "status" });
    const send = (e) => {
      e.preventDefault();
      const email = addr.value.trim();
      note.textContent = "Sending\u2026";
      K.stream.send({ type: "email_transcript", chat_id: cur.id, email }).then(
        () => (note.textContent = "The transcript is on its way to " + email + "."),
        (x) => (note.textContent = (x && x.message) || "Could not send. Try again."),
      );
    };
    return h(
      "form",
      { class: "cl-transcript", novalidate: true, onsubmit: send },
      h("span", { class: "cl-label", text: "E-mail me the transcript" }),
      h(
        "div",
        { class: "cl-row" },
        addr,
        h("button", { type: "submit", class: "cl-btn cl-ghost cl-transcript-send", text: "Send" }),
      ),
      note,
    );
  }

  function sysLine(text) {
    return h("div", { class: "cl-sys" }, h("span", { text }));
  }

  function eventNode(ev, prev) {
    const who = ev.operator && ev.operator.name ? ev.operator.name : "The operator";
    switch (ev.type) {
      case "chat_started": {
        const line = sysLine("Chat started \u00b7 " + hhmm(ev.ts));
        const inv = ev.invitation;
        if (!inv) return line;
        // Started from an invitation: its message is the operator's first bubble.
        const from = inv.operator && inv.operator.name ? inv.operator.name : txt("title");
        return h(
          "div",
          { class: "cl-started" },
          line,
          h(
            "div",
            { class: "cl-msg cl-them cl-invited" },
            h("div", { class: "cl-from", text: from }),
            h("div", { class: "cl-bubble" }, linkify(inv.message || K.config.invitation_text)),
            h("div", { class: "cl-time", text: hhmm(ev.ts) }),
          ),
        );
      }
      case "chat_accepted":
        return sysLine(who + " joined the chat");
      case "chat_requeued":
        return sysLine(
          ev.reason === "handed_over"
            ? who + " handed your chat to a colleague. Waiting for them\u2026"
            : who + " left. Waiting for another operator\u2026",
        );
      case "chat_pending":
        return sysLine(
          ev.reason === "queue_timeout"
            ? "Nobody else is free right now. Your conversation is kept for a reply."
            : who + " had to step away. Your conversation is kept for a reply.",
        );
      case "chat_resumed":
        return sysLine(who + " is back");
      case "chat_transferred":
        return sysLine("You\u2019re now chatting with " + who);
      case "visitor_details":
        return sysLine("We\u2019ll reply to " + ev.email + " if you\u2019ve left");
      case "chat_missed":
        return sysLine("Nobody could answer in time.");
      case "chat_closed":
        return sysLine(
          ev.by === "visitor"
            ? "You ended the chat"
            : ev.by === "operator"
              ? who + " ended the chat"
              : ev.reason === "pending_timeout"
                ? "The conversation was closed after a long wait"
                : "The chat was closed",
        );
      case "file":
      case "message": {
        const mine = ev.from === "visitor";
        const same =
          prev &&
          (prev.type === "message" || prev.type === "file") &&
          prev.from === ev.from &&
          (mine || (prev.operator && ev.operator && prev.operator.id === ev.operator.id));
        return h(
          "div",
          {
            class: "cl-msg " + (mine ? "cl-me" : "cl-them") + (same ? " cl-cont" : ""),
            "data-seq": ev.seq,
          },
          !mine && !same ? h("div", { class: "cl-from", text: who }) : null,
          ev.file ? fileBubble(ev.file) : h("div", { class: "cl-bubble" }, linkify(ev.text)),
          h("div", { class: "cl-time", text: hhmm(ev.ts) }),
        );
      }
    }
    return null;
  }

  /** A file event's bubble, filled by files.js once it is loaded. */
  function fileBubble(f) {
    const box = h("div", { class: "cl-bubble cl-file" });
    withFiles((F) => F.show(box, f));
    return box;
  }

  const nearBottom = () => el.log.scrollHeight - el.log.scrollTop - el.log.clientHeight < 80;
  const toBottom = () => (el.log.scrollTop = el.log.scrollHeight);

  function renderLog() {
    if (!cur) return;
    put(el.items);
    let prev = null;
    for (const ev of cur.events) {
      const n = eventNode(ev, prev);
      if (n) el.items.append(n);
      prev = ev;
    }
    renderPending();
    if (K.files) K.files.shown(cur.id);
    requestAnimationFrame(toBottom);
  }

  function renderPending() {
    put(
      el.pending,
      ...outbox
        .filter((m) => cur && m.chat_id === cur.id)
        .map((m) =>
          h(
            "div",
            { class: "cl-msg cl-me cl-pending" + (m.failed ? " cl-failed" : "") },
            h("div", { class: "cl-bubble" }, linkify(m.text)),
            h("div", { class: "cl-time", text: m.failed || (m.acked ? "Sent" : "Sending\u2026") }),
          ),
        ),
    );
  }

  let typingTimer = null;
  function showTyping(on, secs) {
    clearTimeout(typingTimer);
    const op = cur && cur.operator;
    el.typing.lastChild.textContent =
      (op && op.name ? op.name : "The operator") + " is typing\u2026";
    const stick = nearBottom();
    el.typing.classList.toggle("cl-hidden", !on);
    if (on) typingTimer = setTimeout(() => showTyping(false), (secs || 6) * 1000);
    if (stick) toBottom();
  }

  function renderConn() {
    el.banner.classList.toggle("cl-hidden", conn !== "reconnecting");
    win.setAttribute("data-connection", conn);
    if (shown === "prechat" || shown === "offline") renderForm(shown);
  }

  // -- unread badge and title flash -----------------------------------------------------------

  let flashT = null;
  let origTitle = "";
  function flash(msg) {
    if (flashT) return;
    origTitle = d.title;
    let on = false;
    flashT = setInterval(() => {
      if (d.title !== msg && d.title !== origTitle) origTitle = d.title; // the page changed it
      on = !on;
      d.title = on ? msg : origTitle;
    }, 1000);
  }
  function stopFlash() {
    if (!flashT) return;
    clearInterval(flashT);
    flashT = null;
    d.title = origTitle;
  }
  const viewing = () => S.open && !d.hidden;

  function updateUnread() {
    let n = 0;
    if (cur) {
      if (viewing()) {
        S.seenChat = cur.id;
        S.seenSeq = cur.events.length ? cur.events[cur.events.length - 1].seq : 0;
      } else {
        const seen = S.seenChat === cur.id ? S.seenSeq || 0 : 0;
        for (const e of cur.events)
          if (/^(message|file)$/.test(e.type) && e.from === "operator" && e.seq > seen) n++;
      }
    }
    if (n > (S.unread || 0)) {
      const last = cur.events[cur.events.length - 1];
      const who = last && last.operator && last.operator.name;
      flash("\ud83d\udcac " + (who ? who + " replied" : "New message"));
    }
    if (!n) stopFlash();
    S.unread = n;
    K.setUnread(S.open ? 0 : n);
    save();
    receipts();
  }

  // -- receipts (§5.7): how far each party has got, in our own numbering ----------------------

  /** Merge cursors (a summary's `receipts`, an ack's, an event's): they only move forward. */
  function setRc(c, r) {
    c.rc = c.rc || {};
    for (const p in r || {}) {
      const o = (c.rc[p] = c.rc[p] || { delivered: 0, read: 0 });
      o.delivered = Math.max(o.delivered, r[p].delivered || 0);
      o.read = Math.max(o.read, r[p].read || 0);
    }
  }
  /** Tell the operator what reached us and, while the chat is on screen in a visible, focused
   * window, what was read: one receipt per burst of events, per chat. */
  let rcptT = 0;
  function receipts() {
    rcptT = rcptT || setTimeout(sendReceipts, 200);
  }
  function sendReceipts() {
    rcptT = 0;
    if (conn !== "connected") return;
    for (const id in chats) {
      const c = chats[id];
      const mine = (c.rc && c.rc.visitor) || {};
      let last = 0;
      for (const e of c.events) if (e.from === "operator") last = e.seq;
      const cmd = { type: "receipt", chat_id: c.id };
      if (c === cur && shown === "chat" && viewing() && d.hasFocus()) {
        if (last > Math.max(mine.read || 0, c.toldR || 0)) cmd.read = c.toldR = last;
      }
      if (!cmd.read && last > Math.max(mine.delivered || 0, c.toldD || 0)) cmd.delivered = last;
      if (!cmd.read && !cmd.delivered) continue;
      c.toldD = last;
      K.stream.send(cmd).then(
        (a) => setRc(c, a.receipts),
        () => (c.toldD = c.toldR = 0), // told again after the next welcome
      );
    }
  }
  /** "Delivered", then "Seen", beside the time of my last message the operator has got. */
  const rcpt = h("span", { class: "cl-rcpt" });
  function renderReceipt() {
    const r = (cur && cur.rc && cur.rc.operator) || {};
    let m = null;
    for (const e of cur ? cur.events : []) if (e.from === "visitor" && e.seq <= r.delivered) m = e;
    const t = m && el.items.querySelector('[data-seq="' + m.seq + '"] .cl-time');
    if (!t) return rcpt.remove();
    rcpt.textContent = r.read >= m.seq ? "Seen" : "Delivered";
    t.append(rcpt);
  }

  // -- events from the server --------------------------------------------------------------------

  function getChat(id) {
    return (chats[id] = chats[id] || { id, status: "waiting", operator: null, events: [] });
  }

  function setCurrent(c) {
    if (cur === c) return;
    cur = c;
    S.chat = c ? c.id : null;
    if (shown === "chat") renderLog();
  }

  function onWelcome(ev) {
    welcomed = true; // (presence.js has taken its availability)
    for (const s of ev.chats || []) {
      const c = getChat(s.id);
      c.dept = s.department;
      setRc(c, s.receipts);
      if (!c.events.length)
        Object.assign(c, {
          status: s.status,
          operator: s.operator,
          name: s.name,
          email: s.email,
          rating: s.rating,
          operatorStatus: s.operator_status,
        });
    }
    const open = (ev.chats || []).filter(isOpen);
    if (open.length) setCurrent(chats[Math.max(...open.map((s) => s.id))]);
    else if (S.chat && chats[S.chat] && !cur) setCurrent(chats[S.chat]);
    render();
    flush();
    receipts();
  }

  function onEvent(ev) {
    if (ev.type === "reset") return reload(ev.chat_id);
    if (ev.type === "typing") {
      if (ev.from === "operator" && cur && ev.chat_id === cur.id)
        showTyping(ev.typing, ev.expires_in);
      return;
    }
    if (ev.type === "error") return;
    if (ev.type === "receipt") {
      if (chats[ev.chat_id]) setRc(chats[ev.chat_id], { [ev.party]: ev });
      return render();
    }
    if (ev.type === "queue_position") {
      getChat(ev.chat_id).queue = ev; // (ephemeral: no seq, not in the transcript)
      return render();
    }
    if (ev.type === "operator_status") {
      if (chats[ev.chat_id]) chats[ev.chat_id].operatorStatus = ev.status;
      return render();
    }
    if (ev.chat_id == null) return;
    const c = getChat(ev.chat_id);
    apply(c, ev);
    if (!cur || c.id > cur.id) {
      setCurrent(c);
      if (S.dismissed === c.id) S.dismissed = null;
    }
    if (c === cur && shown === "chat") {
      const stick = nearBottom() || ev.from === "visitor";
      const n = eventNode(ev, c.events[c.events.length - 2]);
      if (n) el.items.append(n);
      if (ev.type === "message") renderPending();
      if (stick) toBottom();
    }
    render();
    updateUnread();
  }

  function apply(c, ev) {
    c.events.push(ev);
    switch (ev.type) {
      case "chat_started":
        Object.assign(c, { status: "waiting", name: ev.name, email: ev.email });
        break;
      case "file":
        if (K.files) K.files.arrived(ev);
      // falls through: a file is sent as a message is
      case "message":
        if (ev.from === "operator") showTyping(false);
        if (outbox.some((m) => m.client_id === ev.client_id)) {
          outbox = outbox.filter((m) => m.client_id !== ev.client_id);
          saveOutbox();
        }
        break;
      case "chat_accepted":
        // Another operator: their status is not known until it changes (online, as they just
        // accepted). The same one (a replay after the welcome's summary): as the summary says.
        if (!c.operator || !ev.operator || c.operator.id !== ev.operator.id)
          c.operatorStatus = null;
        Object.assign(c, { status: "active", operator: ev.operator, queue: null });
        break;
      case "chat_requeued":
        Object.assign(c, { status: "waiting", operator: null, queue: null });
        break;
      case "chat_transferred":
        Object.assign(c, { operator: ev.operator, operatorStatus: null });
        if (ev.department) c.dept = ev.department;
        break;
      case "chat_pending":
        Object.assign(c, { status: "pending", operator: ev.operator || c.operator });
        break;
      case "chat_resumed":
        Object.assign(c, { status: "active", operator: ev.operator });
        break;
      case "visitor_details":
        c.email = ev.email;
        break;
      case "chat_rated":
        c.rating = ev.rating;
        break;
      case "chat_missed":
        c.status = "missed";
        break;
      case "chat_closed":
        c.status = "closed";
        break;
    }
  }

  function reload(id) {
    const c = chats[id];
    if (c) c.events = [];
    fetch(server + "/api/visitor/chats/" + encodeURIComponent(id), {
      headers: { Authorization: "Bearer " + K.token() },
      credentials: "omit",
      cache: "no-store",
    })
      .then((r) => (r.ok ? r.json() : null))
      .then(
        (j) => {
          if (!j) {
            delete chats[id];
            if (cur && cur.id === id) cur = null;
            if (S.chat === id) S.chat = null;
          } else {
            const c = getChat(id);
            Object.assign(c, {
              status: j.chat.status,
              operator: j.chat.operator,
              name: j.chat.name,
              email: j.chat.email,
              rating: j.chat.rating,
              operatorStatus: j.chat.operator_status,
            });
            setRc(c, j.chat.receipts);
            for (const ev of j.events) {
              if (ev.seq === (K.stream.cursors[id] || 0) + 1) {
                K.stream.cursors[id] = ev.seq;
                apply(c, ev);
              }
            }
            if (!cur && S.chat === id) setCurrent(c);
          }
          reloading = false;
          shown = null;
          render();
          updateUnread();
        },
        () => {
          reloading = false;
          render();
        },
      );
  }

  // -- commands ---------------------------------------------------------------------------------

  let flushing = false;
  async function flush() {
    if (flushing || conn !== "connected") return;
    flushing = true;
    try {
      if (starting) await doStart();
      if (leaving) await doLeave();
      for (const m of outbox.slice()) {
        if (m.acked || m.failed) continue;
        try {
          await K.stream.send({
            type: "message",
            chat_id: m.chat_id,
            text: m.text,
            client_id: m.client_id,
          });
          m.acked = true;
        } catch (e) {
          if (e.error === "disconnected" || e.error === "timeout") break;
          if (e.retry_after) {
            // rate_limited, storage_full: the same message goes again (same client_id) then
            setTimeout(flush, e.retry_after * 1000);
            break;
          }
          m.failed =
            e.error === "chat_closed" ? "Not delivered: the chat has ended" : "Not delivered";
        }
      }
    } catch (e) {
      /* disconnected: retried on the next welcome */
    } finally {
      flushing = false;
      saveOutbox();
      if (shown === "chat") renderPending();
      render();
    }
  }

  function formError(e) {
    const f = e.field ? " (" + e.field + ")" : "";
    if (e.error === "rate_limited") return "Too many requests. Please wait a moment and try again.";
    if (e.field === "email") return "Please enter a valid e-mail address.";
    if (e.field === "department") return "That department is not available. Please choose another.";
    if (e.error === "too_long") return "That is too long" + f + ".";
    return (e.message || "Something went wrong") + f;
  }

  async function doStart() {
    const dept = starting.department;
    try {
      const ack = await K.stream.send(Object.assign({ type: "start_chat" }, starting));
      starting = null;
      K.jset("starting", null);
      el.text.value = "";
      S.draft = null;
      if (ack.chat) setCurrent(Object.assign(getChat(ack.chat.id), { dept: ack.chat.department }));
    } catch (e) {
      if (e.error === "disconnected" || e.error === "timeout") throw e;
      starting = null;
      K.jset("starting", null);
      if (e.error === "chat_already_open" && e.chat_id) {
        setCurrent(getChat(e.chat_id));
        K.stream
          .send({ type: "sync", cursors: Object.assign({}, K.stream.cursors) })
          .catch(() => {});
      } else if (e.error === "department_offline" && dept) {
        // Gone offline meanwhile: the same form, to leave that department a message.
        offDept = (K.config.departments || []).find((p) => p.key === dept) || {
          key: dept,
          name: dept,
        };
        fieldErr("", "");
      } else {
        fieldErr(errAt(e), formError(e));
      }
    }
  }

  async function doLeave() {
    try {
      await K.stream.send(Object.assign({ type: "leave_message" }, leaving));
      S.thanks = { email: leaving.email };
      if (cur && cur.status === "missed") S.dismissed = cur.id;
      leaving = null;
      el.text.value = "";
      S.draft = null;
      save();
    } catch (e) {
      if (e.error === "disconnected" || e.error === "timeout") throw e;
      leaving = null;
      fieldErr(errAt(e), formError(e));
    }
  }

  function submitForm() {
    const name = el.name.value.trim();
    const email = el.email.value.trim();
    const text = el.text.value.trim();
    const off = shown === "offline";
    const ask = (k) => (off ? "required" : txt("ask_" + k));
    // The department: the one that went offline, the snippet's, or the visitor's choice.
    const fixed = off ? offDept || K.department() : K.department();
    const dept = fixed
      ? fixed.key
      : el.deptField.classList.contains("cl-hidden")
        ? ""
        : el.dept.value;
    let field = "";
    let err = "";
    if (!fixed && !dept && !el.deptField.classList.contains("cl-hidden"))
      [field, err] = ["department", "Please choose a department."];
    else if (ask("name") === "required" && !name)
      [field, err] = ["name", "Please tell us your name."];
    else if (ask("email") === "required" && !email)
      [field, err] = ["email", "Please enter your e-mail address."];
    else if (ask("email") !== "hidden" && email && !EMAIL.test(email))
      [field, err] = ["email", "Please enter a valid e-mail address."];
    else if (!text) [field, err] = ["text", "Please write a message."];
    fieldErr(field, err);
    if (err) return;
    K.jset("profile", { name, email });
    const page = K.where();
    if (off) {
      leaving = Object.assign({ name, email, text }, page);
      if (cur && cur.status === "missed") leaving.chat_id = cur.id;
      if (dept) leaving.department = dept;
    } else {
      starting = Object.assign({ text, client_id: cid() }, page);
      if (name && ask("name") !== "hidden") starting.name = name;
      if (email && ask("email") !== "hidden") starting.email = email;
      if (dept) starting.department = dept;
      K.jset("starting", starting);
    }
    render();
    connect();
    flush();
  }

  function sendTyped() {
    const text = el.input.value.trim();
    if (!text || !cur) return;
    el.input.value = "";
    autosize();
    typingOn = false; // sending a message ends typing (server side too), and its preview
    typingText = null;
    clearTimeout(typingT);
    outbox.push({ client_id: cid(), chat_id: cur.id, text });
    saveOutbox();
    renderPending();
    toBottom();
    flush();
  }

  // -- files: files.js (K.files), loaded the first time one is attached or shown -------------

  K.ui = { h, icon, el, cid, toBottom: () => toBottom() };
  const withFiles = (fn) =>
    K.js("/assets/widget/files.js").then(
      () => fn(K.files),
      () => {},
    );
  const attach = (f) => cur && isOpen(cur) && withFiles((F) => F.upload(f, cur.id));
  /** Files pasted into the message box or dropped on the chat are attached. */
  const dropped = (e, list) => {
    if (!list || !list.length) return;
    e.preventDefault(); // (nor is a file dropped on an ended chat opened in the tab)
    for (const f of list) attach(f);
  };
  // (Text copied from an office program brings a picture of itself too: the text wins.)
  el.input.addEventListener("paste", (e) => {
    const c = e.clipboardData;
    if (c && !c.getData("text/plain")) dropped(e, c.files);
  });
  el.chat.addEventListener("dragover", (e) => e.preventDefault());
  el.chat.addEventListener("drop", (e) => dropped(e, e.dataTransfer && e.dataTransfer.files));

  let typingOn = false;
  let typingAt = 0;
  // The typing preview (§5.7, only where the site turned it on): what is in the box goes with
  // `typing`, at most every 500 ms while it changes; the last change is always sent.
  let typingText = null;
  let typingT = 0;
  function typing() {
    clearTimeout(typingT);
    const has = el.input.value.trim() !== "";
    const now = Date.now();
    if (!cur || conn !== "connected") return;
    const wl = K.welcome || {};
    const text =
      ("typing_preview" in wl ? wl.typing_preview : K.config.typing_preview) && el.input.value;
    const cmd = { type: "typing", chat_id: cur.id, typing: true };
    if (has && text && text !== typingText && typingOn && now - typingAt < 500) {
      typingT = setTimeout(typing, typingAt + 500 - now);
    } else if (has && (!typingOn || now - typingAt >= 3000 || (text && text !== typingText))) {
      typingOn = true;
      typingAt = now;
      if (text) cmd.text = typingText = text;
      K.stream.send(cmd).catch(() => {});
    } else if (!has && typingOn) {
      typingText = null;
      typingOn = cmd.typing = false;
      K.stream.send(cmd).catch(() => {});
    }
  }
  function autosize() {
    el.input.style.height = "auto";
    el.input.style.height = Math.min(el.input.scrollHeight, 120) + "px";
  }
  el.input.addEventListener("input", () => (autosize(), typing()));
  el.input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      sendTyped();
    }
  });
  el.send.addEventListener("click", () => (sendTyped(), el.input.focus()));

  function askEnd() {
    if (cur && cur.id !== S.dismissed && isOpen(cur)) {
      // The question takes room above the log: keep the last message in sight, not under it.
      const stick = nearBottom();
      el.confirm.classList.remove("cl-hidden");
      if (stick) toBottom();
    } else if (K.page) {
      w.close();
    } else {
      minimize();
    }
  }

  function endChat() {
    el.confirm.classList.add("cl-hidden");
    if (!cur) return;
    K.stream
      .send({ type: "close", chat_id: cur.id })
      .then((ack) => {
        if (ack.chat && cur && ack.chat.id === cur.id && cur.status !== "closed")
          cur.status = "closed";
        render();
      })
      .catch(() => {
        el.banner.classList.remove("cl-hidden");
      });
  }

  function newChat() {
    if (cur) {
      S.dismissed = cur.id;
      delete K.stream.cursors[cur.id];
    }
    cur = null;
    S.chat = null;
    save();
    render();
    el.text.focus();
  }

  function doneThanks() {
    S.thanks = null;
    offDept = null;
    if (cur && cur.status === "missed") newChat();
    save();
    render();
  }

  // -- connection (the stream is presence.js's: K.connect, K.stream) -----------------------------

  const connect = () => K.connect();

  /** The server forgot our token (presence.js gets a new one): start over as a new visitor. */
  function forget() {
    for (const k in chats) delete chats[k];
    cur = null;
    S.chat = null;
    outbox = [];
    saveOutbox();
    render();
  }

  d.addEventListener("visibilitychange", () => !d.hidden && updateUnread());
  w.addEventListener("focus", updateUnread); // (read receipts wait for a focused window)

  // -- pop-out: the token crosses by postMessage, never in the URL ------------------------------

  function popOut() {
    const p = w.open(server + "/chat", "cutelive_chat", "popup=yes,width=420,height=660");
    if (!p) return;
    popup = p;
    minimize();
  }
  w.addEventListener("message", (e) => {
    if (!popup || e.source !== popup || e.origin !== serverOrigin) return;
    if (e.data && e.data.cutelive === "ready" && K.token()) {
      popup.postMessage({ cutelive: "token", token: K.token(), dept: K.dept }, serverOrigin);
    }
  });

  /** May a window of this origin hand us a token? Our own origin, or one of the sites allowed
   * to use the widget (GET /api/widget/config `origins`; empty: any site). */
  function openerAllowed(origin) {
    const list = K.config.origins;
    origin = String(origin).toLowerCase();
    return (
      origin === serverOrigin.toLowerCase() ||
      (Array.isArray(list) &&
        (!list.length || list.some((o) => String(o).toLowerCase() === origin)))
    );
  }

  /** Opened from an e-mailed link (/chat?link=…): the link's token is this visitor's while it
   * is valid. It is taken out of the address at once, so it is not shared by a copied URL. */
  function fromLink() {
    const m = /[?&]link=([A-Za-z0-9_-]{16,128})(?:&|$)/.exec(w.location.search);
    if (!m) return;
    if (m[1] !== K.token()) {
      K.lsSet("token", m[1]);
      S.chat = null;
      S.dismissed = null;
      S.thanks = null;
      outbox = [];
      saveOutbox();
    }
    w.history.replaceState(null, "", w.location.pathname);
  }

  async function fromOpener() {
    const op = w.opener;
    if (!op || op === w) return;
    await K.configP; // K.config.origins (if it cannot be had: our own origin only)
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        w.removeEventListener("message", on);
        resolve();
      };
      const on = (e) => {
        const m = e.data;
        if (e.source !== op || !m || m.cutelive !== "token" || typeof m.token !== "string") return;
        if (!/^[A-Za-z0-9_-]{16,128}$/.test(m.token) || !openerAllowed(e.origin)) return;
        // The opener's snippet department (data-department) goes on in this window.
        if (typeof m.dept === "string" && /^[a-z0-9-]{1,32}$/.test(m.dept)) K.dept = m.dept;
        if (m.token !== K.token()) {
          K.lsSet("token", m.token);
          S.chat = null;
          S.dismissed = null;
          S.thanks = null;
          outbox = [];
          saveOutbox();
        }
        done();
      };
      const t = setTimeout(done, 2000);
      w.addEventListener("message", on);
      try {
        op.postMessage({ cutelive: "ready" }, "*");
      } catch (x) {
        done();
      }
    });
  }

  // -- open / minimise ----------------------------------------------------------------------------

  function open() {
    S.open = true;
    S.min = false;
    win.classList.remove("cl-hidden");
    K.showLauncher(false);
    if (K.coverInvitation) K.coverInvitation(true);
    K.checkOnline();
    connect();
    render();
    updateUnread();
    requestAnimationFrame(() => {
      if (shown === "chat") {
        toBottom();
        if (!K.page || w.innerWidth > 480) el.input.focus();
      }
    });
  }

  function minimize() {
    if (K.page) return;
    S.open = false;
    S.min = true;
    win.classList.add("cl-hidden");
    K.showLauncher(true);
    if (K.coverInvitation) K.coverInvitation(false);
    updateUnread();
  }

  K.chat = {
    open,
    minimize,
    restore() {
      restyle();
      const go = () => {
        if (K.page || S.open) open();
        else {
          connect(); // a chat is going on: keep it live for the badge and the title
          K.showLauncher(true);
        }
      };
      if (K.page) {
        fromLink();
        fromOpener().then(go);
      } else go();
    },
    availability() {
      // The department the visitor was to leave a message for is back: chat with it.
      const dep = offDept && (K.config.departments || []).find((p) => p.key === offDept.key);
      if (dep && dep.online) offDept = null;
      render();
    },
    restyle,
    // From presence.js: the stream's state, welcome and events.
    state(s) {
      conn = s;
      renderConn();
    },
    welcome: onWelcome,
    event: onEvent,
    forget,
    /** An invitation was accepted (presence.js): show its chat, or say why not. */
    accepted(chat, text, err) {
      if (chat) {
        S.dismissed = null;
        S.thanks = null;
        setCurrent(getChat(chat.id));
        save();
      } else {
        if (text && !el.text.value) el.text.value = text;
        el.formErr.textContent =
          err && err.error === "not_found"
            ? "Sorry, that invitation has expired. You can still write to us here."
            : formError(err || {});
      }
      render();
    },
  };
  restyle();
  // Catch up with what the stream brought before we were loaded.
  if (K.welcome) onWelcome(K.welcome);
  for (const ev of K.takeBacklog()) onEvent(ev);
  // The visitor's last chat, if the stream is not replaying it: reload its transcript.
  if (K.stream && S.chat && S.chat !== S.dismissed && !(S.chat in K.stream.cursors)) {
    K.stream.cursors[S.chat] = 0;
    if (welcomed) {
      reloading = true;
      reload(S.chat);
    }
  }
})();
