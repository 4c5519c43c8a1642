"""Receipts in real Chromium (docs/PROTOCOL.md §5.7): under each side's last message the other
side has got, the widget and the console show "Delivered", then "Seen" once the other side has
the conversation on screen in a visible, focused window, and not before; both survive a
reload.

How a page is made to look away: this headless Chromium (156) keeps
``document.visibilityState`` at "visible" whatever happens to a page (another tab brought to
the front, a new window or popup, the window minimised through ``Browser.setWindowBounds``,
``Page.setWebLifecycleState``), and Playwright's focus emulation makes every page report
``document.hasFocus()`` true. So each person's page has focus emulation switched off
(``Emulation.setFocusEmulationEnabled``), and that person opens a second tab in the same
browser window and brings it to the front: the page then really loses focus (``blur``,
``hasFocus()`` false), and bringing it back really gives it focus again (``focus``). That is
the same condition the clients test (``visibilityState === "visible" && hasFocus()``), through
the browser rather than a stand-in. The widget's own "not on screen" case, a minimised chat
window, needs no trick.
"""

from __future__ import annotations

import json

import requests
from browser_helpers import (
    accept_in_console,
    screenshot,
    send_and_see,
    sign_in,
    visitor_start_chat,
    watch,
    write_in_console,
)
from conftest import TIMEOUT
from playwright.sync_api import expect

T = 20_000  # ms


def person(contexts, dialogs):
    """A watched page, and a second tab in its window to look at instead."""
    ctx = contexts()
    page = watch(ctx.new_page(), dialogs)
    other = ctx.new_page()
    other.set_content("<title>Something else</title><p>Another tab</p>")
    page.bring_to_front()
    return page, other


def look_away(page, other):
    """The person looks at their other tab: the page loses focus. (Focus emulation is switched
    off here, not once: a navigation to another site gives the page a new renderer, where
    Playwright has switched it on again.)"""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Emulation.setFocusEmulationEnabled", {"enabled": False})
    cdp.detach()
    other.bring_to_front()
    page.wait_for_function("() => !document.hasFocus()", timeout=T)


def look_back(page):
    page.bring_to_front()
    page.wait_for_function(
        "() => document.visibilityState === 'visible' && document.hasFocus()", timeout=T
    )


def widget_chat(page) -> tuple[int, str]:
    """The visitor's chat id and token, as the widget keeps them on the host site."""
    state = json.loads(page.evaluate("localStorage.getItem('cutelive.state')"))
    return state["chat"], page.evaluate("localStorage.getItem('cutelive.token')")


def server_receipts(server, page) -> dict:
    """The chat's receipts as the server has them (the visitor's numbering), and its events."""
    chat_id, token = widget_chat(page)
    r = requests.get(
        f"{server.url}/api/visitor/chats/{chat_id}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=TIMEOUT,
    )
    r.raise_for_status()
    return r.json()


def seq_of(page, selector: str, text: str) -> int:
    return int(page.locator(selector, has_text=text).get_attribute("data-seq"))


def visitor_says(page, text):
    send_and_see(page, ".cl-compose-input", ".cl-msg.cl-me:not(.cl-pending) .cl-bubble", text, T)


