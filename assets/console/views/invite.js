/* Inviting a visitor to chat, from the monitor. */

import * as app from "../app.js";
import { invitationText, limit } from "../protocol.js";
import { store } from "../store.js";
import { formDialog } from "../ui.js";

export function inviteDialog(id) {
  const r = store.state.visitors.get(id);
  formDialog({
    title: "Invite visitor #" + id + " to chat",
    note: r && (r.title || r.url) ? "Now on \u201c" + (r.title || r.url) + "\u201d" : null,
    fields: [
      {
        name: "message",
        label: "Message (optional)",
        kind: "para",
        hint: "The visitor sees your name and this message at once, on whatever page they are.",
        maxlength: limit("invitation_chars"),
        placeholder: invitationText(),
      },
    ],
    submit: "Send invitation",
    done: "Invitation sent.",
    context: "invite",
    action: (v) => app.invite(id, v.message),
  });
}
