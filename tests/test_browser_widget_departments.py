"""The visitor's widget with departments (PROTOCOL §5.5), in real Chromium: the pre-chat form
lists the departments with someone online and routes the chat to the one chosen; a snippet's
``data-department`` fixes one; a department that went offline meanwhile gets a message instead;
the queue position counts down while the chat waits; a transfer names the new operator."""

from __future__ import annotations

import html

from browser_helpers import (
    fill_form,
    open_widget,
    screenshot,
    visitor_start_chat,
    watched_page,
)
from conftest import queue_lists, wait_for
from playwright.sync_api import expect

T = 20_000
FLIP = 2_000  # ms: the form agrees with the server this soon after a change


# -- helpers --------------------------------------------------------------------------------------


def snippet_page(host, name: str, department: str) -> str:
    """A host page whose snippet carries ``data-department``."""
    tag = (
        f'<script async src="{host.server_url}/widget.js" '
        f'data-department="{html.escape(department)}"></script>'
    )
    return host.page(name, f"Page for {department}", body=tag, widget=False)


def add_departments(server, *specs: dict) -> dict[str, dict]:
    """Departments created by the administrator over the console API, by key."""
    admin = server.console("admin")
    made = {}
    for spec in specs:
        r = admin.post("/api/console/departments", spec)
        assert r.status_code == 201, r.text
        made[spec["key"]] = r.json()["department"]
    return made


def sales_and_support_online(server):
    """Bob (Sales) and Carol (Support) online, each in one department: their WebSockets."""
    server.create_operator("carol", display_name="Carol")
    bob, bob_ws = server.online("bob")
    carol, carol_ws = server.online("carol")
    add_departments(
        server,
        {"key": "sales", "name": "Sales", "members": [bob.operator["id"]]},
        {"key": "support", "name": "Support", "members": [carol.operator["id"]]},
    )
    return bob_ws, carol_ws


def never_offered(ws, chat_id: int) -> bool:
    """No ``queue`` this operator got so far lists the chat (after a round trip, so that what
    was published with the others' queues has arrived)."""
    assert ws.request({"type": "ping"})["type"] == "pong"
    return not any(queue_lists(ws.events, chat_id))


# -- tests ----------------------------------------------------------------------------------------


def test_the_visitor_picks_a_department_and_only_its_operators_get_the_chat(
    server, host, browser, dialogs
):
    server.create_operator("carol", display_name="Carol")
    bob, bob_ws = server.online("bob")
    carol, carol_ws = server.online("carol")
    admin_id = server.console("admin").operator["id"]
    add_departments(
        server,
        {"key": "sales", "name": "Sales", "members": [bob.operator["id"]]},
        # A name from the site's administrators is still text, never markup.
        {"key": "support", "name": "Support <b>desk</b> & help", "members": [carol.operator["id"]]},
        {"key": "billing", "name": "Billing", "members": [admin_id]},
    )

    page = watched_page(browser, dialogs)
    page.goto(host.page("pick", "Pick a department"))
    open_widget(page, timeout=T)
    options = page.locator(".cl-in-dept option")
    # Only the departments with someone online (nobody of Billing is).
    expect(options).to_have_text(
        ["Choose a department\u2026", "Sales", "Support <b>desk</b> & help"]
    )
    assert page.locator(".cl-in-dept b").count() == 0

    # Billing's member comes online: the list follows, live.
    _admin, admin_ws = server.online("admin")
    expect(options).to_have_text(
        ["Choose a department\u2026", "Billing", "Sales", "Support <b>desk</b> & help"],
        timeout=FLIP,
    )

    # Nothing chosen: the error is beside the field, and nothing is sent.
    fill_form(page, "Ann", "Do you ship to Norway?")
    page.click(".cl-submit")
    expect(page.locator(".cl-err-department")).to_have_text("Please choose a department.")
    expect(page.locator(".cl-window[data-view=prechat]")).to_be_visible()
    screenshot(page, "widget-department-choose")

    page.select_option(".cl-in-dept", "sales")
    expect(page.locator(".cl-err-department")).to_be_empty()
    page.click(".cl-submit")
    expect(page.locator(".cl-window[data-view=chat]")).to_be_visible(timeout=T)
    queued = bob_ws.wait(
        lambda e: e["type"] == "queue" and e["chats"], what="the chat in Sales' queue"
    )
    chat = queued["chats"][0]
    assert chat["department"]["key"] == "sales"
    # Carol (Support) and the administrator (Billing) are not offered it.
    assert never_offered(carol_ws, chat["id"]) and never_offered(admin_ws, chat["id"])
    # Bob answers: the header names him and the department the chat is with.
    assert bob_ws.request({"type": "accept", "chat_id": chat["id"]})["type"] == "ack"
    expect(page.locator(".cl-title")).to_have_text("Bob", timeout=T)
    expect(page.locator(".cl-sub")).to_have_text("Sales \u00b7 online")
    screenshot(page, "widget-department-chat")


