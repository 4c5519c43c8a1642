"""The live traffic monitor and invitations in a real browser (issue 5's Done-when).

Same harness as test_browser.py: Playwright driving Debian's Chromium, the visitor on a host site
served from a second origin (``http://localhost:PORT2``, copies of the demo site's pages), the
operator in the console in another browser context. Screenshots go to ``test-artifacts/``.
Every wait is on a condition, never a fixed sleep.
"""

from __future__ import annotations

import json
import re

import requests
from browser_helpers import new_context, screenshot, sign_in, watch, watched_page
from conftest import TIMEOUT, wait_for
from playwright.sync_api import expect

T = 20_000  # ms: generous for a loaded CI machine; every wait returns as soon as it holds
PASSWORD = "correct horse 1"
XSS = "<img src=x onerror=alert(1)>"
HOME, PRICING, SHOP = (
    "Home \u2014 Bramble Tea Co.",
    "Pricing \u2014 Bramble Tea Co.",
    "Catalogue \u2014 Bramble Tea Co.",  # app.html titles itself by its view
)


def console_login(browser, server, dialogs, username="bob", online=True):
    """An operator signed in to the console (which opens on the Visitors monitor)."""
    page = sign_in(watched_page(browser, dialogs), server, username, PASSWORD, online)
    expect(page.locator(".nav-item.on[data-nav=visitors]")).to_be_visible()
    return page


def rows(op):
    """The monitor's rows on screen (the list is virtual: hidden pool rows do not count)."""
    return op.locator(".mon-row:not(.hidden)")


def demo_site(host):
    """Copies of the demo site's pages on the second origin: {file name: URL}."""
    return {n: host.copy_demo(n) for n in ("index.html", "pricing.html", "about.html", "app.html")}


# -- the Done-when scenario ------------------------------------------------------------------------


