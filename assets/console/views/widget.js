/* Widget settings (administrators only): colours, position, button images, texts and the sites
 * allowed to use it, with a preview. The keys, their kinds, limits and defaults come from the
 * server (protocol.appearance); here is only what each is called. */

import { api } from "../api.js";
import { h, put, safeHttp } from "../dom.js";
import { appearanceKeys } from "../protocol.js";
import { store } from "../store.js";
import { field, input, loaded, panel, submitter, toast } from "../ui.js";

export const admin = true;

const LABELS = {
  color: "Accent colour",
  color_text: "Text on the accent",
  position: "Position",
  image_online: "Image when online",
  image_offline: "Image when offline",
  title: "Window title",
  button_online: "Button label (online)",
  button_offline: "Button label (offline)",
  button_start: "Start button",
  button_send: "Send button",
  greeting: "Greeting",
  waiting: "While waiting",
  offline_prompt: "Offline prompt",
  thanks: "Thank-you text",
  ask_name: "Name",
  ask_email: "E-mail address",
};
const ASK = [
  ["required", "Required"],
  ["optional", "Optional"],
  ["hidden", "Not asked"],
];
const HINTS = { image: "An http(s) URL or a path on this server; empty: the default." };
const POSITIONS = [
  ["right", "Bottom right"],
  ["left", "Bottom left"],
];
const COLOR = /^#[0-9a-f]{3,6}$/i;

export function mount(root, scope) {
  const box = panel("widget");
  const body = h("div");
  box.append(body);
  put(root, box);
  loaded(
    scope,
    body,
    "widget",
    () =>
      api("GET", "/api/console/settings").then((st) => {
        if (st.public_url) store.set({ publicUrl: st.public_url });
        return st;
      }),
    form,
  );
}

/** The settings form, its fields generated from the appearance keys by kind. */
function form(st) {
  const keys = appearanceKeys();
  const saved = st.appearance || {};
  const def = (k) => (keys[k] ? keys[k].default : "");
  const inputs = {};
  const of = (kind) => Object.keys(keys).filter((k) => keys[k].kind === kind);
  const preview = h("div", { class: "wprev" });
  const text = (k) =>
    field(
      LABELS[k] || k,
      (inputs[k] = input({
        name: k,
        kind: keys[k].kind === "para" ? "para" : "text",
        rows: 2,
        value: saved[k] || "",
        placeholder: def(k),
        maxlength: keys[k].limit,
      })),
      HINTS[keys[k].kind] && k === of(keys[k].kind)[0] ? HINTS[keys[k].kind] : null,
    );
  const color = (k) => {
    inputs[k] = input({
      name: k,
      value: saved[k] || "",
      placeholder: def(k),
      maxlength: keys[k].limit,
      class: "mono",
    });
    const pick = h("input", {
      type: "color",
      value: saved[k] || def(k),
      "aria-label": LABELS[k] + " picker",
    });
    pick.addEventListener("input", () => {
      inputs[k].value = pick.value;
      drawPreview();
    });
    inputs[k].addEventListener(
      "input",
      () => /^#[0-9a-f]{6}$/i.test(inputs[k].value) && (pick.value = inputs[k].value),
    );
    return h(
      "label",
      { class: "field" },
      h("span", { class: "field-label", text: LABELS[k] }),
      h("div", { class: "color-row" }, pick, inputs[k]),
    );
  };
  const ask = (k) =>
    field(
      LABELS[k] || k,
      (inputs[k] = input({ name: k, options: ASK, value: saved[k] || def(k) })),
    );
  const position = (k) =>
    field(
      LABELS[k] || k,
      (inputs[k] = input({ name: k, options: POSITIONS, value: saved[k] || def(k) })),
    );
  /** Fields two by two; an odd one out goes first, on its own. */
  const pairs = (list) => {
    const out = list.length % 2 ? [list[0]] : [];
    for (let i = list.length % 2; i < list.length; i += 2)
      out.push(h("div", { class: "two" }, list[i], list[i + 1]));
    return out;
  };
  const value = (k) => (inputs[k] ? inputs[k].value.trim() : "") || def(k);
  const drawPreview = () => {
    const col = COLOR.test(value("color")) ? value("color") : def("color");
    const fg = COLOR.test(value("color_text")) ? value("color_text") : def("color_text");
    const img = (k, state) => {
      const u = inputs[k] ? inputs[k].value.trim() : "";
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
          h("strong", { text: value("title") }),
          h("span", { text: "We\u2019re online" }),
        ),
        h(
          "div",
          { class: "wprev-body" },
          h("p", { text: value("greeting") }),
          h("span", {
            class: "wprev-btn",
            style: "background:" + col + ";color:" + fg,
            text: value("button_start"),
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
        text: "Position: " + value("position") + " corner",
      }),
    );
  };
  const origins = input({
    name: "allowed_origins",
    kind: "para",
    rows: 3,
    placeholder: "https://www.example.com",
    value: (st.allowed_origins || []).join("\n"),
  });
  const err = h("p", { class: "form-error", role: "alert" });
  const save = h("button", { type: "submit", class: "btn primary", text: "Save" });
  const el = h(
    "form",
    {
      class: "settings",
      onsubmit: submitter(err, save, async () => {
        const appearance = {};
        for (const k in inputs) appearance[k] = inputs[k].value.trim();
        for (const k of [...of("position"), ...of("ask")])
          if (appearance[k] === def(k)) appearance[k] = "";
        const list = origins.value.split(/[\s,]+/).filter(Boolean);
        await api("PATCH", "/api/console/settings", { appearance, allowed_origins: list });
        toast("Saved. Open pages update at once.", "ok");
      }),
    },
    h(
      "div",
      { class: "settings-grid" },
      h(
        "div",
        {},
        h("h3", { text: "Colours and position" }),
        pairs(of("color").map(color)),
        of("position").map(position),
        h("h3", { text: "Button images" }),
        of("image").map(text),
        h("h3", { text: "Texts" }),
        pairs(of("line").map(text)),
        of("para").map(text),
        h("h3", { text: "Pre-chat form" }),
        h("p", {
          class: "muted small",
          text: "What the chat form asks before a chat starts. The message form left while nobody is online always asks for a name and an e-mail address, to answer to.",
        }),
        h("div", { class: "two" }, of("ask").map(ask)),
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
        save,
      ),
      h("div", { class: "settings-preview" }, h("h3", { text: "Preview" }), preview),
    ),
  );
  el.addEventListener("input", drawPreview);
  el.addEventListener("change", drawPreview);
  drawPreview();
  return el;
}
