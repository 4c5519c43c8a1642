"""A conversation is never lost, in real Chromium: the operator goes offline mid-chat; the
visitor on a customer's page (another origin) keeps the whole transcript across a reload, is
told honestly and leaves an address; the operator's later reply reaches the widget, and by
e-mail (a real SMTP server) once the visitor has left, and the e-mail's link reopens the
conversation. With a colleague online the chat is handed over with nothing lost."""

from __future__ import annotations

import re

from browser_helpers import (
    accepted_chat_page,
    console_home,
    end_chat_in_console,
    request_transcript,
    screenshot,
    send_and_see,
    watched_page,
)
from conftest import mail_config, wait_for
from playwright.sync_api import expect

T = 20_000


def _reply(op, text):
    send_and_see(op, ".compose-input", ".msg.me .bubble", text, T)


def _first_mail(smtp, to: str, what: str) -> str:
    """The text of the first mail the SMTP server gets (waiting for it), sent to ``to`` alone."""
    wait_for(lambda: smtp.messages, what=what)
    _, rcpt, msg = smtp.messages[0]
    assert rcpt == [to]
    return msg.get_content()


def test_operator_goes_offline_mid_chat_and_the_conversation_carries_on(
    make_server, seeded_database, smtp, host_for, browser, dialogs
):
    server = make_server(
        config=mail_config(smtp, from_address="chat@shop.example"), database=seeded_database
    )
    host = host_for(server)
    op = console_home(browser, server, dialogs, "bob")
    page = accepted_chat_page(
        browser, dialogs, op, host.page("teapots", "Teapots"), "Ann", "Is the blue teapot back?"
    )
    _reply(op, "Let me check the stock")
    expect(page.locator(".cl-bubble", has_text="Let me check the stock")).to_be_visible(timeout=T)

    # Offline with an open chat asks first; nobody else is online, so it stays pending.
    op.click(".status-opt.offline")
    dlg = op.locator("dialog.offline-dialog")
    expect(dlg).to_be_visible(timeout=T)
    expect(dlg).to_contain_text("Nobody else is online")
    screenshot(op, "pending-offline-dialog")
    dlg.locator(".hand-over").click()
    expect(op.locator(".status-opt.offline.on")).to_be_visible(timeout=T)
    expect(op.locator(".pill.pending")).to_be_visible(timeout=T)
    expect(op.locator(".pending-note")).to_contain_text("not left an e-mail address")

    # The visitor is told honestly and keeps the whole transcript, across a reload.
    away = page.locator(".cl-away")
    expect(away).to_contain_text("Bob had to step away", timeout=T)
    expect(page.locator(".cl-sub")).to_have_text(re.compile("away"))
    page.reload()
    if page.locator(".cl-launcher").is_visible():
        page.click(".cl-launcher")
    expect(page.locator(".cl-window[data-view=chat]")).to_be_visible(timeout=T)
    for text in ("Is the blue teapot back?", "Let me check the stock"):
        expect(page.locator(".cl-bubble", has_text=text)).to_be_visible(timeout=T)
    expect(page.locator(".cl-away")).to_contain_text("Bob had to step away", timeout=T)
    assert page.locator(".cl-window").get_attribute("data-view") == "chat"
    page.fill(".cl-away-email", "ann@example.org")
    page.click(".cl-away-save")
    expect(page.locator(".cl-away")).to_contain_text("ann@example.org", timeout=T)
    expect(op.locator(".pending-note")).to_contain_text("e-mailed to ann@example.org", timeout=T)
    screenshot(page, "pending-visitor")

    # The Chats page lists it, pending, with the last message.
    op.click("[data-nav=home]")
    row = op.locator(".chat-row.pending", has_text="Ann")
    expect(row).to_be_visible(timeout=T)
    expect(row.locator(".chat-row-last")).to_contain_text("Let me check the stock")
    screenshot(op, "pending-chats-page")
    row.click()
    expect(op.locator(".tab.on", has_text="Ann")).to_be_visible(timeout=T)

    # A later reply reaches the visitor in the widget while she is on the site...
    _reply(op, "Found one in the back")
    expect(page.locator(".cl-bubble", has_text="Found one in the back")).to_be_visible(timeout=T)
    assert not smtp.messages
    # ... and by e-mail once she has left.
    page.close()
    wait_for(lambda: server.metrics()["visitor_streams"] == 0, what="the visitor gone")
    _reply(op, "I reserved it for you")
    body = _first_mail(smtp, "ann@example.org", what="the reply e-mail")
    assert "I reserved it for you" in body and "Is the blue teapot back?" in body
    link = re.search(r"http://\S+/chat\?link=[A-Za-z0-9_-]{43}", body).group(0)

    # The link opens the conversation (another device: a fresh browser context).
    later = watched_page(browser, dialogs, width=420, height=720)
    later.goto(link)
    expect(later.locator(".cl-window[data-view=chat]")).to_be_visible(timeout=T)
    for text in ("Is the blue teapot back?", "Found one in the back", "I reserved it for you"):
        expect(later.locator(".cl-bubble", has_text=text)).to_be_visible(timeout=T)
    assert "link=" not in later.url
    later.locator(".cl-compose-input").fill("Wonderful, thank you!")
    later.locator(".cl-compose-input").press("Enter")
    expect(op.locator(".bubble", has_text="Wonderful, thank you!")).to_be_visible(timeout=T)
    screenshot(later, "pending-link-reopened")


