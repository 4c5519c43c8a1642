"""The Inbox in a real browser (Playwright driving Debian's Chromium, as in test_browser.py):
each message's e-mail state through an SMTP outage (a real SMTP server, the ``smtp`` fixture),
a reply by e-mail, the outbox list, encoded ``mailto:`` links, and no reply form without
``[mail]``. Every wait is on a condition, never a fixed sleep."""

from __future__ import annotations

from browser_helpers import screenshot, sign_in, watched_page
from conftest import mail_config, wait_for
from playwright.sync_api import expect

T = 20_000  # ms

LEAVE = {
    "type": "leave_message",
    "name": "Ann Smith",
    "email": "ann+shop@example.org",
    "text": "Do you ship to Norway?",
}


def test_the_inbox_shows_mail_states_and_answers_by_mail(
    make_server, seeded_database, smtp, browser, dialogs
):
    smtp.stop()  # down when the message is left
    server = make_server(
        config=mail_config(smtp, from_address="chat@shop.example", retry_first="1s"),
        database=seeded_database,
    )
    op = sign_in(watched_page(browser, dialogs), server, "bob", online=False)
    op.locator("[data-nav=inbox]").click()
    expect(op.locator(".view-inbox .empty")).to_be_visible(timeout=T)
    assert server.visitor().send(LEAVE).status_code == 200
    item = op.locator(".inbox-item", has_text="Ann Smith")
    expect(item).to_be_visible(timeout=T)
    # The address is a link, encoded: nothing in it can become a header.
    link = item.locator("a.inbox-email")
    expect(link).to_have_attribute("href", "mailto:ann%2Bshop@example.org")
    # Queued, with the error and the next try; the outbox lists it the same way.
    notice = item.locator(".mail-state[data-kind=offline_message]")
    expect(notice).to_have_attribute("data-state", "queued", timeout=T)
    expect(notice.locator(".mail-detail")).to_contain_text("next try at", timeout=T)
    row = op.locator(".outbox-table tr[data-mail]")
    expect(row).to_have_count(1, timeout=T)
    expect(row).to_have_attribute("data-state", "queued")
    expect(row).to_contain_text("support@shop.example")
    screenshot(op, "inbox-mail-queued")

    # The SMTP server is back: the state turns to sent, with no reload.
    smtp.start()
    expect(notice).to_have_attribute("data-state", "sent", timeout=T)
    expect(notice.locator(".mail-detail")).to_contain_text("to support@shop.example")
    expect(row).to_have_attribute("data-state", "sent")

    # A reply by e-mail, typed while the inbox stays live.
    item.locator("button.reply").click()
    box = item.locator("textarea.reply-text")
    expect(box).to_be_focused()
    box.fill("Yes, we do. We ship every Monday.")
    item.locator("button[type=submit]", has_text="Send reply").click()
    expect(item.locator(".inbox-reply-text")).to_have_text(
        "Yes, we do. We ship every Monday.", timeout=T
    )
    expect(item.locator("textarea")).to_have_count(0)
    expect(item.locator("button.reply")).to_have_count(0)
    reply = item.locator(".mail-state[data-kind=offline_reply]")
    expect(reply).to_have_attribute("data-state", "sent", timeout=T)
    expect(reply.locator(".mail-detail")).to_contain_text("to Ann Smith <ann+shop@example.org>")
    expect(op.locator(".outbox-table tr[data-mail]")).to_have_count(2)
    wait_for(lambda: len(smtp.messages) == 2, what="the reply at the SMTP server")
    _, rcpt, mail = smtp.messages[1]
    assert rcpt == ["ann+shop@example.org"] and mail["Subject"] == "Re: Do you ship to Norway?"
    assert "> Do you ship to Norway?" in mail.get_content()
    screenshot(op, "inbox-replied")
    assert op.js_errors == [] and dialogs == []


def test_without_mail_the_inbox_offers_no_reply(server, browser, dialogs):
    assert server.visitor().send(dict(LEAVE, email="ann@example.org")).status_code == 200
    op = sign_in(watched_page(browser, dialogs), server, "bob", online=False)
    op.locator("[data-nav=inbox]").click()
    item = op.locator(".inbox-item", has_text="Ann Smith")
    expect(item).to_be_visible(timeout=T)
    expect(op.locator(".outbox")).to_contain_text("E-mail is not set up", timeout=T)
    expect(item.locator("button.mark")).to_be_visible()
    expect(item.locator("button.reply")).to_have_count(0)
    expect(item.locator(".mail-state")).to_have_count(0)
    assert op.js_errors == [] and dialogs == []
