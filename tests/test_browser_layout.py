"""The console's layout at the widths operators work at, checked by machine (issue 10: "What the
operator and the visitor see", items 4 and 6).

At 1280, 1366 and 1920 px wide, with the longest names and states, the Visitors table shows the
whole of each visitor, state and action cell (``scrollWidth <= clientWidth``, nothing cut off
below either); a page title, URL or referrer may end in an ellipsis, and then its ``title``
shows it whole on hover; every action button lies inside the window. Widget settings' colour
fields are at least 90 px wide, take a typed colour, and keep clear of the preview.

Same harness as test_browser_monitor.py: Debian's Chromium under Playwright, the server in a
subprocess, visitors and other operators through the protocol clients of conftest.py.
Screenshots of every width go to ``test-artifacts/``.
"""

from __future__ import annotations

import requests
from browser_helpers import screenshot, sign_in, watched_page
from conftest import TIMEOUT, track, wait_for
from playwright.sync_api import expect

T = 20_000  # ms
WIDTHS = (1280, 1366, 1920)
#: The longest names the server takes ([limits] name_chars at its default, 100): a real one of
#: many words for the operator and a visitor, and one unbroken run of the widest letter. Each
#: shows whole, on as many lines as it takes; its row grows to hold it.
NAME_CHARS = 100
LONG_OPERATOR = (
    "Maximiliane Featherstonehaugh-Wolfeschlegelsteinhausen von H"
    "ohenzollern-Sigmaringen und Bayern, Snr."
)
LONG_VISITOR = (
    "Anastasia Konstantinopoulou-Papadimitriou de la Santisima Tr"
    "inidad y Montenegro-Llewellyns, Esquire."
)
WIDE_VISITOR = "W" * NAME_CHARS
assert len(LONG_OPERATOR) == len(LONG_VISITOR) == NAME_CHARS
LONG_TITLE = (
    "Organic Darjeeling First Flush 2026, Castleton Estate, 250 g loose-leaf tin "
    "\u2014 Bramble Tea Co."
)
LONG_URL = (
    "https://shop.example.com/catalogue/black-teas/darjeeling/first-flush/"
    "castleton-estate-2026-250g?utm_source=newsletter&utm_campaign=spring-2026"
)
SEARCH = "https://www.google.com/search?q=organic+darjeeling+first+flush+castleton+estate+tin"

#: Every cell of the rows on screen that is cut short, clipped or off screen, as text. The
#: visitor, state and action cells must show everything; the other cells may end in an
#: ellipsis when the element says it all in its `title`.
MEASURE = """() => {
  const whole = [".c-who", ".c-state", ".c-act"];
  const out = [];
  let above = null;
  const rows = [...document.querySelectorAll(".mon-row:not(.hidden)")];
  rows.sort((a, b) => a.getBoundingClientRect().top - b.getBoundingClientRect().top);
  for (const row of rows) {
    const r = row.getBoundingClientRect();
    if (above && r.top < above.bottom - 0.5)
      out.push(`rows overlap: ${above.top}-${above.bottom} and ${r.top}-${r.bottom}`);
    above = r;
  }
  const cut = (el) =>
    el.scrollWidth > el.clientWidth + 0.5 || el.scrollHeight > el.clientHeight + 1;
  for (const row of document.querySelectorAll(".mon-row:not(.hidden)")) {
    const id = row.getAttribute("data-visitor");
    const edge = row.getBoundingClientRect();
    for (const cell of row.querySelectorAll(".mon-c")) {
      const must = whole.some((s) => cell.matches(s));
      const c = cell.getBoundingClientRect();
      if (c.height && (c.top < edge.top - 0.5 || c.bottom > edge.bottom + 0.5))
        out.push(`#${id} ${cell.className}: ${c.height} px high, out of its ${edge.height} px row`);
      for (const el of [cell, ...cell.querySelectorAll("*")]) {
        const style = getComputedStyle(el);
        if (style.display === "none" || style.display === "inline" || el.closest("svg")) continue;
        if (!cut(el)) continue;
        const text = el.textContent;
        if (must || !(el.title || "").trim())
          out.push(`#${id} ${cell.className}: <${el.className}> "${text}" ` +
                   `${el.scrollWidth}x${el.scrollHeight} in ${el.clientWidth}x${el.clientHeight}`);
      }
    }
    for (const b of row.querySelectorAll(".c-act button:not(.hidden)")) {
      const r = b.getBoundingClientRect();
      const box = document.querySelector(".mon-scroll").getBoundingClientRect();
      if (r.left < 0 || r.right > innerWidth || r.right > box.right || r.width === 0)
        out.push(`#${id} button "${b.textContent}" at ${r.left}-${r.right} of ${innerWidth}`);
    }
  }
  const scroller = document.querySelector(".mon-scroll");
  if (scroller.scrollWidth > scroller.clientWidth)
    out.push(`the table scrolls sideways: ${scroller.scrollWidth} in ${scroller.clientWidth}`);
  return out;
}"""

