"""Files in a chat over real HTTP (docs/PROTOCOL.md §7.10): both ways, served inert, hostile
uploads, the limits named in the error with nothing kept, links only for the chat's parties,
a stalled upload, and backup then restore into an empty data directory."""

from __future__ import annotations

import shutil
import socket

import pytest
import requests
from common import upload
from conftest import TIMEOUT, wait_for
from conftest import png as png_image

from livesupport.files import PIECE
from livesupport.protocol import ApiError


def png(width: int = 3, height: int = 2) -> bytes:
    return png_image(width, height)


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(document.cookie)</script></svg>'
HTML = b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>"


def fetch(client, file_id: int, role="visitor") -> requests.Response:
    """The file through a fresh link, as its party fetches it."""
    link = client.http.get(f"{client.server.url}/api/{role}/files/{file_id}", timeout=TIMEOUT)
    assert link.status_code == 200, link.text
    return requests.get(client.server.url + link.json()["url"], timeout=TIMEOUT)


def db_count(server, sql: str) -> int:
    return server.rows(sql)[0][0]


def chat_with_bob(server):
    bob, bob_ws = server.online("bob")
    ann = server.visitor()
    ann.connect()
    chat_id = ann.start_chat("I have a photo of the damage")["chat"]["id"]
    assert bob_ws.request({"type": "accept", "chat_id": chat_id})["type"] == "ack"
    return bob, bob_ws, ann, chat_id


def test_a_file_travels_both_ways_and_an_image_is_served_inline(server):
    bob, bob_ws, ann, chat_id = chat_with_bob(server)
    image = png()
    r = upload(ann, chat_id, image, name="damage.png", client_id="p1")
    assert r.status_code == 201, r.text
    sent = r.json()["file"]
    assert sent["type"] == "file" and sent["from"] == "visitor"
    assert sent["file"] | {"id": 0} == {
        "id": 0,
        "name": "damage.png",
        "size": len(image),
        "type": "image/png",
        "image": True,
    }
    got = bob_ws.wait(lambda e: e["type"] == "file", what="the file event")
    assert got["file"] == sent["file"] and got["seq"] == sent["seq"]
    served = fetch(bob, got["file"]["id"], role="console")
    assert served.status_code == 200 and served.content == image
    assert served.headers["Content-Type"] == "image/png"
    assert served.headers["Content-Disposition"].startswith("inline;")
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in served.headers["Content-Security-Policy"]
    # The repeat of an upload returns the first and keeps nothing new.
    again = upload(ann, chat_id, b"something else", name="x.png", client_id="p1")
    assert again.status_code == 200 and again.json()["file"] == sent
    # The operator sends a document back; it is only ever downloaded.
    r = upload(bob, chat_id, PDF, name="Invoice 42.pdf", client_id="b1", role="console")
    assert r.status_code == 201, r.text
    doc = ann.ws.wait(lambda e: e["type"] == "file" and e["from"] == "operator")
    assert doc["operator"]["name"] == "Bob" and doc["file"]["type"] == "application/pdf"
    served = fetch(ann, doc["file"]["id"])
    assert served.content == PDF
    assert served.headers["Content-Type"] == "application/octet-stream"
    assert served.headers["Content-Disposition"] == (
        "attachment; filename=\"Invoice_42.pdf\"; filename*=UTF-8''Invoice%2042.pdf"
    )
    events = ann.http.get(f"{server.url}/api/visitor/chats/{chat_id}", timeout=TIMEOUT).json()
    assert [e["type"] for e in events["events"]].count("file") == 2
    assert db_count(server, "SELECT COUNT(*) FROM file") == 2


HOSTILE = [
    # (what is sent, its name, a declared type, the type found)
    (SVG, "cat.svg", "image/svg+xml", "image/svg+xml"),
    (HTML, "photo.png", "image/png", "text/html"),
    (b"MZ\x90\x00\x03" + bytes(200), "../../x", "image/jpeg", "application/octet-stream"),
    (png(), "<img src=x onerror=alert(1)>.png", "text/html", "image/png"),
    (b"just words\n", "notes.exe", "application/x-msdownload", "text/plain"),
]


