"""Departments, transfer and internal notes in the console, in real Chromium (docs/PROTOCOL.md
§5.5, §7.8): an administrator sets up Sales and Support with their members, and a chat for
Sales reaches only Sales members' queues; an operator passes a chat to a colleague with a note,
the transcript stays whole and the notes stay with the operators; a declined transfer leaves
the chat with its operator. Visitors speak the protocol here (the widget has tests of its own).
"""

from __future__ import annotations

import re

import pytest
from browser_helpers import (
    console_home,
    screenshot,
    settled,
    sign_in,
    transfer_dialog,
    watched_page,
    write_in_console,
)
from conftest import PASSWORD
from playwright.sync_api import expect

T = 20_000


def _visitor(server, name, text, **extra):
    """A visitor with an open chat: (client, chat id)."""
    v = server.visitor()
    v.connect()
    ack = v.start_chat(text, name=name, **extra)
    return v, ack["chat"]["id"]


def _accept(op, name):
    card = op.locator(".queue .qcard", has_text=name)
    expect(card).to_be_visible(timeout=T)
    card.locator(".accept").click()
    expect(op.locator(".tab.on", has_text=name)).to_be_visible(timeout=T)


@pytest.fixture
def team(server):
    """Carol (for Sales, with Bob) and Dave (for Support) besides the seeded admin and Bob."""
    server.create_operator("carol", display_name="Carol")
    server.create_operator("dave", display_name="Dave")
    return server


def _department_dialog(admin, name, key, members, email=""):
    admin.locator(".add-department").click()
    dlg = admin.locator("dialog.department-dialog")
    expect(dlg).to_be_visible(timeout=T)
    dlg.locator("input[name=name]").fill(name)
    dlg.locator("input[name=key]").fill(key)
    if email:
        dlg.locator("input[name=email]").fill(email)
    for username in members:
        dlg.locator(f"[data-operator={username}] input").check()
    return dlg


def test_administrator_sets_up_departments_and_a_chat_reaches_only_its_members(
    team, browser, dialogs
):
    server = team
    admin = sign_in(watched_page(browser, dialogs), server, "admin", PASSWORD, online=False)
    admin.click("[data-nav=departments]")
    expect(admin.locator(".view .empty")).to_contain_text("No departments yet", timeout=T)

    dlg = _department_dialog(admin, "Sales", "sales", ["bob", "carol"], "sales@shop.example")
    screenshot(admin, "departments-dialog")
    dlg.locator("button[type=submit]").click()
    expect(dlg).to_be_hidden(timeout=T)
    row = admin.locator("tr[data-department=sales]")
    expect(row.locator(".dep-members")).to_have_text("Bob, Carol", timeout=T)

    # A key already used is refused beside its field, and the dialog keeps what was typed.
    dlg = _department_dialog(admin, "Support", "sales", ["dave"])
    dlg.locator("button[type=submit]").click()
    error = dlg.locator("[data-field=key] .field-error")
    expect(error).to_have_text("Another department has this key.", timeout=T)
    screenshot(admin, "departments-duplicate-key")
    dlg.locator("input[name=key]").fill("support")
    dlg.locator("button[type=submit]").click()
    expect(dlg).to_be_hidden(timeout=T)
    expect(admin.locator("tr[data-department=support] .dep-members")).to_have_text("Dave")

    # Editing keeps the key and changes the members.
    admin.locator("tr[data-department=support] .edit").click()
    dlg = admin.locator("dialog.department-dialog")
    expect(dlg.locator("input[name=key]")).to_be_disabled()
    dlg.locator("[data-operator=admin] input").check()
    dlg.locator("input[name=escalate_after]").fill("120")
    dlg.locator("button[type=submit]").click()
    expect(dlg).to_be_hidden(timeout=T)
    row = admin.locator("tr[data-department=support]")
    expect(row.locator(".dep-members")).to_have_text("Alice Admin, Dave", timeout=T)
    expect(row.locator(".dep-routing")).to_contain_text("Everyone after 2 min")
    screenshot(admin, "departments-list")

    # The Operators page shows each one's departments, and a max chats that stays.
    admin.click("[data-nav=operators]")
    bob_row = admin.locator("tr[data-operator=bob]")
    expect(bob_row.locator(".op-departments")).to_have_text("Sales", timeout=T)
    bob_row.locator("input.max-chats").fill("2")
    bob_row.locator("input.max-chats").press("Enter")
    expect(admin.locator(".toast.ok", has_text=re.compile(r"^Saved\.$"))).to_be_visible(timeout=T)
    admin.reload()
    admin.click("[data-nav=operators]")
    expect(admin.locator("tr[data-operator=bob] input.max-chats")).to_have_value("2", timeout=T)
    screenshot(admin, "operators-departments")

    # A chat for Sales reaches Bob's queue, named as Sales, and not Dave's (Support).
    bob = console_home(browser, server, dialogs, "bob")
    _, dave_ws = server.online("dave")
    _, chat_id = _visitor(server, "Sara", "Do you ship to Norway?", department="sales")
    card = bob.locator(".queue .qcard", has_text="Sara")
    expect(card.locator(".dep-tag")).to_have_text("Sales", timeout=T)
    expect(bob.locator(".chat-row.waiting .dep-tag", has_text="Sales")).to_be_visible(timeout=T)
    settled(card)
    screenshot(bob, "departments-queue")
    # Dave's stream has had a queue since (the one after the chat reached Bob), without it.
    dave_ws.request({"type": "ping"})
    queues = [e for e in dave_ws.events if e["type"] == "queue"]
    assert queues and all(chat_id not in [c["id"] for c in q["chats"]] for q in queues)
    assert admin.js_errors == [] and bob.js_errors == [] and dialogs == []


