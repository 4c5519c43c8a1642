/* Files in a chat (docs/PROTOCOL.md §7.10): what a file event shows in the log, and my uploads.
 *
 * A raster image previews inline (click: full size in a new tab); anything else is a card whose
 * link downloads it. A file's URL is signed and short-lived, so it is asked for when the file is
 * shown (GET /api/console/files/FID) and again once it has expired. An upload is the file's raw
 * bytes over XMLHttpRequest, for its progress; its bubble (bar, percentage, Cancel) is drawn
 * once and then changed in place, so a click on Cancel is never lost to a redraw. The name
 * comes from a stranger: it is only ever text. */

import { BASE, xsrfHeaders } from "./api.js";
import { h, I, icon, put } from "./dom.js";
import { errorText } from "./errors.js";
import { bytes, cid } from "./format.js";
import { fileLimits } from "./protocol.js";
import { store } from "./store.js";
import { button, toast } from "./ui.js";

const w = window;

/** "image/png" → "PNG", as people name file types. */
const kind = (t) =>
  ({ "text/plain": "text", "application/octet-stream": "other" })[t] ||
  String(t)
    .replace(/^.*\/|\+xml$/g, "")
    .toUpperCase();

// -- signed URLs: kept while they have a minute to live -------------------------------------------

const links = new Map(); // file id -> {url, exp} or {pending: Promise}

const fresh = (id) => {
  const l = links.get(id);
  return l && l.url && l.exp - Date.now() > 60000 ? l.url : null;
};

/** A signed URL for the file, asked for only when the one we have is about to expire. */
function link(id) {
  if (fresh(id)) return Promise.resolve(fresh(id));
  const l = links.get(id);
  if (l && l.pending) return l.pending;
  const pending = fetch(BASE + "/api/console/files/" + encodeURIComponent(id), {
    credentials: "same-origin",
    cache: "no-store",
  })
    .then((r) =>
      r.json().then(
        (j) => (r.ok ? j : Promise.reject(j)),
        () => Promise.reject({ error: "http_" + r.status, status: r.status }),
      ),
    )
    .then(
      (j) => {
        const url = new URL(j.url, BASE + "/").href;
        links.set(id, { url, exp: j.expires_at });
        return url;
      },
      (e) => {
        links.delete(id);
        throw e;
      },
    );
  links.set(id, { pending });
  return pending;
}

/** A link to the file that is fresh when followed: renewed when the pointer comes near; if it
 * is stale when clicked anyway, the new tab opens at once (inside the click) and then follows
 * the renewed URL. */
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
    const tab = w.open("", "_blank");
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

/** A long name is cut in its middle: "Invoice for the spr….pdf" still says what it is. */
function ends(name) {
  const m = /^(.+?)(\.\w{1,8})?$/.exec(name);
  return [h("span", { text: m[1] }), h("span", { text: m[2] || "" })];
}

/** The name and size beside an icon: what a document and an upload both show. */
const card = (f, ...more) =>
  h(
    "span",
    { class: "file-card" },
    h("span", { class: "file-icon" }, icon(I.file)),
    h(
      "span",
      { class: "file-meta" },
      h("span", { class: "file-name", title: f.name }, ...ends(f.name)),
      h("span", { class: "file-size", text: bytes(f.size) }),
    ),
    ...more,
  );

/** A file event's bubble: an image's preview, or a document's card with its download link.
 * `grown` is called when an image has loaded (the log is taller: keep its foot in sight). */
export function fileBubble(f, grown) {
  const box = h("div", { class: "bubble file" });
  const a = follow(
    h("a", {
      target: "_blank",
      rel: "noopener noreferrer",
      title: f.image ? "Open " + f.name + " full size" : "Download " + f.name,
      download: f.image ? null : f.name,
    }),
    f.id,
  );
  const gone = (e) => {
    box.classList.add("gone");
    a.removeAttribute("href");
    a.title = errorText(e, "file");
  };
  if (f.image) {
    let again = 1;
    const img = h("img", { alt: f.name });
    a.className = "file-img";
    a.append(img);
    img.addEventListener("load", () => grown && grown(img));
    // A URL that expired while the tab was open (or a clock that is off): once more, anew.
    img.addEventListener("error", () => again-- && (links.delete(f.id), load()));
    const load = () => link(f.id).then((u) => (img.src = a.href = u), gone);
    load();
  } else {
    a.className = "file-doc";
    a.append(card(f, h("span", { class: "file-down" }, icon(I.download))));
    link(f.id).then((u) => (a.href = u), gone);
  }
  box.append(a);
  return box;
}

// -- uploads (kept per chat in c.uploads; the view draws them with drawUploads) ------------------

const uploads = (c) => (c.uploads = c.uploads || []);

/** Attach files to my chat: each is checked against the size limit first (refused with the
 * limit named, and nothing sent), then uploaded with its own bubble. */
export function attach(c, files) {
  const max = fileLimits().max_size;
  for (const file of files) {
    if (max && file.size > max)
      toast(
        errorText({
          error: "file_too_big",
          name: file.name,
          size: bytes(file.size),
          max: bytes(max),
        }),
        "error",
      );
    else if (!file.size) toast(errorText({ error: "file_empty", name: file.name }), "error");
    else {
      const u = { client_id: cid(), file };
      uploads(c).push(u);
      send(c, u);
    }
  }
  store.touch("uploads:" + c.id);
}

/** My uploads of a chat, under its log: each bubble is built once and kept. */
export function drawUploads(c, el) {
  put(el, ...uploads(c).map((u) => u.node || build(c, u)));
}

