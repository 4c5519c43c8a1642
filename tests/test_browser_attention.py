"""What the operator and the visitor see, in real Chromium: availability that is always current,
no invitation over an open window, escalating alerts with a badge on the tab's icon, the
waiting time after a hand-over, names reaching monitor, tabs and History, and the visitor's
current page in the chat view."""

from __future__ import annotations

import re

from browser_helpers import open_widget, screenshot, sign_in, visitor_start_chat, watched_page
from conftest import PASSWORD, wait_for
from playwright.sync_api import expect

T = 20_000
FLIP = 2_000  # ms: the window agrees with the server this soon after a change


def test_availability_flips_both_ways_while_the_window_is_open(server, host, browser, dialogs):
    _bob, ws = server.online()
    page = watched_page(browser, dialogs)
    page.goto(host.page("avail", "Availability"))
    open_widget(page, timeout=T)
    page.fill(".cl-in-text", "typed before the change")

    ws.request({"type": "status", "status": "offline"})
    expect(page.locator(".cl-window[data-view=offline]")).to_be_visible(timeout=FLIP)
    expect(page.locator(".cl-sub")).to_have_text("Leave us a message")
    assert page.input_value(".cl-in-text") == "typed before the change"
    ws.request({"type": "status", "status": "online"})
    expect(page.locator(".cl-window[data-view=prechat]")).to_be_visible(timeout=FLIP)

    # Minimised, the change happens; opening the window shows the server's state at once.
    page.click(".cl-minimize")
    ws.request({"type": "status", "status": "away"})
    open_widget(page, status="offline", view="offline", timeout=FLIP)
    assert page.evaluate("CuteLive.status().online") is False


def test_an_invitation_waits_while_the_window_is_open(server, host, browser, dialogs):
    _bob, ws = server.online()
    page = watched_page(browser, dialogs)
    page.goto(host.page("inv", "Invitation"))
    open_widget(page, timeout=T)
    vid = wait_for(lambda: page.evaluate("CuteLive._k.welcome && CuteLive._k.welcome.visitor_id"))
    ack = ws.request({"type": "invite", "visitor_id": vid, "message": "Can I help?"})
    assert ack["type"] == "ack", ack
    card = page.locator(".cl-invite")
    expect(card).to_have_count(1, timeout=T)
    expect(card).to_be_hidden()
    screenshot(page, "invitation-behind-open-window")
    page.click(".cl-minimize")
    expect(card).to_be_visible(timeout=T)
    expect(card).to_contain_text("Can I help?")
    # Its reply box refuses an over-long text with a note, and never cuts it short.
    card.locator(".cl-inv-in").fill("Short reply")
    card.locator(".cl-inv-in").fill("x" * 20_000)
    expect(card.locator(".cl-inv-note")).to_contain_text("the limit is 5,000")
    assert card.locator(".cl-inv-in").input_value() == "Short reply"


def test_alerts_repeat_until_accepted_and_the_icon_shows_a_badge(
    make_server, seeded_database, browser, dialogs
):
    server = make_server(config={"chat": {"alert_repeat": "1s"}}, database=seeded_database)
    op = sign_in(watched_page(browser, dialogs), server, "bob", PASSWORD, True)
    op.click(".alerts-btn")
    expect(op.locator(".alerts-btn.armed")).to_be_visible(timeout=T)
    beeps = "import('/assets/console/alerts.js').then((m) => m.alerts.beeps)"
    icon = "document.querySelector('link[rel=icon]').href"
    plain = op.evaluate(icon)
    before = op.evaluate(beeps)

    ann = server.visitor()
    ann.connect()
    chat_id = ann.start_chat(name="Ann", text="Anyone there?")["chat"]["id"]
    card = op.locator(".qcard", has_text="Ann")
    expect(card).to_be_visible(timeout=T)
    # The sound comes again (every second here) while nobody accepts.
    wait_for(lambda: op.evaluate(beeps) >= before + 3, what="three alerts for one chat")
    badge = op.evaluate(icon)
    assert badge != plain and "e11d48" in badge and re.search(r"%3E1%3C", badge)
    card.locator(".accept").click()
    expect(op.locator(".tab.on", has_text="Ann")).to_be_visible(timeout=T)
    wait_for(lambda: op.evaluate(icon) == plain, what="the plain icon once accepted")
    assert ann.ws.wait(lambda e: e["type"] == "chat_accepted")["chat_id"] == chat_id


