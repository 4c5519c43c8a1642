"""The widget and the console in a real browser: Playwright driving Debian's Chromium.

The visitor's page comes from a second origin (``http://localhost:PORT2``, a tiny threaded
``http.server``) while the server is ``http://127.0.0.1:PORT1``, as on a customer's site. The
operator works in the console in a second browser context. Screenshots of both sides are saved
under ``test-artifacts/``. Every wait is on a condition, never a fixed sleep.
"""

from __future__ import annotations

import re
import socket
import threading

from browser_helpers import (
    HostSite,
    accept_in_console,
    accepted_chat_page,
    fill_form,
    open_widget,
    screenshot,
    sign_in,
    visitor_start_chat,
    watched_page,
)
from conftest import wait_for
from playwright.sync_api import expect

T = 20_000  # ms: generous for a loaded CI machine; every wait returns as soon as it holds
PASSWORD = "correct horse 1"
XSS = "<img src=x onerror=alert(1)>"


# -- helpers (the browser, host and dialogs fixtures are in conftest.py) ---------------------


def console_login(browser, server, dialogs, username="bob", online=True, password=PASSWORD):
    """An operator signed in to the console, status online, alerts armed."""
    page = sign_in(watched_page(browser, dialogs), server, username, password, online)
    page.click(".alerts-btn")
    expect(page.locator(".alerts-btn.armed")).to_be_visible(timeout=T)
    return page


# -- the key scenario ------------------------------------------------------------------------------


