"""Routing in real Chromium (docs/PROTOCOL.md §5.5, §7.8), with the widget on a customer's page
(another origin) and operators in the console: automatic assignment gives each member no more
than their maximum and the console opens the assigned chat by itself, while a chat over the
maximum waits and may still be accepted by hand; a department's chat nobody accepts is offered
to everyone after its escalation time, then ends as missed and the visitor's message goes to
that department; a transfer's note and an internal note never reach the visitor, not in the
widget, not in the visitor's transcript, not in the transcript e-mail (a real SMTP server)."""

from __future__ import annotations

import re
import time

import requests
from browser_helpers import (
    accept_in_console,
    console_home,
    end_chat_in_console,
    fill_form,
    open_widget,
    request_transcript,
    screenshot,
    settled,
    transfer_dialog,
    visitor_start_chat,
    watched_page,
    write_in_console,
)
from conftest import PASSWORD, mail_config, wait_for
from playwright.sync_api import expect

T = 20_000

#: Everything a page holds that the visitor could see or keep: the document, every open shadow
#: root (the widget's), and the host site's storage (where the widget keeps its state).
PAGE_TEXT = """() => {
  const parts = [document.documentElement.outerHTML];
  const walk = (root) => {
    for (const el of root.querySelectorAll("*")) {
      if (el.shadowRoot) {
        parts.push(el.shadowRoot.innerHTML, el.shadowRoot.textContent);
        walk(el.shadowRoot);
      }
    }
  };
  walk(document);
  for (const store of [localStorage, sessionStorage])
    for (let i = 0; i < store.length; i++) parts.push(store.key(i), store.getItem(store.key(i)));
  return parts.join("\\n");
}"""


# -- helpers --------------------------------------------------------------------------------------


def _operator_ids(server) -> dict[str, int]:
    admin = server.console("admin")
    ops = admin.get("/api/console/operators").json()["operators"]
    return {o["username"]: o["id"] for o in ops}


def _department(server, **spec) -> dict:
    r = server.console("admin").post("/api/console/departments", spec)
    assert r.status_code == 201, r.text
    return r.json()["department"]


def _visitor_says(page, text):
    page.locator(".cl-compose-input").fill(text)
    page.locator(".cl-compose-input").press("Enter")
    expect(page.locator(".cl-me .cl-bubble", has_text=text)).to_be_visible(timeout=T)


# -- automatic assignment -------------------------------------------------------------------------


