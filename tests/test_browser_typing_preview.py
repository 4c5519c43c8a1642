"""The typing preview in real Chromium (docs/PROTOCOL.md §5.7): with ``[chat] typing_preview``
on, the widget sends what is in its message box with ``typing`` (at most every 500 ms while it
changes, the last change always) and the console shows it in the chat's typing line, as text,
until the message arrives or the box is emptied. Off (the default), the widget never sends the
text and the console never shows any; the frames on both WebSockets are read to be sure, after
a later message proves that everything typed before it has been delivered."""

from __future__ import annotations

import json
import time

from browser_helpers import accept_in_console, screenshot, sign_in, visitor_start_chat, watch
from playwright.sync_api import expect

T = 20_000  # ms


def framed(page, direction: str) -> list[tuple[float, dict]]:
    """Every JSON frame the page's WebSockets send (``framesent``) or receive
    (``framereceived``) from now on, with when it was seen."""
    frames: list[tuple[float, dict]] = []

    def on_socket(ws):
        ws.on(direction, lambda payload: frames.append((time.monotonic(), json.loads(payload))))

    page.on("websocket", on_socket)
    return frames


def typings(frames) -> list[tuple[float, dict]]:
    return [(t, f) for t, f in frames if f.get("type") == "typing"]


def chat_between(make_server, seeded_database, host_for, contexts, dialogs, config=None):
    server = make_server(config=config, database=seeded_database)
    host = host_for(server)
    op = watch(contexts().new_page(), dialogs)
    received = framed(op, "framereceived")
    sign_in(op, server, "bob")
    page = watch(contexts().new_page(), dialogs)
    sent = framed(page, "framesent")
    page.goto(host.page("preview", "Typing preview"))
    visitor_start_chat(page, "Ann", "Hello")
    accept_in_console(op, "Ann")
    expect(page.locator(".cl-title")).to_have_text("Bob", timeout=T)
    return page, op, sent, received


def test_the_console_shows_what_the_visitor_types_when_the_site_turns_it_on(
    make_server, seeded_database, host_for, contexts, dialogs
):
    page, op, sent, received = chat_between(
        make_server,
        seeded_database,
        host_for,
        contexts,
        dialogs,
        config={"chat": {"typing_preview": "yes"}},
    )
    typed = "Do you have the <b>blue</b> one?"
    box = page.locator(".cl-compose-input")
    started = time.monotonic()
    box.press_sequentially(typed, delay=40)
    took = time.monotonic() - started

    # The console shows it as text, in the typing line, plainly not a message yet.
    line = op.locator(".typing")
    expect(line.locator(".typing-preview")).to_have_text(typed, timeout=T)
    expect(line).to_contain_text("Ann is typing:")
    expect(line.locator("b")).to_have_count(0)
    expect(op.locator(".msg .bubble", has_text="blue")).to_have_count(0)
    screenshot(op, "typing-preview-console")

    # The widget sent the text at most every 500 ms while it changed, and the last one always.
    with_text = [(t, f) for t, f in typings(sent) if "text" in f]
    assert with_text and with_text[-1][1]["text"] == typed
    assert len(with_text) <= 2 + took / 0.5, (took, [f["text"] for _, f in with_text])
    assert all(f["typing"] is True for _, f in with_text)

    # Sent: the message replaces the preview.
    box.press("Enter")
    expect(op.locator(".msg.them .bubble", has_text=typed)).to_be_visible(timeout=T)
    expect(line).to_be_hidden()
    expect(line.locator(".typing-preview")).to_have_text("")

    # Typed and emptied again: the preview goes with the text.
    box.press_sequentially("One more", delay=40)
    expect(line.locator(".typing-preview")).to_have_text("One more", timeout=T)
    box.fill("")
    expect(line).to_be_hidden(timeout=T)
    expect(line.locator(".typing-preview")).to_have_text("")
    assert typings(received)[-1][1]["typing"] is False
    assert page.js_errors == [] and op.js_errors == []
    assert dialogs == []


def test_with_the_preview_off_the_text_never_leaves_the_visitors_browser(
    make_server, seeded_database, host_for, contexts, dialogs
):
    page, op, sent, received = chat_between(
        make_server, seeded_database, host_for, contexts, dialogs
    )
    box = page.locator(".cl-compose-input")
    box.press_sequentially("my secret plans", delay=40)
    line = op.locator(".typing")
    expect(line).to_contain_text("Ann is typing\u2026", timeout=T)
    expect(line.locator(".typing-preview")).to_have_text("")

    # The message after it: once it is in the console, all the typing before it has been too.
    box.press("Enter")
    expect(op.locator(".msg.them .bubble", has_text="my secret plans")).to_be_visible(timeout=T)
    expect(line.locator(".typing-preview")).to_have_text("")
    assert typings(sent), "the widget said it was typing"
    assert all("text" not in f for _, f in typings(sent)), typings(sent)
    assert typings(received), "the console heard it"
    assert all("text" not in f for _, f in typings(received)), typings(received)
    assert page.js_errors == [] and op.js_errors == []
    assert dialogs == []