def test_a_transfer_with_a_note_keeps_the_transcript_and_the_notes_stay_with_operators(
    team, browser, dialogs
):
    server = team
    bob = console_home(browser, server, dialogs, "bob")
    carol = console_home(browser, server, dialogs, "carol")
    v, chat_id = _visitor(server, "Tom", "My parcel arrived broken")
    _accept(bob, "Tom")
    write_in_console(bob, "Sorry to hear that! Which item?")
    v.say(chat_id, "The blue teapot")
    expect(bob.locator(".msg.them .bubble", has_text="The blue teapot")).to_be_visible(timeout=T)

    # An internal note: set apart in the log, and never sent to the visitor.
    write_in_console(bob, "Checked: order 1234, shipped Monday", note=True)
    note = bob.locator(".note-item", has_text="order 1234")
    expect(note.locator(".note-head")).to_contain_text("Internal note \u00b7 only operators")
    screenshot(bob, "notes-compose")

    # Bob offers the chat to Carol with a note; the chat stays his meanwhile.
    dlg = transfer_dialog(bob, "Carol", "Wants a refund, <b>not</b> a replacement")
    expect(dlg.locator(".len-note")).to_have_text("40 / 1,000")
    screenshot(bob, "transfer-dialog")
    dlg.locator("button[type=submit]").click()
    expect(dlg).to_be_hidden(timeout=T)
    expect(bob.locator(".transfer-state.offered")).to_contain_text(
        "Transfer to Carol offered", timeout=T
    )
    expect(bob.locator(".chat-head .transfer")).to_be_disabled()

    # Carol's card: who offers it, the note (as text), the visitor's first words.
    card = carol.locator(".tcard", has_text="Tom")
    expect(card.locator(".qfrom")).to_have_text("From Bob to you", timeout=T)
    expect(card.locator(".tnote")).to_have_text("Wants a refund, <b>not</b> a replacement")
    expect(card.locator(".qmsg")).to_have_text("My parcel arrived broken")
    settled(card)
    screenshot(carol, "transfer-offered")
    card.locator(".accept").click()
    expect(carol.locator(".tab.on", has_text="Tom")).to_be_visible(timeout=T)
    expect(card).to_be_hidden(timeout=T)

    # Carol has the whole transcript, both notes and the line that says what happened.
    for text in ("My parcel arrived broken", "Which item?", "The blue teapot"):
        expect(carol.locator(".bubble", has_text=text)).to_be_visible(timeout=T)
    expect(carol.locator(".note-item", has_text="order 1234")).to_be_visible()
    transfer_note = carol.locator(".note-item.transfer-note")
    expect(transfer_note.locator(".note-text")).to_have_text(
        "Wants a refund, <b>not</b> a replacement"
    )
    expect(transfer_note.locator(".note-head")).to_contain_text("Transfer note")
    expect(carol.locator(".sys", has_text="Transferred from Bob to you")).to_be_visible()
    write_in_console(carol, "Carol here: a refund is on its way")
    screenshot(carol, "transfer-accepted")

    # Bob's tab is read-only now, and says so.
    expect(bob.locator(".sys", has_text="Transferred from you to Carol")).to_be_visible(timeout=T)
    expect(bob.locator(".compose-note")).to_have_text("Carol has this chat.", timeout=T)
    expect(bob.locator(".transfer-state")).to_be_hidden()
    expect(bob.locator(".mode-reply")).to_have_count(0)
    screenshot(bob, "transfer-sender-after")

    # The visitor saw every message, Carol's too, and no note, with no gap in the sequence.
    v.ws.wait(
        lambda e: e.get("type") == "message" and "refund is on its way" in e.get("text", ""),
        what="Carol's reply",
    )
    events = v.ws.chat_events(chat_id)
    assert not [e for e in events if e["type"] == "note"]
    assert "chat_transferred" in [e["type"] for e in events]
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), seqs
    transcript = v.http.get(f"{server.url}/api/visitor/chats/{chat_id}").json()
    assert "order 1234" not in str(transcript) and "refund, <b>" not in str(transcript)
    assert bob.js_errors == [] and carol.js_errors == [] and dialogs == []


