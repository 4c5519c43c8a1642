/* Before the console: the first administrator's setup, and signing in. */

import { api, loadSession } from "../api.js";
import { h, put } from "../dom.js";
import { fail } from "../errors.js";
import { limit } from "../protocol.js";
import { brand, layout, submitter, values } from "../ui.js";

/** A card with a form: {title, sub, fields (as for ui.layout), submit, action(values, inputs),
 * message}. `action` resolves with the signed-in operator's session. */
function authScreen(root, spec, start) {
  const inputs = {};
  const err = h("p", { class: "form-error", role: "alert", text: spec.message || "" });
  const btn = h("button", { type: "submit", class: "btn primary block", text: spec.submit });
  const form = h(
    "form",
    {
      class: "auth-card",
      onsubmit: submitter(err, btn, async () => {
        const r = await spec.action(values(inputs), inputs);
        const s = await loadSession();
        start((r && r.operator) || s.operator, s);
      }),
    },
    brand(),
    h("h1", { class: "auth-title", text: spec.title }),
    spec.sub ? h("p", { class: "auth-sub", text: spec.sub }) : null,
    layout(spec.fields, inputs),
    err,
    btn,
  );
  put(root, h("div", { class: "auth" }, form));
  const first = form.querySelector("input");
  if (first) first.focus();
}

const USERNAME = {
  name: "username",
  label: "Username",
  autocomplete: "username",
  required: true,
  autocapitalize: "none",
  spellcheck: "false",
};

export function showSetup(root, start) {
  authScreen(
    root,
    {
      title: "Create the first administrator",
      sub: "Welcome! Copy the setup token from the server log (the line that says \u201csetup token\u201d), then choose your account.",
      fields: [
        {
          name: "setup_token",
          label: "Setup token",
          autocomplete: "off",
          required: true,
          spellcheck: "false",
        },
        Object.assign({}, USERNAME, {
          hint: "Lower-case letters, digits, dot, dash, underscore.",
          pattern: "[a-z0-9._\\-]+",
          maxlength: limit("username_chars"),
        }),
        {
          name: "display_name",
          label: "Display name",
          hint: "Visitors see this name.",
          autocomplete: "name",
          required: true,
          maxlength: limit("name_chars"),
        },
        {
          name: "password",
          label: "Password",
          kind: "new-password",
          required: true,
          hint: minHint(),
        },
        { name: "password2", label: "Repeat password", kind: "new-password", required: true },
      ],
      submit: "Create administrator",
      action: (v) => {
        if (v.password !== v.password2) throw fail("passwords_differ");
        return api("POST", "/api/console/setup", {
          setup_token: v.setup_token,
          username: v.username,
          display_name: v.display_name,
          password: v.password,
        });
      },
    },
    start,
  );
}

export function showLogin(root, start, message) {
  authScreen(
    root,
    {
      title: "Sign in",
      sub: "Operators and administrators sign in here.",
      fields: [
        USERNAME,
        {
          name: "password",
          label: "Password",
          kind: "password",
          autocomplete: "current-password",
          required: true,
        },
      ],
      submit: "Sign in",
      message,
      action: (v, inputs) =>
        api("POST", "/api/console/login", { username: v.username, password: v.password }).catch(
          (e) => {
            inputs.password.value = "";
            throw e;
          },
        ),
    },
    start,
  );
}

/** "At least N characters." with the server's minimum. */
export const minHint = (more) =>
  "At least " + limit("password_min_chars") + " characters." + (more ? " " + more : "");
