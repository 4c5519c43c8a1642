"""The console's store and its regions, and the defaults and limits the browser takes from the
server, in a real browser (Playwright driving Debian's Chromium; same harness as
test_browser.py). Every wait is on a condition, never a fixed sleep.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import requests
from browser_helpers import (
    SET_VIEW,
    TAKE_REGIONS,
    WATCH_REGIONS,
    screenshot,
    sign_in,
    watched_page,
)
from conftest import TIMEOUT, wait_for
from playwright.sync_api import expect

from livesupport.protocol import APPEARANCE

T = 20_000  # ms
ROOT = Path(__file__).resolve().parent.parent

#: Each console view and something only that view shows.
VIEWS = {
    "visitors": ".mon-count",
    "home": ".chats-section h3",
    "inbox": ".panel-head h2:text-is('Inbox')",
    "history": ".panel-head h2:text-is('History')",
    "operators": "tr[data-operator=admin]",
    "rules": "button.add-rule",
    "widget": "input[name=title]",
    "embed": ".code",
}


def take_regions(page) -> dict:
    return page.evaluate(TAKE_REGIONS)


def track(server, token: str, url: str, title: str) -> None:
    """A page view, as the widget's beacon sends it."""
    r = requests.post(
        server.url + "/api/visitor/track",
        data=json.dumps({"token": token, "url": url, "title": title, "referrer": ""}),
        headers={"Content-Type": "text/plain"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 204, r.text


def test_every_view_through_the_store_and_changes_redraw_only_their_regions(
    server, browser, dialogs
):
    op = sign_in(watched_page(browser, dialogs), server, "admin")

    # Every view, shown by setting the store's `view` key (what the navigation does).
    for kind, marker in VIEWS.items():
        assert op.evaluate(SET_VIEW, kind) == kind
        expect(op.locator(f".view.view-{kind} {marker}").first).to_be_visible(timeout=T)
        expect(op.locator(f".nav-item.on[data-nav={kind}]")).to_be_visible()
    op.locator("[data-nav=home]").click()
    expect(op.locator(".view.view-home .chats-page")).to_be_visible()
    op.evaluate(WATCH_REGIONS)

    # A queue change redraws the queue (and the Chats page, which lists the waiting chats),
    # and nothing else.
    visitor = server.visitor()
    visitor.connect()
    take_regions(op)
    chat_id = visitor.start_chat(name="Quinn", text="Hello from the queue")["chat"]["id"]
    expect(op.locator(".qcard", has_text="Quinn")).to_be_visible(timeout=T)
    changed = take_regions(op)
    assert changed.get("queue"), changed
    assert set(changed) <= {"queue", "chats-page"}, changed

    # Accepted: the chat tab. A new message redraws the log, and nothing else.
    op.locator(".qcard .accept").click()
    expect(op.locator(".tab.on", has_text="Quinn")).to_be_visible(timeout=T)
    expect(op.locator(".msg.them .bubble", has_text="Hello from the queue")).to_be_visible()
    expect(op.locator(".compose-input")).to_be_visible()
    take_regions(op)
    visitor.say(chat_id, "A second message")
    expect(op.locator(".msg.them .bubble", has_text="A second message")).to_be_visible(timeout=T)
    changed = take_regions(op)
    assert changed.get("chat-log"), changed
    assert set(changed) == {"chat-log"}, changed

    # The monitor: a visitor's next page redraws the monitor, and nothing else.
    op.locator("[data-nav=visitors]").click()
    token = requests.post(server.url + "/api/visitor/token", json={}, timeout=TIMEOUT).json()[
        "token"
    ]
    track(server, token, "https://shop.example/", "Shop")
    row = op.locator(".mon-row:not(.hidden)", has_text="Shop")
    expect(row).to_have_count(1, timeout=T)
    take_regions(op)
    track(server, token, "https://shop.example/teas", "Teas")
    expect(row.locator(".page-link")).to_have_text("Teas", timeout=T)
    changed = take_regions(op)
    assert changed.get("monitor"), changed
    assert set(changed) == {"monitor"}, changed
    screenshot(op, "console-store-regions")
    assert op.js_errors == [] and dialogs == []


def test_served_defaults_and_limits_are_what_the_widget_and_console_show(
    server, host, browser, dialogs
):
    config = requests.get(server.url + "/api/widget/config", timeout=TIMEOUT).json()
    defaults, invitation, limits = (
        config["defaults"],
        config["invitation_text"],
        config["limits"],
    )
    # Not one of them is written in the browser's code.
    code = {
        p.relative_to(ROOT): p.read_text()
        for p in (ROOT / "assets").glob("*/**/*.js")
        if "demo" not in p.parts
    }
    # (Texts, not the values a choice can take, such as "right" or "required".)
    texts = {k for k, (kind, _limit, _default) in APPEARANCE.items() if kind in ("line", "para")}
    literals = {invitation} | {v for k, v in defaults.items() if k in texts}
    for text in literals:
        for form in (text, json.dumps(text)[1:-1]):  # as typed, or with \u escapes
            for q in "\"'`":
                for path, source in code.items():
                    assert q + form + q not in source, (text, path)

    # The widget while nobody is online: the leave-a-message texts and the limits.
    page = watched_page(browser, dialogs)
    page.goto(host.page("off", "Offline page"))
    launcher = page.locator(".cl-launcher[data-status=offline]")
    expect(launcher).to_have_attribute("aria-label", defaults["button_offline"], timeout=T)
    launcher.click()
    expect(page.locator(".cl-window[data-view=offline]")).to_be_visible(timeout=T)
    expect(page.locator(".cl-title")).to_have_text(defaults["title"])
    expect(page.locator(".cl-intro")).to_have_text(defaults["offline_prompt"])
    expect(page.locator(".cl-submit")).to_have_text(defaults["button_send"])
    for selector, limit in (
        (".cl-in-name", "name_chars"),
        (".cl-in-email", "email_chars"),
    ):
        expect(page.locator(selector)).to_have_attribute("maxlength", str(limits[limit]))
    # A message box refuses what would pass its limit instead of cutting it (no maxlength).
    message_box = page.locator(".cl-in-text")
    expect(message_box).to_have_attribute("data-max-chars", str(limits["message_chars"]))
    expect(message_box).not_to_have_attribute("maxlength", re.compile(".*"))
    page.fill(".cl-in-name", "Olive")
    page.fill(".cl-in-email", "olive@example.org")
    page.fill(".cl-in-text", "Call me back, please.")
    page.click(".cl-submit")
    expect(page.locator(".cl-thanks-title")).to_have_text(defaults["thanks"], timeout=T)

    # The console: the widget settings show the defaults as placeholders and in the preview.
    admin = sign_in(watched_page(browser, dialogs), server, "admin")
    admin.click("[data-nav=widget]")
    for key, value in defaults.items():
        if key in ("position", "ask_name", "ask_email"):  # choices: the default is selected
            expect(admin.locator(f"select[name={key}]")).to_have_value(value, timeout=T)
        else:
            field = admin.locator(f"[name={key}]:not([type=color])")
            expect(field).to_have_attribute("placeholder", value, timeout=T)
    expect(admin.locator(".wprev-head strong")).to_have_text(defaults["title"])
    expect(admin.locator(".wprev-body p")).to_have_text(defaults["greeting"])
    expect(admin.locator(".wprev-btn")).to_have_text(defaults["button_start"])
    screenshot(admin, "console-widget-defaults")

    # Someone is online: the start-a-chat texts; an invitation with no message of its own.
    visitor = watched_page(browser, dialogs)
    visitor.goto(host.page("on", "Online page"))
    launcher = visitor.locator(".cl-launcher[data-status=online]")
    expect(launcher).to_have_attribute("aria-label", defaults["button_online"], timeout=T)
    admin.click("[data-nav=visitors]")
    row = admin.locator(".mon-row:not(.hidden)", has_text="Online page")
    row.locator("button.invite").click()
    message = admin.locator("dialog.dialog textarea[name=message]")
    expect(message).to_have_attribute("placeholder", invitation)
    admin.locator("dialog.dialog button[type=submit]").click()
    card = visitor.locator(".cl-invite")
    expect(card.locator(".cl-inv-msg")).to_have_text(invitation, timeout=T)
    # The reply box takes the served limit: one character over it is refused with a note.
    card.locator(".cl-inv-in").fill("y" * (limits["message_chars"] + 1))
    expect(card.locator(".cl-inv-note")).to_contain_text(f"{limits['message_chars']:,}")
    assert card.locator(".cl-inv-in").input_value() == ""
    card.locator(".cl-inv-yes").click()
    expect(visitor.locator(".cl-invited .cl-bubble")).to_have_text(invitation, timeout=T)
    expect(admin.locator(".msg.invited .bubble")).to_have_text(invitation, timeout=T)
    expect(admin.locator(".compose-input")).to_have_attribute(
        "data-max-chars", str(limits["message_chars"])
    )

    # A chat nobody has accepted yet: the greeting, the start button, the waiting line.
    waiting = watched_page(browser, dialogs)
    waiting.goto(host.page("wait", "Waiting page"))
    waiting.locator(".cl-launcher[data-status=online]").click()
    expect(waiting.locator(".cl-intro")).to_have_text(defaults["greeting"], timeout=T)
    expect(waiting.locator(".cl-submit")).to_have_text(defaults["button_start"])
    waiting.fill(".cl-in-name", "Wes")
    waiting.fill(".cl-in-text", "Anyone there?")
    waiting.click(".cl-submit")
    expect(waiting.locator(".cl-waiting-text")).to_have_text(defaults["waiting"], timeout=T)
    expect(waiting.locator(".cl-sub")).to_have_text(defaults["waiting"])
    for p in (page, admin, visitor, waiting):
        assert p.js_errors == [], p.js_errors
    assert dialogs == []
    assert re.match(r"^#[0-9a-f]{6}$", defaults["color"])


def test_an_answer_for_a_view_that_was_left_draws_nothing(server, browser, dialogs):
    op = sign_in(watched_page(browser, dialogs), server, "admin", online=False)
    held = []  # the operators request, answered only once the operator has moved on
    op.route("**/api/console/operators", lambda route: held.append(route))
    op.locator("[data-nav=operators]").click()
    expect(op.locator(".view-operators .panel")).to_contain_text("Loading", timeout=T)
    wait_for(lambda: op.evaluate("1") and held, what="the operators request")
    op.locator("[data-nav=inbox]").click()
    expect(op.locator(".view-inbox .empty")).to_contain_text("No offline messages", timeout=T)
    held[0].continue_()
    op.unroute("**/api/console/operators")
    # The answer lands in the store, and nothing draws it: the inbox stays as it is.
    op.wait_for_function(
        """async () => {
          const { store } = await import("/assets/console/store.js");
          return !!store.state["page:operators"];
        }""",
        timeout=T,
    )
    op.evaluate("() => new Promise((done) => requestAnimationFrame(() => done()))")
    expect(op.locator(".view-inbox .empty")).to_be_visible()
    assert op.locator("tr[data-operator]").count() == 0
    # Back on Operators, the page loads again and shows them.
    op.locator("[data-nav=operators]").click()
    expect(op.locator("tr[data-operator=admin]")).to_be_visible(timeout=T)
    assert op.js_errors == [] and dialogs == []