def test_automatic_assignment_gives_each_member_one_chat_and_queues_the_third(
    server, host, browser, dialogs
):
    ids = _operator_ids(server)
    admin = server.console("admin")
    for username in ("admin", "bob"):
        r = admin.patch(f"/api/console/operators/{ids[username]}", {"max_chats": 1})
        assert r.status_code == 200, r.text
        assert r.json()["operator"]["max_chats"] == 1
    _department(
        server, key="sales", name="Sales", auto_assign=True, members=[ids["admin"], ids["bob"]]
    )
    consoles = {
        "Alice Admin": console_home(browser, server, dialogs, "admin"),
        "Bob": console_home(browser, server, dialogs, "bob"),
    }

    # Ann starts a chat for Sales in the widget: it goes to one of them at once.
    page = watched_page(browser, dialogs)
    page.goto(host.page("assign", "Sales"))
    open_widget(page, timeout=T)
    page.select_option(".cl-in-dept", "sales")
    fill_form(page, "Ann", "A quote for 40 seats, please")
    page.click(".cl-submit")
    expect(page.locator(".cl-window[data-view=chat]")).to_be_visible(timeout=T)
    title = page.locator(".cl-title")
    expect(title).to_have_text(re.compile(r"^(Alice Admin|Bob)$"), timeout=T)
    first_name = title.inner_text()
    second_name = "Bob" if first_name == "Alice Admin" else "Alice Admin"
    first, second = consoles[first_name], consoles[second_name]

    # Her console opened the chat by itself, and said so.
    expect(first.locator(".tab", has_text="Ann")).to_be_visible(timeout=T)
    screenshot(first, "routing-assigned-first")
    expect(first.locator(".toast", has_text="A chat was assigned to you.")).to_be_visible(timeout=T)
    expect(first.locator(".tab.on", has_text="Ann")).to_be_visible(timeout=T)
    expect(first.locator(".msg.them .bubble", has_text="40 seats")).to_be_visible(timeout=T)
    expect(first.locator(".chat-head .dep-tag")).to_have_text("Sales", timeout=T)

    # Ben (through the protocol) goes to the other one: the first is at her maximum.
    ben = server.visitor()
    ben.connect()
    ben.start_chat("Do you offer invoices?", name="Ben", department="sales")
    expect(second.locator(".toast", has_text="A chat was assigned to you.")).to_be_visible(
        timeout=T
    )
    expect(second.locator(".tab.on", has_text="Ben")).to_be_visible(timeout=T)
    expect(second.locator(".msg.them .bubble", has_text="invoices")).to_be_visible(timeout=T)
    expect(second.locator(".chat-head .dep-tag")).to_have_text("Sales", timeout=T)
    ben.ws.wait(
        lambda e: e["type"] == "chat_accepted" and e["operator"]["name"] == second_name,
        what="Ben's chat accepted by the other member",
    )

    # Cleo waits in the queue: both are at their maximum. Both see her card; nobody got her.
    cleo = server.visitor()
    cleo.connect()
    cleo_chat = cleo.start_chat("Is anyone free?", name="Cleo", department="sales")["chat"]["id"]
    cleo.ws.wait(
        lambda e: e["type"] == "queue_position" and e["position"] == 1,
        what="Cleo first in the queue",
    )
    for op in (first, second):
        card = op.locator(".queue .qcard", has_text="Cleo")
        expect(card).to_be_visible(timeout=T)
        expect(card.locator(".dep-tag")).to_have_text("Sales")
        expect(op.locator(".tab")).to_have_count(1)
        assert op.locator(".tab", has_text="Cleo").count() == 0
    assert first.locator(".tab", has_text="Ben").count() == 0
    assert second.locator(".tab", has_text="Ann").count() == 0
    settled(second.locator(".queue .qcard", has_text="Cleo"))
    screenshot(second, "routing-assigned-second-and-queued")
    assert not [e for e in cleo.ws.events if e["type"] == "chat_accepted"]

    # The second one accepts her by hand, above the maximum.
    card = second.locator(".queue .qcard", has_text="Cleo")
    card.locator(".accept").click()
    expect(second.locator(".tab.on", has_text="Cleo")).to_be_visible(timeout=T)
    expect(second.locator(".tab")).to_have_count(2)
    expect(first.locator(".queue .qcard", has_text="Cleo")).to_be_hidden(timeout=T)
    accepted = cleo.ws.wait(lambda e: e["type"] == "chat_accepted", what="Cleo's chat accepted")
    assert accepted["chat_id"] == cleo_chat and not accepted.get("assigned")
    expect(first.locator(".tab")).to_have_count(1)
    screenshot(second, "routing-accepted-above-maximum")
    assert all(op.js_errors == [] for op in consoles.values()) and page.js_errors == []
    assert dialogs == []


# -- escalation -----------------------------------------------------------------------------------


