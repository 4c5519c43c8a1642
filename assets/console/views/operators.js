/* Operators (administrators only): add, edit, reset a password, disable. */

import { api } from "../api.js";
import { h } from "../dom.js";
import { limit } from "../protocol.js";
import { store } from "../store.js";
import { adminPage, change, formDialog, rowActions } from "../ui.js";
import { minHint } from "./auth.js";
import { resetDialog } from "./password.js";

export const admin = true;

export function mount(root, scope) {
  adminPage(scope, root, "operators", {
    add: ["Add operator", operatorDialog],
    load: () => api("GET", "/api/console/operators").then((j) => j.operators),
    columns: ["Name", "Username", "Role", "Status", ""],
    row: (o, reload) =>
      h(
        "tr",
        { class: o.disabled ? "disabled" : "", "data-operator": o.username },
        h("td", {}, h("strong", { text: o.display_name })),
        h("td", { class: "mono", text: o.username }),
        h("td", { text: o.is_admin ? "Administrator" : "Operator" }),
        h(
          "td",
          {},
          o.disabled
            ? h("span", { class: "pill closed", text: "disabled" })
            : h(
                "span",
                { class: "status-label" },
                h("span", { class: "sdot " + (o.status || "offline") }),
                o.status || "offline",
              ),
        ),
        rowActions(
          ["Edit", "ghost edit", () => operatorDialog(o, reload)],
          ["Reset password", "ghost reset", () => resetDialog(o, reload)],
          o.id !== store.state.me.id && [
            o.disabled ? "Enable" : "Disable",
            o.disabled ? "ghost enable" : "danger-ghost disable",
            () =>
              change(
                () => api("PATCH", "/api/console/operators/" + o.id, { disabled: !o.disabled }),
                "Saved.",
                reload,
              ),
          ],
        ),
      ),
  });
}

function operatorDialog(o, reload) {
  formDialog({
    title: o ? "Edit " + o.display_name : "Add an operator",
    fields: [
      {
        name: "username",
        label: "Username",
        hint: o
          ? "Usernames cannot be changed."
          : "Lower-case letters, digits, dot, dash, underscore.",
        required: true,
        maxlength: limit("username_chars"),
        autocomplete: "off",
        value: o ? o.username : "",
        disabled: !!o,
      },
      {
        name: "display_name",
        label: "Display name",
        hint: "Visitors see this name.",
        required: true,
        maxlength: limit("name_chars"),
        value: o ? o.display_name : "",
      },
      o
        ? null
        : {
            name: "password",
            label: "Password",
            kind: "new-password",
            required: true,
            hint: minHint("Share it with them safely."),
          },
      {
        name: "is_admin",
        label: "Administrator (can manage operators)",
        kind: "checkbox",
        value: !!(o && o.is_admin),
      },
    ],
    submit: o ? "Save" : "Add operator",
    done: o ? "Saved." : "Operator added.",
    action: (v) =>
      (o
        ? api("PATCH", "/api/console/operators/" + o.id, {
            display_name: v.display_name,
            is_admin: v.is_admin,
          })
        : api("POST", "/api/console/operators", v)
      ).then(reload),
  });
}