def test_cross_origin_chat_with_two_tabs_navigation_and_reload(server, host, browser, dialogs):
    op = console_login(browser, server, dialogs)
    page1 = host.page("page1", "Spring catalogue", "<p>Our teas.</p>")
    host.page("page2", "Shipping")
    assert host.url.startswith("http://localhost:") and server.url.startswith("http://127.0.0.1:")

    # Visitor A starts a chat on the customer's site; the operator sees it queued and accepts.
    ann = watched_page(browser, dialogs)
    ann.goto(page1)
    visitor_start_chat(ann, "Ann", "Hello, where is my order? https://example.com/o/42")
    expect(ann.locator(".cl-waiting")).to_be_visible(timeout=T)
    expect(op.locator(".qcard", has_text="Ann")).to_contain_text("Spring catalogue")
    accept_in_console(op, "Ann")
    expect(ann.locator(".cl-title")).to_have_text("Bob", timeout=T)
    expect(op.locator(".chat-side")).to_contain_text("Chrome")
    expect(op.locator(".chat-side")).to_contain_text(page1)

    # Typing and messages, operator -> visitor.
    op.locator(".compose-input").press_sequentially("Hi Ann, ")
    expect(ann.locator(".cl-typing")).to_be_visible(timeout=T)
    expect(ann.locator(".cl-typing")).to_contain_text("Bob is typing")
    op.locator(".compose-input").press_sequentially("let me check.")
    op.locator(".compose-input").press("Enter")
    expect(ann.locator(".cl-them .cl-bubble", has_text="Hi Ann, let me check.")).to_be_visible(
        timeout=T
    )
    expect(ann.locator(".cl-typing")).to_be_hidden(timeout=T)

    # Typing and messages, visitor -> operator (indicator in the right tab).
    ann.locator(".cl-compose-input").press_sequentially("Thanks!")
    ann_tab = op.locator(".tab", has_text="Ann")
    expect(ann_tab.locator(".tab-typing")).to_be_visible(timeout=T)
    expect(op.locator(".typing")).to_contain_text("Ann is typing")
    ann.locator(".cl-compose-input").press("Enter")
    expect(op.locator(".msg.them .bubble", has_text="Thanks!")).to_be_visible(timeout=T)
    expect(ann_tab.locator(".tab-typing")).to_be_hidden(timeout=T)

    # Visitor B: a second chat in a second tab.
    carl = accepted_chat_page(
        browser, dialogs, op, host.page("page3", "Gift cards"), "Carl", "Do you sell gift cards?"
    )
    expect(op.locator(".tab")).to_have_count(2)
    op.locator(".compose-input").fill("Yes, from 10 euros.")
    op.locator(".compose-input").press("Enter")
    expect(carl.locator(".cl-them .cl-bubble", has_text="from 10 euros")).to_be_visible(timeout=T)
    expect(ann.locator(".cl-bubble", has_text="from 10 euros")).to_have_count(0)
    # Carl typing shows in Carl's tab, not Ann's.
    carl.locator(".cl-compose-input").press_sequentially("Great")
    expect(op.locator(".tab", has_text="Carl").locator(".tab-typing")).to_be_visible(timeout=T)
    expect(ann_tab.locator(".tab-typing")).to_have_count(0)

    # Ann writes while Carl's tab is in front: Ann's tab counts it as unread.
    ann.locator(".cl-compose-input").fill("Still there?")
    ann.locator(".cl-compose-input").press("Enter")
    expect(ann_tab.locator(".badge.unread")).to_have_text("1", timeout=T)

    # Ann moves to another page, then reloads: the window reopens with the whole transcript.
    ann.click("text=page2")
    expect(ann).to_have_title("Shipping")
    expect(ann.locator(".cl-window[data-view=chat]")).to_be_visible(timeout=T)
    for text in ("where is my order", "Hi Ann, let me check.", "Thanks!", "Still there?"):
        expect(ann.locator(".cl-bubble", has_text=text)).to_be_visible(timeout=T)
    ann.reload()
    expect(ann.locator(".cl-window[data-view=chat]")).to_be_visible(timeout=T)
    expect(ann.locator(".cl-bubble", has_text="Hi Ann, let me check.")).to_be_visible(timeout=T)
    expect(ann.locator(".cl-title")).to_have_text("Bob")
    ann.locator(".cl-compose-input").fill("Back after a reload")
    ann.locator(".cl-compose-input").press("Enter")
    ann_tab.click()
    expect(op.locator(".msg.them .bubble", has_text="Back after a reload")).to_be_visible(timeout=T)
    expect(ann_tab.locator(".badge.unread")).to_have_count(0)
    op.locator(".compose-input").fill("Your parcel left today: https://track.example.com/p/1")
    op.locator(".compose-input").press("Enter")
    link = ann.locator(".cl-them .cl-bubble a", has_text="track.example.com")
    expect(link).to_have_attribute("rel", "noopener noreferrer", timeout=T)
    expect(link).to_have_attribute("target", "_blank")
    # Every message exactly once on each side.
    expect(ann.locator(".cl-bubble", has_text="Back after a reload")).to_have_count(1)
    expect(op.locator(".bubble", has_text="Thanks!")).to_have_count(1)

    screenshot(ann, "chat-visitor")
    screenshot(carl, "chat-visitor-2")
    screenshot(op, "chat-operator-two-tabs")
    assert dialogs == []
    assert ann.js_errors == [] and op.js_errors == [] and carl.js_errors == []