def test_an_unanswered_chat_escalates_then_its_message_goes_to_the_department(
    make_server, seeded_database, host_for, browser, dialogs
):
    server = make_server(config={"chat": {"queue_timeout": "20s"}}, database=seeded_database)
    server.admin = ("admin", PASSWORD)
    host = host_for(server)
    ids = _operator_ids(server)
    sales = _department(
        server, key="sales", name="Sales", escalate_after=10, members=[ids["admin"]]
    )
    _department(server, key="support", name="Support", members=[ids["bob"]])
    alice = console_home(browser, server, dialogs, "admin")
    bob = console_home(browser, server, dialogs, "bob")

    page = watched_page(browser, dialogs)
    page.goto(host.page("gift-cards", "Gift cards"))
    expect(page.locator(".cl-launcher[data-status=online]")).to_be_visible(timeout=T)
    page.click(".cl-launcher")
    expect(page.locator(".cl-in-dept option")).to_have_count(3, timeout=T)
    page.select_option(".cl-in-dept", "sales")
    fill_form(page, "Mia", "Do you sell gift cards?", email="mia@example.org")
    page.click(".cl-submit")
    expect(page.locator(".cl-window[data-view=chat]")).to_be_visible(timeout=T)
    started = time.monotonic()
    _visitor_says(page, "Any amount would do")

    # Alice (Sales) has it; Bob (Support) does not, at first.
    alice_card = alice.locator(".queue .qcard", has_text="Mia")
    expect(alice_card.locator(".dep-tag")).to_have_text("Sales", timeout=T)
    expect(bob.locator(".queue .qcard")).to_have_count(0)
    assert time.monotonic() - started < 8, "too slow to see the chat before its escalation"

    # After ~10 s it is offered to everyone, marked as escalated.
    bob_card = bob.locator(".queue .qcard", has_text="Mia")
    expect(bob_card.locator(".dep-tag.escalated")).to_have_text("Escalated", timeout=20_000)
    escalated_after = time.monotonic() - started
    assert escalated_after >= 8, f"escalated after {escalated_after:.1f}s, not ~10s"
    expect(bob_card.locator(".dep-tag", has_text="Sales")).to_be_visible()
    expect(alice_card.locator(".dep-tag.escalated")).to_be_visible(timeout=T)
    settled(bob_card)
    screenshot(bob, "routing-escalated-queue")

    # Nobody accepts: at the queue timeout the widget offers the message form, prefilled with
    # what she wrote.
    expect(page.locator(".cl-window[data-view=offline]")).to_be_visible(timeout=20_000)
    assert time.monotonic() - started >= 18
    expect(page.locator(".cl-intro")).to_contain_text("nobody was free to answer")
    lines = "Do you sell gift cards?\nAny amount would do"
    expect(page.locator(".cl-in-text")).to_have_value(lines)
    expect(page.locator(".cl-in-name")).to_have_value("Mia")
    expect(page.locator(".cl-in-email")).to_have_value("mia@example.org")
    screenshot(page, "routing-missed-form")
    expect(bob_card).to_be_hidden(timeout=T)
    expect(alice_card).to_be_hidden(timeout=T)
    page.click(".cl-submit")
    expect(page.locator(".cl-window[data-view=thanks]")).to_be_visible(timeout=T)

    # The message belongs to Sales, and the inbox shows it.
    msgs = server.console("admin").get("/api/console/offline-messages").json()["messages"]
    assert [(m["text"], m["department_id"]) for m in msgs] == [(lines, sales["id"])]
    assert msgs[0]["chat_id"]
    alice.locator("[data-nav=inbox]").click()
    expect(alice.locator(".inbox-item", has_text="Mia")).to_contain_text("gift cards", timeout=T)
    assert alice.js_errors == [] and bob.js_errors == [] and page.js_errors == []
    assert dialogs == []


# -- a transfer's note stays with the operators ---------------------------------------------------


NOTE = "Private-note-QX7731: VIP, refund already approved"
TRANSFER_NOTE = "Handover-note-QZ4402: wants express shipping"
#: Each distinctive enough that a port number or an id cannot contain it by chance.
SECRETS = ("QX7731", "VIP", "refund already approved", "QZ4402", "express shipping")


def _no_secrets(text: str, where: str) -> None:
    found = [s for s in SECRETS if s in text]
    assert not found, f"{where} holds note text: {found}"


