/* Automatic invitation rules (administrators only). The conditions a rule may have, and their
 * kinds, come from the server (protocol.rule_conditions); here is only how each one reads. */

import { api } from "../api.js";
import { h, I } from "../dom.js";
import { fail } from "../errors.js";
import { plural } from "../format.js";
import { limit, ruleConditions } from "../protocol.js";
import { adminPage, change, formDialog, rowActions } from "../ui.js";

export const admin = true;

/** Each condition in the dialog (label, placeholder, choices) and in words. */
const CONDITIONS = {
  url_contains: {
    label: "Page URL contains",
    placeholder: "/pricing",
    words: (v) => "page URL contains \u201c" + v + "\u201d",
  },
  referrer_contains: {
    label: "Came from (referrer contains)",
    placeholder: "google.",
    words: (v) => "came from \u201c" + v + "\u201d",
  },
  min_pages: { label: "At least pages", words: (v) => "at least " + plural(v, "page", "pages") },
  min_time_on_page: { label: "Seconds on the page", words: (v) => v + " s on the page" },
  min_time_on_site: { label: "Seconds on the site", words: (v) => v + " s on the site" },
  returning: {
    label: "Who",
    options: [
      ["", "New and returning visitors"],
      ["true", "Returning visitors only"],
      ["false", "New visitors only"],
    ],
    words: (v) => (v ? "returning visitors" : "new visitors"),
  },
};
const about = (name) => CONDITIONS[name] || { label: name, words: (v) => name + " " + v };

/** A rule's conditions in words. */
function ruleText(c) {
  const order = Object.keys(ruleConditions());
  const out = [];
  for (const k of order.concat(Object.keys(c).filter((k) => !order.includes(k))))
    if (c[k] === true || c[k] === false || c[k]) out.push(about(k).words(c[k]));
  return out.length ? out.join(" \u00b7 ") : "Every visitor";
}

export function mount(root, scope) {
  adminPage(scope, root, "rules", {
    add: ["Add rule", ruleDialog, "add-rule"],
    load: () => api("GET", "/api/console/invite-rules").then((j) => j.rules),
    columns: ["Rule", "When", "Message", "On", ""],
    tableClass: "rules",
    empty: [I.zap, "No rules yet. Add one to greet visitors on the pages that matter."],
    row: (rule, reload) => {
      const patch = (body, done) =>
        change(() => api("PATCH", "/api/console/invite-rules/" + rule.id, body), done, reload);
      const on = h("input", { type: "checkbox", class: "switch", "aria-label": "Enabled" });
      on.checked = rule.enabled;
      on.addEventListener("change", () =>
        patch({ enabled: on.checked }, "Rule " + (on.checked ? "enabled." : "disabled.")),
      );
      return h(
        "tr",
        { class: rule.enabled ? "" : "disabled", "data-rule": rule.id },
        h("td", {}, h("strong", { text: rule.name })),
        h("td", { class: "rule-when", text: ruleText(rule.conditions) }),
        h("td", { class: "rule-msg", text: rule.message }),
        h("td", {}, on),
        rowActions(
          ["Edit", "ghost edit", () => ruleDialog(rule, reload)],
          ["Delete", "danger-ghost delete", () => deleteDialog(rule, reload)],
        ),
      );
    },
  });
}

function deleteDialog(rule, reload) {
  formDialog({
    title: "Delete the rule \u201c" + rule.name + "\u201d?",
    fields: [h("p", { class: "muted", text: "Invitations it already sent stay as they are." })],
    submit: "Delete",
    done: "Rule deleted.",
    action: () => api("DELETE", "/api/console/invite-rules/" + rule.id).then(reload),
  });
}

/** The condition fields, by kind: texts side by side, then counts, then each choice. */
function conditionFields(c) {
  const kinds = ruleConditions();
  const of = (kind) => Object.keys(kinds).filter((k) => kinds[k] === kind);
  const spec = (k, extra) =>
    Object.assign({ name: k, label: about(k).label, placeholder: about(k).placeholder }, extra);
  return [
    of("str").map((k) => spec(k, { value: c[k], maxlength: limit("rule_text_chars") })),
    of("count").map((k) => spec(k, { kind: "number", value: c[k], placeholder: "any" })),
    ...of("bool").map((k) =>
      spec(k, {
        options: about(k).options || [
          ["", "Any"],
          ["true", "Yes"],
          ["false", "No"],
        ],
        value: c[k] == null ? "" : String(c[k]),
      }),
    ),
  ];
}

function ruleDialog(rule, reload) {
  const kinds = ruleConditions();
  formDialog({
    title: rule ? "Edit the rule" : "Add an invitation rule",
    fields: [
      {
        name: "name",
        label: "Name",
        hint: "For you; visitors do not see it.",
        required: true,
        maxlength: limit("name_chars"),
        value: rule ? rule.name : "",
      },
      {
        name: "message",
        label: "Message",
        hint: "What the visitor reads in the invitation.",
        kind: "para",
        required: true,
        maxlength: limit("invitation_chars"),
        value: rule ? rule.message : "",
      },
      "When (all of these)",
      ...conditionFields((rule && rule.conditions) || {}),
      { name: "enabled", label: "Enabled", kind: "checkbox", value: rule ? rule.enabled : true },
    ],
    submit: rule ? "Save" : "Add rule",
    done: rule ? "Rule saved." : "Rule added.",
    action: (v) => {
      const conditions = {};
      for (const k in kinds) {
        const x = v[k];
        if (x === "" || x == null) continue;
        if (kinds[k] === "count" && !/^\d+$/.test(x)) throw fail("whole_numbers");
        conditions[k] = kinds[k] === "count" ? Number(x) : kinds[k] === "bool" ? x === "true" : x;
      }
      const body = { name: v.name, message: v.message, enabled: v.enabled, conditions };
      if (!body.name || !body.message) throw fail("rule_incomplete");
      return (
        rule
          ? api("PATCH", "/api/console/invite-rules/" + rule.id, body)
          : api("POST", "/api/console/invite-rules", body)
      ).then(reload);
    },
  });
}
