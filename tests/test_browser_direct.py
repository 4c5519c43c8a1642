"""Direct messages between operators in the console, in real Chromium (docs/PROTOCOL.md §5.6):
Alice writes Bob from the team list; Bob's console shows the unread count and the message as
text; a message sent while Bob's console was closed arrives when it is back, and after a reload
and a restart of the server the conversation is whole, in order, nothing twice; reading it
clears the count and shows Alice that it was seen."""

from __future__ import annotations

from browser_helpers import screenshot, send_and_see, sign_in, watched_page
from conftest import PASSWORD
from playwright.sync_api import expect

T = 20_000


def _texts(page) -> list[str]:
    return page.locator(".dm-view .msg:not(.pending) .bubble").all_inner_texts()


def _write(page, text):
    send_and_see(page, ".dm-view .compose-input", ".dm-view .msg.me:not(.pending) .bubble", text, T)


def test_a_direct_message_reaches_a_colleague_once_across_reconnects(server, browser, dialogs):
    alice = sign_in(watched_page(browser, dialogs), server, "admin", PASSWORD)
    bob = sign_in(watched_page(browser, dialogs), server, "bob", PASSWORD)
    bob.click("[data-nav=home]")

    # Alice opens Bob from the team list and writes; markup stays text.
    alice.locator(".team-dm", has_text="Bob").click()
    expect(alice.locator(".dm-view .dm-name")).to_have_text("Bob", timeout=T)
    expect(alice.locator(".dm-empty")).to_contain_text("No messages yet")
    first = "<b>Can you</b> take the German chat?"
    _write(alice, first)

    # Bob, on another page of the console, sees the count in the team list.
    mate = bob.locator(".team-dm", has_text="Alice Admin")
    expect(mate.locator(".badge.unread")).to_have_text("1", timeout=T)
    expect(bob.locator(".side-title .dm-total")).to_have_text("1")
    screenshot(bob, "direct-unread")

    # Bob's console is closed; Alice writes again meanwhile; Bob comes back.
    bob.goto("about:blank")
    _write(alice, "And the French one after it")
    bob.goto(server.url + "/console/")
    expect(bob.locator(".conn.connected")).to_be_visible(timeout=T)
    expect(mate.locator(".badge.unread")).to_have_text("2", timeout=T)

    # A reload, then a restart of the server: still two, once each.
    bob.reload()
    expect(bob.locator(".conn.connected")).to_be_visible(timeout=T)
    expect(mate.locator(".badge.unread")).to_have_text("2", timeout=T)
    server.stop()
    expect(bob.locator(".conn.reconnecting")).to_be_visible(timeout=T)
    server.start(server.port)
    expect(bob.locator(".conn.connected")).to_be_visible(timeout=40_000)
    expect(alice.locator(".conn.connected")).to_be_visible(timeout=40_000)
    _write(alice, "Thanks!")
    expect(mate.locator(".badge.unread")).to_have_text("3", timeout=T)

    # Bob opens the conversation: whole, in order, nothing twice, and read.
    mate.click()
    expect(bob.locator(".dm-view .msg .bubble").last).to_have_text("Thanks!", timeout=T)
    assert _texts(bob) == [first, "And the French one after it", "Thanks!"]
    expect(mate.locator(".badge.unread")).to_have_count(0, timeout=T)
    expect(bob.locator(".side-title .dm-total")).to_have_count(0)
    # Alice learns that Bob has seen them.
    expect(alice.locator(".dm-view .msg.me .msg-time").last).to_contain_text("Seen", timeout=T)

    # Bob answers; it reaches Alice, who is looking at the conversation.
    _write(bob, "Yes, both")
    expect(alice.locator(".dm-view .msg.them .bubble", has_text="Yes, both")).to_be_visible(
        timeout=T
    )
    assert _texts(alice) == [first, "And the French one after it", "Thanks!", "Yes, both"]
    screenshot(bob, "direct-conversation")
    screenshot(alice, "direct-conversation-sender")
    # One more reload: the same conversation, not one message more.
    bob.reload()
    expect(bob.locator(".dm-view .msg .bubble").last).to_have_text("Yes, both", timeout=T)
    assert _texts(bob) == [first, "And the French one after it", "Thanks!", "Yes, both"]
    assert alice.js_errors == [] and bob.js_errors == []
    assert dialogs == []