def test_a_transfer_with_a_note_keeps_every_note_from_the_visitor(
    make_server, seeded_database, smtp, host_for, browser, dialogs
):
    server = make_server(config=mail_config(smtp), database=seeded_database)
    server.admin = ("admin", PASSWORD)
    host = host_for(server)
    server.create_operator("carol", display_name="Carol")
    alice = console_home(browser, server, dialogs, "admin")
    carol = console_home(browser, server, dialogs, "carol")

    page = watched_page(browser, dialogs)
    url = host.page("transfer", "Transfer")
    page.goto(url)
    visitor_start_chat(page, "Tess", "My order 77 is late", email="tess@example.org")
    accept_in_console(alice, "Tess")
    write_in_console(alice, "Let me look into order 77")
    expect(page.locator(".cl-bubble", has_text="Let me look into order 77")).to_be_visible(
        timeout=T
    )
    write_in_console(alice, NOTE, note=True)

    dlg = transfer_dialog(alice, "Carol", TRANSFER_NOTE)
    dlg.locator("button[type=submit]").click()
    expect(dlg).to_be_hidden(timeout=T)
    card = carol.locator(".tcard", has_text="Tess")
    expect(card.locator(".tnote")).to_have_text(TRANSFER_NOTE, timeout=T)
    card.locator(".accept").click()
    expect(carol.locator(".tab.on", has_text="Tess")).to_be_visible(timeout=T)
    expect(carol.locator(".note-item.transfer-note .note-text")).to_have_text(TRANSFER_NOTE)
    expect(carol.locator(".note-item .note-text", has_text=NOTE)).to_be_visible()
    write_in_console(carol, "Carol here: it ships today")
    screenshot(carol, "routing-transfer-carol")

    # The widget names Carol, shows her reply, and holds no note anywhere.
    expect(page.locator(".cl-sys", has_text="You\u2019re now chatting with Carol")).to_be_visible(
        timeout=T
    )
    expect(page.locator(".cl-bubble", has_text="Carol here: it ships today")).to_be_visible(
        timeout=T
    )
    expect(page.locator(".cl-title")).to_have_text("Carol")
    _no_secrets(page.evaluate(PAGE_TEXT), "the widget")
    screenshot(page, "routing-transfer-widget")

    # Reloaded, the widget gets the conversation back from the server: still no note.
    page.reload()
    if page.locator(".cl-launcher").is_visible():
        page.click(".cl-launcher")
    expect(page.locator(".cl-window[data-view=chat]")).to_be_visible(timeout=T)
    for text in ("My order 77 is late", "Let me look into order 77", "Carol here: it ships today"):
        expect(page.locator(".cl-bubble", has_text=text)).to_be_visible(timeout=T)
    expect(page.locator(".cl-sys", has_text="You\u2019re now chatting with Carol")).to_be_visible()
    _no_secrets(page.evaluate(PAGE_TEXT), "the widget after a reload")

    # The visitor's transcript over HTTP, with the widget's own token.
    token = page.evaluate("localStorage.getItem('cutelive.token')")
    chat_id = page.evaluate("CuteLive._k.state.chat")
    r = requests.get(
        f"{server.url}/api/visitor/chats/{chat_id}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=T / 1000,
    )
    assert r.status_code == 200, r.text
    assert "Carol here: it ships today" in r.text
    _no_secrets(r.text, "GET /api/visitor/chats/ID")
    events = r.json()["events"]
    assert "note" not in [e["type"] for e in events]
    assert "chat_transferred" in [e["type"] for e in events]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))

    # The chat ends; the visitor asks for the transcript by e-mail.
    end_chat_in_console(carol)
    request_transcript(page, "tess@example.org", timeout=T)
    screenshot(page, "routing-transfer-transcript-requested")
    mail = wait_for(
        lambda: [m for _, rcpt, m in smtp.messages if rcpt == ["tess@example.org"]],
        what="the transcript at the SMTP server",
    )
    assert len(mail) == 1
    parts = [p.get_content() for p in mail[0].walk() if p.get_content_maintype() == "text"]
    text = "\n".join(parts) + "\n" + str(mail[0]["Subject"])
    for line in ("My order 77 is late", "Let me look into order 77", "Carol here: it ships today"):
        assert line in text, line
    _no_secrets(text, "the transcript e-mail")
    assert alice.js_errors == [] and carol.js_errors == [] and page.js_errors == []
    assert dialogs == []
