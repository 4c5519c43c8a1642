"""Resume by cursors: dropped connections and restarts replay exactly what was missed, a
cursor the server cannot serve gets a reset, and a retried send stores nothing new. The rules
in-process; the same over real sockets, long-poll and a real restart against the server."""

import uuid

from conftest import seqs

# -- in-process ---------------------------------------------------------------------------------


def chat_with_operator(app):
    bob, ann, chat_id = app.bob_answers_ann("first")
    assert ann.stream.last("chat_accepted")
    return bob, ann, chat_id


def test_dropped_connection_replays_exactly_the_missed_events(app):
    bob, ann, chat_id = chat_with_operator(app)
    cursor = max(seqs(ann.stream.events, chat_id))
    assert cursor == 3
    ann.disconnect()  # the visitor's connection drops
    for i in range(5):
        assert bob.say(chat_id, f"while you were away {i}")["type"] == "ack"
    stream = ann.connect(cursors={chat_id: cursor})
    assert stream.last("message")["text"] == "while you were away 4"
    assert stream.last("message")["seq"] == 8
    assert seqs(stream.events, chat_id) == [4, 5, 6, 7, 8]
    assert not stream.of_type("reset")
    # Live events continue after the replay, in order.
    bob.say(chat_id, "live again")
    assert stream.last("message")["text"] == "live again"
    assert seqs(stream.events, chat_id) == [4, 5, 6, 7, 8, 9]
    # The welcome describes the chat.
    welcome = stream.events[0]
    assert welcome["type"] == "welcome" and welcome["chats"][0]["id"] == chat_id


def test_a_client_up_to_date_is_sent_nothing_again(app):
    """A visitor that reconnects with the chat's last seq is replayed nothing, and nothing
    either when its process catches up with the others' events (in a cluster, after Redis
    was away or another process vanished): that is no gap to fill."""
    bob, ann, chat_id = chat_with_operator(app)
    cursor = max(seqs(ann.stream.events, chat_id))
    ann.disconnect()
    stream = ann.connect(cursors={chat_id: cursor})
    if app.services.cluster is not None:
        app.run(app.services.streams.catch_up())
        app.settle()
    assert seqs(stream.events, chat_id) == []
    bob.say(chat_id, "next")
    assert seqs(stream.events, chat_id) == [cursor + 1]


def test_operator_resumes_too(app):
    bob, ann, chat_id = chat_with_operator(app)
    bob.disconnect()
    for i in range(3):
        assert ann.say(chat_id, f"hello? {i}")["type"] == "ack"
    stream = bob.connect(cursors={chat_id: 3})
    assert stream.last("message")["text"] == "hello? 2"
    assert seqs(stream.events, chat_id) == [4, 5, 6]


def test_reset_for_a_cursor_the_server_cannot_serve(app):
    bob, ann, chat_id = chat_with_operator(app)
    stream = ann.connect(cursors={chat_id: 999, 123456: 2})
    assert {(e["chat_id"], e["reason"]) for e in stream.of_type("reset")} == {
        (chat_id, "unknown_cursor"),
        (123456, "unknown_cursor"),
    }
    # Another visitor's chat is a cursor it cannot serve either, and nothing of it is sent.
    eve = app.visitor()
    eve_stream = eve.connect(cursors={chat_id: 1})
    assert eve_stream.last("reset")["chat_id"] == chat_id
    assert seqs(eve_stream.events, chat_id) == []
    # A valid cursor on the same stream via sync: exactly the events after it.
    ann.ok({"type": "sync", "cursors": {str(chat_id): 1}})
    assert seqs(stream.events, chat_id) == [2, 3]


def test_reconnect_without_cursors_gets_open_chats_from_the_start(app):
    bob, ann, chat_id = chat_with_operator(app)
    stream = ann.connect(cursors={})
    assert stream.last("chat_accepted")
    assert seqs(stream.events, chat_id) == [1, 2, 3]