def test_two_tabs_one_row_live_page_trail_invite_accept_and_chat(server, host, browser, dialogs):
    op = console_login(browser, server, dialogs)
    expect(op.locator(".mon-count")).to_have_attribute("data-count", "0", timeout=T)
    expect(op.locator(".mon-empty")).to_contain_text("Nobody is on the site")
    site = demo_site(host)

    # One visitor (one browser context), two tabs.
    visitor = new_context(browser)
    tab1 = watch(visitor.new_page(), dialogs)
    tab1.goto(site["index.html"])
    row = rows(op)
    expect(row.locator(".page-link")).to_have_text(HOME, timeout=T)
    tab2 = watch(visitor.new_page(), dialogs)
    tab2.goto(site["about.html"])
    expect(row.locator(".page-link")).to_have_text("About \u2014 Bramble Tea Co.", timeout=T)
    expect(row).to_have_count(1)
    expect(row.locator(".tabs-n")).to_have_text("2 tabs", timeout=T)
    expect(op.locator(".mon-count")).to_have_attribute("data-count", "1")
    expect(op.locator("[data-nav=visitors] .vis-count")).to_have_text("1")
    expect(row.locator(".pill")).to_have_text("Browsing")
    expect(row.locator(".c-who")).to_contain_text("New visitor")
    expect(row.locator(".c-dev")).to_contain_text("127.0.0.1")
    screenshot(op, "monitor-visitor-row")

    # Three pages in the first tab; the current page changes live.
    tab1.click("header.site >> text=Pricing")
    expect(row.locator(".page-link")).to_have_text(PRICING, timeout=T)
    link = row.locator(".page-link")
    expect(link).to_have_attribute("href", re.compile(r"^http://localhost:\d+/pricing\.html$"))
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    tab1.click("header.site >> text=Shop app")
    expect(row.locator(".page-link")).to_have_text(SHOP, timeout=T)
    expect(row.locator(".c-pages")).to_have_text("4")
    expect(row.locator(".c-from")).to_contain_text("Landed on /index.html")
    expect(row.locator(".tabs-n")).to_have_text("2 tabs", timeout=T)

    # The detail view: the page trail of this visit, in order; it follows a history-API view.
    row.click()
    detail = op.locator(".mon-detail")
    expect(detail.locator("h3")).to_have_text(re.compile(r"^Visitor #\d+$"), timeout=T)
    trail = detail.locator(".trail").first.locator(".trail-title")
    expect(trail).to_have_text([HOME, "About \u2014 Bramble Tea Co.", PRICING, SHOP], timeout=T)
    tab1.click("a[data-view=basket]")  # history.pushState: a page view too
    basket = "Basket \u2014 Bramble Tea Co."
    expect(row.locator(".page-link")).to_have_text(basket, timeout=T)
    expect(trail.last).to_have_text(basket, timeout=T)
    expect(detail.locator(".trail").first.locator("li.last a")).to_have_text(
        re.compile(r"app\.html\?view=basket$")
    )
    expect(detail).to_contain_text("Open tabs")
    screenshot(op, "monitor-visitor-row-and-trail")

    # The operator invites from the detail view, with a message of their own.
    detail.locator("button.invite").click()
    dlg = op.locator("dialog.dialog")
    expect(dlg).to_contain_text(basket)
    dlg.locator("textarea[name=message]").fill("Hello! Can I help you choose a blend?")
    dlg.locator("button[type=submit]").click()
    expect(row.locator(".pill")).to_have_text("Invited", timeout=T)
    expect(row.locator(".inv")).to_have_text("invitation pending")
    expect(row.locator("button.invited")).to_be_disabled()

    # Both tabs show the invitation at once, whatever page they are on.
    for tab in (tab2, tab1):
        tab.bring_to_front()  # the visitor looks at it (background tabs pause animations)
        card = tab.locator(".cl-invite")
        expect(card).to_be_visible(timeout=T)
        expect(card.locator(".cl-inv-name")).to_have_text("Bob")
        expect(card.locator(".cl-inv-msg")).to_have_text("Hello! Can I help you choose a blend?")
        expect(card).to_have_css("opacity", "1")  # slid in
    screenshot(tab1, "invitation-card-visitor")

    # Accepting (with a first message typed in the card) opens the chat, assigned to Bob.
    tab1.locator(".cl-inv-in").fill("Yes please, something smoky.")
    tab1.locator(".cl-inv-yes").click()
    expect(tab1.locator(".cl-invite")).to_have_count(0)
    expect(tab2.locator(".cl-invite")).to_have_count(0, timeout=T)  # answered in another tab
    expect(tab1.locator(".cl-window[data-view=chat]")).to_be_visible(timeout=T)
    expect(tab1.locator(".cl-title")).to_have_text("Bob", timeout=T)
    first = tab1.locator(".cl-invited")
    expect(first.locator(".cl-bubble")).to_have_text("Hello! Can I help you choose a blend?")
    expect(first.locator(".cl-from")).to_have_text("Bob")
    expect(tab1.locator(".cl-me .cl-bubble")).to_have_text("Yes please, something smoky.")

    # The operator is taken to the chat (accepted already), and they talk both ways.
    expect(op.locator(".tab.on")).to_be_visible(timeout=T)
    expect(op.locator(".msg.invited .bubble")).to_have_text("Hello! Can I help you choose a blend?")
    expect(op.locator(".msg.them .bubble")).to_have_text("Yes please, something smoky.", timeout=T)
    expect(op.locator(".sys", has_text="from your invitation")).to_be_visible()
    op.locator(".compose-input").fill("Smoky Bramble it is: lapsang with bramble fruit.")
    op.locator(".compose-input").press("Enter")
    expect(tab1.locator(".cl-them .cl-bubble", has_text="Smoky Bramble it is")).to_be_visible(
        timeout=T
    )
    tab1.locator(".cl-compose-input").fill("Perfect, thank you!")
    tab1.locator(".cl-compose-input").press("Enter")
    expect(op.locator(".msg.them .bubble", has_text="Perfect, thank you!")).to_be_visible(timeout=T)
    expect(tab1.locator(".cl-window")).to_have_css("opacity", "1")
    screenshot(tab1, "invitation-chat-visitor")
    screenshot(op, "invitation-chat-operator")

    # Back in the monitor the row says who the visitor is chatting with.
    op.click("[data-nav=visitors]")
    expect(rows(op).locator(".pill")).to_have_text("Chatting with you", timeout=T)
    expect(rows(op).locator(".inv")).to_have_text("accepted the invitation")
    expect(rows(op).locator("button.open-chat")).to_be_visible()
    for p in (op, tab1, tab2):
        assert p.js_errors == []
    assert dialogs == []


# -- invitations: declined, and automatic rules ----------------------------------------------------


