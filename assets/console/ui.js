/* The console's UI scaffolds, each written once: toasts, form fields from a description, a form
 * dialog, a panel header, and an administration page (title, loader, columns, row, action). */

import { h, I, icon, put } from "./dom.js";
import { errorText } from "./errors.js";
import { limit } from "./protocol.js";
import { store } from "./store.js";

const d = document;

export function toast(text, kind) {
  let box = d.querySelector(".toasts");
  if (!box) d.body.append((box = h("div", { class: "toasts", role: "status" })));
  const t = h("div", { class: "toast " + (kind || ""), text });
  box.append(t);
  setTimeout(() => t.classList.add("out"), 4200);
  setTimeout(() => t.remove(), 4600);
}

/** Toast an error in words (errors.js); `context` as for errorText. */
export const toastError = (e, context) => toast(errorText(e, context), "error");

export function brand() {
  return h(
    "div",
    { class: "brand" },
    h("span", { class: "brand-mark" }, icon(I.chat)),
    h("span", { class: "brand-name", text: "Cute Live Support" }),
  );
}

/** A labelled field around an input (data-field: its name, where an error about it shows). */
export function field(label, input, hint) {
  return h(
    "label",
    { class: "field", "data-field": input.name || null },
    h("span", { class: "field-label", text: label }),
    input,
    hint ? h("span", { class: "field-hint", text: hint }) : null,
  );
}

/** The attributes of each kind of input: passwords take their lengths from the server. */
const KINDS = {
  text: () => ({}),
  number: () => ({ type: "number", min: 0, step: 1 }),
  password: () => ({ type: "password", maxlength: limit("password_max_chars") }),
  "new-password": () => ({
    type: "password",
    autocomplete: "new-password",
    minlength: limit("password_min_chars"),
    maxlength: limit("password_max_chars"),
  }),
};

/** An input from a description: {name, kind, value, options: [[value, label]], rows, and any
 * attribute (required, maxlength, placeholder, autocomplete, disabled…)}. */
export function input(spec) {
  const { kind = "text", label, hint, options, rows, value, ...attrs } = spec;
  let el;
  if (options) {
    el = h(
      "select",
      Object.assign({ class: "select" }, attrs),
      ...options.map(([v, l]) => h("option", { value: v, text: l })),
    );
  } else if (kind === "checkbox") {
    el = h("input", Object.assign({ type: "checkbox" }, attrs));
    el.checked = !!value;
    return el;
  } else if (kind === "para") el = h("textarea", Object.assign({ rows: rows || 3 }, attrs));
  else el = h("input", Object.assign(KINDS[kind](), attrs));
  el.value = value == null ? "" : String(value);
  return el;
}

/** Characters as the server counts them: code points (an emoji is one, not two). */
const chars = (s) => s.length - (s.match(/[\uD800-\uDBFF](?=[\uDC00-\uDFFF])/g) || []).length;

/** Keep a message box within the server's `message_chars`. Near the limit a counter shows
 * ("4,620 / 5,000"); an edit that would pass it (typed, pasted, dropped) is refused with a
 * message that says so, and the text stays as it was: never cut short, as a `maxlength` would
 * cut a paste without a word (`always`: the counter shows from the first character). Returns
 * the line that shows both, to place by the box; call the
 * guard before the box's own input listeners, which then never see a refused edit. */