def test_long_poll_when_websockets_are_blocked(server, host, browser, dialogs):
    op = console_login(browser, server, dialogs)
    page = watched_page(browser, dialogs)
    blocked = []

    def refuse(ws):  # never connects to the server: the socket just closes
        blocked.append(ws.url)
        ws.close()

    page.context.route_web_socket(re.compile(r".*/api/visitor/ws.*"), refuse)
    page.goto(host.page("lp", "Long-poll page"))
    visitor_start_chat(page, "Polly", "Hi over long-poll")
    assert page.evaluate("CuteLive.status().transport") == "poll"
    assert len(blocked) >= 3  # PROTOCOL.md §9: three failed attempts, then long-poll
    accept_in_console(op, "Polly")
    expect(page.locator(".cl-title")).to_have_text("Bob", timeout=T)
    op.locator(".compose-input").press_sequentially("Hello Polly")
    expect(page.locator(".cl-typing")).to_be_visible(timeout=T)
    op.locator(".compose-input").press("Enter")
    expect(page.locator(".cl-them .cl-bubble", has_text="Hello Polly")).to_be_visible(timeout=T)
    page.locator(".cl-compose-input").press_sequentially("Works without sockets")
    expect(op.locator(".tab.on .tab-typing")).to_be_visible(timeout=T)
    page.locator(".cl-compose-input").press("Enter")
    expect(op.locator(".msg.them .bubble", has_text="Works without sockets")).to_be_visible(
        timeout=T
    )
    # A reload goes straight to long-poll and keeps the conversation.
    page.reload()
    expect(page.locator(".cl-bubble", has_text="Hello Polly")).to_be_visible(timeout=T)
    assert page.evaluate("CuteLive.status().transport") == "poll"
    screenshot(page, "long-poll-visitor")


# -- offline: leave a message ----------------------------------------------------------------------


class _Inbox:
    def __init__(self):
        self.messages: list[str] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        with self.lock:
            self.messages.append(envelope.content.decode("utf-8", "replace"))
        return "250 OK"


def test_offline_visitor_leaves_a_message(make_server, tmp_path, browser, dialogs):
    from aiosmtpd.controller import Controller

    mailbox = _Inbox()
    with socket.socket() as probe:  # aiosmtpd needs a concrete port
        probe.bind(("127.0.0.1", 0))
        smtp_port = probe.getsockname()[1]
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    try:
        server = make_server(
            config={
                "mail": {
                    "smtp_host": "127.0.0.1",
                    "smtp_port": str(smtp_port),
                    "smtp_security": "none",
                    "from_address": "support@example.com",
                    "to_address": "team@example.com",
                }
            }
        )
        server.create_operator("bob", display_name="Bob")
        site = HostSite(tmp_path / "host", server.url)
        page = watched_page(browser, dialogs)
        page.goto(site.page("contact", "Contact us"))
        # Nobody online: the button says so and the window is the message form.
        expect(page.locator(".cl-launcher[data-status=offline]")).to_be_visible(timeout=T)
        expect(page.locator(".cl-launcher img")).to_have_attribute(
            "src", re.compile(r"offline\.svg$")
        )
        screenshot(page, "offline-button")
        page.click(".cl-launcher")
        expect(page.locator(".cl-window[data-view=offline]")).to_be_visible(timeout=T)
        fill_form(page, "Olga", "Please call me back about a wholesale order.")
        page.click(".cl-submit")
        # required offline, and said beside the e-mail field
        expect(page.locator(".cl-err-email")).to_contain_text("e-mail")
        page.fill(".cl-in-email", "olga@example.org")
        page.click(".cl-submit")
        expect(page.locator(".cl-window[data-view=thanks]")).to_be_visible(timeout=T)
        expect(page.locator(".cl-thanks")).to_contain_text("olga@example.org")
        screenshot(page, "offline-thanks")

        # It reached the SMTP server, with Reply-To set to the visitor.
        wait_for(lambda: mailbox.messages, what="the e-mail at the SMTP server")
        assert re.search(r"(?im)^Reply-To:.*olga@example\.org", mailbox.messages[0])

        # And it is in the console's inbox, unread, until the operator reads it.
        op = console_login(browser, server, dialogs, online=False)
        expect(op.locator("[data-nav=inbox] .count")).to_have_text("1", timeout=T)
        op.click("[data-nav=inbox]")
        item = op.locator(".inbox-item", has_text="Olga")
        expect(item).to_contain_text("wholesale order")
        expect(item).to_have_class(re.compile("unread"))
        item.locator(".mark").click()
        expect(item).not_to_have_class(re.compile("unread"), timeout=T)
        expect(op.locator("[data-nav=inbox] .count")).to_have_count(0)
        screenshot(op, "console-inbox")
        site.close()
    finally:
        smtp.stop()
    assert dialogs == []


