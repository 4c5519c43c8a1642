"""A database written by the previous release opens, migrates and serves its chats.

``data/release-0.1.db`` was written by release 0.1.0 (commit 313c431, the last single-file
``cutelive.py``): ``git archive 313c431`` unpacked into a directory, that ``cutelive.py serve``
started on an empty data directory by this harness (``CUTELIVE_BIN`` pointing at it), then over
its API: the administrator ``admin`` by the setup token, the operator ``bob`` (both with
``conftest.PASSWORD``); the visitor Ann sent two page views (``/`` then ``/pricing``), started
a chat, Bob accepted it, each wrote a message, Bob closed it; the visitor Ben left an offline
message. The server was stopped with SIGTERM (which writes the page views and the visit's
end) and the file vacuumed. Ann's token and ids are below. The test runs on a copy.
"""

import sqlite3

from conftest import PASSWORD, ROOT, login

from livesupport.storage.schema import SCHEMA_VERSION

OLD_DB = ROOT / "tests" / "data" / "release-0.1.db"
ANN_TOKEN = "O7oETbrrbc9Tj46VuhzkbrxAUkv8USli6HyWyPuYQMs"
ANN_ID = 1
CHAT_ID = 1


def test_a_database_of_the_previous_release_opens_migrates_and_serves_its_chats(make_server):
    before = OLD_DB.read_bytes()
    server = make_server(database=OLD_DB)
    # Its operators log in with the passwords they had (argon2id hashes of the old release).
    bob, r = login(server, "bob", PASSWORD)
    assert r.status_code == 200, r.text
    assert r.json()["operator"]["display_name"] == "Bob"
    assert login(server, "admin", PASSWORD)[1].json()["operator"]["is_admin"] is True

    # The chat and its transcript, for the operator...
    listed = bob.get("/api/console/chats?status=closed").json()["chats"]
    assert [(c["id"], c["status"], c["name"]) for c in listed] == [(CHAT_ID, "closed", "Ann")]
    assert listed[0]["page_url"] == "https://shop.example/pricing"
    assert listed[0]["operator"]["name"] == "Bob" and listed[0]["visitor_id"] == ANN_ID
    t = bob.get(f"/api/console/chats/{CHAT_ID}").json()
    types = ["chat_started", "message", "chat_accepted", "message", "message", "chat_closed"]
    assert [(e["seq"], e["type"]) for e in t["events"]] == list(enumerate(types, 1))
    assert [e["text"] for e in t["events"] if e["type"] == "message"] == [
        "Hello from the previous release",
        "Hi Ann, Bob here.",
        "Will my chat survive the upgrade?",
    ]
    assert t["events"][2]["operator"]["name"] == "Bob"
    # ...and for the visitor, whose token still works.
    ann = server.visitor(ANN_TOKEN)
    mine = ann.http.get(server.url + "/api/visitor/chats", timeout=10).json()["chats"]
    assert [c["id"] for c in mine] == [CHAT_ID]
    seen = ann.http.get(server.url + f"/api/visitor/chats/{CHAT_ID}", timeout=10).json()
    assert [e["seq"] for e in seen["events"]] == [1, 2, 3, 4, 5, 6]

    # The inbox.
    msgs = bob.get("/api/console/offline-messages").json()["messages"]
    assert [(m["name"], m["email"], m["text"], m["read"]) for m in msgs] == [
        ("Ben", "ben@example.org", "Please call me back.", False)
    ]
    assert msgs[0]["page_url"] == "https://shop.example/contact"
    # The visit with its page trail and the chat.
    detail = bob.get(f"/api/console/visitors/{ANN_ID}").json()
    (visit,) = detail["visits"]
    assert [p["url"] for p in visit["trail"]] == [
        "https://shop.example/",
        "https://shop.example/pricing",
    ]
    assert [c["id"] for c in detail["chats"]] == [CHAT_ID]

    # New chats continue the old numbering, and the file is at the current schema version.
    ann.connect()
    new = ann.start_chat("And a new one after the upgrade")["chat"]
    assert new["id"] == CHAT_ID + 1
    server.stop()
    con = sqlite3.connect(server.data_dir / "cutelive.db")
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()
    assert OLD_DB.read_bytes() == before  # only the copy was touched