def test_delivered_then_seen_on_both_sides_only_when_looked_at_and_after_a_reload(
    server, host, contexts, dialogs
):
    op, op_other = person(contexts, dialogs)
    sign_in(op, server, "bob")
    page, page_other = person(contexts, dialogs)
    page.goto(host.page("receipts", "Receipts"))
    visitor_start_chat(page, "Ann", "Hello, is the <b>blue</b> teapot back?")
    accept_in_console(op, "Ann")

    # The operator has Ann's chat in front: her first message is seen.
    mine = page.locator(".cl-msg.cl-me[data-seq]")
    expect(mine.last.locator(".cl-rcpt")).to_have_text("Seen", timeout=T)
    expect(page.locator(".cl-rcpt")).to_have_count(1)  # one quiet line, under the last one

    # Bob answers while Ann looks at the chat: he sees that she has seen it.
    write_in_console(op, "Hello Ann, it is!")
    op_mine = op.locator(".msg.me[data-seq]")
    expect(op_mine.last.locator(".rcpt")).to_have_text("Seen", timeout=T)
    screenshot(op, "receipts-console-seen")

    # Ann looks at another tab: Bob's next message reaches her browser (Delivered), unseen.
    look_away(page, page_other)
    write_in_console(op, "Shall I keep one for you?")
    last_op = op_mine.last
    expect(last_op).to_contain_text("Shall I keep one", timeout=T)
    expect(last_op.locator(".rcpt")).to_have_text("Delivered", timeout=T)
    # A later message, delivered the same way, proves no "read" was on its way meanwhile.
    write_in_console(op, "We have three left.")
    expect(op_mine.last).to_contain_text("We have three left.", timeout=T)
    expect(op_mine.last.locator(".rcpt")).to_have_text("Delivered", timeout=T)
    assert op.locator(".rcpt").count() == 1
    seen = server_receipts(server, page)
    said = [e for e in seen["events"] if e["type"] == "message" and e["from"] == "operator"]
    assert seen["chat"]["receipts"]["visitor"]["read"] == said[0]["seq"] < said[-1]["seq"]
    assert seen["chat"]["receipts"]["visitor"]["delivered"] == said[-1]["seq"]
    screenshot(op, "receipts-console-delivered")

    # She comes back to the page: seen.
    look_back(page)
    expect(op_mine.last.locator(".rcpt")).to_have_text("Seen", timeout=T)

    # Ann minimises the chat window (her page still in front): delivered only, until she opens it.
    page.click(".cl-minimize")
    expect(page.locator(".cl-launcher")).to_be_visible(timeout=T)
    write_in_console(op, "Just say the word.")
    expect(op_mine.last.locator(".rcpt")).to_have_text("Delivered", timeout=T)
    page.click(".cl-launcher")
    expect(op_mine.last.locator(".rcpt")).to_have_text("Seen", timeout=T)

    # Now Bob looks at another tab of his: Ann's message is delivered to him, not seen.
    look_away(op, op_other)
    visitor_says(page, "Yes please, keep one for me")
    expect(mine.last).to_contain_text("keep one for me", timeout=T)
    expect(mine.last.locator(".cl-rcpt")).to_have_text("Delivered", timeout=T)
    visitor_says(page, "I can come on Friday")
    expect(mine.last.locator(".cl-rcpt")).to_have_text("Delivered", timeout=T)
    assert page.locator(".cl-rcpt").count() == 1
    seen = server_receipts(server, page)
    asked = [e for e in seen["events"] if e["type"] == "message" and e["from"] == "visitor"]
    assert seen["chat"]["receipts"]["operator"]["read"] < asked[-2]["seq"]
    assert seen["chat"]["receipts"]["operator"]["delivered"] == asked[-1]["seq"]
    screenshot(page, "receipts-widget-delivered")

    # Bob comes back to the console, Ann's chat in front: she sees that he has seen it.
    look_back(op)
    expect(mine.last.locator(".cl-rcpt")).to_have_text("Seen", timeout=T)
    screenshot(page, "receipts-widget-seen")

    # Both reload: "Seen" is still there, on the same messages.
    ann_last = seq_of(page, ".cl-msg.cl-me", "I can come on Friday")
    bob_last = seq_of(op, ".msg.me", "Just say the word.")
    page.reload()
    expect(page.locator(f".cl-msg[data-seq='{ann_last}'] .cl-rcpt")).to_have_text("Seen", timeout=T)
    op.reload()
    expect(op.locator(".conn.connected")).to_be_visible(timeout=T)
    op.locator(".tab", has_text="Ann").click()
    expect(op.locator(f".msg[data-seq='{bob_last}'] .rcpt")).to_have_text("Seen", timeout=T)
    assert page.locator(".cl-rcpt").count() == 1 and op.locator(".rcpt").count() == 1

    # Whatever anyone typed stayed text.
    expect(page.locator(".cl-bubble b")).to_have_count(0)
    expect(op.locator(".bubble b")).to_have_count(0)
    assert page.js_errors == [] and op.js_errors == []
    assert dialogs == []
