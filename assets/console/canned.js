/* Canned replies in the composer (docs/PROTOCOL.md §7.9): typing "/" at the start of a word
 * opens a list of the shortcuts that match what follows; arrow keys move, Enter or Tab picks,
 * Escape closes, a click picks. Picking replaces "/shortcut" with the reply's text, its
 * placeholders filled AS TEXT: the result only ever becomes a textarea's value, never markup,
 * so a visitor named "<b>x</b>" stays those characters.
 *
 * The list comes from GET /api/console/canned, fetched again each time the list opens (the
 * server pushes no changes): what shows at once is the last answer, refreshed when the new
 * one arrives. */

import { api } from "./api.js";
import { h } from "./dom.js";
import { store } from "./store.js";

const S = store.state;

/** The last answer of GET /api/console/canned, and the request under way. */
let replies = [];
let loading = null;

export function refresh() {
  if (!loading)
    loading = api("GET", "/api/console/canned")
      .then((j) => (replies = j.replies || []))
      .catch(() => replies)
      .finally(() => (loading = null));
  return loading;
}

/** The text with {visitor} and {operator} filled in (unknown braces stay as typed). */
export function fill(text, summary) {
  const names = {
    visitor: (summary && summary.name) || "there",
    operator: (S.me && S.me.display_name) || "",
  };
  return text.replace(/\{(visitor|operator)\}/g, (_, k) => names[k]);
}

/** The replies offered in a chat: mine, the shared ones for everyone, and those of the chat's
 * department when I am a member (the server marks them `usable`). */
function offered(summary) {
  const dep = summary && summary.department ? summary.department.id : null;
  return replies.filter((r) => r.usable && (r.department_id == null || r.department_id === dep));
}

/** The "/word" that ends at the caret, if the caret is in one: {start, query}. */
function slashWord(input) {
  const at = input.selectionStart;
  if (at !== input.selectionEnd) return null;
  const m = /(^|\s)\/([a-z0-9_-]*)$/i.exec(input.value.slice(0, at));
  return m ? { start: at - m[2].length - 1, query: m[2].toLowerCase() } : null;
}

/** Attach the picker to a composer's textarea; call it BEFORE the composer's own keydown
 * listener, which then never sees a key the open list took. `summary()` is the chat's. */
export function cannedPicker(input, summary) {
  const list = h("ul", { class: "canned-list hidden", role: "listbox", "aria-label": "Canned" });
  let shown = []; // the replies listed, in order
  let active = 0;
  let word = null;

  const close = () => {
    word = null;
    shown = [];
    list.classList.add("hidden");
    input.removeAttribute("aria-activedescendant");
    input.setAttribute("aria-expanded", "false");
  };

  const draw = () => {
    const q = word.query;
    const all = offered(summary());
    // Shortcuts that start with the query first, then those that merely contain it.
    shown = all
      .filter((r) => r.shortcut.startsWith(q))
      .concat(all.filter((r) => !r.shortcut.startsWith(q) && r.shortcut.includes(q)))
      .slice(0, 8);
    if (!shown.length) return list.classList.add("hidden");
    active = Math.min(active, shown.length - 1);
    list.replaceChildren(
      ...shown.map((r, i) =>
        h(
          "li",
          {
            class: "canned-item" + (i === active ? " on" : ""),
            role: "option",
            id: "canned-" + r.id,
            "aria-selected": i === active ? "true" : "false",
            "data-shortcut": r.shortcut,
            // mousedown, not click: the textarea keeps its focus and caret
            onmousedown: (e) => (e.preventDefault(), pick(i)),
          },
          h("span", { class: "canned-short", text: "/" + r.shortcut }),
          h("span", { class: "canned-text", text: fill(r.text, summary()) }),
          r.shared
            ? h("span", {
                class: "canned-tag",
                text: r.department ? r.department.name : "Shared",
              })
            : null,
        ),
      ),
    );
    list.classList.remove("hidden");
    input.setAttribute("aria-expanded", "true");
    input.setAttribute("aria-activedescendant", "canned-" + shown[active].id);
    list.children[active].scrollIntoView({ block: "nearest" });
  };

  const update = () => {
    const w = slashWord(input);
    if (!w) return close();
    if (!word) {
      active = 0;
      refresh().then(() => word && draw());
    }
    word = w;
    draw();
  };

  const pick = (i) => {
    const r = shown[i];
    if (!r || !word) return;
    const text = fill(r.text, summary());
    const end = input.selectionStart;
    input.dispatchEvent(new Event("beforeinput")); // lengthGuard keeps the text before
    input.value = input.value.slice(0, word.start) + text + input.value.slice(end);
    const caret = word.start + text.length;
    input.setSelectionRange(caret, caret);
    close();
    input.dispatchEvent(new Event("input")); // the draft, typing and the length guard see it
    input.focus();
  };

  input.setAttribute("aria-autocomplete", "list");
  input.setAttribute("aria-expanded", "false");
  input.addEventListener("input", update);
  input.addEventListener("click", update);
  input.addEventListener("blur", close);
  input.addEventListener("keydown", (ev) => {
    if (!shown.length || list.classList.contains("hidden") || ev.isComposing) return;
    const take = () => (ev.preventDefault(), ev.stopImmediatePropagation());
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      take();
      active = (active + (ev.key === "ArrowDown" ? 1 : shown.length - 1)) % shown.length;
      draw();
    } else if ((ev.key === "Enter" && !ev.shiftKey) || (ev.key === "Tab" && !ev.shiftKey)) {
      take();
      pick(active);
    } else if (ev.key === "Escape") {
      take();
      close();
    }
  });
  return list;
}