function build(c, u) {
  u.bar = h("i");
  u.state = h("span", { class: "upload-state" });
  u.retry = button({ class: "link retry", text: "Retry", onclick: () => send(c, u) });
  u.cancel = button({ class: "link cancel", text: "Cancel", onclick: () => drop(c, u) });
  u.node = h(
    "div",
    { class: "msg me upload" },
    h("div", { class: "bubble file" }, card(u.file), h("span", { class: "bar" }, u.bar)),
    h("div", { class: "msg-time" }, u.state, u.retry, u.cancel),
  );
  mark(u);
  return u.node;
}

/** An upload as it goes: the bar and the percentage, then "Sent" until its event arrives and
 * takes its place; refused, the reason in words and what can be done about it. */
function mark(u) {
  if (!u.node) return;
  const pct = u.pct || 0;
  u.node.classList.toggle("failed", !!u.error);
  // (the log reads out what changes: a refusal, not every percent)
  u.state.setAttribute("aria-live", u.error ? "assertive" : "off");
  u.bar.style.width = (pct * 100).toFixed(1) + "%";
  u.state.textContent =
    u.error || (pct < 1 ? "Sending\u2026 " + Math.floor(pct * 100) + "%" : "Sent");
  u.retry.classList.toggle("hidden", !u.error || u.final);
  u.cancel.textContent = u.error ? "Remove" : "Cancel";
  u.cancel.classList.toggle("hidden", !u.error && pct >= 1);
}

/** The server's refusal, with what it names put in words. */
function refusal(e) {
  const limits = fileLimits();
  const allowed = e.allowed || limits.types || [];
  const max = e.max_size || limits.max_size;
  return errorText(
    Object.assign({}, e, {
      max: max ? bytes(max) : "",
      kind: e.found ? kind(e.found) : "",
      kinds: allowed.map(kind).join(", "),
    }),
    "upload",
  );
}

function send(c, u) {
  const x = (u.xhr = new XMLHttpRequest());
  Object.assign(u, { error: null, final: false, pct: 0 });
  const q =
    "?name=" + encodeURIComponent(u.file.name) + "&client_id=" + encodeURIComponent(u.client_id);
  x.open("POST", BASE + "/api/console/chats/" + c.id + "/files" + q);
  const headers = xsrfHeaders();
  for (const k in headers) x.setRequestHeader(k, headers[k]);
  x.upload.addEventListener("progress", (e) => {
    if (e.lengthComputable) (u.pct = Math.min(0.99, e.loaded / e.total)), mark(u);
  });
  x.addEventListener("load", () => {
    u.xhr = null;
    u.pct = 1;
    if (x.status >= 300) {
      let e = {};
      try {
        e = JSON.parse(x.responseText) || {};
      } catch (err) {
        /* not JSON: a proxy's page */
      }
      e = Object.assign({ status: x.status, error: "http_" + x.status }, e);
      // A refusal that trying again cannot change offers only "Remove".
      u.final = /^(file_|chat_closed|not_found|forbidden)/.test(e.error);
      u.error = refusal(e);
    }
    mark(u);
  });
  x.addEventListener("error", () => {
    u.xhr = null;
    u.error = refusal({ error: "network" });
    mark(u);
  });
  x.send(u.file);
  mark(u);
}

/** Cancel an upload (the server keeps nothing of a broken one), or remove a refused one. */
function drop(c, u) {
  if (u.xhr) u.xhr.abort();
  c.uploads = uploads(c).filter((x) => x !== u);
  store.touch("uploads:" + c.id);
}

/** A file event arrived: the upload it completes leaves (the log shows the file now). */
export function arrived(c, ev) {
  if (c.uploads && c.uploads.some((u) => u.client_id === ev.client_id))
    drop(
      c,
      c.uploads.find((u) => u.client_id === ev.client_id),
    );
}

/** Files dropped on `el` (or pasted into it) are attached while `can()` says so; `why()` the
 * reason when not. */
export function dropZone(el, c, can, why) {
  const has = (e) => e.dataTransfer && Array.from(e.dataTransfer.types).includes("Files");
  const take = (e, files) => {
    if (!files || !files.length) return;
    e.preventDefault();
    if (can()) attach(c, Array.from(files));
    else toast(why(), "error");
  };
  el.addEventListener("dragover", (e) => {
    if (!has(e)) return;
    e.preventDefault();
    el.classList.toggle("dropping", can());
  });
  el.addEventListener("dragleave", (e) => {
    if (!el.contains(e.relatedTarget)) el.classList.remove("dropping");
  });
  el.addEventListener("drop", (e) => {
    el.classList.remove("dropping");
    take(e, e.dataTransfer && e.dataTransfer.files);
  });
  // Text copied from an office program brings a picture of itself too: the text wins.
  el.addEventListener("paste", (e) => {
    const c = e.clipboardData;
    if (c && !c.getData("text/plain")) take(e, c.files);
  });
}

/** The paperclip: a button and the hidden file chooser it opens. */
export function attachButton(c) {
  const chooser = h("input", {
    type: "file",
    multiple: true,
    class: "hidden file-input",
    tabindex: "-1",
    onchange: () => {
      attach(c, Array.from(chooser.files));
      chooser.value = "";
    },
  });
  return [
    button(
      {
        class: "btn ghost attach",
        title: "Attach a file (or drop one here, or paste an image)",
        "aria-label": "Attach a file",
        onclick: () => chooser.click(),
      },
      icon(I.clip),
    ),
    chooser,
  ];
}
