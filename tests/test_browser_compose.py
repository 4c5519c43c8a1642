"""Writing a message, in a real browser (issue 10: "What the operator and the visitor see",
items 9 and 11): near the server's length limit the widget's and the console's message boxes
show a counter, and a paste or keystroke that would pass the limit is refused with a message
that says so, never cut short; the visitor's end-chat question leaves the last message in sight.

Same harness as test_browser.py: Debian's Chromium under Playwright, the visitor on a host site
from a second origin, the operator in the console in another browser context. Pastes go through
the real clipboard (Ctrl+V). Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import requests
from browser_helpers import open_widget, screenshot, sign_in, visitor_start_chat, watched_page
from conftest import TIMEOUT, wait_for
from playwright.sync_api import expect

T = 20_000  # ms
CLIPBOARD = ["clipboard-read", "clipboard-write"]


def fmt(n: int) -> str:
    return f"{n:,}"


def paste(page, selector: str, text: str) -> None:
    """Paste ``text`` into the box as a person does: from the clipboard, with Ctrl+V."""
    page.evaluate("(t) => navigator.clipboard.writeText(t)", text)
    page.locator(selector).focus()
    page.keyboard.press("Control+V")


def test_a_counter_near_the_limit_and_an_over_long_paste_refused_in_widget_and_console(
    server, host, browser, dialogs
):
    limit = requests.get(server.url + "/api/widget/config", timeout=TIMEOUT).json()["limits"][
        "message_chars"
    ]
    huge = "w" * (4 * limit)  # the 20,000 characters of the report, at the default limit
    refused = (
        f"Not pasted: it would make the message {fmt(len(huge))} characters long; "
        f"the limit is {fmt(limit)}."
    )
    at_limit = f"This message is at the limit of {fmt(limit)} characters."

    op = sign_in(watched_page(browser, dialogs), server, "bob")
    op.context.grant_permissions(CLIPBOARD)
    page = watched_page(browser, dialogs)
    page.context.grant_permissions(CLIPBOARD)
    page.goto(host.page("limits", "Long messages"))

    # The widget's first message, in the pre-chat form: the paste is refused, nothing is cut.
    open_widget(page, timeout=T)
    paste(page, ".cl-in-text", huge)
    form_note = page.locator(".cl-form .cl-len")
    expect(form_note).to_have_text(refused, timeout=T)
    expect(page.locator(".cl-in-text")).to_have_value("")
    page.fill(".cl-in-name", "Pia")
    page.fill(".cl-in-text", "Hello, I have a long question.")
    expect(form_note).to_be_hidden()
    page.click(".cl-submit")
    expect(page.locator(".cl-window[data-view=chat]")).to_be_visible(timeout=T)
    card = op.locator(".qcard", has_text="Pia")
    expect(card).to_be_visible(timeout=T)
    card.locator(".accept").click()
    expect(page.locator(".cl-title")).to_have_text("Bob", timeout=T)

    # The widget's reply box: a counter near the limit; keys past it are refused.
    box = page.locator(".cl-compose-input")
    note = page.locator(".cl-compose .cl-len")
    box.fill("v" * (limit * 8 // 10))  # far from the limit: no counter
    expect(note).to_be_hidden()
    box.fill("v" * (limit - 10))
    expect(note).to_have_text(f"{fmt(limit - 10)} / {fmt(limit)}", timeout=T)
    screenshot(page, "limit-widget-counter")
    box.press_sequentially("abcdefghijklmnop")
    expect(note).to_have_text(at_limit, timeout=T)
    expect(box).to_have_value("v" * (limit - 10) + "abcdefghij")
    # A paste over the limit is refused whole, with the message; the text stays as it was.
    box.fill("")
    paste(page, ".cl-compose-input", huge)
    expect(note).to_have_text(refused, timeout=T)
    expect(box).to_have_value("")
    screenshot(page, "limit-widget-paste-refused")
    # A paste of exactly the limit is taken, counted and sent whole.
    whole = "p" * (limit - 1) + "!"
    paste(page, ".cl-compose-input", whole)
    expect(box).to_have_value(whole, timeout=T)
    expect(note).to_have_text(f"{fmt(limit)} / {fmt(limit)}")
    box.press("Enter")
    expect(note).to_be_hidden(timeout=T)
    got = op.locator(".msg.them .bubble", has_text="p" * 50 + "!")
    expect(got).to_be_visible(timeout=T)
    assert len(got.inner_text()) == limit

    # The console's reply box: the same refusal and the same counter.
    reply = op.locator(".compose-input")
    op_note = op.locator(".len-note")
    expect(reply).to_be_visible(timeout=T)
    paste(op, ".compose-input", huge)
    expect(op_note).to_have_text(refused, timeout=T)
    expect(reply).to_have_value("")
    screenshot(op, "limit-console-paste-refused")
    reply.fill("o" * (limit - 5))
    expect(op_note).to_have_text(f"{fmt(limit - 5)} / {fmt(limit)}", timeout=T)
    reply.press_sequentially("1234567")
    expect(op_note).to_have_text(at_limit, timeout=T)
    expect(reply).to_have_value("o" * (limit - 5) + "12345")
    screenshot(op, "limit-console-counter")
    reply.press("Enter")
    expect(op_note).to_be_hidden(timeout=T)
    answer = page.locator(".cl-them .cl-bubble", has_text="o" * 50 + "12345")
    expect(answer).to_be_visible(timeout=T)
    assert len(answer.inner_text()) == limit
    for p in (op, page):
        assert p.js_errors == [], p.js_errors
    assert dialogs == []


def last_message_in_sight_of_the_end_question(page, ws, label: str) -> None:
    """A chat with enough replies that the log scrolls; the visitor asks to end it: the
    newest message stays whole in the log's view and apart from the question."""
    seen = len(ws.events)
    visitor_start_chat(page, f"Eve {label}", "Hello")
    queued = ws.wait(
        lambda e: e["type"] == "queue" and e["chats"], what="the queued chat", start=seen
    )
    chat_id = queued["chats"][0]["id"]
    assert ws.request({"type": "accept", "chat_id": chat_id})["type"] == "ack"
    for i in range(1, 13):
        text = f"Reply {i}: the parcel went out this morning." + (" (last)" if i == 12 else "")
        ws.request({"type": "message", "chat_id": chat_id, "text": text, "client_id": f"{i}"})
    last = page.locator(".cl-them .cl-bubble", has_text="(last)")
    expect(last).to_be_visible(timeout=T)
    log = page.locator(".cl-log")
    wait_for(
        lambda: log.evaluate("(el) => el.scrollHeight - el.scrollTop - el.clientHeight < 2"),
        what="the log scrolled to its foot",
    )

    page.click(".cl-end")
    confirm = page.locator(".cl-confirm")
    expect(confirm).to_be_visible(timeout=T)

    def in_sight():
        b, shown, q = last.bounding_box(), log.bounding_box(), confirm.bounding_box()
        inside = b["y"] >= shown["y"] and b["y"] + b["height"] <= shown["y"] + shown["height"]
        clear = b["y"] >= q["y"] + q["height"] or b["y"] + b["height"] <= q["y"]
        return inside and clear

    wait_for(in_sight, what="the last message in sight beside the question")
    screenshot(page, f"end-chat-question-{label}")
    page.click(".cl-confirm .cl-ghost")  # Cancel: the chat goes on
    expect(confirm).to_be_hidden()
    page.click(".cl-end")
    page.click(".cl-confirm-end")
    expect(page.locator(".cl-sys", has_text="You ended the chat")).to_be_visible(timeout=T)
    ws.wait(
        lambda e: e["type"] == "chat_closed" and e.get("chat_id") == chat_id,
        what="the chat closed",
        start=seen,
    )


def test_the_end_chat_question_leaves_the_last_message_in_sight(server, host, browser, dialogs):
    _bob, ws = server.online("bob")
    for label, width, height in (("desktop", 1280, 800), ("phone", 390, 700)):
        page = watched_page(browser, dialogs, width=width, height=height)
        page.goto(host.page(f"end-{label}", "Ending a chat"))
        last_message_in_sight_of_the_end_question(page, ws, label)
        assert page.js_errors == []
    assert dialogs == []
