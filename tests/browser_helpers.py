"""Helpers for the browser tests: Debian's Chromium, a second-origin host site, shadow DOM access.

The widget lives in an open Shadow DOM; Playwright's CSS selectors pierce open shadow roots, so
``page.locator(".cl-window")`` finds it. The host site is served from ``http://localhost:PORT``
while the server is ``http://127.0.0.1:PORT``: two origins, as on a customer's site.
"""

from __future__ import annotations

import functools
import html
import http.server
import os
import threading
import urllib.request
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"


def require_chromium() -> str:
    """The Chromium binary, or a failure that says how to install it (never a skip)."""
    if not os.path.exists(CHROMIUM):
        raise AssertionError(
            f"{CHROMIUM} is missing: the browser tests need Debian's Chromium. "
            "Install it with: apt-get install chromium"
        )
    return CHROMIUM


#: Chromium features the tests turn off: the address bar's pop-up and its AI-mode panel, which
#: Chromium renders ahead of use in a renderer process of their own for every window (a
#: Playwright page is a window), whether anyone types into an address bar or not. That renderer
#: cost more CPU than the pages under test.
DISABLED_FEATURES = ("WebUIOmniboxPopup", "WebUIOmniboxAimPopup")

_playwright_disabled: list[str] | None = None  # Playwright's own list, read once per process


def _playwright_disabled_features(playwright) -> list[str]:
    """The features Playwright's launch turns off, as a probe browser's command line says.

    Playwright passes one ``--disable-features`` and Chromium keeps only the last such switch,
    so the tests' switch must repeat Playwright's list (which changes between its versions)."""
    global _playwright_disabled
    if _playwright_disabled is None:
        probe = playwright.chromium.launch(
            executable_path=require_chromium(), args=[*CHROMIUM_ARGS, "--enable-automation"]
        )
        try:
            session = probe.new_browser_cdp_session()
            argv = session.send("Browser.getBrowserCommandLine")["arguments"]
        finally:
            probe.close()
        values = [a.partition("=")[2] for a in argv if a.startswith("--disable-features=")]
        _playwright_disabled = [f for f in ",".join(values).split(",") if f]
    return _playwright_disabled


def launch(playwright):
    """Launch Debian's Chromium (Playwright's own browser download is never used)."""
    features = [*_playwright_disabled_features(playwright), *DISABLED_FEATURES]
    return playwright.chromium.launch(
        executable_path=require_chromium(),
        args=[*CHROMIUM_ARGS, "--disable-features=" + ",".join(features)],
    )


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


class _Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output quiet
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