def test_waiting_time_counts_from_the_requeue_and_names_reach_every_view(
    server, host, browser, dialogs
):
    bob, bob_ws = server.online()
    admin = sign_in(watched_page(browser, dialogs), server, "admin", PASSWORD, True)
    page = watched_page(browser, dialogs)
    page.goto(host.page("first", "First page"))
    host.page("second", "Second page")
    visitor_start_chat(page, "Zoë Quintana-Marlowe", "Hello!", email="zoe@example.org")

    # The monitor names her.
    admin.click("[data-nav=visitors]")
    row = admin.locator(".mon-row", has_text="Zoë Quintana-Marlowe")
    expect(row.locator(".vid")).to_have_text("Zoë Quintana-Marlowe", timeout=T)

    # Bob takes the chat and hands it over: the queue counts from the hand-over.
    queued = bob_ws.wait(lambda e: e["type"] == "queue" and e["chats"], what="the queue")
    chat_id = queued["chats"][0]["id"]
    created = queued["chats"][0]["created_at"]
    bob_ws.request({"type": "accept", "chat_id": chat_id})
    bob_ws.request({"type": "status", "status": "offline"})
    requeued = bob_ws.wait(lambda e: e["type"] == "chat_requeued", what="the hand-over")
    wait_ = admin.locator(".qcard", has_text="Zoë").locator(".qwait")
    expect(wait_).to_have_attribute("data-since", str(requeued["ts"]), timeout=T)
    assert requeued["ts"] > created
    expect(admin.locator(".qcard .qfrom")).to_have_text("Handed over by Bob")
    # So does the visitor's panel in the monitor, which names her and counts on, live.
    row.click()
    detail = admin.locator(".mon-detail")
    expect(detail.locator("h3")).to_have_text("Zoë Quintana-Marlowe", timeout=T)
    waiting = detail.locator(".det-wait")
    expect(waiting).to_have_attribute("data-dur", str(requeued["ts"]), timeout=T)
    counted = waiting.text_content()
    expect(waiting).not_to_have_text(counted, timeout=T)
    expect(detail).to_contain_text("zoe@example.org")
    screenshot(admin, "monitor-detail-waiting")

    # Admin accepts: the tab and the chat carry her name; the side shows her current page live.
    admin.locator(".qcard", has_text="Zoë").locator(".accept").click()
    expect(admin.locator(".tab.on", has_text="Zoë Quintana-Marlowe")).to_be_visible(timeout=T)
    side = admin.locator(".chat-side")
    expect(side).to_contain_text("zoe@example.org")
    expect(side.locator(".now-on .page-title")).to_have_text("First page", timeout=T)
    page.goto(host.url + "/second.html")
    expect(side.locator(".now-on .page-title")).to_have_text("Second page", timeout=T)
    screenshot(admin, "chat-now-on")

    # History lists her by name once the chat is over.
    admin.locator(".end-chat").click()
    admin.locator(".confirm-end").click()
    admin.click("[data-nav=history]")
    expect(admin.locator("tr", has_text="Zoë Quintana-Marlowe").first).to_be_visible(timeout=T)


def test_the_pre_chat_form_is_set_in_widget_settings(server, host, browser, dialogs):
    server.online()
    admin = sign_in(watched_page(browser, dialogs), server, "admin", PASSWORD, False)
    page = watched_page(browser, dialogs)
    page.goto(host.page("prechat", "Pre-chat"))
    open_widget(page, timeout=T)
    # By default: name required, e-mail optional; an error stands beside its own field.
    page.fill(".cl-in-text", "Hello")
    page.click(".cl-submit")
    expect(page.locator(".cl-err-name")).to_have_text("Please tell us your name.")
    assert page.locator(".cl-err-text").inner_text() == ""

    admin.click("[data-nav=widget]")
    admin.select_option("select[name=ask_name]", "hidden")
    admin.select_option("select[name=ask_email]", "required")
    admin.click("form.settings button[type=submit]")
    expect(admin.locator(".toast", has_text="Saved")).to_be_visible(timeout=T)
    screenshot(admin, "widget-settings-prechat")

    # Open pages update at once: no name field; the e-mail is required, its error beside it.
    expect(page.locator(".cl-in-name")).to_be_hidden(timeout=T)
    expect(page.locator(".cl-in-email")).to_be_visible()
    page.click(".cl-submit")
    expect(page.locator(".cl-err-email")).to_have_text("Please enter your e-mail address.")
    assert page.locator(".cl-err-name").inner_text() == ""
    page.fill(".cl-in-email", "not-an-address")
    page.click(".cl-submit")
    expect(page.locator(".cl-err-email")).to_have_text("Please enter a valid e-mail address.")
    page.fill(".cl-in-email", "kim@example.org")
    page.click(".cl-submit")
    expect(page.locator(".cl-window[data-view=chat]")).to_be_visible(timeout=T)
    screenshot(page, "prechat-email-only")


def test_an_operator_set_away_is_shown_as_away_in_the_widget(server, host, browser, dialogs):
    _bob, ws = server.online()
    page = watched_page(browser, dialogs)
    page.goto(host.page("away", "Away"))
    visitor_start_chat(page, "Ola", "Hi")
    queued = ws.wait(lambda e: e["type"] == "queue" and e["chats"], what="the queue")
    ws.request({"type": "accept", "chat_id": queued["chats"][0]["id"]})
    expect(page.locator(".cl-sub")).to_have_text("Support \u00b7 online", timeout=T)
    ws.request({"type": "status", "status": "away"})
    expect(page.locator(".cl-sub")).to_have_text("Support \u00b7 away", timeout=T)
    page.reload()
    if page.locator(".cl-launcher").is_visible():
        page.click(".cl-launcher")
    expect(page.locator(".cl-sub")).to_have_text("Support \u00b7 away", timeout=T)
    ws.request({"type": "status", "status": "online"})
    expect(page.locator(".cl-sub")).to_have_text("Support \u00b7 online", timeout=T)
