/* Cute Live Support: the operator console (/console/). Same origin as the API; cookie session,
 * CSRF header on every state-changing request, one event stream (stream.js).
 * Everything a visitor controls is put into the page with textContent, never as markup.
 *
 * Modules, bottom up: dom (elements, links), format (times, URLs), errors (the one table of
 * error texts), api (HTTP), protocol (the server's limits and defaults), store (state and
 * regions), ui (toasts, fields, dialogs, admin pages), alerts, files (previews, cards and
 * uploads), app (the stream and commands), direct (messages between operators),
 * views/* (one per screen), shell (the frame), and this file: boot. */

import { loadSession, onSignedOut } from "./api.js";
import * as app from "./app.js";
import { h, put } from "./dom.js";
import { errorText } from "./errors.js";
import { setProtocol } from "./protocol.js";
import { mountShell } from "./shell.js";
import { brand } from "./ui.js";
import { showLogin, showSetup } from "./views/auth.js";

const root = document.getElementById("app");
let unmount = null;

function start(me, session) {
  if (unmount) unmount();
  app.start(me, session, signedOut);
  unmount = mountShell(root);
}

/** The console ended (signed out, session lost): back to the sign-in screen. */
async function signedOut(message) {
  if (unmount) unmount();
  unmount = null;
  await loadSession().catch(() => null); // a fresh CSRF token for the next sign-in
  showLogin(root, start, message);
}

onSignedOut(() => app.signOut(errorText("not_authenticated")));

async function boot() {
  let s;
  try {
    s = await loadSession();
  } catch (e) {
    put(
      root,
      h(
        "div",
        { class: "auth" },
        h(
          "div",
          { class: "auth-card" },
          brand(),
          h("p", { class: "form-error", text: errorText(e) }),
          h("button", { class: "btn primary", text: "Try again", onclick: boot }),
        ),
      ),
    );
    return;
  }
  setProtocol(s.protocol);
  if (s.operator) return start(s.operator, s);
  if (s.setup_required) return showSetup(root, start);
  showLogin(root, start);
}

boot();
