"""Files in a chat, in real Chromium (docs/PROTOCOL.md §7.10): the visitor's widget on a host
site of another origin and the operator's console each attach a file with the paperclip; it
reaches the other side, where an image previews (really loaded, not just an <img>) and any
other file is a card whose link downloads the same bytes. An upload shows its progress and can
be cancelled, leaving nothing; a file over the limit is refused before it is sent, naming the
limit; a type the server does not accept is refused in words; a hostile file name stays text.

Test files are made here (a PNG from zlib and struct, a tiny PDF); uploads are slowed with
Chromium's own network throttling (DevTools protocol), never by changing our code.
"""

from __future__ import annotations

import os
import re

import requests
from browser_helpers import (
    accepted_chat_page,
    assert_quiet,
    screenshot,
    sign_in,
    watch,
    watched_page,
)
from conftest import PASSWORD, TIMEOUT, png, wait_for
from playwright.sync_api import expect

T = 20_000  # ms
XSS = "<img src=x onerror=alert(1)>"


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def payload(name: str, data: bytes, mime: str = "application/octet-stream") -> dict:
    return {"name": name, "mimeType": mime, "buffer": data}


def attach(page, button: str, file: dict) -> None:
    """Click the paperclip and choose ``file`` in the file chooser it opens."""
    with page.expect_file_chooser() as chooser:
        page.click(button)
    chooser.value.set_files(file)


def loaded_width(img) -> int:
    """Wait until the image has really loaded (decoded pixels); its natural width."""
    expect(img).to_be_visible(timeout=T)
    return wait_for(
        lambda: img.evaluate("i => i.complete && i.naturalWidth"), what="the image to load"
    )


def start(browser, server, host, dialogs, name: str):
    """Bob in the console and a visitor in a chat he has accepted: (console, widget page)."""
    op = sign_in(watched_page(browser, dialogs), server, "bob")
    page = accepted_chat_page(
        browser,
        dialogs,
        op,
        host.page("shop", "Tea shop", "<p>Green, black and white teas.</p>"),
        name,
        "Hello, I have a question about my order",
    )
    expect(page.locator(".cl-title")).to_have_text("Bob", timeout=T)
    return op, page


def test_files_travel_both_ways_and_images_preview_on_both_sides(
    server, host, browser, dialogs, tmp_path
):
    op, page = start(browser, server, host, dialogs, "Ann")

    # The visitor attaches a photo: it previews on both sides, really loaded.
    attach(page, ".cl-attach", payload("parcel.png", png(320, 200), "image/png"))
    assert loaded_width(page.locator(".cl-me .cl-file-img img")) == 320
    seen = op.locator(".msg.them .file-img img")
    assert loaded_width(seen) == 320
    expect(seen).to_have_attribute("alt", "parcel.png")

    # ...and a document: a card with its name, its size and a link that downloads it.
    invoice = "Invoice for the spring order with every item and the shipping costs, March.pdf"
    attach(page, ".cl-attach", payload(invoice, PDF, "application/pdf"))
    doc = op.locator(".msg.them .file-doc", has_text="Invoice for the spring")
    expect(doc.locator(".file-name")).to_have_text(invoice, timeout=T)
    expect(doc.locator(".file-size")).to_have_text(f"{len(PDF)} B")
    expect(doc).to_have_attribute("download", invoice)
    expect(doc).to_have_attribute("href", re.compile(r"/api/files/"), timeout=T)
    with op.expect_download() as download:
        doc.click()
    saved = tmp_path / "download.pdf"
    download.value.save_as(saved)
    assert saved.read_bytes() == PDF
    assert download.value.suggested_filename == invoice

    # The operator answers with a picture and a text file through the console's paperclip.
    attach(op, ".compose .attach", payload("label.png", png(240, 160), "image/png"))
    assert loaded_width(op.locator(".msg.me .file-img img")) == 240
    shown = page.locator(".cl-them .cl-file-img img")
    assert loaded_width(shown) == 240
    notes = b"Return label: print it and stick it on the parcel.\n"
    attach(op, ".compose .attach", payload("return-notes.txt", notes, "text/plain"))
    card = page.locator(".cl-them .cl-file-doc", has_text="return-notes.txt")
    expect(card.locator(".cl-file-size")).to_have_text(f"{len(notes)} B", timeout=T)
    expect(card).to_have_attribute("href", re.compile(r"/api/files/"), timeout=T)
    got = requests.get(card.get_attribute("href"), timeout=TIMEOUT)
    assert got.status_code == 200 and got.content == notes

    # A click on a preview opens the full-size image in a new tab.
    with page.context.expect_page() as tab:
        page.click(".cl-them .cl-file-img")
    assert "/api/files/" in tab.value.url
    tab.value.close()

    # Nothing of any upload is left pending on either side; screenshots of both.
    expect(page.locator(".cl-upload")).to_have_count(0)
    expect(op.locator(".upload")).to_have_count(0)
    page.locator(".cl-log").evaluate("l => (l.scrollTop = l.scrollHeight)")
    screenshot(page, "files-widget")
    screenshot(op, "files-console")

    # The transcript, opened again from History after the chat ended, shows them too.
    op.locator(".chat-head .end-chat").click()
    op.locator(".confirm-end").click()
    expect(page.locator(".cl-ended")).to_be_visible(timeout=T)
    op.locator(".tab.on .tab-close").click()
    op.click("[data-nav=history]")
    op.locator(".history-list tr", has_text="Ann").first.click()
    assert loaded_width(op.locator(".msg.them .file-img img")) == 320
    assert loaded_width(op.locator(".msg.me .file-img img")) == 240
    expect(op.locator(".file-doc .file-name", has_text=invoice)).to_be_visible()
    expect(op.locator(".compose .attach")).to_have_count(0)  # an ended chat takes no files
    screenshot(op, "files-console-transcript")
    assert_quiet(dialogs, op, page)


