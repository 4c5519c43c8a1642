/* The console's HTTP client: same origin, the session cookie, the CSRF header on every request
 * that changes something, and errors as the API's JSON ({error, message, ...}) with the HTTP
 * status added. A request refused for a lost session tells the app once, through onSignedOut. */

export const BASE = location.origin;

const session = { xsrf: "", onSignedOut: null };

/** The CSRF token from GET /api/console/session (it changes when a session starts or ends). */
export const setXsrf = (token) => (session.xsrf = token || "");
export const xsrfHeaders = () => ({ "X-XSRFToken": session.xsrf });
/** Who hears about a request refused with not_authenticated. */
export const onSignedOut = (fn) => (session.onSignedOut = fn);

export async function api(method, path, body) {
  const opts = { method, credentials: "same-origin", cache: "no-store", headers: {} };
  if (method !== "GET") {
    opts.headers = Object.assign(xsrfHeaders(), { "Content-Type": "application/json" });
    opts.body = JSON.stringify(body || {});
  }
  let r;
  try {
    r = await fetch(BASE + path, opts);
  } catch (e) {
    throw { error: "network" };
  }
  let j = null;
  try {
    j = await r.json();
  } catch (e) {
    /* not JSON */
  }
  if (r.ok) return j;
  const err = Object.assign({ status: r.status, error: "http_" + r.status }, j || {});
  if (err.error === "not_authenticated" && path !== "/api/console/session" && session.onSignedOut)
    session.onSignedOut(err);
  throw err;
}

/** The session: who is signed in, the CSRF token, and what the console needs to know of the
 * server (its limits, the widget's appearance keys and defaults: `protocol`). */
export async function loadSession() {
  const s = await api("GET", "/api/console/session");
  setXsrf(s.xsrf);
  return s;
}