def test_invitation_rules_screen_and_an_automatic_invitation(server, host, browser, dialogs):
    admin = console_login(browser, server, dialogs, username="admin")
    admin.click("[data-nav=rules]")
    expect(admin.locator(".view .empty")).to_contain_text("No rules yet", timeout=T)

    # Add a rule in the console.
    admin.click("button.add-rule")
    dlg = admin.locator("dialog.dialog")
    dlg.locator("input[name=name]").fill("Pricing helper")
    dlg.locator("textarea[name=message]").fill("Questions about our subscriptions?")
    dlg.locator("input[name=url_contains]").fill("pricing")
    dlg.locator("input[name=min_pages]").fill("2")
    screenshot(admin, "console-invitation-rule-dialog")
    dlg.locator("button[type=submit]").click()
    rule = admin.locator("tr[data-rule]")
    expect(rule).to_have_count(1, timeout=T)
    expect(rule).to_contain_text("Pricing helper")
    expect(rule.locator(".rule-when")).to_have_text(
        "page URL contains \u201cpricing\u201d \u00b7 at least 2 pages"
    )
    # Edit it, disable it, enable it again.
    rule.locator(".edit").click()
    expect(dlg.locator("input[name=min_pages]")).to_have_value("2")
    dlg.locator("input[name=name]").fill("Pricing help")
    dlg.locator("button[type=submit]").click()
    expect(rule.locator("strong")).to_have_text("Pricing help", timeout=T)

    def enabled():
        r = requests.get(
            server.url + "/api/console/invite-rules",
            cookies={c["name"]: c["value"] for c in admin.context.cookies()},
            timeout=TIMEOUT,
        )
        return r.json()["rules"][0]["enabled"]

    rule.locator("input.switch").uncheck()
    expect(rule).to_have_class(re.compile("disabled"), timeout=T)
    assert enabled() is False
    rule.locator("input.switch").check()
    expect(rule).not_to_have_class(re.compile("disabled"), timeout=T)
    assert enabled() is True
    screenshot(admin, "console-invitation-rules")

    # A visitor: nothing on the first page; on pricing (second page) the rule invites.
    site = demo_site(host)
    admin.click("[data-nav=visitors]")
    page = watched_page(browser, dialogs)
    page.goto(site["index.html"])
    expect(rows(admin)).to_have_count(1, timeout=T)
    expect(rows(admin).locator(".pill")).to_have_text("Browsing")
    page.click("header.site >> text=Pricing")
    card = page.locator(".cl-invite")
    expect(card).to_be_visible(timeout=T)
    expect(card.locator(".cl-inv-name")).to_have_text("Live Support")  # automatic: no operator
    expect(card.locator(".cl-inv-msg")).to_have_text("Questions about our subscriptions?")
    expect(page.locator(".cl-invite")).to_have_count(1)
    expect(card).to_have_css("opacity", "1")  # slid in
    screenshot(page, "invitation-card-automatic")
    row = rows(admin)
    expect(row.locator(".pill")).to_have_text("Invited", timeout=T)
    # The visitor says no: the monitor shows it.
    card.locator(".cl-inv-no").click()
    expect(page.locator(".cl-invite")).to_have_count(0)
    expect(row.locator(".inv")).to_have_text("declined the invitation", timeout=T)
    expect(row.locator(".pill")).to_have_text("Browsing")
    expect(row.locator("button.invite")).to_be_enabled()
    # Delete the rule.
    admin.click("[data-nav=rules]")
    admin.locator("tr[data-rule] .delete").click()
    admin.locator("dialog.dialog button[type=submit]").click()
    expect(admin.locator(".view .empty")).to_contain_text("No rules yet", timeout=T)
    assert page.js_errors == [] and admin.js_errors == []
    assert dialogs == []


# -- markup is text --------------------------------------------------------------------------------


def test_markup_in_title_url_referrer_and_user_agent_is_text_in_the_monitor(
    server, host, browser, dialogs
):
    op = console_login(browser, server, dialogs)
    # A page whose title and URL carry markup, opened by a real browser.
    url = host.page("x", XSS)
    page = watched_page(browser, dialogs)
    page.goto(url + "?q=" + XSS)
    row = rows(op)
    expect(row.locator(".page-link")).to_have_text(XSS, timeout=T)
    # A beacon as a hostile client can send it: markup in the referrer and the user agent.
    r = requests.post(server.url + "/api/visitor/token", json={}, timeout=TIMEOUT)
    token = r.json()["token"]
    evil_ua = "<script>alert(3)</script><b>bold</b> Mozilla/5.0"
    r = requests.post(
        server.url + "/api/visitor/track",
        data=json.dumps(
            {
                "token": token,
                "url": "https://shop.example/<b>x</b>",
                "title": "<svg onload=alert(2)>",
                "referrer": "https://evil.example/<script>alert(1)</script>?q=<i>x</i>",
            }
        ),
        headers={"Content-Type": "text/plain", "User-Agent": evil_ua},
        timeout=TIMEOUT,
    )
    assert r.status_code == 204, r.text
    expect(rows(op)).to_have_count(2, timeout=T)
    evil = op.locator(".mon-row:not(.hidden)", has_text="<svg onload=alert(2)>")
    expect(evil.locator(".page-link")).to_have_text("<svg onload=alert(2)>")
    expect(evil.locator(".c-page .l2")).to_contain_text("shop.example/")
    expect(evil.locator(".c-from")).to_contain_text("evil.example")
    evil.click()
    detail = op.locator(".mon-detail")
    expect(detail.locator(".trail-title")).to_have_text("<svg onload=alert(2)>", timeout=T)
    expect(detail).to_contain_text("<script>alert(1)</script>")  # the referrer, as text
    rows(op).filter(has_text=XSS).click()
    expect(detail.locator(".trail-title")).to_have_text(XSS, timeout=T)
    expect(detail.locator(".page-title")).to_have_text(XSS)
    # Nothing became an element, and no dialog opened.
    for tag in ("img", "script", "svg:not(.icon)", "b", "i"):
        assert op.locator(f".mon {tag}").count() == 0, tag
    screenshot(op, "monitor-markup-as-text")
    assert dialogs == []
    assert op.js_errors == [] and page.js_errors == []