export function lengthGuard(box, max = limit("message_chars"), always = false) {
  const note = h("div", { class: "len-note", "aria-live": "polite" });
  const fmt = (n) => n.toLocaleString("en");
  box.setAttribute("data-max-chars", max); // the server's limit, where tests can read it
  let before = box.value;
  let shown = null;
  const show = (refusal) => {
    const n = chars((shown = box.value));
    note.classList.toggle("refused", !!refusal);
    note.textContent = refusal || (always || n >= max * 0.9 ? fmt(n) + " / " + fmt(max) : "");
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
    const text = e.clipboardData ? e.clipboardData.getData("text/plain") : "";
    const v = box.value;
    const n = chars(v) - chars(v.slice(box.selectionStart, box.selectionEnd));
    const total = n + chars(text.replace(/\r\n?/g, "\n"));
    if (total > max) {
      e.preventDefault();
      refuse(total, "Not pasted");
    }
  });
  // The text before each edit, to put back when the edit would pass the limit.
  box.addEventListener("beforeinput", () => (before = box.value));
  box.addEventListener("input", (e) => {
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

/** Inputs from descriptions, laid out: a spec is a field, a string a subheading, an array a row
 * of fields side by side, a node itself. Fills `inputs` (name -> input). */
export function layout(specs, inputs) {
  return specs.map((s) => {
    if (s == null || s === false) return null;
    if (typeof s === "string") return h("h3", { class: "dialog-sub", text: s });
    if (Array.isArray(s))
      return h("div", { class: s.length > 2 ? "three" : "two" }, layout(s, inputs));
    if (s instanceof Node) return s;
    const el = (inputs[s.name] = input(s));
    if (s.kind === "checkbox")
      return h("label", { class: "check", "data-field": s.name }, el, h("span", { text: s.label }));
    return field(s.label, el, s.hint);
  });
}

/** The values of a form's inputs: text trimmed (passwords as typed), checkboxes as booleans. */
export function values(inputs) {
  const out = {};
  for (const k in inputs) {
    const el = inputs[k];
    out[k] =
      el.type === "checkbox" ? el.checked : el.type === "password" ? el.value : el.value.trim();
  }
  return out;
}

/** Show an error about one field of `form` beside it (the element with data-field = the
 * error's `field`); false when the form has no such field. */
function fieldError(form, x, context) {
  const at = x && x.field && form && form.querySelector('[data-field="' + x.field + '"]');
  if (!at) return false;
  at.append(h("span", { class: "field-error", role: "alert", text: errorText(x, context) }));
  const el = at.querySelector("input, select, textarea");
  if (el) {
    el.setAttribute("aria-invalid", "true");
    el.focus();
  }
  return true;
}

/** A submit handler that shows errors in words in `err` (errorText's `context`) — or, with
 * `byField`, beside the field an error names when the form has it — and keeps the button busy
 * meanwhile. */
export function submitter(err, button, action, context, byField) {
  return async (e) => {
    e.preventDefault();
    const form = byField ? e.currentTarget : null;
    err.textContent = "";
    if (form) {
      for (const x of form.querySelectorAll(".field-error")) x.remove();
      for (const x of form.querySelectorAll("[aria-invalid]")) x.removeAttribute("aria-invalid");
    }
    if (button) button.disabled = true;
    try {
      await action();
    } catch (x) {
      if (!byField || !fieldError(form, x, context)) err.textContent = errorText(x, context);
    } finally {
      if (button) button.disabled = false;
    }
  };
}

/** A modal form: {title, note, fields (as for layout), submit, action(values, inputs), done,
 * context, byField, class}. The dialog closes when `action` resolves (then `done` is toasted);
 * an error stays in it, in words (errorText with `context`), beside its field with `byField`. */
export function formDialog(spec) {
  const inputs = {};
  const err = h("p", { class: "form-error", role: "alert" });
  const dlg = h("dialog", { class: "dialog " + (spec.class || "") });
  const submit = h("button", { type: "submit", class: "btn primary", text: spec.submit });
  const form = h(
    "form",
    {
      method: "dialog",
      onsubmit: submitter(
        err,
        submit,
        async () => {
          await spec.action(values(inputs), inputs);
          dlg.close();
          if (spec.done) toast(spec.done, "ok");
        },
        spec.context,
        spec.byField,
      ),
    },
    h("h2", { text: spec.title }),
    spec.note ? h("p", { class: "muted dialog-note", text: spec.note }) : null,
    layout(spec.fields || [], inputs),
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
      submit,
    ),
  );
  dlg.append(form);
  dlg.addEventListener("close", () => dlg.remove());
  d.body.append(dlg);
  dlg.showModal();
  return inputs;
}

/** Each view's name (in the navigation and as its title) and the line that explains it. */
export const VIEW_TEXT = {
  visitors: ["Visitors"],
  home: ["Chats"],
  inbox: ["Inbox", "Messages left while nobody was online."],
  history: ["History", "Past chats stay readable as transcripts."],
  canned: [
    "Canned replies",
    "Answers you give often: type / and a shortcut in a chat to insert one. Administrators also share replies with everyone or with a department.",
  ],
  operators: ["Operators", "People who answer chats. Administrators can also manage operators."],
  departments: [
    "Departments",
    "Visitors choose a department (or your snippet fixes one); its chats reach its members first, and everyone after the escalation time.",
  ],
  rules: [
    "Invitation rules",
    "Invite visitors automatically when a rule matches. Rules fire only while an operator is online, at most once per visitor and visit.",
  ],
  widget: [
    "Widget",
    "How the chat looks on your site. Changes reach open pages at once; the embed code stays the same.",
  ],
  embed: ["Embed code", "Put Live Support on your web site."],
};

/** A view's panel with its header: the view's title, its line of explanation, and controls. */
export function panel(view, ...controls) {
  const [title, intro] = VIEW_TEXT[view];
  return h(
    "div",
    { class: "panel" },
    h(
      "div",
      { class: "panel-head" },
      h("h2", { text: title }),
      intro ? h("p", { class: "muted", text: intro }) : null,
      controls,
    ),
  );
}

/** A button (not a form's submit): {text, class, onclick, disabled, title}, children. */
export const button = (props, ...kids) =>
  h("button", Object.assign({ type: "button" }, props), ...kids);

/** The empty state of a list. */
export const empty = (ic, text) => h("div", { class: "empty" }, icon(ic), h("p", { text }));

/** Load what a page shows into the store under "page:NAME" and draw it from there while the
 * page is open: "Loading…", the error in words, or `draw(value)`. Returns reload. */
export function loaded(scope, body, name, load, draw) {
  const key = "page:" + name;
  store.state[key] = null; // "Loading…" until this visit's answer
  const reload = () =>
    load().then(
      (value) => store.set({ [key]: { value } }),
      (error) => store.set({ [key]: { error } }),
    );
  scope.region([key], () => {
    const page = store.state[key];
    if (!page) return put(body, h("p", { class: "muted", text: "Loading\u2026" }));
    if (page.error) return put(body, h("p", { class: "form-error", text: errorText(page.error) }));
    put(body, draw(page.value));
  });
  reload();
  return reload;
}

/** The page of view `name`: {load, columns, row(item, reload), empty: [icon, text], add:
 * [label, dialog(null, reload), class] for an "Add" button, action: another header control,
 * tableClass, bodyClass, live: [store keys], current()}: a table of what `load` resolves with,
 * drawn again from `current()` whenever a `live` key changes. Returns reload. */
export function adminPage(scope, root, name, spec) {
  const body = h("div", { class: spec.bodyClass || null });
  const add =
    spec.add &&
    button({
      class: "btn primary " + (spec.add[2] || ""),
      text: spec.add[0],
      onclick: () => spec.add[1](null, reload),
    });
  const box = panel(name, spec.action || add || null);
  box.append(body);
  put(root, box);
  const reload = loaded(scope, body, name, spec.load, (rows) =>
    !rows.length && spec.empty
      ? empty(...spec.empty)
      : h(
          "table",
          { class: "table " + (spec.tableClass || "") },
          h("thead", {}, h("tr", {}, ...spec.columns.map((t) => h("th", { text: t })))),
          h("tbody", {}, ...rows.map((item) => spec.row(item, reload))),
        ),
  );
  let first = true;
  if (spec.live)
    scope.region(spec.live, () => {
      const page = store.state["page:" + name];
      if (!first && page && page.value) store.set({ ["page:" + name]: { value: spec.current() } });
      first = false;
    });
  return reload;
}

/** A table row's buttons: [label, classes, onclick] each (null: none). */
export const rowActions = (...list) =>
  h(
    "td",
    { class: "actions" },
    list.map((a) => a && button({ class: "btn small " + a[1], text: a[0], onclick: a[2] })),
  );

/** Run an administration change, toast how it went, then reload the page it belongs to. */
export async function change(request, done, reload) {
  try {
    await request();
    toast(done, "ok");
  } catch (e) {
    toastError(e);
  }
  if (reload) reload();
}