def test_a_department_going_offline_is_taken_off_the_list_on_a_phone(
    server, host, browser, dialogs
):
    bob_ws, _carol_ws = sales_and_support_online(server)
    page = watched_page(browser, dialogs, width=390, height=844)  # a phone
    page.goto(host.page("gone", "A department goes"))
    page.click(".cl-launcher")
    expect(page.locator(".cl-in-dept option")).to_have_count(3, timeout=T)
    page.select_option(".cl-in-dept", "sales")

    bob_ws.request({"type": "status", "status": "away"})
    # The visitor is told, and chooses again.
    expect(page.locator(".cl-in-dept option")).to_have_text(
        ["Choose a department\u2026", "Support"], timeout=FLIP
    )
    expect(page.locator(".cl-err-department")).to_have_text(
        "Sales has just gone offline. Please choose another department."
    )
    assert page.input_value(".cl-in-dept") == ""
    screenshot(page, "widget-department-gone")
    bob_ws.request({"type": "status", "status": "online"})
    expect(page.locator(".cl-in-dept option")).to_have_count(3, timeout=FLIP)


def test_a_department_that_went_offline_meanwhile_gets_a_message(server, host, browser, dialogs):
    sales_and_support_online(server)
    page = watched_page(browser, dialogs)
    page.goto(host.page("race", "Race"))
    page.click(".cl-launcher")
    expect(page.locator(".cl-in-dept option")).to_have_count(3, timeout=T)
    page.select_option(".cl-in-dept", "sales")
    fill_form(page, "Ann", "A question for sales", email="ann@example.org")

    # The server goes down; the visitor sends meanwhile (the widget keeps it until it is back);
    # it comes back with Carol online and Bob not: the widget still thinks Sales is online when
    # it sends, and the server answers department_offline.
    server.stop()
    expect(page.locator(".cl-window[data-connection=reconnecting]")).to_be_visible(timeout=T)
    page.click(".cl-submit")
    server.start(server.port)
    _carol2, _carol2_ws = server.online("carol")

    expect(page.locator(".cl-window[data-view=offline]")).to_be_visible(timeout=20_000)
    expect(page.locator(".cl-intro")).to_contain_text("Nobody in Sales is online right now")
    assert page.input_value(".cl-in-text") == "A question for sales"
    expect(page.locator(".cl-back")).to_be_visible()
    screenshot(page, "widget-department-offline-form")
    page.click(".cl-submit")
    expect(page.locator(".cl-window[data-view=thanks]")).to_be_visible(timeout=T)

    admin = server.console("admin")
    sales = next(
        d
        for d in admin.get("/api/console/departments").json()["departments"]
        if d["key"] == "sales"
    )
    msgs = admin.get("/api/console/offline-messages").json()["messages"]
    assert [(m["text"], m["department_id"]) for m in msgs] == [
        ("A question for sales", sales["id"])
    ]