def test_an_upload_shows_its_progress_and_a_cancelled_one_leaves_nothing(
    server, host, browser, dialogs
):
    op, page = start(browser, server, host, dialogs, "Pia")
    # Chromium's own throttling (as in its DevTools), so the upload takes a few seconds.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    slow = {"offline": False, "latency": 20, "downloadThroughput": -1}
    cdp.send("Network.emulateNetworkConditions", {**slow, "uploadThroughput": 128 * 1024})
    big = os.urandom(2 * 1024 * 1024)  # 16 s at that pace: the cancel comes long before the end

    attach(page, ".cl-attach", payload("holiday-video.bin", big))
    upload = page.locator(".cl-upload")
    state = upload.locator(".cl-time")
    expect(upload.locator(".cl-file-name")).to_have_text("holiday-video.bin", timeout=T)
    expect(state).to_contain_text(re.compile(r"Sending… ([1-9]|[1-4]\d)%"), timeout=T)
    width = upload.locator(".cl-bar i").evaluate("b => b.getBoundingClientRect().width")
    assert width > 0
    screenshot(page, "files-widget-progress")
    upload.get_by_role("button", name="Cancel").click()
    expect(upload).to_have_count(0)

    # Nothing arrived: a message sent afterwards is the next thing the operator gets. (Still
    # throttled: lifted at once, what is left of the upload could go out before Chromium has
    # cancelled it.)
    page.locator(".cl-compose-input").fill("Never mind the video")
    page.locator(".cl-compose-input").press("Enter")
    expect(op.locator(".msg.them .bubble", has_text="Never mind")).to_be_visible(timeout=T)
    expect(op.locator(".bubble.file")).to_have_count(0)
    expect(page.locator(".cl-bubble.cl-file")).to_have_count(0)

    # Slowed again, one that is let through arrives after its progress showed.
    cdp.send("Network.emulateNetworkConditions", {**slow, "uploadThroughput": 256 * 1024})
    attach(page, ".cl-attach", payload("holiday-video.bin", big[: 768 * 1024]))
    expect(state).to_contain_text(re.compile(r"Sending… \d+%"), timeout=T)
    card = op.locator(".msg.them .file-doc", has_text="holiday-video.bin")
    expect(card.locator(".file-size")).to_have_text("768 KB", timeout=20_000)
    expect(page.locator(".cl-upload")).to_have_count(0, timeout=T)
    cdp.detach()

    # The console shows its own upload's progress the same way.
    cdp = op.context.new_cdp_session(op)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {**slow, "uploadThroughput": 128 * 1024})
    attach(op, ".compose .attach", payload("catalogue.bin", big))
    mine = op.locator(".upload")
    expect(mine.locator(".msg-time")).to_contain_text(
        re.compile(r"Sending… ([1-9]|[1-4]\d)%"), timeout=T
    )
    screenshot(op, "files-console-progress")
    mine.get_by_role("button", name="Cancel").click()
    expect(mine).to_have_count(0)
    cdp.detach()
    assert_quiet(dialogs, op, page)