def test_missed_chat_offers_the_message_form_prefilled(make_server, tmp_path, browser, dialogs):
    server = make_server(config={"chat": {"queue_timeout": "2s"}})
    server.create_operator("bob", display_name="Bob")
    operator_online_client = server.console("bob")
    ws = operator_online_client.connect()
    ws.request({"type": "status", "status": "online"})
    site = HostSite(tmp_path / "host", server.url)
    page = watched_page(browser, dialogs)
    page.goto(site.page("p", "Page"))
    visitor_start_chat(page, "Mia", "Is anyone there?", email="mia@example.org")
    # Nobody accepts: after the queue timeout the form appears with what she typed.
    expect(page.locator(".cl-window[data-view=offline]")).to_be_visible(timeout=T)
    expect(page.locator(".cl-in-text")).to_have_value("Is anyone there?")
    expect(page.locator(".cl-in-email")).to_have_value("mia@example.org")
    page.click(".cl-submit")
    expect(page.locator(".cl-window[data-view=thanks]")).to_be_visible(timeout=T)
    r = operator_online_client.get("/api/console/offline-messages")
    assert r.json()["messages"][0]["text"] == "Is anyone there?"
    assert r.json()["messages"][0]["chat_id"]
    site.close()


# -- markup is text --------------------------------------------------------------------------------


def test_markup_from_visitors_and_operators_is_shown_as_text(server, host, browser, dialogs):
    server.create_operator("mallory", display_name=XSS)
    op = console_login(browser, server, dialogs, username="mallory")
    page = watched_page(browser, dialogs)
    url = host.page("x", XSS)  # the page title is markup too
    page.goto(url + "?q=" + XSS)
    visitor_start_chat(page, XSS, XSS + " and <b>bold</b> https://example.com/<script>")

    card = op.locator(".qcard", has_text="onerror")
    expect(card.locator(".qname")).to_have_text(XSS, timeout=T)
    expect(card.locator(".qpage")).to_have_text(XSS)
    card.locator(".accept").click()
    expect(op.locator(".chat-name")).to_have_text(XSS, timeout=T)
    expect(op.locator(".msg.them .bubble").first).to_contain_text(XSS + " and <b>bold</b>")
    expect(op.locator(".chat-side")).to_contain_text(XSS)
    op.locator(".compose-input").fill("<script>alert(2)</script>")
    op.locator(".compose-input").press("Enter")
    expect(page.locator(".cl-them .cl-bubble")).to_have_text("<script>alert(2)</script>", timeout=T)
    expect(page.locator(".cl-title")).to_have_text(XSS)  # the operator's display name
    # No element was made from any of it, and no dialog opened.
    for p, scope in ((op, ".view"), (op, ".sidebar"), (page, ".cl-window")):
        assert p.locator(f"{scope} img").count() == 0
        assert p.locator(f"{scope} b").count() == 0
        assert p.locator(f"{scope} script").count() == 0
    assert op.locator(".tab-name").inner_text() == XSS
    screenshot(op, "markup-as-text-console")
    screenshot(page, "markup-as-text-widget")
    assert dialogs == []


# -- isolation, phones, one global -----------------------------------------------------------------


