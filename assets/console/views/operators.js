/* Operators (administrators only): add, edit, reset a password, disable; how many chats
 * automatic assignment may give each, and the departments each belongs to. */

import { api } from "../api.js";
import { h } from "../dom.js";
import { errorText } from "../errors.js";
import { limit } from "../protocol.js";
import { store } from "../store.js";
import { adminPage, change, formDialog, rowActions, toast } from "../ui.js";
import { minHint } from "./auth.js";
import { resetDialog } from "./password.js";

export const admin = true;

export function mount(root, scope) {
  adminPage(scope, root, "operators", {
    add: ["Add operator", operatorDialog],
    load: () => api("GET", "/api/console/operators").then((j) => j.operators),
    live: ["departments"],
    current: () => store.state["page:operators"].value,
    columns: ["Name", "Username", "Role", "Departments", "Max chats", "Status", ""],
    row: (o, reload) =>
      h(
        "tr",
        { class: o.disabled ? "disabled" : "", "data-operator": o.username },
        h("td", {}, h("strong", { text: o.display_name })),
        h("td", { class: "mono", text: o.username }),
        h("td", { text: o.is_admin ? "Administrator" : "Operator" }),
        h("td", {
          class: "op-departments" + (departmentNames(o) ? "" : " muted"),
          text: departmentNames(o) || "\u2014",
        }),
        h("td", {}, maxChats(o, reload)),
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

/** The names of an operator's departments, or "". */
const departmentNames = (o) =>
  store.state.departments
    .filter((dep) => (o.departments || []).includes(dep.id))
    .map((dep) => dep.name)
    .join(", ");

/** How many chats automatic assignment may give the operator at once: saved on change; empty
 * is the server's default ([chat] max_chats). */
function maxChats(o, reload) {
  const box = h("input", {
    type: "number",
    class: "max-chats",
    min: 0,
    max: 100,
    step: 1,
    placeholder: "default",
    title: "Chats assigned automatically at most (empty: the server\u2019s default)",
    "aria-label": "Max chats for " + o.display_name,
    value: o.max_chats == null ? "" : String(o.max_chats),
  });
  box.addEventListener("change", async () => {
    const v = box.value.trim();
    if (v !== "" && !/^\d+$/.test(v)) return toast(errorText("whole_numbers"), "error");
    await change(
      () =>
        api("PATCH", "/api/console/operators/" + o.id, { max_chats: v === "" ? null : Number(v) }),
      "Saved.",
      reload,
    );
  });
  return box;
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
