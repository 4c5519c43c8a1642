/* Cute Live Support: files in the visitor's chat (PROTOCOL.md §7.10). Loaded by chat.js only when
 * the visitor attaches a file or the chat shows one, so a page whose visitor never does costs
 * nothing more. An upload is the file's raw bytes over XMLHttpRequest (for its progress); a
 * file's URL is signed and short-lived, so it is asked for when the file is shown and again
 * once it has expired. A file's name comes from a stranger: it is only ever text. */
(function () {
  "use strict";
  const K = window.CuteLive && window.CuteLive._k;
  if (!K || K.files || !K.ui) return;
  const { h, icon, el } = K.ui;
  const server = K.server;
  const auth = () => ({ Authorization: "Bearer " + K.token() });
  const conf = () => K.config.files || {};
  const DOC = "M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8z|M14 2v6h6";
  const DOWN = "M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4|M7 10l5 5 5-5|M12 15V3";

  /** 1536 → "1.5 KB" (binary units, as file managers count). */
  function size(n) {
    let i = 0;
    for (; n >= 1024 && i < 3; i++) n /= 1024;
    return (
      (i && n < 10 ? Math.round(n * 10) / 10 : Math.round(n)) + " " + "B KB MB GB".split(" ")[i]
    );
  }
  /** "image/png" → "PNG", as people name file types. */
  const kind = (t) =>
    ({ "text/plain": "text", "application/octet-stream": "other" })[t] ||
    String(t)
      .replace(/^.*\/|\+xml$/g, "")
      .toUpperCase();

  // -- signed URLs (GET /api/visitor/files/FID): kept while they have a minute to live ---------

  const links = {};
  const fresh = (id) => {
    const l = links[id];
    return l && l.url && l.exp - Date.now() > 60000 ? l.url : null;
  };
  function link(id) {
    if (fresh(id)) return Promise.resolve(fresh(id));
    const l = links[id];
    if (l && l.p) return l.p;
    const p = fetch(server + "/api/visitor/files/" + encodeURIComponent(id), {
      headers: auth(),
      credentials: "omit",
      cache: "no-store",
    })
      .then((r) => (r.ok ? r.json() : Promise.reject(r)))
      .then(
        (j) => (links[id] = { url: new URL(j.url, server + "/").href, exp: j.expires_at }).url,
        (e) => {
          delete links[id];
          throw e;
        },
      );
    links[id] = { p };
    return p;
  }

  /** A link to the file that is fresh when followed: renewed when the pointer comes near, and
   * if it is stale when clicked, the new tab opens at once (inside the click) and follows the
   * renewed URL. */
  function follow(a, id) {
    const renew = () =>
      link(id).then(
        (u) => (a.href = u),
        () => {},
      );
    a.addEventListener("pointerenter", renew);
    a.addEventListener("focus", renew);
    a.addEventListener("click", (e) => {
      if (fresh(id)) return;
      e.preventDefault();
      const tab = window.open("", "_blank");
      link(id).then(
        (u) => {
          a.href = u;
          if (tab) {
            tab.opener = null;
            tab.location = u;
          }
        },
        () => tab && tab.close(),
      );
    });
    return a;
  }

  /** A long name is cut in its middle: "Invoice for the spr….pdf" keeps what it is. */
  const ends = (name) => {
    const m = /^(.+?)(\.\w{1,8})?$/.exec(name);
    return [h("span", { text: m[1] }), h("span", { text: m[2] || "" })];
  };
  /** The file's name and size beside an icon: what both a document and an upload show. */
  const card = (f, ...more) =>
    h(
      "span",
      { class: "cl-file-card" },
      h("span", { class: "cl-file-icon" }, icon(DOC)),
      h(
        "span",
        { class: "cl-file-meta" },
        h("span", { class: "cl-file-name", title: f.name }, ...ends(f.name)),
        h("span", { class: "cl-file-size", text: size(f.size) }),
      ),
      ...more,
    );

  /** Fill a file event's bubble: a raster image previews (click: full size in a new tab);
   * anything else is a card whose link downloads it. */
  function show(box, f) {
    const a = follow(
      h("a", {
        target: "_blank",
        rel: "noopener noreferrer",
        title: f.name,
        download: f.image ? null : f.name,
      }),
      f.id,
    );
    const gone = () => {
      box.classList.add("cl-file-gone");
      a.removeAttribute("href");
    };
    if (f.image) {
      let again = 1;
      const img = h("img", { alt: f.name });
      a.className = "cl-file-img";
      a.append(img);
      // An image that grows the log keeps its foot in sight if it was there.
      img.onload = () => {
        const l = el.log;
        if (l.scrollHeight - l.scrollTop - l.clientHeight - img.offsetHeight < 80) K.ui.toBottom();
      };
      // A URL that expired meanwhile (or a clock that is off): once more with a new one.
      img.onerror = () => again-- && (delete links[f.id], load());
      const load = () => link(f.id).then((u) => (img.src = a.href = u), gone);
      load();
    } else {
      a.className = "cl-file-doc";
      a.append(card(f, h("span", { class: "cl-file-down" }, icon(DOWN))));
      link(f.id).then((u) => (a.href = u), gone);
    }
    box.append(a);
  }

  // -- uploads ---------------------------------------------------------------------------------

  const ups = [];
  const list = h("div", { class: "cl-uploads" });
  el.pending.after(list);
  // Why a file was not even sent (too large): above the message box, until the next edit.
  const note = h("div", { class: "cl-len cl-refused cl-file-note", role: "alert" });
  el.compose.prepend(note);
  const say = (t) => (note.textContent = t);
  el.input.addEventListener("input", () => say(""));

  /** The server's refusal in plain words, naming the limit. */
  function why(j, status) {
    const c = conf();
    const e = j.error;
    if (e === "file_too_large")
      return "Not sent: the file is larger than " + size(j.max_size || c.max_size) + ".";
    if (e === "file_type_not_allowed") {
      const t = j.found ? kind(j.found) + " files are" : "This kind of file is";
      const ok = j.allowed || c.types || [];
      return (
        "Not sent: " +
        t +
        " not accepted here." +
        (ok.length ? " Accepted: " + ok.map(kind).join(", ") + "." : "")
      );
    }
    if (e === "chat_closed") return "Not sent: the chat has ended.";
    if (!status) return "Not sent: the connection failed.";
    return "Not sent" + (j.message ? ": " + j.message : " (error " + status + ")");
  }

  function upload(file, chat) {
    const max = conf().max_size;
    if (max && file.size > max)
      return say(
        "\u201c" +
          file.name +
          "\u201d is " +
          size(file.size) +
          ": files can be at most " +
          size(max) +
          ".",
      );
    say("");
    const u = { cid: K.ui.cid(), chat, file };
    u.bar = h("i");
    u.state = h("span");
    u.cancel = h("button", {
      type: "button",
      class: "cl-link",
      text: "Cancel",
      onclick: () => drop(u),
    });
    u.retry = h("button", {
      type: "button",
      class: "cl-link",
      text: "Retry",
      onclick: () => send(u),
    });
    u.node = h(
      "div",
      { class: "cl-msg cl-me cl-upload" },
      h("div", { class: "cl-bubble cl-file" }, card(file), h("span", { class: "cl-bar" }, u.bar)),
      h("div", { class: "cl-time" }, u.state, u.retry, u.cancel),
    );
    ups.push(u);
    list.append(u.node);
    K.ui.toBottom();
    send(u);
  }

  /** One upload as it goes: the bar and the percentage, then "Sent" until the file's event
   * arrives and takes its place; refused, the reason and what can be done. */
  function mark(u, pct, err) {
    u.node.classList.toggle("cl-failed", !!err);
    // (the log reads out what changes: a refusal, not every percent)
    u.state.setAttribute("aria-live", err ? "assertive" : "off");
    u.bar.style.width = (pct * 100).toFixed(1) + "%";
    u.state.textContent =
      err || (pct < 1 ? "Sending\u2026 " + Math.floor(pct * 100) + "%" : "Sent");
    u.retry.classList.toggle("cl-hidden", !err || !!u.final);
    u.cancel.textContent = err ? "Remove" : "Cancel";
    u.cancel.classList.toggle("cl-hidden", !err && pct >= 1);
  }

  function send(u) {
    u.final = false;
    const x = (u.xhr = new XMLHttpRequest());
    const q = "?name=" + encodeURIComponent(u.file.name) + "&client_id=" + u.cid;
    x.open("POST", server + "/api/visitor/chats/" + u.chat + "/files" + q);
    x.setRequestHeader("Authorization", auth().Authorization);
    x.upload.onprogress = (e) => e.lengthComputable && mark(u, Math.min(0.99, e.loaded / e.total));
    x.onload = () => {
      let j = {};
      try {
        j = JSON.parse(x.responseText) || {};
      } catch (e) {
        /* not JSON: a proxy's page */
      }
      u.xhr = null;
      // A refusal that trying again cannot change offers only "Remove".
      u.final = /^(file_|chat_closed|not_found|forbidden)/.test(j.error || "");
      mark(u, 1, x.status < 300 ? "" : why(j, x.status));
    };
    x.onerror = () => {
      u.xhr = null;
      mark(u, 0, why({}, 0));
    };
    x.send(u.file);
    mark(u, 0);
  }

  /** Cancel an upload (nothing is kept of a broken one), or remove a refused one. */
  function drop(u) {
    if (u.xhr) u.xhr.abort();
    u.node.remove();
    ups.splice(ups.indexOf(u), 1);
  }

  K.files = {
    show,
    upload,
    /** A file event came: the upload it finishes leaves. */
    arrived: (ev) => ups.filter((u) => u.cid === ev.client_id).forEach(drop),
    /** Another chat is on screen: only its uploads show. */
    shown: (chat) => ups.forEach((u) => u.node.classList.toggle("cl-hidden", u.chat !== chat)),
  };
})();