def test_widget_survives_hostile_css_and_fits_a_phone(server, host, browser, dialogs):
    server.online("admin")
    hostile = host.copy_demo("hostile.html")
    page = watched_page(browser, dialogs)
    page.goto(hostile)
    launcher = page.locator(".cl-launcher[data-status=online]")
    expect(launcher).to_be_visible(timeout=T)
    box = launcher.bounding_box()
    assert box["height"] == 56 and box["width"] > 150  # the host's img/button rules lost
    style = launcher.evaluate(
        "b => { const s = getComputedStyle(b); return [s.backgroundColor, s.borderTopWidth]; }"
    )
    assert style[0] != "rgb(255, 0, 0)" and style[1] == "0px"
    # Above the host's z-index 2147483000 header: the button is what the point hits.
    hit = page.evaluate(
        """([x, y]) => { const e = document.elementFromPoint(x, y);
                         return e && e.hasAttribute('data-cutelive'); }""",
        [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2],
    )
    assert hit
    launcher.click()
    win = page.locator(".cl-window")
    expect(win).to_be_visible(timeout=T)
    font = win.evaluate("w => getComputedStyle(w).fontFamily")
    assert "serif" != font.split(",")[0].strip()
    assert win.evaluate("w => getComputedStyle(w.querySelector('.cl-input')).fontSize") == "14px"
    screenshot(page, "hostile-css")

    phone = watched_page(browser, dialogs, width=375, height=667, is_mobile=True, has_touch=True)
    phone.goto(hostile)
    visitor_start_chat(phone, "Pia", "Hello from a phone")
    win = phone.locator(".cl-window")
    b = win.bounding_box()
    assert b["x"] >= 0 and b["y"] >= 0 and b["x"] + b["width"] <= 375
    assert b["y"] + b["height"] <= 667
    inp = phone.locator(".cl-compose-input").bounding_box()
    assert inp["y"] >= 0 and inp["y"] + inp["height"] <= 667
    assert phone.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(phone, "phone-375x667")


def test_exactly_one_global(server, host, browser, dialogs):
    server.online("admin")
    page = watched_page(browser, dialogs)
    page.goto(host.page("plain", "No widget", widget=False))
    before = set(page.evaluate("Object.getOwnPropertyNames(window)"))
    page.goto(host.page("with", "Widget"))
    visitor_start_chat(page)  # loads the lazy parts (stream.js, chat.js) too
    after = set(page.evaluate("Object.getOwnPropertyNames(window)"))
    assert after - before == {"CuteLive"}


# -- console ---------------------------------------------------------------------------------------


def test_console_reload_restores_tabs_and_unread_counts(server, browser, dialogs):
    op = console_login(browser, server, dialogs)
    visitors = []
    for name in ("Vera", "Walt"):
        v = server.visitor()
        v.connect()
        chat_id = v.start_chat(name=name, text=f"Hi, {name} here")["chat"]["id"]
        visitors.append((v, chat_id))
        accept_in_console(op, name)
    vera, walt = visitors
    op.locator(".tab", has_text="Vera").click()
    walt[0].say(walt[1], "First from Walt")
    walt[0].say(walt[1], "Second from Walt")
    walt_tab = op.locator(".tab", has_text="Walt")
    expect(walt_tab.locator(".badge.unread")).to_have_text("2", timeout=T)
    expect(op.locator(".sidebar")).not_to_contain_text("null")  # no stray text nodes

    op.reload()
    expect(op.locator(".tab")).to_have_count(2, timeout=T)
    expect(op.locator(".tab.on")).to_contain_text("Vera")
    expect(walt_tab.locator(".badge.unread")).to_have_text("2", timeout=T)
    expect(op.locator(".msg.them .bubble", has_text="Hi, Vera here")).to_be_visible()
    # A message sent while the console is reloading is not lost either.
    vera[0].say(vera[1], "Sent during the reload")
    op.reload()
    expect(op.locator(".msg.them .bubble", has_text="Sent during the reload")).to_be_visible(
        timeout=T
    )
    walt_tab.click()
    expect(op.locator(".msg.them .bubble", has_text="Second from Walt")).to_be_visible()
    expect(walt_tab.locator(".badge.unread")).to_have_count(0)
    op.locator(".compose-input").fill("Hello Walt")
    op.locator(".compose-input").press("Enter")
    walt[0].ws.wait(lambda e: e.get("type") == "message" and e.get("text") == "Hello Walt")
    # The operator ends one chat: the tab stays as a readable transcript.
    op.click(".end-chat")
    op.click(".confirm-end")
    expect(op.locator(".compose-note")).to_contain_text("closed", timeout=T)
    expect(op.locator(".bubble", has_text="Hello Walt")).to_be_visible()
    screenshot(op, "console-after-reload")