# -- the pop-out window takes a token only from an allowed opener ----------------------------------


OPENER = """<!doctype html><meta charset="utf-8"><title>Opener</title>
<button id="pop" onclick="window.w = window.open('{server}/chat', 'cl')">pop out</button>
<script>
  window.offered = 0;
  addEventListener("message", function (e) {{
    if (e.data && e.data.cutelive === "ready") {{
      window.offered++;
      e.source.postMessage({{ cutelive: "token", token: "{token}" }}, e.origin);
    }}
  }});
</script>"""


def test_pop_out_takes_a_token_only_from_an_allowed_opener(server, host, browser, dialogs):
    admin = server.console("admin")
    token = requests.post(server.url + "/api/visitor/token", json={}, timeout=TIMEOUT).json()[
        "token"
    ]
    (host.root / "opener.html").write_text(OPENER.format(server=server.url, token=token))

    def pop_out():
        page = watched_page(browser, dialogs)
        page.goto(host.url + "/opener.html")
        with page.expect_popup() as info:
            page.click("#pop")
        popup = info.value
        expect(popup.locator(".cl-window")).to_be_visible(timeout=T)
        wait_for(lambda: page.evaluate("window.offered") > 0, what="the token offered")
        return popup

    def popup_token(popup):
        return wait_for(
            lambda: popup.evaluate("localStorage.getItem('cutelive.token')"),
            what="the pop-out's token",
        )

    # The opener's site is not among the allowed origins: its token is ignored.
    r = admin.patch("/api/console/settings", {"allowed_origins": ["https://shop.example"]})
    assert r.status_code == 200, r.text
    popup = pop_out()
    assert popup_token(popup) != token
    # Listed: the token is taken.
    r = admin.patch(
        "/api/console/settings", {"allowed_origins": ["https://shop.example", host.url]}
    )
    assert r.status_code == 200, r.text
    popup = pop_out()
    wait_for(lambda: popup_token(popup) == token, what="the opener's token taken")
    assert dialogs == []


# -- the long-poll fallback counts only failures while the server answers HTTP ---------------------


def test_fallback_to_long_poll_only_while_the_server_is_reachable(server, host, browser, dialogs):
    page = watched_page(browser, dialogs)
    attempts = []

    def refuse(ws):  # the WebSocket never reaches the server
        attempts.append(ws.url)
        ws.close()

    page.context.route_web_socket(re.compile(r".*/api/visitor/ws.*"), refuse)
    # /api/status unreachable too: it looks like the server is down, so nothing counts.
    page.context.route(re.compile(r".*/api/status$"), lambda route: route.abort())
    page.goto(host.page("fb", "Fallback"))
    # Three failed attempts, which would have meant long-poll before: still the WebSocket.
    # (Playwright runs the route handlers while the page is being talked to: evaluate() pumps.)
    wait_for(
        lambda: page.evaluate("1") and len(attempts) >= 3,
        timeout=30,
        interval=0.1,
        what="3 WebSocket attempts",
    )
    assert page.evaluate("CuteLive.status().transport") == "ws"
    assert page.evaluate("CuteLive.status().connection") == "reconnecting"
    # The server answers HTTP again while WebSockets stay blocked: now they count. (The
    # 'online' event, as after a network change, makes the widget retry without its backoff.)
    page.context.unroute(re.compile(r".*/api/status$"))
    wait_for(
        lambda: (
            page.evaluate("dispatchEvent(new Event('online')), CuteLive.status().transport")
            == "poll"
        ),
        timeout=60,
        interval=0.2,
        what="the switch to long-poll",
    )
    # Three before and three after: Playwright may record the last one a moment after the
    # switch (its route handlers run as the page is talked to), and the widget tries the
    # WebSocket again only after 5 minutes on long-poll.
    wait_for(
        lambda: page.evaluate("1") and len(attempts) >= 6,
        timeout=10,
        interval=0.1,
        what="6 WebSocket attempts",
    )
    expect(page.locator(".cl-launcher")).to_be_visible()
    wait_for(
        lambda: page.evaluate("CuteLive.status().connection") == "connected",
        what="connected over long-poll",
    )
    assert dialogs == []
