/* How times, durations, URLs and browsers read in the console. Pure functions of their input. */

const pad = (n) => String(n).padStart(2, "0");

export const hhmm = (ts) =>
  new Date(ts).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

/** Hours, minutes and seconds, for page trails. */
export const hms = (ts) =>
  new Date(ts).toLocaleTimeString([], {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hour12: false,
  });

/** "Today 14:05", or the date and the time. */
export function when(ts) {
  if (!ts) return "\u2014";
  const dt = new Date(ts);
  const today = new Date().toDateString() === dt.toDateString();
  return today
    ? "Today " + hhmm(ts)
    : dt.toLocaleDateString([], { day: "numeric", month: "short", year: "numeric" }) +
        " " +
        hhmm(ts);
}

/** How long ago: "42 s", "7 min", "2 h 05 min", "3 d". */
export function ago(ts) {
  const s = Math.max(0, Math.floor((Date.now() - ts) / 1000));
  if (s < 60) return s + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min";
  const hr = Math.floor(m / 60);
  return hr < 24 ? hr + " h " + pad(m % 60) + " min" : Math.floor(hr / 24) + " d";
}

/** A duration as it ticks: "42 s", "4 min 07 s", "1 h 05 min". */
export function dur(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return s + " s";
  const m = Math.floor(s / 60);
  if (m < 60) return m + " min " + pad(s % 60) + " s";
  return Math.floor(m / 60) + " h " + pad(m % 60) + " min";
}

/** One part of a URL, or the text itself when it is not a URL. */
function urlPart(u, part) {
  try {
    return part(new URL(u)) || u;
  } catch (e) {
    return u || "";
  }
}
/** host + path of a URL, for a compact line. */
export const shortUrl = (u) =>
  urlPart(u, (x) => x.host + (x.pathname === "/" ? "" : x.pathname) + x.search + x.hash);
/** The path (and query) of a URL: pages of one site, told apart. */
export const pathOf = (u) => urlPart(u, (x) => x.pathname + x.search + x.hash);
export const hostOf = (u) => urlPart(u, (x) => x.host);

const BROWSERS = [
  ["Edge", /Edg(?:e|A|iOS)?\/(\d+)/],
  ["Opera", /OPR\/(\d+)/],
  ["Samsung Internet", /SamsungBrowser\/(\d+)/],
  ["Firefox", /(?:Firefox|FxiOS)\/(\d+)/],
  ["Chrome", /(?:HeadlessChrome|Chrome|CriOS)\/(\d+)/],
  ["Safari", /Version\/(\d+)[^ ]* (?:Mobile\/\S+ )?Safari/],
];
const SYSTEMS = [
  ["iOS", /iPhone|iPad|iPod/],
  ["Android", /Android/],
  ["Windows", /Windows/],
  ["ChromeOS", /CrOS/],
  ["macOS", /Mac OS X|Macintosh/],
  ["Linux", /Linux/],
];

/** "Chrome 131 on Linux" from a user agent (the start of it when unknown). */
export function browserOf(ua) {
  if (!ua) return "\u2014";
  let b = null;
  for (const [n, re] of BROWSERS) {
    const m = re.exec(ua);
    if (m) {
      b = n + " " + m[1];
      break;
    }
  }
  const o = SYSTEMS.find(([, re]) => re.test(ua));
  if (!b) return ua.length > 60 ? ua.slice(0, 60) + "\u2026" : ua;
  return b + (o ? " on " + o[0] : "");
}

/** A file's size: "512 B", "1.5 KB", "10 MB" (binary units, as file managers count). */
export function bytes(n) {
  let i = 0;
  for (; n >= 1024 && i < 3; i++) n /= 1024;
  return (i && n < 10 ? Math.round(n * 10) / 10 : Math.round(n)) + " " + ["B", "KB", "MB", "GB"][i];
}

/** "1 page", "3 pages". */
export const plural = (n, one, many) => n + " " + (n === 1 ? one : many);

/** A client id for a command (retries carry the same one: the server applies it once). */
export const cid = () => Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 12);