def test_first_run_setup_and_operator_administration(make_server, browser, dialogs):
    server = make_server()
    page = watched_page(browser, dialogs)
    page.goto(server.url + "/console/")  # the process whose log has the setup token
    expect(page.locator(".auth-title")).to_have_text("Create the first administrator", timeout=T)
    screenshot(page, "console-setup")
    page.fill("input[name=setup_token]", server.setup_token_from_log())
    page.fill("input[name=username]", "root")
    page.fill("input[name=display_name]", "Rita Root")
    page.fill("input[name=password]", "a long password")
    page.fill("input[name=password2]", "a long password")
    page.click("button[type=submit]")
    expect(page.locator(".me-name")).to_have_text("Rita Root", timeout=T)

    page.click("[data-nav=operators]")
    page.click("text=Add operator")
    dlg = page.locator("dialog.dialog")
    dlg.locator("input[name=username]").fill("dora")
    dlg.locator("input[name=display_name]").fill("Dora")
    dlg.locator("input[name=password]").fill("another password")
    dlg.locator("button[type=submit]").click()
    row = page.locator("tr[data-operator=dora]")
    expect(row).to_contain_text("Dora", timeout=T)
    row.locator(".edit").click()
    dlg.locator("input[name=display_name]").fill("Dora D.")
    dlg.locator("input[name=is_admin]").check()
    dlg.locator("button[type=submit]").click()
    expect(row).to_contain_text("Dora D.", timeout=T)
    expect(row).to_contain_text("Administrator")
    dora = console_login(
        browser, server, dialogs, "dora", online=False, password="another password"
    )
    row.locator(".disable").click()
    expect(row).to_contain_text("disabled", timeout=T)
    # Her open console learns at once that the session ended.
    expect(dora.locator(".auth-title")).to_have_text("Sign in", timeout=T)
    expect(dora.locator(".form-error")).to_contain_text("disabled")
    screenshot(page, "console-operators")
    page.click("[data-nav=embed]")
    expect(page.locator(".code").first).to_have_text(
        f'<script async src="{server.url}/widget.js"></script>'
    )

    # Sign out, and the disabled operator cannot sign in.
    page.click(".me-menu summary")
    page.click(".menu-item.logout")
    expect(page.locator(".auth-title")).to_have_text("Sign in", timeout=T)
    page.fill("input[name=username]", "dora")
    page.fill("input[name=password]", "another password")
    page.click("button[type=submit]")
    expect(page.locator(".form-error")).to_have_text("Wrong username or password.", timeout=T)


def test_administrator_changes_the_widget_look(server, host, browser, dialogs):
    server.online("admin")
    page = watched_page(browser, dialogs)
    page.goto(host.page("look", "Look"))
    open_widget(page, timeout=T)

    admin = console_login(browser, server, dialogs, username="admin", online=False)
    admin.click("[data-nav=widget]")
    admin.fill("input[name=color]", "#0f766e")
    admin.fill("input[name=title]", "Bramble help desk")
    admin.fill("textarea[name=greeting]", "Hello tea lover! How can we help?")
    admin.fill("input[name=button_start]", "Let's talk")
    admin.fill("input[name=image_online]", "/assets/img/offline.svg")
    admin.select_option("select[name=position]", "left")
    admin.click("text=Save")
    expect(admin.locator(".toast.ok")).to_be_visible(timeout=T)
    screenshot(admin, "console-widget-settings")

    # The open page follows at once (appearance event), with no change to the snippet.
    expect(page.locator(".cl-title")).to_have_text("Bramble help desk", timeout=T)
    expect(page.locator(".cl-intro")).to_have_text("Hello tea lover! How can we help?")
    expect(page.locator(".cl-submit")).to_have_text("Let's talk")
    head = page.locator(".cl-head")
    expect(head).to_have_css("background-color", "rgb(15, 118, 110)")
    assert page.locator(".cl-window").bounding_box()["x"] < 100  # moved to the left
    screenshot(page, "widget-customised")
    # A fresh page load gets it from /api/widget/config.
    fresh = watched_page(browser, dialogs)
    fresh.goto(host.page("look2", "Look again"))
    img = fresh.locator(".cl-launcher img")
    expect(img).to_have_attribute("src", f"{server.url}/assets/img/offline.svg", timeout=T)
    assert fresh.locator(".cl-launcher").bounding_box()["x"] < 100