def test_a_declined_transfer_returns_to_the_sender(team, browser, dialogs):
    server = team
    bob = console_home(browser, server, dialogs, "bob")
    carol = console_home(browser, server, dialogs, "carol")
    _visitor(server, "Uma", "Can I change my address?")
    _accept(bob, "Uma")
    dlg = transfer_dialog(bob, "Carol")
    dlg.locator("button[type=submit]").click()
    card = carol.locator(".tcard", has_text="Uma")
    expect(card).to_be_visible(timeout=T)
    assert card.locator(".tnote").count() == 0
    card.locator(".decline").click()
    expect(card).to_be_hidden(timeout=T)

    state = bob.locator(".transfer-state.declined")
    expect(state).to_contain_text("Carol declined the transfer. The chat stays yours.", timeout=T)
    screenshot(bob, "transfer-declined")
    write_in_console(bob, "Yes: which address?")
    state.locator(".dismiss").click()
    expect(bob.locator(".transfer-state")).to_be_hidden()
    expect(bob.locator(".chat-head .transfer")).to_be_enabled()
    assert carol.locator(".tab", has_text="Uma").count() == 0
    assert bob.js_errors == [] and carol.js_errors == [] and dialogs == []


def test_a_chat_read_before_it_was_mine_gets_replies_once_accepted(team, browser, dialogs):
    """Looking at a waiting chat offers notes only; accepted, the same box sends replies."""
    server = team
    bob = console_home(browser, server, dialogs, "bob")
    v = server.visitor()
    ws = v.connect()
    chat_id = v.start_chat("Is the shop open on Sunday?", name="Vera")["chat"]["id"]
    bob.locator(f".chat-row[data-chat='{chat_id}']").click()
    box = bob.locator(".compose")
    expect(box).to_have_class(re.compile(r"\bnote\b"), timeout=T)
    expect(bob.locator(".compose-modes")).to_have_count(0)
    _accept(bob, "Vera")
    expect(bob.locator(".compose-modes")).to_be_visible(timeout=T)
    expect(box).not_to_have_class(re.compile(r"\bnote\b"))
    bob.locator(".compose-input").fill("Yes, from ten to four.")
    bob.locator(".compose-input").press("Enter")
    got = ws.wait(lambda e: e["type"] == "message" and e["from"] == "operator", what="the reply")
    assert got["text"] == "Yes, from ten to four."
    assert not [e for e in ws.events if e["type"] == "note"]
    assert bob.js_errors == [] and dialogs == []
