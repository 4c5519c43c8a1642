/* Canned replies (docs/PROTOCOL.md §7.9): every operator manages their own; administrators
 * also the shared ones, for everyone or for one department's members and chats. They are
 * typed in a chat as /shortcut (canned.js); {visitor} and {operator} are filled in there. */

import { api } from "../api.js";
import { refresh } from "../canned.js";
import { h, I } from "../dom.js";
import { limit } from "../protocol.js";
import { store } from "../store.js";
import { adminPage, formDialog, rowActions } from "../ui.js";

const S = store.state;

const PLACEHOLDERS =
  "{visitor} becomes the visitor\u2019s name (or \u201cthere\u201d), {operator} yours.";

/** Who a reply is for, in words. */
const forWhom = (r) =>
  !r.shared ? "Only me" : r.department ? r.department.name + " only" : "Every operator";

/** A change went through: the list here, and the composer's, are fetched again. */
const reloading = (reload) => () => (refresh(), reload());

export function mount(root, scope) {
  adminPage(scope, root, "canned", {
    add: ["Add reply", replyDialog, "add-canned"],
    load: () => api("GET", "/api/console/canned").then((j) => j.replies),
    columns: ["Shortcut", "Text", "For", ""],
    tableClass: "canned",
    empty: [
      I.canned,
      "No canned replies yet. Add one, then type / and its shortcut in a chat to insert it.",
    ],
    row: (r, reload) => {
      const mayEdit = !r.shared || S.me.is_admin;
      return h(
        "tr",
        { "data-canned": r.shortcut },
        h("td", { class: "canned-shortcut", text: "/" + r.shortcut }),
        h("td", { class: "canned-body", text: r.text }),
        h("td", { class: "canned-for", text: forWhom(r) }),
        mayEdit
          ? rowActions(
              ["Edit", "ghost edit", () => replyDialog(r, reload)],
              ["Delete", "danger-ghost delete", () => deleteDialog(r, reload)],
            )
          : h("td", {}),
      );
    },
  });
}

function deleteDialog(r, reload) {
  formDialog({
    title: "Delete the reply /" + r.shortcut + "?",
    fields: [
      h("p", {
        class: "muted",
        text: r.shared ? "Nobody will be offered it any more." : "Only you used it.",
      }),
    ],
    submit: "Delete",
    done: "Reply deleted.",
    action: () => api("DELETE", "/api/console/canned/" + r.id).then(reloading(reload)),
  });
}

/** The "For" choice of an administrator: "me" (only a new reply), "all", or a department. */
function forField(r) {
  const options = [
    ...(r ? [] : [["me", "Only me"]]),
    ["all", "Every operator"],
    ...S.departments.map((d) => ["d" + d.id, d.name + " (its members, in its chats)"]),
  ];
  const value = !r ? "me" : r.department_id ? "d" + r.department_id : "all";
  return { name: "for", label: "For", options, value };
}

function replyDialog(r, reload) {
  const admin = S.me.is_admin;
  formDialog({
    title: r ? "Edit the reply /" + r.shortcut : "Add a canned reply",
    byField: true,
    context: "canned",
    fields: [
      {
        name: "shortcut",
        label: "Shortcut",
        hint: "Type / and this in a chat. Lowercase letters, digits, - and _.",
        required: true,
        maxlength: limit("canned_shortcut_chars"),
        placeholder: "greet",
        autocomplete: "off",
        value: r ? r.shortcut : "",
      },
      {
        name: "text",
        label: "Text",
        hint: PLACEHOLDERS,
        kind: "para",
        rows: 5,
        required: true,
        maxlength: limit("message_chars"),
        placeholder: "Hi {visitor}, I\u2019m {operator}. How can I help?",
        value: r ? r.text : "",
      },
      admin && (!r || r.shared) ? forField(r) : null,
    ],
    submit: r ? "Save" : "Add reply",
    done: r ? "Reply saved." : "Reply added.",
    action: (v) => {
      const body = { shortcut: v.shortcut.replace(/^\//, ""), text: v.text };
      if (v.for && v.for !== "me") {
        const department_id = v.for === "all" ? null : Number(v.for.slice(1));
        Object.assign(body, r ? { department_id } : { shared: true, department_id });
      }
      return (
        r
          ? api("PATCH", "/api/console/canned/" + r.id, body)
          : api("POST", "/api/console/canned", body)
      ).then(reloading(reload));
    },
  });
}