def test_pop_out_gets_the_token_by_postmessage(server, host, browser, dialogs):
    op = console_login(browser, server, dialogs)
    page = accepted_chat_page(
        browser, dialogs, op, host.page("pop", "Pop"), "Pete", "Can I continue in a window?"
    )
    with page.expect_popup() as info:
        page.click(".cl-popout")
    popup = info.value
    assert "token" not in popup.url.lower() and popup.url.endswith("/chat")
    expect(popup.locator(".cl-bubble", has_text="continue in a window")).to_be_visible(timeout=T)
    expect(popup.locator(".cl-title")).to_have_text("Bob")
    popup.locator(".cl-compose-input").fill("Typed in the pop-out")
    popup.locator(".cl-compose-input").press("Enter")
    expect(op.locator(".bubble", has_text="Typed in the pop-out")).to_be_visible(timeout=T)
    token = page.evaluate("localStorage.getItem('cutelive.token')")
    assert popup.evaluate("localStorage.getItem('cutelive.token')") == token
    screenshot(popup, "pop-out")

    # The standalone page also works with no token at all (a plain link).
    plain = watched_page(browser, dialogs, width=420, height=700)
    plain.goto(server.url + "/chat")
    expect(plain.locator(".cl-window[data-view=prechat]")).to_be_visible(timeout=T)


def test_demo_site_and_history_navigation(server, browser, dialogs):
    server.online("admin")
    page = watched_page(browser, dialogs)
    page.goto(server.url + "/demo/")
    expect(page.locator("header.site nav a")).to_have_count(5)
    visitor_start_chat(page, "Dee", "Hello from the demo")
    page.click("text=Shop app")
    expect(page.locator(".cl-bubble", has_text="Hello from the demo")).to_be_visible(timeout=T)
    page.click("a[data-view=basket]")
    expect(page).to_have_url(re.compile(r"view=basket"))
    expect(page.locator(".cl-window[data-view=chat]")).to_be_visible()
    page.locator(".cl-compose-input").fill("On the basket view")
    page.locator(".cl-compose-input").press("Enter")
    wait_for(
        lambda: page.locator(".cl-me .cl-bubble", has_text="On the basket view").count() == 1,
        what="message sent from a pushState view",
    )
    # Minimised: the button comes back, and the state survives the next page.
    page.click(".cl-minimize")
    expect(page.locator(".cl-launcher")).to_be_visible()
    page.click("text=Pricing")
    expect(page.locator(".cl-launcher")).to_be_visible(timeout=T)
    expect(page.locator(".cl-window")).to_be_hidden()
    screenshot(page, "demo-minimised")