def test_a_snippet_department_follows_that_department_only(server, host, browser, dialogs):
    server.create_operator("carol", display_name="Carol")
    bob = server.console("bob")
    carol, carol_ws = server.online("carol")
    add_departments(
        server,
        {"key": "sales", "name": "Sales", "members": [bob.operator["id"]]},
        {"key": "support", "name": "Support", "members": [carol.operator["id"]]},
    )
    page = watched_page(browser, dialogs)
    warnings = []
    page.on("console", lambda m: m.type == "warning" and warnings.append(m.text))
    page.goto(snippet_page(host, "sales", "sales"))
    # Carol is online, but not in Sales: this page's button is offline.
    open_widget(page, status="offline", view="offline", timeout=T)
    expect(page.locator(".cl-sub")).to_have_text("Leave us a message")

    # Bob (Sales) comes online: the button, the header and the form follow.
    bob_ws = bob.connect()
    bob_ws.request({"type": "status", "status": "online"})
    expect(page.locator(".cl-window[data-view=prechat]")).to_be_visible(timeout=FLIP)
    expect(page.locator(".cl-sub")).to_have_text("We\u2019re online")
    expect(page.locator(".cl-in-dept")).to_be_hidden()  # the snippet chose
    fill_form(page, "Ann", "Pricing for 40 seats?")
    page.click(".cl-submit")
    expect(page.locator(".cl-window[data-view=chat]")).to_be_visible(timeout=T)
    chat = bob_ws.wait(lambda e: e["type"] == "queue" and e["chats"], what="Sales' queue")
    assert chat["chats"][0]["department"]["key"] == "sales"
    assert never_offered(carol_ws, chat["chats"][0]["id"])
    assert warnings == []

    # Bob goes away: the minimised button follows the department, not the site.
    page.click(".cl-minimize")
    bob_ws.request({"type": "status", "status": "away"})
    expect(page.locator(".cl-launcher[data-status=offline]")).to_be_visible(timeout=FLIP)


def test_a_snippet_department_offline_gets_its_message(server, host, browser, dialogs):
    bob = server.console("bob")
    _admin, _admin_ws = server.online("admin")
    add_departments(server, {"key": "sales", "name": "Sales", "members": [bob.operator["id"]]})
    page = watched_page(browser, dialogs)
    page.goto(snippet_page(host, "sales-msg", "sales"))
    open_widget(page, status="offline", view="offline", timeout=T)
    fill_form(page, "Ann", "Call me about a quote", email="ann@example.org")
    page.click(".cl-submit")
    expect(page.locator(".cl-window[data-view=thanks]")).to_be_visible(timeout=T)
    admin = server.console("admin")
    sales = admin.get("/api/console/departments").json()["departments"][0]
    msgs = admin.get("/api/console/offline-messages").json()["messages"]
    assert [(m["text"], m["department_id"]) for m in msgs] == [
        ("Call me about a quote", sales["id"])
    ]


def test_a_snippet_naming_no_department_warns_once_and_works_site_wide(
    server, host, browser, dialogs
):
    bob, bob_ws = server.online("bob")
    add_departments(server, {"key": "sales", "name": "Sales", "members": [bob.operator["id"]]})
    page = watched_page(browser, dialogs)
    warnings = []
    page.on("console", lambda m: m.type == "warning" and warnings.append(m.text))
    page.goto(snippet_page(host, "typo", "slaes"))
    open_widget(page, timeout=T)
    # As without the attribute: the visitor chooses.
    expect(page.locator(".cl-in-dept option")).to_have_text(["Sales"])
    bob_ws.request({"type": "status", "status": "away"})
    expect(page.locator(".cl-window[data-view=offline]")).to_be_visible(timeout=FLIP)
    bob_ws.request({"type": "status", "status": "online"})
    expect(page.locator(".cl-window[data-view=prechat]")).to_be_visible(timeout=FLIP)
    assert len([w for w in warnings if '"slaes"' in w]) == 1, warnings


