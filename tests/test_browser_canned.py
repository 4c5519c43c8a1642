"""Canned replies in a real browser (issue 12): the operator types ``/greet`` and Tab in the
composer, the reply goes out with the placeholders filled as text — a visitor named
``<b>Ann</b>`` reads those characters, never bold — and Enter still sends when no list is open.
The visitor is on a host page of another origin; screenshots go to ``test-artifacts/``."""

from __future__ import annotations

from browser_helpers import (
    accepted_chat_page,
    screenshot,
    sign_in,
    watched_page,
)
from playwright.sync_api import expect

T = 20_000  # ms
NAME = "<b>Ann</b>"


def test_a_shortcut_inserts_the_reply_with_the_names_as_text(server, host, browser, dialogs):
    bob_api, admin_api = server.console("bob"), server.console("admin")
    for client, body in (
        (bob_api, {"shortcut": "greet", "text": "Hi {visitor}, I'm {operator}. <i>Welcome!</i>"}),
        (bob_api, {"shortcut": "bye", "text": "Bye {visitor}!"}),
        (admin_api, {"shortcut": "thanks", "text": "Thanks for waiting.", "shared": True}),
    ):
        r = client.post("/api/console/canned", body)
        assert r.status_code == 201, r.text
    me = bob_api.operator["display_name"]

    op = sign_in(watched_page(browser, dialogs), server, "bob")
    ann = accepted_chat_page(browser, dialogs, op, host.page("canned", "Shop"), name=NAME)

    box = op.locator(".compose-input")
    items = op.locator(".canned-list:not(.hidden) .canned-item")
    # "/" opens the list of what I may use; typing narrows it; Escape closes it.
    box.press_sequentially("/")
    expect(items).to_have_count(3, timeout=T)
    expect(items.first).to_contain_text(f"Bye {NAME}!")  # the preview is filled, as text
    box.press_sequentially("t")  # /thanks first (it starts so), then /greet (it contains t)
    expect(items).to_have_count(2)
    expect(items.first).to_contain_text("/thanks")
    box.press_sequentially("h")
    expect(items).to_have_count(1)
    expect(items.first).to_contain_text("/thanks")
    expect(items.first.locator(".canned-tag")).to_have_text("Shared")
    box.press("Escape")
    expect(op.locator(".canned-list")).to_be_hidden()
    box.fill("")

    # /greet + Tab: the shortcut becomes the filled text, which Enter sends.
    box.press_sequentially("/gr")
    expect(items).to_have_count(1, timeout=T)
    screenshot(op, "canned-autocomplete")
    box.press("Tab")
    filled = f"Hi {NAME}, I'm {me}. <i>Welcome!</i>"
    expect(box).to_have_value(filled)
    expect(op.locator(".canned-list")).to_be_hidden()
    box.press("Enter")
    expect(box).to_have_value("")
    bubble = ann.locator(".cl-them .cl-bubble", has_text=filled)
    expect(bubble).to_be_visible(timeout=T)
    expect(bubble.locator("b, i")).to_have_count(0)
    screenshot(ann, "canned-visitor")

    # A shortcut mid-sentence, picked with the arrow keys and Enter; then Enter sends as ever.
    box.press_sequentially("OK /")
    expect(items).to_have_count(3, timeout=T)
    box.press("ArrowDown")
    box.press("ArrowDown")
    expect(op.locator(".canned-item.on")).to_contain_text("/thanks")
    box.press("Enter")
    expect(box).to_have_value("OK Thanks for waiting.")
    box.press("Enter")
    expect(ann.locator(".cl-bubble", has_text="OK Thanks for waiting.")).to_be_visible(timeout=T)
    # A click picks too.
    box.press_sequentially("/b")
    op.locator(".canned-item", has_text="/bye").click()
    expect(box).to_have_value(f"Bye {NAME}!")
    box.fill("")

    # The view: my replies and the shared one (not mine to edit); a duplicate is named.
    op.click(".nav-item[data-nav=canned]")
    rows = op.locator("table.canned tbody tr")
    expect(rows).to_have_count(3, timeout=T)
    expect(op.locator("tr[data-canned=thanks] .edit")).to_have_count(0)
    expect(op.locator("tr[data-canned=greet] .canned-for")).to_have_text("Only me")
    op.click(".add-canned")
    dialog = op.locator("dialog.dialog")
    dialog.locator("input[name=shortcut]").fill("greet")
    dialog.locator("textarea[name=text]").fill("Hello again")
    expect(dialog.locator("select[name=for]")).to_have_count(0)  # not an administrator
    dialog.locator("button[type=submit]").click()
    expect(dialog.locator("[data-field=shortcut] .field-error")).to_have_text(
        "Another reply already has this shortcut.", timeout=T
    )
    dialog.locator("input[name=shortcut]").fill("again")
    dialog.locator("button[type=submit]").click()
    expect(rows).to_have_count(4, timeout=T)
    screenshot(op, "canned-view")
    assert not op.js_errors and not ann.js_errors, (op.js_errors, ann.js_errors)


def test_administrators_share_replies_with_a_department(server, browser, dialogs):
    admin_api = server.console("admin")
    dept = admin_api.post("/api/console/departments", {"key": "sales", "name": "Sales"})
    assert dept.status_code == 201, dept.text
    admin = sign_in(watched_page(browser, dialogs), server, "admin", online=False)
    admin.click(".nav-item[data-nav=canned]")
    expect(admin.locator(".panel .empty")).to_be_visible(timeout=T)
    admin.click(".add-canned")
    dialog = admin.locator("dialog.dialog")
    dialog.locator("input[name=shortcut]").fill("price")
    dialog.locator("textarea[name=text]").fill("Our prices are on the pricing page, {visitor}.")
    dialog.locator("select[name=for]").select_option(label="Sales (its members, in its chats)")
    screenshot(admin, "canned-dialog")
    dialog.locator("button[type=submit]").click()
    expect(admin.locator("tr[data-canned=price] .canned-for")).to_have_text("Sales only", timeout=T)
    listed = admin_api.get("/api/console/canned").json()["replies"]
    assert [(r["shortcut"], r["shared"], r["department_id"], r["usable"]) for r in listed] == [
        ("price", True, dept.json()["department"]["id"], False)
    ]
    assert not admin.js_errors, admin.js_errors
