/* Alerts: a sound (WebAudio), a desktop notification, a flashing tab title. Browsers allow sound
 * only after an interaction, so "Enable alerts" arms it, and later visits re-arm on the first
 * click or key. Whether alerts are armed is the store's "alerts" key. */

import { local, store } from "./store.js";

const d = document;
const w = window;

export const alerts = {
  wanted: local.get("alerts") === true,
  ctx: null,
  get armed() {
    return !!(this.ctx && this.ctx.state === "running");
  },
  arm() {
    try {
      const AC = w.AudioContext || w.webkitAudioContext;
      if (!this.ctx && AC) this.ctx = new AC();
      if (this.ctx && this.ctx.state !== "running")
        this.ctx.resume().then(() => store.touch("alerts"));
    } catch (e) {
      /* no audio */
    }
    if ("Notification" in w && Notification.permission === "default") {
      Notification.requestPermission().then(() => store.touch("alerts"));
    }
    this.wanted = true;
    local.set("alerts", true);
    store.touch("alerts");
  },
  /** Two rising notes for a new chat, one soft note for a message. */
  /** Sounds played so far (what a test of the alerts counts). */
  beeps: 0,
  beep(soft) {
    const ctx = this.ctx;
    if (!ctx || ctx.state !== "running") return;
    this.beeps++;
    const t0 = ctx.currentTime + 0.01;
    const notes = soft
      ? [[660, 0]]
      : [
          [880, 0],
          [1320, 0.16],
        ];
    for (const [f, at] of notes) {
      const o = ctx.createOscillator();
      const g = ctx.createGain();
      o.type = "sine";
      o.frequency.value = f;
      g.gain.setValueAtTime(0.0001, t0 + at);
      g.gain.exponentialRampToValueAtTime(soft ? 0.12 : 0.25, t0 + at + 0.02);
      g.gain.exponentialRampToValueAtTime(0.0001, t0 + at + 0.14);
      o.connect(g).connect(ctx.destination);
      o.start(t0 + at);
      o.stop(t0 + at + 0.16);
    }
  },
  /** A desktop notification while the console is not in front; a click brings it back. */
  notify(title, body, tag, onclick) {
    if (!("Notification" in w) || Notification.permission !== "granted" || d.hasFocus()) return;
    try {
      const n = new Notification(title, { body, tag, silent: true });
      n.onclick = () => {
        w.focus();
        if (onclick) onclick();
        n.close();
      };
    } catch (e) {
      /* some platforms only allow notifications from a service worker */
    }
  },
};

const armOnGesture = () => alerts.wanted && !alerts.armed && alerts.arm();
d.addEventListener("pointerdown", armOnGesture, true);
d.addEventListener("keydown", armOnGesture, true);

const baseTitle = d.title;
let titleTimer = null;

/** Alternate the tab's title with `text` until stopTitle(). */
export function flashTitle(text) {
  if (titleTimer) clearInterval(titleTimer);
  let on = false;
  titleTimer = setInterval(() => {
    on = !on;
    d.title = on ? text : baseTitle;
  }, 1000);
  d.title = text;
}

export function stopTitle() {
  if (titleTimer) clearInterval(titleTimer);
  titleTimer = null;
  d.title = baseTitle;
}

/** The tab's icon with a red badge counting what waits for me (waiting chats and unread
 * messages), for operators who cannot use sound; the plain icon when `n` is 0. */
const iconLink = d.querySelector("link[rel=icon]");
const plainIcon = iconLink ? iconLink.href : "";
let badgeShown = 0;
export function setBadge(n) {
  if (!iconLink || n === badgeShown) return;
  badgeShown = n;
  if (!n) {
    iconLink.href = plainIcon;
    return;
  }
  const label = n > 9 ? "9+" : String(n);
  const svg =
    "<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 32 32'>" +
    "<rect width='32' height='32' rx='9' fill='#4f46e5'/>" +
    "<circle cx='22' cy='10' r='10' fill='#e11d48'/>" +
    "<text x='22' y='14.5' font-family='Arial,sans-serif' font-size='" +
    (label.length > 1 ? 11 : 14) +
    "' font-weight='700' fill='#fff' text-anchor='middle'>" +
    label +
    "</text></svg>";
  iconLink.href = "data:image/svg+xml," + encodeURIComponent(svg);
}
