/* DOM helpers for the console. Every string lands in the page as text (textContent, attribute
 * values), never as markup: what visitors type, page titles and URLs cannot become elements.
 * Only http(s) URLs become links, and those open in a new tab without an opener. */

const d = document;
const SVG = "http://www.w3.org/2000/svg";

/** An element: h("a", {class, text, href, onclick, value…}, ...children). null/false are
 * skipped, both as properties and as children; "text" sets textContent. */
export function h(tag, props, ...kids) {
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
export const put = (el, ...kids) =>
  el.replaceChildren(...kids.flat().filter((k) => k != null && k !== false));

/** Set an element's text in place: its one text node changes, no node is replaced (the
 * once-a-second clocks would otherwise churn the DOM). */
export function setText(el, text) {
  const t = el.firstChild;
  if (t && t.nodeType === 3 && !t.nextSibling) {
    if (t.data !== text) t.data = text;
  } else el.textContent = text;
}

/** How every icon is drawn: 2 px round strokes in the text's colour. */
const STROKE = {
  viewBox: "0 0 24 24",
  fill: "none",
  stroke: "currentColor",
  "stroke-width": "2",
  "stroke-linecap": "round",
  "stroke-linejoin": "round",
  "aria-hidden": "true",
};

/** A line icon from "path|path" data (24×24). */
export function icon(paths, cls) {
  const s = d.createElementNS(SVG, "svg");
  for (const k in STROKE) s.setAttribute(k, STROKE[k]);
  s.setAttribute("class", "icon " + (cls || ""));
  for (const p of paths.split("|")) {
    const e = d.createElementNS(SVG, "path");
    e.setAttribute("d", p);
    s.append(e);
  }
  return s;
}

export const I = {
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
  canned: "M21 15a2 2 0 0 1-2 2H7l-4 4V5a2 2 0 0 1 2-2h14a2 2 0 0 1 2 2z|M8 9h8|M8 13h5",
  zap: "M13 2 3 14h9l-1 8 10-12h-9l1-8z",
  search: "M11 19a8 8 0 1 0 0-16 8 8 0 0 0 0 16z|M21 21l-4.3-4.3",
  layers: "M12 2 2 7l10 5 10-5-10-5z|M2 17l10 5 10-5|M2 12l10 5 10-5",
  transfer: "M17 3l4 4-4 4|M3 7h18|M7 21l-4-4 4-4|M21 17H3",
  note: "M14 3H6a2 2 0 0 0-2 2v14a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V9z|M14 3v6h6|M8 13h8|M8 17h5",
  clip: "M21.4 11 12.2 20.2a6 6 0 0 1-8.5-8.5l9.2-9.2a4 4 0 0 1 5.7 5.7l-9.2 9.2a2 2 0 0 1-2.8-2.8l8.5-8.5",
  file: "M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8z|M14 2v6h6",
  download: "M21 15v4a2 2 0 0 1-2 2H5a2 2 0 0 1-2-2v-4|M7 10l5 5 5-5|M12 15V3",
};

/** The URL if it is http(s), else null (javascript:, data: and the like never become links). */
export function safeHttp(u) {
  try {
    const x = new URL(u);
    return x.protocol === "http:" || x.protocol === "https:" ? x.href : null;
  } catch (e) {
    return null;
  }
}

/** A link that opens in a new tab, or plain text when the URL is not http(s). */
export function extLink(url, label) {
  const href = safeHttp(url);
  return href
    ? h("a", { href, target: "_blank", rel: "noopener noreferrer", text: label || url })
    : d.createTextNode(label || url || "");
}

const URL_RE = /\bhttps?:\/\/[^\s<>"']+/gi;

/** Text with http(s) URLs as links; nothing else is ever interpreted. */
export function linkify(text) {
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

/** A mailto: link for a plausible address, the address as text otherwise. Both halves are
 * encoded, so nothing in an address (a "?bcc=", a "&") can add a recipient or a header. */
const EMAIL = /^[^@\s"<>]+@[^@\s.<>"]+(\.[^@\s.<>"]+)+$/;
export function mailLink(email, cls) {
  if (!EMAIL.test(email)) return h("span", { class: cls, text: email });
  const at = email.lastIndexOf("@");
  const href =
    "mailto:" +
    encodeURIComponent(email.slice(0, at)) +
    "@" +
    encodeURIComponent(email.slice(at + 1));
  return h("a", { class: cls, href, text: email });
}

/** The three dots of a typing indicator. */
export const dots = (props) => h("span", props, h("i"), h("i"), h("i"));
