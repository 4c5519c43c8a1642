/* Passwords: my own (from my menu), and an administrator's reset of someone else's. */

import { api } from "../api.js";
import { h } from "../dom.js";
import { formDialog } from "../ui.js";
import { minHint } from "./auth.js";

export function passwordDialog() {
  formDialog({
    title: "Change your password",
    fields: [
      {
        name: "current_password",
        label: "Current password",
        kind: "password",
        required: true,
        autocomplete: "current-password",
      },
      {
        name: "new_password",
        label: "New password",
        kind: "new-password",
        required: true,
        hint: minHint("Your other sessions end."),
      },
    ],
    submit: "Change password",
    done: "Password changed.",
    context: "password",
    action: (v) => api("POST", "/api/console/password", v),
  });
}

export function resetDialog(o, reload) {
  formDialog({
    title: "Reset the password of " + o.display_name,
    fields: [
      h("p", { class: "muted", text: "Their other sessions end at once." }),
      {
        name: "password",
        label: "New password",
        kind: "new-password",
        required: true,
        hint: minHint(),
      },
    ],
    submit: "Set password",
    done: "Password changed.",
    action: (v) => api("PATCH", "/api/console/operators/" + o.id, v).then(reload),
  });
}