def test_a_restart_replays_with_the_same_cursors(app):
    bob, ann, chat_id = chat_with_operator(app)
    bob.say(chat_id, "before restart")
    cursor = max(seqs(ann.stream.events, chat_id))
    assert cursor == 4
    app = app.restart()
    # Bob comes back (within the grace, so the chat stays his) and writes while Ann is away.
    bob = app.login("bob")
    bob.connect(cursors={chat_id: 4})
    bob.say(chat_id, "after restart 1")
    bob.say(chat_id, "after restart 2")
    ann = app.as_visitor(ann.token)
    stream = ann.connect(cursors={chat_id: cursor})
    assert seqs(stream.events, chat_id) == [5, 6]
    assert stream.last("message")["text"] == "after restart 2"
    assert not stream.of_type("reset")


def test_a_retried_client_id_returns_the_original(app):
    bob, ann, chat_id = chat_with_operator(app)
    cid = uuid.uuid4().hex
    first = ann.say(chat_id, "only once", client_id=cid)["message"]
    again = ann.say(chat_id, "only once", client_id=cid)["message"]
    assert again == first
    t = ann.transcript(chat_id)
    assert [e["client_id"] for e in t["events"] if e.get("client_id") == cid] == [cid]
    assert t["chat"]["last_seq"] == first["seq"]
    assert [e.get("text") for e in bob.stream.of_type("message")].count("only once") == 1
    # The operator's retries too.
    op_first = bob.say(chat_id, "noted", client_id="op-1")["message"]
    assert bob.say(chat_id, "noted", client_id="op-1")["message"] == op_first
    # A retry that arrives after the chat closed is still answered with what was stored;
    # a new message is refused.
    ann.ok({"type": "close", "chat_id": chat_id})
    assert ann.say(chat_id, "only once", client_id=cid)["message"] == first
    late = ann.send({"type": "message", "chat_id": chat_id, "text": "late", "client_id": "new"})
    assert late["error"] == "chat_closed", late
    # start_chat is idempotent too: the same client_id returns the same chat.
    zed = app.visitor()
    zed.connect()
    start = {"type": "start_chat", "name": "Zed", "text": "hi", "client_id": "same-one"}
    a1 = zed.ok(start)
    a2 = zed.ok(start)
    assert a1["chat"]["id"] == a2["chat"]["id"] and a1["message"] == a2["message"]
    other = zed.send(dict(start, client_id="different"))
    assert other["error"] == "chat_already_open" and other["chat_id"] == a1["chat"]["id"]


# -- against the server -------------------------------------------------------------------------


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


def test_server_restart_replays_with_the_same_cursors(server):
    bob, bob_ws, ann, ws, chat_id = _chat_with_operator(server)
    _op_say(bob_ws, chat_id, "before restart")
    ws.wait(lambda e: e.get("text") == "before restart")
    cursor = max(seqs(ws.events, chat_id))  # 4
    server.restart()
    # Bob comes back (within the grace, so the chat stays his) and writes while Ann is away.
    bob_ws2 = bob.connect(cursors={str(chat_id): 4})
    _op_say(bob_ws2, chat_id, "after restart 1")
    _op_say(bob_ws2, chat_id, "after restart 2")
    ws2 = ann.connect(cursors={str(chat_id): cursor})
    ws2.wait(lambda e: e.get("text") == "after restart 2")
    assert seqs(ws2.events, chat_id) == [5, 6]
    assert not [e for e in ws2.events if e["type"] == "reset"]
    # And a long-poll client with the same cursor gets the same events.
    p = ann.poller()
    p.cursors = {str(chat_id): cursor}
    p.poll()
    assert seqs(p.events, chat_id) == [5, 6]


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


def test_long_poll_lost_answer_is_replayed(server):
    """A poll answer that never reached the client: its next poll (old cursors) gets it again."""
    bob, bob_ws, ann, ws, chat_id = _chat_with_operator(server)
    p = ann.poller()
    p.poll()
    assert seqs(p.events, chat_id) == [1, 2, 3]
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