def test_the_queue_position_counts_down_until_the_chat_is_accepted(server, host, browser, dialogs):
    _bob, bob_ws = server.online("bob")
    # Where departments exist (a site without them behaves as before: no queue position),
    # a chat of no department counts among the chats of no department.
    admin = server.console("admin")
    assert admin.post("/api/console/departments", {"key": "sales", "name": "Sales"}).ok
    ahead = []
    for name in ("First", "Second"):
        v = server.visitor()
        v.connect()
        ahead.append(v.start_chat(name=name, text="Me first")["chat"]["id"])
    page = watched_page(browser, dialogs)
    page.goto(host.page("queue", "Queue"))
    visitor_start_chat(page, "Ann", "Am I next?", timeout=T)
    line = page.locator(".cl-queue")
    # Nobody has been answered yet: no estimate.
    expect(line).to_have_text("You are number 3 in the queue", timeout=T)
    screenshot(page, "widget-queue-position")

    bob_ws.request({"type": "accept", "chat_id": ahead[0]})
    expect(line).to_have_text("You are number 2 in the queue \u00b7 about 1 min", timeout=FLIP)
    bob_ws.request({"type": "accept", "chat_id": ahead[1]})
    expect(line).to_have_text("You are number 1 in the queue \u00b7 about 1 min", timeout=FLIP)
    mine = wait_for(lambda: page.evaluate("CuteLive._k.state.chat"), what="the chat id")
    bob_ws.request({"type": "accept", "chat_id": mine})
    expect(page.locator(".cl-sys", has_text="Bob joined the chat")).to_be_visible(timeout=T)
    expect(line).to_be_hidden()
    expect(page.locator(".cl-waiting")).to_be_hidden()


def test_a_transfer_names_the_new_operator(server, host, browser, dialogs):
    server.create_operator("carol", display_name="Carol")
    _bob, bob_ws = server.online("bob")
    carol, carol_ws = server.online("carol")
    page = watched_page(browser, dialogs)
    page.goto(host.page("transfer", "Transfer"))
    visitor_start_chat(page, "Ann", "Billing question", timeout=T)
    chat_id = bob_ws.wait(lambda e: e["type"] == "queue" and e["chats"])["chats"][0]["id"]
    assert bob_ws.request({"type": "accept", "chat_id": chat_id})["type"] == "ack"
    expect(page.locator(".cl-title")).to_have_text("Bob", timeout=T)

    ack = bob_ws.request(
        {
            "type": "transfer",
            "chat_id": chat_id,
            "operator_id": carol.operator["id"],
            "note": "She asks about an invoice",
        }
    )
    assert ack["type"] == "ack", ack
    offer = carol_ws.wait(lambda e: e["type"] == "transfer", what="the transfer offer")
    ack = carol_ws.request({"type": "accept_transfer", "transfer_id": offer["transfer"]["id"]})
    assert ack["type"] == "ack", ack
    expect(page.locator(".cl-sys", has_text="You\u2019re now chatting with Carol")).to_be_visible(
        timeout=T
    )
    expect(page.locator(".cl-title")).to_have_text("Carol")
    # The note is for operators only.
    expect(page.locator(".cl-window")).not_to_contain_text("invoice")
    carol_ws.request(
        {"type": "message", "chat_id": chat_id, "text": "Hi, Carol here", "client_id": "c1"}
    )
    expect(page.locator(".cl-msg.cl-them .cl-from", has_text="Carol")).to_be_visible(timeout=T)
    screenshot(page, "widget-transfer")


def test_the_pop_out_window_keeps_the_snippets_department(server, host, browser, dialogs):
    bob_ws, carol_ws = sales_and_support_online(server)
    page = watched_page(browser, dialogs)
    page.goto(snippet_page(host, "sales-pop", "sales"))
    page.click(".cl-launcher")
    expect(page.locator(".cl-window[data-view=prechat]")).to_be_visible(timeout=T)
    with page.expect_popup() as info:
        page.click(".cl-popout")
    popup = info.value
    # The window is the page's: no department to choose, and the chat goes to Sales.
    expect(popup.locator(".cl-window[data-view=prechat]")).to_be_visible(timeout=T)
    expect(popup.locator(".cl-in-dept")).to_be_hidden()
    fill_form(popup, "Ann", "Asked from the pop-out")
    popup.click(".cl-submit")
    chat = bob_ws.wait(lambda e: e["type"] == "queue" and e["chats"], what="Sales' queue")
    assert chat["chats"][0]["department"]["key"] == "sales"
    assert never_offered(carol_ws, chat["chats"][0]["id"])