@pytest.mark.parametrize(("data", "name", "declared", "found"), HOSTILE)
def test_hostile_uploads_are_stored_inert_and_served_as_attachments(
    server, data, name, declared, found
):
    bob, bob_ws, ann, chat_id = chat_with_bob(server)
    r = upload(ann, chat_id, data, name=name, headers={"Content-Type": declared})
    assert r.status_code == 201, r.text
    f = r.json()["file"]["file"]
    assert f["type"] == found  # from the content, never the name or the declared type
    assert f["image"] is (found == "image/png")
    assert "/" not in f["name"] and "\\" not in f["name"]
    if name == "../../x":
        assert f["name"] == "x"
    if name.startswith("<img"):
        assert f["name"] == name  # kept as text; clients show it as text
    served = fetch(bob, f["id"], role="console")
    assert served.content == data
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert served.headers["Content-Security-Policy"] == "default-src 'none'; sandbox"
    if found == "image/png":
        assert served.headers["Content-Type"] == "image/png"
    else:
        assert served.headers["Content-Type"] == "application/octet-stream"
        assert served.headers["Content-Disposition"].startswith("attachment;")
    assert "<" not in served.headers["Content-Disposition"]


def _raw_request(server, head: str, body_parts=(), read=True) -> bytes:
    """One HTTP request over a plain socket; returns what the server answered."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as s:
        s.sendall(head.encode())
        for part in body_parts:
            try:
                s.sendall(part)
            except OSError:
                break  # the server answered and closed: the rest is not wanted
        out = b""
        while read:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            out += data
        return out


def test_files_over_the_limit_are_refused_naming_it_and_nothing_is_kept(make_server):
    server = make_server({"files": {"max_size": "100KiB"}})
    server.create_operator("bob")
    bob, bob_ws, ann, chat_id = chat_with_bob(server)
    path = f"/api/visitor/chats/{chat_id}/files?name=big.bin&client_id=big"
    # A declared length over the limit is answered from the headers, before any body.
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ann.token}\r\n"
        f"Content-Length: {200 * 1024}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as s:
        s.sendall(head.encode())
        answer = s.recv(65536)
    assert answer.startswith(b"HTTP/1.1 413"), answer
    assert b'"file_too_large"' in answer and b'"limit": "max_size"' in answer
    assert b"102400" in answer
    # A chunked body is cut off as soon as it passes the limit.
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ann.token}\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = 32 * 1024
    chunks = [f"{piece:x}\r\n".encode() + b"a" * piece + b"\r\n" for _ in range(8)]
    answer = _raw_request(server, head, chunks + [b"0\r\n\r\n"])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"file_too_large"' in answer and b"max_size" in answer
    # The same through a client library, both ways; an empty file is refused too.
    r = upload(ann, chat_id, b"x" * (101 * 1024))
    assert r.status_code == 413 and r.json()["limit"] == "max_size"
    r = upload(ann, chat_id, iter([b"y" * 60 * 1024, b"y" * 60 * 1024]), client_id="u2")
    assert r.status_code == 413 and r.json()["error"] == "file_too_large"
    r = upload(ann, chat_id, b"", client_id="u3")
    assert r.status_code == 400 and r.json()["field"] == "body"
    # Nothing of any of them was kept, and the chat goes on.
    assert db_count(server, "SELECT COUNT(*) FROM file") == 0
    assert db_count(server, "SELECT COUNT(*) FROM file_chunk") == 0
    assert upload(ann, chat_id, b"z" * 1000, client_id="ok").status_code == 201
    assert ann.say(chat_id, "still here")["type"] == "ack"


def test_file_types_named_in_the_configuration_are_the_only_ones_taken(make_server):
    server = make_server({"files": {"types": "image/png, image/jpeg"}})
    server.create_operator("bob")
    bob, bob_ws, ann, chat_id = chat_with_bob(server)
    r = upload(ann, chat_id, PDF, name="fake.png", headers={"Content-Type": "image/png"})
    assert r.status_code == 415, r.text
    err = r.json()
    assert err["error"] == "file_type_not_allowed" and err["found"] == "application/pdf"
    assert err["allowed"] == ["image/png", "image/jpeg"] and "[files] types" in err["message"]
    assert db_count(server, "SELECT COUNT(*) FROM file_chunk") == 0
    assert upload(ann, chat_id, png(), client_id="u2").status_code == 201


def test_only_the_chats_parties_get_a_file_and_links_expire(make_server):
    server = make_server({"files": {"link_ttl": "2s"}})
    server.create_operator("bob")
    bob, bob_ws, ann, chat_id = chat_with_bob(server)
    file_id = upload(ann, chat_id, png(), name="me.png").json()["file"]["file"]["id"]
    eve = server.visitor()
    missing = eve.http.get(f"{server.url}/api/visitor/files/999999", timeout=TIMEOUT)
    assert missing.status_code == 404
    theirs = eve.http.get(f"{server.url}/api/visitor/files/{file_id}", timeout=TIMEOUT)
    # Exactly what a missing file gets (the message names the id asked for).
    assert theirs.status_code == 404
    assert theirs.json() == dict(missing.json(), message=f"no file {file_id}")
    # Another visitor cannot put a file into the chat either.
    r = upload(eve, chat_id, png(), client_id="e1")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    link = ann.http.get(f"{server.url}/api/visitor/files/{file_id}", timeout=TIMEOUT).json()
    url = server.url + link["url"]
    assert requests.get(url, timeout=TIMEOUT).status_code == 200
    gone = requests.get(server.url + "/api/files/999999?exp=1&sig=x", timeout=TIMEOUT)
    for bad in (
        url.replace("sig=", "sig=A"),
        url.replace(f"/api/files/{file_id}?", f"/api/files/{file_id + 1}?"),
        url.replace("exp=", "exp=9"),
    ):
        r = requests.get(bad, timeout=TIMEOUT)
        assert r.status_code == 404 and r.json() == gone.json()
    # After link_ttl the same URL answers like a missing file; a new link works.
    wait_for(lambda: requests.get(url, timeout=TIMEOUT).status_code == 404, what="expiry")
    assert requests.get(url, timeout=TIMEOUT).json() == gone.json()
    assert fetch(ann, file_id).status_code == 200


def test_a_stalled_upload_is_closed_and_keeps_nothing(make_server):
    server = make_server({"files": {"stall_timeout": "1s"}})
    server.create_operator("bob")
    bob, bob_ws, ann, chat_id = chat_with_bob(server)
    head = (
        f"POST /api/visitor/chats/{chat_id}/files?name=slow.bin&client_id=s1 HTTP/1.1\r\n"
        f"Host: x\r\nAuthorization: Bearer {ann.token}\r\nContent-Length: 2000000\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as s:
        s.sendall(head.encode() + b"q" * 600_000)  # more than two stored pieces, then silence
        wait_for(lambda: db_count(server, "SELECT COUNT(*) FROM file_chunk") >= 2, what="pieces")
        assert s.recv(65536) == b""  # closed by the server, without an answer
    wait_for(lambda: db_count(server, "SELECT COUNT(*) FROM file_chunk") == 0, what="dropped")
    assert db_count(server, "SELECT COUNT(*) FROM file") == 0
    assert ann.say(chat_id, "sorry, my connection")["type"] == "ack"


def test_uploads_need_an_open_chat_of_ones_own(server):
    bob, bob_ws, ann, chat_id = chat_with_bob(server)
    alice = server.console("admin")
    r = upload(alice, chat_id, PDF, role="console")
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    r = alice.http.post(
        f"{server.url}/api/console/chats/{chat_id}/files",
        params={"name": "a.pdf", "client_id": "x"},
        data=PDF,
        headers={"X-XSRFToken": "wrong"},
        timeout=TIMEOUT,
    )
    assert r.status_code == 403 and r.json()["error"] == "csrf_failed"
    r = upload(ann, chat_id, PDF, name="")
    assert r.status_code == 400 and r.json()["field"] == "name"
    assert bob_ws.request({"type": "close", "chat_id": chat_id})["type"] == "ack"
    r = upload(ann, chat_id, PDF, client_id="late")
    assert r.status_code == 409 and r.json()["error"] == "chat_closed"
    assert db_count(server, "SELECT COUNT(*) FROM file") == 0


def test_backup_then_restore_into_an_empty_data_directory_brings_back_chats_and_files(
    make_server, tmp_path
):
    server = make_server()
    server.create_operator("bob")
    bob, bob_ws, ann, chat_id = chat_with_bob(server)
    image = png(40, 30)
    big = bytes(range(256)) * 3000  # 768,000 bytes: several stored pieces
    image_id = upload(ann, chat_id, image, name="a.png", client_id="i").json()["file"]["file"]
    doc = upload(bob, chat_id, big, name="data.bin", client_id="d", role="console").json()
    backup = tmp_path / "backup.db"
    done = server.run_cli("backup", str(backup))
    assert done.returncode == 0, done.stderr
    server.stop()

    fresh = make_server(subdir="restored")
    fresh.stop()
    # An empty data directory (or, on PostgreSQL, a new database), as on a new machine.
    shutil.rmtree(fresh.data_dir, ignore_errors=True)
    fresh.data_dir.mkdir()
    done = fresh.run_cli("restore", str(backup))
    assert done.returncode == 0, done.stderr
    assert "1 chats" in done.stdout and "2 files" in done.stdout
    # Restoring over a database that is there is refused without --force.
    again = fresh.run_cli("restore", str(backup))
    assert again.returncode != 0 and "--force" in again.stderr
    fresh.start()
    back = fresh.visitor(ann.token)
    chat = back.http.get(f"{fresh.url}/api/visitor/chats/{chat_id}", timeout=TIMEOUT).json()
    files = {e["file"]["name"]: e["file"] for e in chat["events"] if e["type"] == "file"}
    assert set(files) == {"a.png", "data.bin"}
    assert fetch(back, image_id["id"]).content == image
    assert fetch(back, doc["file"]["file"]["id"]).content == big


# -- in-process ---------------------------------------------------------------------------------


def upload_in_process(app, who, chat_id: int, data: bytes, name="a.bin", client_id="c") -> dict:
    """An upload through the domain, in pieces as a connection delivers them."""
    files = app.services.files
    up = app.run(files.start(who.party, chat_id, name, client_id, None))
    for i in range(0, len(data), 64 * 1024):
        app.run(up.write(data[i : i + 64 * 1024]))
    return app.run(up.finish())["file"]


def test_deleting_a_chat_through_storage_deletes_its_files(app):
    bob = app.operator("bob", display_name="Bob")
    bob.connect()
    ann, ben = app.visitor(), app.visitor()
    ann.connect()
    ben.connect()
    chat_id = ann.start_chat()["chat"]["id"]
    other_id = ben.start_chat("Me too", name="Ben")["chat"]["id"]
    big = bytes(range(256)) * 3000  # several stored pieces
    mine = upload_in_process(app, ann, chat_id, big)["file"]["id"]
    kept = upload_in_process(app, ben, other_id, png())["file"]["id"]
    storage = app.services.storage
    assert app.run(storage.files.file(mine)).size == len(big)
    assert app.run(storage.files.chunk(mine, 2)) is not None

    app.run(storage.chats.delete_chat(chat_id))
    assert app.run(storage.chats.chat(chat_id)) is None
    assert app.run(storage.files.file(mine)) is None
    assert all(app.run(storage.files.chunk(mine, n)) is None for n in range(4))
    # Another chat's file is untouched.
    assert app.run(storage.files.file(kept)).type == "image/png"
    assert b"".join([app.run(storage.files.chunk(kept, 0))]) == png()


def test_an_upload_in_pieces_is_whole_and_counts_as_a_reply(app):
    bob, ann, chat_id = app.bob_answers_ann()
    data = bytes(range(256)) * 2000
    ev = upload_in_process(app, bob, chat_id, data, name="Price list.pdf", client_id="b")
    assert ev["from"] == "operator" and ev["operator"]["name"] == "Bob"
    assert ann.stream.last("file")["file"] == ev["file"]
    files = app.services.files
    pieces = []
    while (p := app.run(files.piece(ev["file"]["id"], len(pieces)))) is not None:
        pieces.append(p)
    assert b"".join(pieces) == data and len(pieces) == -(-len(data) // PIECE)  # never whole


def test_an_upload_that_ends_after_its_chat_ended_keeps_nothing(app):
    bob, ann, chat_id = app.bob_answers_ann()
    up = app.run(app.services.files.start(ann.party, chat_id, "late.png", "late", None))
    app.run(up.write(png() + bytes(200_000)))
    bob.ok({"type": "close", "chat_id": chat_id})
    with pytest.raises(ApiError) as refused:
        app.run(up.finish())
    assert refused.value.code == "chat_closed"
    app.run(up.abort())
    assert up.file_id is None
    events = ann.transcript(chat_id)["events"]
    assert events[-1]["type"] == "chat_closed" and not [e for e in events if e["type"] == "file"]


def test_refusals_with_a_body_leave_the_connection_usable(server):
    """Every answer of the upload route waits for the request's body, so one connection can
    carry refusal after refusal (closing on unread data would reset the next request)."""
    http = requests.Session()
    url = server.url + "/api/console/chats/1/files"
    for method in ("GET", "POST", "PATCH", "GET", "DELETE", "POST"):
        r = http.request(method, url, json={}, timeout=TIMEOUT)
        code = "method_not_allowed" if method == "GET" else "csrf_failed"
        assert r.json()["error"] == code, (method, r.text)
    assert len(http.adapters["http://"].poolmanager.pools) == 1