def test_minimised_window_badge_title_flash_and_ending(server, host, browser, dialogs):
    bob, ws = server.online("bob")
    page = watched_page(browser, dialogs)
    page.goto(host.page("badge", "Badge page"))
    host.page("page2", "Second page")
    visitor_start_chat(page, "Nia", "Hello there")
    queued = ws.wait(lambda e: e["type"] == "queue" and e["chats"], what="the queued chat")
    chat_id = queued["chats"][0]["id"]
    assert ws.request({"type": "accept", "chat_id": chat_id})["type"] == "ack"
    expect(page.locator(".cl-title")).to_have_text("Bob", timeout=T)

    # Minimised: a reply shows a badge on the button and flashes the page title.
    page.click(".cl-minimize")
    expect(page.locator(".cl-window")).to_be_hidden()
    reply = {
        "type": "message",
        "chat_id": chat_id,
        "text": "Are you still there?",
        "client_id": "1",
    }
    ws.request(reply)
    expect(page.locator(".cl-badge")).to_have_text("1", timeout=T)
    page.wait_for_function("document.title.includes('Bob replied')", timeout=T)
    screenshot(page, "minimised-badge")
    # The badge survives a page change; opening the window clears it and the title.
    page.click("text=page2")
    expect(page.locator(".cl-badge")).to_have_text("1", timeout=T)
    page.click(".cl-launcher")
    expect(page.locator(".cl-bubble", has_text="Are you still there?")).to_be_visible(timeout=T)
    expect(page.locator(".cl-badge")).to_be_hidden()
    page.wait_for_function("!document.title.includes('replied')", timeout=T)

    # The operator ends the chat: the visitor can start a new one.
    ws.request({"type": "close", "chat_id": chat_id})
    expect(page.locator(".cl-ended")).to_be_visible(timeout=T)
    expect(page.locator(".cl-sys", has_text="Bob ended the chat")).to_be_visible()
    page.click(".cl-new")
    expect(page.locator(".cl-window[data-view=prechat]")).to_be_visible(timeout=T)
    expect(page.locator(".cl-in-name")).to_have_value("Nia")  # remembered

    # The visitor ends a chat with the close button (after confirming).
    page.fill(".cl-in-text", "One more question")
    page.click(".cl-submit")
    expect(page.locator(".cl-window[data-view=chat]")).to_be_visible(timeout=T)
    page.click(".cl-end")
    page.click(".cl-confirm-end")
    expect(page.locator(".cl-sys", has_text="You ended the chat")).to_be_visible(timeout=T)
    ws.wait(lambda e: e["type"] == "queue" and not e["chats"], what="the queue emptied")


def test_widget_and_console_recover_after_a_server_restart(server, host, browser, dialogs):
    op = console_login(browser, server, dialogs)
    page = accepted_chat_page(
        browser, dialogs, op, host.page("restart", "Restart"), "Rhea", "Before the restart"
    )
    expect(page.locator(".cl-title")).to_have_text("Bob", timeout=T)

    server.stop()
    expect(page.locator(".cl-banner")).to_be_visible(timeout=T)
    expect(page.locator(".cl-banner")).to_contain_text("Reconnecting")
    expect(op.locator(".conn.reconnecting")).to_be_visible(timeout=T)
    screenshot(page, "reconnecting")
    server.start(server.port)

    expect(page.locator(".cl-banner")).to_be_hidden(timeout=40_000)
    expect(op.locator(".conn.connected")).to_be_visible(timeout=40_000)
    # A restart is not a blocked WebSocket: nobody fell back to long-poll (PROTOCOL.md §9).
    assert page.evaluate("CuteLive.status().transport") == "ws"
    assert op.locator(".conn").inner_text() == "Connected"
    page.locator(".cl-compose-input").fill("After the restart")
    page.locator(".cl-compose-input").press("Enter")
    expect(op.locator(".msg.them .bubble", has_text="After the restart")).to_be_visible(timeout=T)
    op.locator(".compose-input").fill("Welcome back")
    op.locator(".compose-input").press("Enter")
    expect(page.locator(".cl-them .cl-bubble", has_text="Welcome back")).to_be_visible(timeout=T)
    expect(page.locator(".cl-bubble", has_text="Before the restart")).to_have_count(1)