def test_a_file_over_the_limit_or_of_a_refused_type_is_refused_in_words(
    make_server, seeded_database, host_for, browser, dialogs
):
    server = make_server(
        config={"files": {"max_size": "64KiB", "types": "image/png, image/jpeg, application/pdf"}},
        database=seeded_database,
    )
    host = host_for(server)
    op, page = start(browser, server, host, dialogs, "Max")

    # Over the limit: refused before anything is sent, naming the limit; nothing in the chat.
    attach(page, ".cl-attach", payload("scan.png", png(300, 300) + os.urandom(70_000)))
    note = page.locator(".cl-file-note")
    expect(note).to_contain_text("files can be at most 64 KB", timeout=T)
    expect(note).to_contain_text("scan.png")
    expect(page.locator(".cl-upload")).to_have_count(0)
    screenshot(page, "files-widget-too-large")
    attach(op, ".compose .attach", payload("brochure.pdf", PDF + os.urandom(80_000)))
    expect(op.locator(".toast.error")).to_contain_text("files can be at most 64 KB", timeout=T)
    expect(op.locator(".upload")).to_have_count(0)

    # A type the server does not take (it looks at the content, not the name): its words.
    attach(page, ".cl-attach", payload("notes.png", b"Just some text, not a picture.\n"))
    failed = page.locator(".cl-upload.cl-failed")
    expect(failed.locator(".cl-time")).to_contain_text("not accepted", timeout=T)
    expect(failed.locator(".cl-time")).to_contain_text("PNG, JPEG, PDF")
    expect(failed.get_by_role("button", name="Retry")).to_be_hidden()
    screenshot(page, "files-widget-type-refused")
    failed.get_by_role("button", name="Remove").click()
    expect(failed).to_have_count(0)
    attach(op, ".compose .attach", payload("price-list.png", b"Green tea: 4.50\n"))
    refused = op.locator(".upload.failed .msg-time")
    expect(refused).to_contain_text(
        "Not sent: text files are not accepted. Accepted: PNG, JPEG, PDF.", timeout=T
    )
    screenshot(op, "files-console-type-refused")
    op.locator(".upload.failed").get_by_role("button", name="Remove").click()
    expect(op.locator(".upload")).to_have_count(0)

    # Nothing reached either side; the chat goes on.
    page.locator(".cl-compose-input").fill("I will send a smaller one")
    page.locator(".cl-compose-input").press("Enter")
    expect(op.locator(".msg.them .bubble", has_text="smaller one")).to_be_visible(timeout=T)
    expect(op.locator(".bubble.file")).to_have_count(0)
    expect(page.locator(".cl-bubble.cl-file")).to_have_count(0)
    chat_id = int(op.locator(".chat-view").get_attribute("data-chat"))
    console = server.console("bob", PASSWORD)
    events = console.get(f"/api/console/chats/{chat_id}").json()["events"]
    assert [e for e in events if e["type"] == "file"] == []
    assert_quiet(dialogs, op, page)


def test_a_hostile_file_name_is_shown_as_text(server, host, browser, dialogs):
    op, page = start(browser, server, host, dialogs, "Eve")
    attach(page, ".cl-attach", payload(XSS + ".txt", b"hello\n", "text/plain"))
    attach(page, ".cl-attach", payload(XSS + ".png", png(64, 64), "image/png"))
    attach(op, ".compose .attach", payload(XSS + ".pdf", PDF, "application/pdf"))

    expect(op.locator(".msg.them .file-name")).to_have_text(XSS + ".txt", timeout=T)
    assert loaded_width(op.locator(".msg.them .file-img img")) == 64
    expect(op.locator(".msg.them .file-img img")).to_have_attribute("alt", XSS + ".png")
    expect(page.locator(".cl-them .cl-file-name")).to_have_text(XSS + ".pdf", timeout=T)
    expect(page.locator(".cl-me .cl-file-name")).to_have_text(XSS + ".txt")
    # The only images are the previews; nothing was made from a name.
    for p, scope in ((op, ".log"), (page, ".cl-log")):
        assert p.locator(f"{scope} img[src=x]").count() == 0
        assert p.locator(f"{scope} img").count() == 1
    screenshot(page, "files-widget-hostile-name")
    assert_quiet(dialogs, op, page)


