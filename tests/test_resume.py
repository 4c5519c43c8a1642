"""Resume by cursors: dropped connections and restarts replay exactly what was missed."""

import uuid


def _chat_with_operator(server):
    bob = server.console("bob")
    bob_ws = bob.connect()
    ann = server.visitor()
    ws = ann.connect()
    chat_id = ann.start_chat("first")["chat"]["id"]
    assert bob_ws.request({"type": "accept", "chat_id": chat_id})["type"] == "ack"
    ws.wait(lambda e: e["type"] == "chat_accepted")
    return bob, bob_ws, ann, ws, chat_id


def _op_say(ws, chat_id, text):
    r = ws.request(
        {"type": "message", "chat_id": chat_id, "text": text, "client_id": uuid.uuid4().hex}
    )
    assert r["type"] == "ack", r
    return r["message"]


def _seqs(events, chat_id):
    return [e["seq"] for e in events if e.get("chat_id") == chat_id and "seq" in e]


def test_dropped_connection_replays_exactly_the_missed_events(server):
    bob, bob_ws, ann, ws, chat_id = _chat_with_operator(server)
    cursor = max(_seqs(ws.events, chat_id))
    assert cursor == 3
    ws.close()  # the visitor's connection drops
    for i in range(5):
        _op_say(bob_ws, chat_id, f"while you were away {i}")
    ws2 = ann.connect(cursors={str(chat_id): cursor})
    last = ws2.wait(lambda e: e.get("text") == "while you were away 4")
    assert last["seq"] == 8
    assert _seqs(ws2.events, chat_id) == [4, 5, 6, 7, 8]
    assert not [e for e in ws2.events if e["type"] == "reset"]
    # Live events continue after the replay, in order.
    _op_say(bob_ws, chat_id, "live again")
    ws2.wait(lambda e: e.get("text") == "live again")
    assert _seqs(ws2.events, chat_id) == [4, 5, 6, 7, 8, 9]
    # The welcome describes the chat.
    welcome = ws2.events[0]
    assert welcome["type"] == "welcome" and welcome["chats"][0]["id"] == chat_id


def test_operator_resumes_too(server):
    bob, bob_ws, ann, ws, chat_id = _chat_with_operator(server)
    bob_ws.close()
    for i in range(3):
        ann.say(chat_id, f"hello? {i}")
    ws_b = bob.connect(cursors={str(chat_id): 3})
    ws_b.wait(lambda e: e.get("text") == "hello? 2")
    assert _seqs(ws_b.events, chat_id) == [4, 5, 6]


def test_server_restart_replays_with_the_same_cursors(server):
    bob, bob_ws, ann, ws, chat_id = _chat_with_operator(server)
    _op_say(bob_ws, chat_id, "before restart")
    ws.wait(lambda e: e.get("text") == "before restart")
    cursor = max(_seqs(ws.events, chat_id))  # 4
    server.restart()
    # Bob comes back (within the grace, so the chat stays his) and writes while Ann is away.
    bob_ws2 = bob.connect(cursors={str(chat_id): 4})
    _op_say(bob_ws2, chat_id, "after restart 1")
    _op_say(bob_ws2, chat_id, "after restart 2")
    ws2 = ann.connect(cursors={str(chat_id): cursor})
    ws2.wait(lambda e: e.get("text") == "after restart 2")
    assert _seqs(ws2.events, chat_id) == [5, 6]
    assert not [e for e in ws2.events if e["type"] == "reset"]
    # And a long-poll client with the same cursor gets the same events.
    p = ann.poller()
    p.cursors = {str(chat_id): cursor}
    p.poll()
    assert _seqs(p.events, chat_id) == [5, 6]


def test_reset_for_a_cursor_the_server_cannot_serve(server):
    bob, bob_ws, ann, ws, chat_id = _chat_with_operator(server)
    ws2 = ann.connect(cursors={str(chat_id): 999, "123456": 2})
    resets = []
    ws2.wait(lambda e: e["type"] == "reset" and e["chat_id"] == 123456)
    resets = [e for e in ws2.events if e["type"] == "reset"]
    assert {(e["chat_id"], e["reason"]) for e in resets} == {
        (chat_id, "unknown_cursor"),
        (123456, "unknown_cursor"),
    }
    # A valid cursor on the same socket via sync: exactly the events after it.
    r = ws2.request({"type": "sync", "cursors": {str(chat_id): 1}})
    assert r["type"] == "ack"
    assert _seqs(ws2.events, chat_id) == [2, 3]


def test_reconnect_without_cursors_gets_open_chats_from_the_start(server):
    bob, bob_ws, ann, ws, chat_id = _chat_with_operator(server)
    ws2 = ann.connect(cursors={})
    ws2.wait(lambda e: e.get("type") == "chat_accepted")
    assert _seqs(ws2.events, chat_id) == [1, 2, 3]


def test_retried_client_id_returns_the_original_even_after_restart(server):
    bob, bob_ws, ann, ws, chat_id = _chat_with_operator(server)
    cid = uuid.uuid4().hex
    first = ann.say(chat_id, "only once", client_id=cid)["message"]
    again = ann.say(chat_id, "only once", client_id=cid)["message"]
    assert again == first
    # Over HTTP too, from "another tab".
    r = ann.send({"type": "message", "chat_id": chat_id, "text": "only once", "client_id": cid})
    assert r.json()["message"] == first
    server.restart()
    ws2 = ann.connect(cursors={str(chat_id): first["seq"]})
    after = ann.say(chat_id, "only once", client_id=cid)["message"]
    assert after == first
    t = ann.http.get(server.url + f"/api/visitor/chats/{chat_id}").json()
    assert [e["client_id"] for e in t["events"] if e.get("client_id") == cid] == [cid]
    assert t["chat"]["last_seq"] == first["seq"]
    assert ws2.events[0]["type"] == "welcome"
    # start_chat is idempotent too: the same client_id returns the same chat.
    ann2 = server.visitor()
    ann2.connect()
    start = {"type": "start_chat", "name": "Zed", "text": "hi", "client_id": "same-one"}
    a1 = ann2.ws.request(start)
    a2 = ann2.ws.request(start)
    assert a1["chat"]["id"] == a2["chat"]["id"] and a1["message"] == a2["message"]
    other = ann2.ws.request(dict(start, client_id="different"))
    assert other["error"] == "chat_already_open" and other["chat_id"] == a1["chat"]["id"]


def test_long_poll_lost_answer_is_replayed(server):
    """A poll answer that never reached the client: its next poll (old cursors) gets it again."""
    bob, bob_ws, ann, ws, chat_id = _chat_with_operator(server)
    p = ann.poller()
    p.poll()
    assert _seqs(p.events, chat_id) == [1, 2, 3]
    saved = dict(p.cursors)
    _op_say(bob_ws, chat_id, "maybe lost")
    got = p.poll()
    assert [e.get("text") for e in got] == ["maybe lost"]
    # Pretend that answer was lost: poll again with the old cursors on the same conn.
    p.cursors = saved
    p.events = []
    again = p.poll()
    assert [e.get("text") for e in again if "seq" in e] == ["maybe lost"]
    assert p.cursors[str(chat_id)] == 4