def test_a_colleague_takes_the_handed_over_chat_with_nothing_lost(server, host, browser, dialogs):
    bob = console_home(browser, server, dialogs, "bob")
    alice = console_home(browser, server, dialogs, "admin")
    page = accepted_chat_page(
        browser, dialogs, bob, host.page("handover", "Hand-over"), "Hana", "My order did not arrive"
    )
    _reply(bob, "Which order number?")
    page.locator(".cl-compose-input").fill("Order 1234")
    page.locator(".cl-compose-input").press("Enter")
    expect(bob.locator(".bubble", has_text="Order 1234")).to_be_visible(timeout=T)

    bob.click(".status-opt.offline")
    dlg = bob.locator("dialog.offline-dialog")
    expect(dlg.locator(".keep-chats")).to_be_visible(timeout=T)
    dlg.locator(".hand-over").click()
    card = alice.locator(".qcard", has_text="Hana")
    expect(card.locator(".qfrom")).to_have_text("Handed over by Bob", timeout=T)
    expect(page.locator(".cl-sys", has_text="handed your chat to a colleague")).to_be_visible(
        timeout=T
    )
    screenshot(alice, "handover-queue")
    card.locator(".accept").click()
    for text in ("My order did not arrive", "Which order number?", "Order 1234"):
        expect(alice.locator(".bubble", has_text=text)).to_be_visible(timeout=T)
    _reply(alice, "Alice here: it ships today")
    expect(page.locator(".cl-bubble", has_text="Alice here: it ships today")).to_be_visible(
        timeout=T
    )
    expect(page.locator(".cl-title")).to_have_text("Alice Admin")


def test_without_mail_no_e_mail_is_offered(server, host, browser, dialogs):
    bob = console_home(browser, server, dialogs, "bob")
    page = accepted_chat_page(
        browser, dialogs, bob, host.page("nomail", "No mail"), "Noor", "Hello?"
    )
    _reply(bob, "Hi Noor")
    bob.click(".status-opt.offline")
    bob.locator("dialog.offline-dialog .hand-over").click()
    expect(page.locator(".cl-away")).to_contain_text("when you\u2019re back", timeout=T)
    assert page.locator(".cl-away-email").count() == 0
    expect(bob.locator(".pending-note")).to_contain_text("E-mail is not set up", timeout=T)
    # Rating and the transcript form after the end: rating yes, transcript no.
    end_chat_in_console(bob)
    expect(page.locator(".cl-ended")).to_be_visible(timeout=T)
    expect(page.locator(".cl-star")).to_have_count(5)
    assert page.locator(".cl-transcript").count() == 0
    page.locator(".cl-star[data-rating='4']").click()
    page.fill(".cl-rate-comment", "Kind <i>and</i> quick")
    page.click(".cl-rate-send")
    expect(page.locator(".cl-rated")).to_be_visible(timeout=T)
    expect(bob.locator(".rating")).to_have_text("\u2605\u2605\u2605\u2605\u2606", timeout=T)
    expect(bob.locator(".sys", has_text="Kind <i>and</i> quick")).to_be_visible(timeout=T)
    screenshot(page, "rating-sent")


def test_the_visitor_gets_the_transcript_by_e_mail(
    make_server, seeded_database, smtp, host_for, browser, dialogs
):
    server = make_server(config=mail_config(smtp), database=seeded_database)
    host = host_for(server)
    op = console_home(browser, server, dialogs, "bob")
    page = accepted_chat_page(
        browser,
        dialogs,
        op,
        host.page("transcript", "Transcript"),
        "Tess",
        "Do you ship <b>abroad</b>?",
        email="tess@example.org",
    )
    _reply(op, "We ship to 40 countries")
    expect(page.locator(".cl-bubble", has_text="40 countries")).to_be_visible(timeout=T)
    end_chat_in_console(op)
    request_transcript(page, "tess@example.org", timeout=T)
    screenshot(page, "transcript-requested")
    body = _first_mail(smtp, "tess@example.org", what="the transcript at the SMTP server")
    assert "Do you ship <b>abroad</b>?" in body and "We ship to 40 countries" in body