def test_an_upload_broken_by_a_restart_is_retried_with_the_same_client_id(
    server, host, browser, dialogs
):
    op, page = start(browser, server, host, dialogs, "Rita")
    posts = []
    page.on(
        "request",
        lambda r: r.method == "POST" and "/files?" in r.url and posts.append(r.url),
    )
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    slow = {"offline": False, "latency": 20, "downloadThroughput": -1}
    cdp.send("Network.emulateNetworkConditions", {**slow, "uploadThroughput": 64 * 1024})
    photo = png(200, 120) + os.urandom(400_000)  # (a PNG with trailing bytes still shows)

    # The server goes away while the photo is on its way: the upload says so, in words.
    attach(page, ".cl-attach", payload("shelf.png", photo, "image/png"))
    upload = page.locator(".cl-upload")
    expect(upload.locator(".cl-time")).to_contain_text(re.compile(r"Sending… [1-9]"), timeout=T)
    server.stop()
    expect(upload.locator(".cl-time")).to_contain_text("the connection failed", timeout=T)
    screenshot(page, "files-widget-upload-broken")
    server.start(server.port)
    expect(op.locator(".conn.connected")).to_be_visible(timeout=40_000)

    # Retry sends it again under the same client id; it arrives once, whole.
    cdp.send("Network.emulateNetworkConditions", {**slow, "uploadThroughput": -1})
    upload.get_by_role("button", name="Retry").click()
    assert loaded_width(op.locator(".msg.them .file-img img")) == 200
    expect(upload).to_have_count(0, timeout=T)
    expect(op.locator(".bubble.file")).to_have_count(1)
    assert len(posts) == 2
    ids = [re.search(r"client_id=([^&]+)", url).group(1) for url in posts]
    assert ids[0] == ids[1], ids
    cdp.detach()
    assert_quiet(dialogs, op, page)


def test_an_expired_file_link_is_asked_for_again(
    make_server, seeded_database, host_for, browser, dialogs
):
    server = make_server(config={"files": {"link_ttl": "2s"}}, database=seeded_database)
    op, page = start(browser, server, host_for(server), dialogs, "Ivy")
    attach(page, ".cl-attach", payload("crack.png", png(160, 90), "image/png"))
    preview = op.locator(".msg.them .file-img")
    assert loaded_width(preview.locator("img")) == 160
    old = preview.get_attribute("href")
    wait_for(
        lambda: (
            requests.get(server.url + old[len(server.url) :], timeout=TIMEOUT).status_code == 404
        ),
        what="the link to expire",
    )

    # Opening the expired preview full size asks for a new link first; the new tab shows it.
    with op.context.expect_page() as tab:
        preview.click()
    tab.value.wait_for_url(re.compile(r"/api/files/"), timeout=T)
    assert tab.value.url != old
    assert (
        wait_for(
            lambda: tab.value.evaluate("document.images[0] && document.images[0].naturalWidth"),
            what="the full-size image",
        )
        == 160
    )
    tab.value.close()

    # The widget, reloaded after the links expired, shows the picture again.
    page.reload()
    assert loaded_width(page.locator(".cl-me .cl-file-img img")) == 160
    assert_quiet(dialogs, op, page)