#: The longest second line under a name: a returning visitor's, with chats before. The visits of
#: a visitor are counted from their cookie over days, so the test sets them in the rows the
#: console holds and redraws.
RETURNING_ROWS = """async (ids) => {
  const { store } = await import("/assets/console/store.js");
  for (const id of ids) {
    const r = store.state.visitors.get(id);
    r.visit_number = 12;
    r.previous_chats = 3;
  }
  store.touch("visitors");
}"""


def online(server, username):
    """An operator online through the protocol client: (client, its WebSocket)."""
    c = server.console(username)
    ws = c.connect()
    assert ws.request({"type": "status", "status": "online"})["type"] == "ack"
    return c, ws


def visitor_on(server, url=LONG_URL, title=LONG_TITLE, referrer=SEARCH):
    """A visitor with one tab open on a page: (client, its WebSocket)."""
    v = server.visitor()
    ws = v.connect()
    assert track(server, v.token, url, title, referrer).status_code == 204
    return v, ws


def test_visitors_table_fits_1280_to_1920_with_the_longest_names_and_states(
    server, browser, dialogs
):
    server.create_operator("maxi", display_name=LONG_OPERATOR)
    _maxi, maxi_ws = online(server, "maxi")
    _bob, bob_ws = online(server, "bob")

    # Chatting with the operator of the longest name; waiting; invited; declined; browsing.
    chatting, _ = visitor_on(server)
    chat = chatting.start_chat("Is the 2026 flush in stock?", name=LONG_VISITOR)["chat"]
    assert maxi_ws.request({"type": "accept", "chat_id": chat["id"]})["type"] == "ack"
    waiting, _ = visitor_on(server)
    waiting.start_chat("Hello?", name=WIDE_VISITOR)
    invited, _ = visitor_on(server)
    assert bob_ws.request({"type": "invite", "visitor_id": invited.visitor_id})["type"] == "ack"
    declined, declined_ws = visitor_on(server)
    assert bob_ws.request({"type": "invite", "visitor_id": declined.visitor_id})["type"] == "ack"
    inv = declined_ws.wait(lambda e: e["type"] == "invitation", what="the invitation")
    answer = declined_ws.request({"type": "decline_invitation", "invitation_id": inv["id"]})
    assert answer["type"] == "ack", answer
    browsing, _ = visitor_on(server)
    ids = [v.visitor_id for v in (chatting, waiting, invited, declined, browsing)]

    admin = sign_in(watched_page(browser, dialogs, width=WIDTHS[0], height=900), server, "admin")
    expect(admin.locator(".mon-row:not(.hidden)")).to_have_count(len(ids), timeout=T)
    chatting_row = admin.locator(f".mon-row[data-visitor='{chatting.visitor_id}']")
    expect(chatting_row.locator(".pill")).to_have_text(f"Chatting with {LONG_OPERATOR}", timeout=T)
    declined_row = admin.locator(f".mon-row[data-visitor='{declined.visitor_id}']")
    expect(declined_row.locator(".inv")).to_have_text("declined the invitation", timeout=T)
    invited_row = admin.locator(f".mon-row[data-visitor='{invited.visitor_id}']")
    expect(invited_row.locator(".pill")).to_have_text("Invited", timeout=T)
    expect(admin.locator(".pill", has_text="Waiting for a chat")).to_have_count(1)
    expect(admin.locator(".c-who .vid", has_text=LONG_VISITOR)).to_have_count(1, timeout=T)
    expect(admin.locator(".c-who .vid", has_text=WIDE_VISITOR)).to_have_count(1, timeout=T)
    admin.evaluate(RETURNING_ROWS, ids)
    expect(admin.locator(".c-who .l2", has_text="3 chats before")).to_have_count(
        len(ids), timeout=T
    )

    for width in WIDTHS:
        admin.set_viewport_size({"width": width, "height": 900})
        admin.evaluate("() => new Promise((done) => requestAnimationFrame(() => done()))")
        problems = admin.evaluate(MEASURE)
        screenshot(admin, f"layout-visitors-{width}")
        assert problems == [], f"at {width} px:\n" + "\n".join(problems)
        # Cut-short titles and URLs show whole on hover.
        link = chatting_row.locator(".page-link")
        assert LONG_TITLE in link.get_attribute("title")
        assert LONG_URL in link.get_attribute("title")
        assert chatting_row.locator(".c-page .l2").get_attribute("title") == LONG_URL
        # The buttons work where they are: Invite opens its dialog.
        admin.locator(f".mon-row[data-visitor='{browsing.visitor_id}'] button.invite").click()
        dialog = admin.locator("dialog.dialog")
        expect(dialog).to_be_visible(timeout=T)
        dialog.locator("button", has_text="Cancel").click()
        expect(dialog).to_have_count(0, timeout=T)
    assert admin.js_errors == []
    assert dialogs == []


