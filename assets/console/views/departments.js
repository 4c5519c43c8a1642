/* Departments (administrators only, docs/PROTOCOL.md §7.8): who answers which chats, where
 * their offline messages go, whether chats are assigned automatically, and when a chat nobody
 * took is offered to everyone. The list is the store's `departments`, which the server keeps
 * current (the departments event), so another administrator's change shows here at once. */

import { api } from "../api.js";
import * as app from "../app.js";
import { h, I } from "../dom.js";
import { fail } from "../errors.js";
import { plural } from "../format.js";
import { limit } from "../protocol.js";
import { store } from "../store.js";
import { adminPage, formDialog, rowActions } from "../ui.js";

export const admin = true;

const S = store.state;

/** Every operator (for names and the member checkboxes), as last loaded. */
let operators = [];

async function load() {
  const [deps, ops] = await Promise.all([
    api("GET", "/api/console/departments"),
    api("GET", "/api/console/operators"),
  ]);
  operators = ops.operators || [];
  store.set({ departments: deps.departments || [] });
  return S.departments;
}

const nameOf = (id) => {
  const o = operators.find((x) => x.id === id);
  return o ? o.display_name : "#" + id;
};

export function mount(root, scope) {
  adminPage(scope, root, "departments", {
    add: ["Add department", departmentDialog, "add-department"],
    load,
    live: ["departments", "team"],
    current: () => S.departments,
    columns: ["Department", "Key", "Offline messages to", "Routing", "Members", "Online", ""],
    tableClass: "departments",
    empty: [
      I.users,
      "No departments yet: every operator sees every chat. Add one to route chats to the people who know the answer.",
    ],
    row: (dep, reload) =>
      h(
        "tr",
        { "data-department": dep.key },
        h("td", {}, h("strong", { class: "dep-name", text: dep.name })),
        h("td", { class: "mono dep-key", text: dep.key }),
        h("td", {
          class: "dep-email" + (dep.email ? "" : " muted"),
          text: dep.email || "The site\u2019s address",
        }),
        h(
          "td",
          { class: "dep-routing" },
          h("div", { text: dep.auto_assign ? "Assigned automatically" : "Members accept" }),
          h("div", {
            class: "muted small",
            text:
              "Everyone after " +
              (dep.escalate_after == null ? "the default time" : seconds(dep.escalate_after)),
          }),
        ),
        h("td", {
          class: "dep-members" + (dep.members.length ? "" : " muted"),
          text: dep.members.length ? dep.members.map(nameOf).join(", ") : "No members",
        }),
        h(
          "td",
          { class: "dep-online" },
          h("span", { class: "sdot " + (app.departmentOnline(dep) ? "online" : "offline") }),
          String(app.departmentOnline(dep)),
        ),
        rowActions(
          ["Edit", "ghost edit", () => departmentDialog(dep, reload)],
          ["Delete", "danger-ghost delete", () => deleteDialog(dep, reload)],
        ),
      ),
  });
}

/** "45 s", "2 min", "1 h 30 min". */
function seconds(n) {
  if (n < 60 || n % 60) return n + " s";
  const m = n / 60;
  return m < 60 ? m + " min" : Math.floor(m / 60) + " h" + (m % 60 ? " " + (m % 60) + " min" : "");
}

function deleteDialog(dep, reload) {
  formDialog({
    title: "Delete the department \u201c" + dep.name + "\u201d?",
    fields: [
      h("p", {
        class: "muted",
        text: "Its chats and messages stay, without a department. A snippet that names its key stops working.",
      }),
    ],
    submit: "Delete",
    done: "Department deleted.",
    action: () => api("DELETE", "/api/console/departments/" + dep.id).then(reload),
  });
}

/** The member checkboxes: every operator, disabled ones marked. */
function membersField(dep) {
  const boxes = operators.map((o) => {
    const box = h("input", { type: "checkbox", class: "member", value: String(o.id) });
    box.checked = !!(dep && dep.members.includes(o.id));
    return h(
      "label",
      { class: "check", "data-operator": o.username },
      box,
      h("span", { text: o.display_name + (o.disabled ? " (disabled)" : "") }),
    );
  });
  return h(
    "fieldset",
    { class: "members", "data-field": "members" },
    h("legend", { class: "field-label", text: "Members" }),
    boxes.length ? boxes : h("p", { class: "muted", text: "No operators yet." }),
    h("span", { class: "field-hint", text: "They see the department\u2019s chats first." }),
  );
}

function departmentDialog(dep, reload) {
  const members = membersField(dep);
  formDialog({
    title: dep ? "Edit " + dep.name : "Add a department",
    class: "department-dialog",
    byField: true,
    context: "department",
    fields: [
      [
        {
          name: "name",
          label: "Name",
          hint: "Visitors choose it by this name.",
          required: true,
          maxlength: limit("department_name_chars"),
          value: dep ? dep.name : "",
        },
        {
          name: "key",
          label: "Key",
          hint: dep
            ? "Keys cannot be changed."
            : "a-z, 0-9 and -: the snippet\u2019s data-department.",
          required: true,
          maxlength: limit("department_key_chars"),
          autocomplete: "off",
          spellcheck: "false",
          class: "mono",
          value: dep ? dep.key : "",
          disabled: !!dep,
        },
      ],
      {
        name: "email",
        label: "Offline messages to",
        hint: "An e-mail address; empty: the site\u2019s own ([mail] to_address).",
        maxlength: limit("email_chars"),
        type: "email",
        value: dep ? dep.email : "",
      },
      [
        {
          name: "escalate_after",
          label: "Offer to everyone after (seconds)",
          kind: "number",
          placeholder: "default",
          value: dep && dep.escalate_after != null ? dep.escalate_after : "",
        },
      ],
      {
        name: "auto_assign",
        label: "Assign chats automatically to the least busy member online",
        kind: "checkbox",
        value: !!(dep && dep.auto_assign),
      },
      members,
    ],
    submit: dep ? "Save" : "Add department",
    done: dep ? "Department saved." : "Department added.",
    action: (v) => {
      const esc = v.escalate_after;
      if (esc !== "" && !/^\d+$/.test(esc))
        throw Object.assign(fail("whole_numbers"), {
          field: "escalate_after",
        });
      const body = {
        name: v.name,
        email: v.email,
        auto_assign: v.auto_assign,
        escalate_after: esc === "" ? null : Number(esc),
        members: Array.from(members.querySelectorAll("input.member:checked")).map((b) =>
          Number(b.value),
        ),
      };
      if (!dep) body.key = v.key;
      return (
        dep
          ? api("PATCH", "/api/console/departments/" + dep.id, body)
          : api("POST", "/api/console/departments", body)
      ).then(reload);
    },
  });
}