def test_the_pop_out_window_shows_and_sends_files_under_its_own_policy(
    server, host, browser, dialogs
):
    """The pop-out /chat page is the server's own, with a strict Content-Security-Policy:
    files.js, the links and the previews all work under it."""
    op, page = start(browser, server, host, dialogs, "Pete")
    attach(op, ".compose .attach", payload("map.png", png(150, 100), "image/png"))
    assert loaded_width(page.locator(".cl-them .cl-file-img img")) == 150
    with page.expect_popup() as info:
        page.click(".cl-popout")
    popup = watch(info.value, dialogs)
    assert loaded_width(popup.locator(".cl-them .cl-file-img img")) == 150
    attach(popup, ".cl-attach", payload("receipt.pdf", PDF, "application/pdf"))
    expect(op.locator(".msg.them .file-doc .file-name")).to_have_text("receipt.pdf", timeout=T)
    doc = popup.locator(".cl-me .cl-file-doc")
    expect(doc).to_have_attribute("href", re.compile(r"/api/files/"), timeout=T)
    with popup.expect_download() as download:  # same origin: the download attribute holds
        doc.click()
    assert download.value.suggested_filename == "receipt.pdf"
    screenshot(popup, "files-pop-out")
    assert_quiet(dialogs, op, page, popup)


#: Put a PNG (its bytes) on the real clipboard, as a screenshot tool does, and text with it
#: when given, as an office program does.
COPY_PNG = """async ([bytes, text]) => {
  const item = { "image/png": new Blob([new Uint8Array(bytes)], { type: "image/png" }) };
  if (text) item["text/plain"] = new Blob([text], { type: "text/plain" });
  await navigator.clipboard.write([new ClipboardItem(item)]);
}"""


def test_pasted_and_dropped_images_are_sent_but_not_into_a_note(server, host, browser, dialogs):
    op, page = start(browser, server, host, dialogs, "Lou")
    op.context.grant_permissions(["clipboard-read", "clipboard-write"])

    # A screenshot pasted from the clipboard (Ctrl+V in the reply box) is sent as a file.
    op.evaluate(COPY_PNG, [list(png(180, 100)), ""])
    op.locator(".compose-input").focus()
    op.keyboard.press("Control+V")
    assert loaded_width(page.locator(".cl-them .cl-file-img img")) == 180
    expect(op.locator(".compose-input")).to_have_value("")
    # Text copied from an office program carries a picture of itself too: the text is pasted.
    op.evaluate(COPY_PNG, [list(png(40, 20)), "Your order ships on Monday."])
    op.keyboard.press("Control+V")
    expect(op.locator(".compose-input")).to_have_value("Your order ships on Monday.")
    expect(op.locator(".upload")).to_have_count(0)
    expect(op.locator(".msg.me .bubble.file")).to_have_count(1)
    op.locator(".compose-input").fill("")

    # A file dragged from the desktop onto the chat is sent too.
    def drop(name: str, data: bytes, mime: str) -> None:
        files = op.evaluate_handle(
            """([name, bytes, mime]) => {
              const t = new DataTransfer();
              t.items.add(new File([new Uint8Array(bytes)], name, { type: mime }));
              return t;
            }""",
            [name, list(data), mime],
        )
        op.dispatch_event(".chat-main .log", "dragover", {"dataTransfer": files})
        expect(op.locator(".chat-main.dropping")).to_have_count(1)
        op.dispatch_event(".chat-main .log", "drop", {"dataTransfer": files})
        expect(op.locator(".chat-main.dropping")).to_have_count(0)

    drop("floor-plan.png", png(120, 120), "image/png")
    expect(page.locator(".cl-them .cl-file-img img")).to_have_count(2, timeout=T)
    assert loaded_width(page.locator(".cl-them .cl-file-img img").last) == 120

    # Writing a note, a dropped file is refused: the visitor would see it, the note would not.
    op.locator(".mode-note").click()
    expect(op.locator(".compose .attach")).to_be_hidden()
    files = op.evaluate_handle(
        """() => {
          const t = new DataTransfer();
          t.items.add(new File(["secret"], "internal.txt", { type: "text/plain" }));
          return t;
        }"""
    )
    op.dispatch_event(".chat-main .log", "drop", {"dataTransfer": files})
    expect(op.locator(".toast.error")).to_contain_text("switch to Reply", timeout=T)
    expect(op.locator(".upload")).to_have_count(0)
    expect(op.locator(".msg.me .bubble.file")).to_have_count(2)

    # The widget takes a pasted image as well.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.evaluate(COPY_PNG, [list(png(90, 60)), ""])
    page.locator(".cl-compose-input").focus()
    page.keyboard.press("Control+V")
    assert loaded_width(op.locator(".msg.them .file-img img")) == 90
    assert_quiet(dialogs, op, page)