class HostSite:
    """A customer's web site on a second origin: plain files from a temporary directory."""

    def __init__(self, root: Path, server_url: str):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.server_url = server_url
        handler = functools.partial(_Handler, directory=str(self.root))
        self.httpd = http.server.ThreadingHTTPServer(("localhost", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f"http://localhost:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def page(
        self, name: str, title: str, body: str = "", head: str = "", widget: bool = True
    ) -> str:
        """Write a host page that embeds the widget with the one-tag snippet; its URL."""
        tag = f'<script async src="{self.server_url}/widget.js"></script>' if widget else ""
        links = " · ".join(f'<a href="{n}.html">{n}</a>' for n in ("page1", "page2", "page3"))
        (self.root / f"{name}.html").write_text(
            "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{html.escape(title)}</title>{head}</head>"
            "<body style='font:16px/1.5 Georgia,serif;margin:0;padding:24px 32px;"
            "background:#fbfaf7;color:#1f2937'>"
            f"<nav>{links}</nav><h1>{html.escape(title)}</h1>{body}{tag}</body></html>"
        )
        return f"{self.url}/{name}.html"

    def copy_demo(self, name: str) -> str:
        """Copy a page of the server's demo site (as it serves it), pointing its widget tag
        and stylesheet at the server."""
        with urllib.request.urlopen(f"{self.server_url}/demo/{name}", timeout=10) as r:
            text = r.read().decode("utf-8")
        text = text.replace('src="/widget.js"', f'src="{self.server_url}/widget.js"')
        text = text.replace('href="demo.css"', f'href="{self.server_url}/demo/demo.css"')
        (self.root / name).write_text(text)
        return f"{self.url}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def watch(page, dialogs):
    """``page`` with its JavaScript errors in ``page.js_errors`` and its dialogs (there must be
    none) dismissed into ``dialogs``."""
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.js_errors = errors
    return page


def assert_quiet(dialogs, *pages) -> None:
    """No JavaScript error on any of the watched ``pages``, and no dialog opened."""
    for page in pages:
        assert page.js_errors == [], page.js_errors
    assert dialogs == []


def new_context(browser, width=1280, height=800, **kw):
    """A fresh browser context (its own storage and cookies: another person)."""
    kw.setdefault("reduced_motion", "reduce")  # no animation keeps Chromium redrawing
    return browser.new_context(viewport={"width": width, "height": height}, **kw)


def watched_page(browser, dialogs, width=1280, height=800, **kw):
    """A watched page (see ``watch``) in a fresh context."""
    return watch(new_context(browser, width, height, **kw).new_page(), dialogs)


def sign_in(page, server, username, password="correct horse 1", online=True, timeout=20_000):
    """Sign in to the console on ``page``; optionally go online."""
    from playwright.sync_api import expect

    page.goto(server.console_url + "/console/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator(".conn.connected")).to_be_visible(timeout=timeout)
    if online:
        page.click(".status-opt.online")
        expect(page.locator(".status-opt.online.on")).to_be_visible(timeout=timeout)
    return page


def open_widget(page, status="online", view="prechat", timeout=20_000):
    """The widget's button shows ``status``; a click on it opens the window on ``view``."""
    from playwright.sync_api import expect

    expect(page.locator(f".cl-launcher[data-status={status}]")).to_be_visible(timeout=timeout)
    page.click(".cl-launcher")
    expect(page.locator(f".cl-window[data-view={view}]")).to_be_visible(timeout=timeout)


def fill_form(page, name="Ann", text="Hello, I need help", email=None):
    """The widget's pre-chat (or leave-a-message) form, filled in."""
    page.fill(".cl-in-name", name)
    if email:
        page.fill(".cl-in-email", email)
    page.fill(".cl-in-text", text)


def visitor_start_chat(page, name="Ann", text="Hello, I need help", email=None, timeout=20_000):
    """The visitor opens the widget, fills in the pre-chat form and starts a chat."""
    from playwright.sync_api import expect

    open_widget(page, timeout=timeout)
    fill_form(page, name, text, email)
    page.click(".cl-submit")
    expect(page.locator(".cl-window[data-view=chat]")).to_be_visible(timeout=timeout)


def accept_in_console(op, name, timeout=20_000):
    """The operator accepts the visitor's chat from the queue; its tab comes to the front."""
    from playwright.sync_api import expect

    card = op.locator(".qcard", has_text=name)
    expect(card).to_be_visible(timeout=timeout)
    card.locator(".accept").click()
    expect(op.locator(".tab.on", has_text=name)).to_be_visible(timeout=timeout)


def accepted_chat_page(
    browser, dialogs, op, url, name="Ann", text="Hello, I need help", email=None, timeout=20_000
):
    """A visitor's watched page at ``url`` starting a chat that the operator (the console page
    ``op``) accepts: the visitor's page."""
    page = watched_page(browser, dialogs)
    page.goto(url)
    visitor_start_chat(page, name, text, email=email, timeout=timeout)
    accept_in_console(op, name, timeout=timeout)
    return page


def end_chat_in_console(op):
    """The operator ends the open chat, and confirms."""
    op.locator(".end-chat").click()
    op.locator(".confirm-end").click()


def request_transcript(page, email, timeout=20_000):
    """The visitor, whose chat has ended, asks for its transcript at ``email`` (the address the
    form offers); the form says it is on its way."""
    from playwright.sync_api import expect

    form = page.locator(".cl-transcript")
    expect(form).to_be_visible(timeout=timeout)
    expect(form.locator(".cl-transcript-email")).to_have_value(email)
    form.locator(".cl-transcript-send").click()
    expect(form.locator(".cl-transcript-note")).to_contain_text("on its way", timeout=timeout)


#: Records which regions of the console (``data-region``) had nodes added or removed.
WATCH_REGIONS = """() => {
  window.__regions = [];
  new MutationObserver((list) => {
    for (const m of list) {
      const el = m.target.nodeType === 1 ? m.target : m.target.parentElement;
      const region = el.closest("[data-region]");
      window.__regions.push({
        region: region ? region.getAttribute("data-region") : "(none)",
        nodes: m.addedNodes.length + m.removedNodes.length,
      });
    }
  }).observe(document.getElementById("app"), { childList: true, subtree: true });
}"""

#: The regions changed since the last call ({region: nodes added or removed}), after the
#: store's next animation frame has been drawn.
TAKE_REGIONS = """() => new Promise((done) =>
  requestAnimationFrame(() => requestAnimationFrame(() => {
    const out = {};
    for (const r of window.__regions) out[r.region] = (out[r.region] || 0) + r.nodes;
    window.__regions = [];
    done(out);
  })))"""

#: Show a console view by setting the store's `view` key, as the navigation does.
SET_VIEW = """async (kind) => {
  const { store } = await import("/assets/console/store.js");
  store.set({ view: { kind } });
  return store.state.view.kind;
}"""


def console_home(browser, server, dialogs, username, online=True):
    """An operator signed in to the console (online unless told), on the Chats page."""
    page = sign_in(watched_page(browser, dialogs), server, username, online=online)
    page.click("[data-nav=home]")
    return page


def send_and_see(page, box, sent, text, timeout=20_000):
    """Type ``text`` into the input ``box``, press Enter, and wait until it shows in ``sent``
    (a selector of the sender's own messages)."""
    from playwright.sync_api import expect

    page.locator(box).fill(text)
    page.locator(box).press("Enter")
    expect(page.locator(sent, has_text=text)).to_be_visible(timeout=timeout)


def write_in_console(op, text, note=False, timeout=20_000):
    """The operator sends a reply (or, ``note``, an internal note) in the open chat."""
    op.locator(".mode-note" if note else ".mode-reply").click()
    where = ".note-item .note-text" if note else ".msg.me .bubble"
    send_and_see(op, ".compose-input", where, text, timeout)


def transfer_dialog(op, to, note="", timeout=20_000):
    """The open chat's Transfer dialog, filled in for ``to`` (a colleague or a department)."""
    from playwright.sync_api import expect

    op.locator(".chat-head .transfer").click()
    dlg = op.locator("dialog.transfer-dialog")
    expect(dlg).to_be_visible(timeout=timeout)
    dlg.locator("select.transfer-to").select_option(label=to)
    if note:
        dlg.locator("textarea.transfer-note").fill(note)
    return dlg


def settled(locator):
    """Wait until the element's arrival animation has ended (for a screenshot)."""
    locator.evaluate("e => Promise.all(e.getAnimations().map((a) => a.finished))")