def test_widget_settings_colour_fields_are_wide_typeable_and_clear_of_the_preview(
    server, browser, dialogs
):
    admin = sign_in(watched_page(browser, dialogs, width=WIDTHS[0], height=900), server, "admin")
    admin.click("[data-nav=widget]")
    fields = [admin.locator(f"input[name={k}]:not([type=color])") for k in ("color", "color_text")]
    expect(fields[0]).to_be_visible(timeout=T)
    preview = admin.locator(".settings-preview")
    head = admin.locator(".wprev-head")
    for width in WIDTHS:
        admin.set_viewport_size({"width": width, "height": 900})
        admin.evaluate("() => new Promise((done) => requestAnimationFrame(() => done()))")
        shown = preview.bounding_box()
        for field in fields:
            box = field.bounding_box()
            assert box["width"] >= 90, (width, box)
            apart = (
                box["x"] + box["width"] <= shown["x"]
                or shown["x"] + shown["width"] <= box["x"]
                or box["y"] + box["height"] <= shown["y"]
                or shown["y"] + shown["height"] <= box["y"]
            )
            assert apart, (width, box, shown)
            # The whole of a typed colour is in sight in it.
            assert field.evaluate("(el) => el.scrollWidth <= el.clientWidth"), width
        # A brand colour can be typed, not only picked: the preview takes it.
        fields[0].fill("")
        fields[0].press_sequentially("#0f766e")
        expect(head).to_have_css("background-color", "rgb(15, 118, 110)", timeout=T)
        fields[1].fill("")
        fields[1].press_sequentially("#fefce8")
        expect(head).to_have_css("color", "rgb(254, 252, 232)", timeout=T)
        screenshot(admin, f"layout-widget-settings-{width}")
        fields[0].fill("")
        fields[1].fill("")
    # Saved as typed.
    fields[0].press_sequentially("#0f766e")
    admin.locator("form.settings button[type=submit]").click()

    def saved():
        r = requests.get(server.url + "/api/widget/config", timeout=TIMEOUT)
        return r.json()["appearance"].get("color") == "#0f766e"

    wait_for(saved, what="the typed colour saved")
    assert admin.js_errors == []
    assert dialogs == []
